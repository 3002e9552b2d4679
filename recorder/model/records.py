"""The small immutable records a call's state holds (recorder.model.state): shared between a
call and its per-step copies, never changed in place (a new one replaces an old one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from recorder.policy.announce import Announcement, When
from recorder.policy.model import Mode as ConsentMode


class Stay(NamedTuple):
    """A leg's stay in a bridge: the coverage proof's input (left None: still there)."""

    bridge: str
    entered: datetime
    left: datetime | None = None


class OnHold(NamedTuple):
    """A hold (ChannelHold ... ChannelUnhold): reported, never a gap."""

    start: datetime
    end: datetime | None = None


class Pause(NamedTuple):
    """Not recorded on purpose: kind "pause", "stop" or "unrecorded" (snapshots written before
    kinds were have two fields: "pause")."""

    start: datetime
    end: datetime | None = None
    kind: str = "pause"


class Peer(NamedTuple):
    """A channel of another recorded call in a bridge with this call's legs (hook mode: an
    attended transfer swaps the transferee into the consultation call's bridge): someone to talk
    with, for the coverage proof."""

    bridge: str
    channel: str
    entered: datetime
    left: datetime | None = None


@dataclass(frozen=True)
class CallDecision:
    """What policy decided for the call's path so far (the part of recorder.policy.Decision a
    call keeps): whether it is recorded, why, and what follows an opt-out."""

    action: str
    record: bool
    retention: str
    decided_by: tuple[str, ...]
    reason: str
    then: str | None = None
    route_to: str | None = None
    do_not_record: str | None = None

    def detail(self) -> dict[str, object]:
        """As an event row's detail (consent.decision)."""
        return {"action": self.action, "record": self.record, "retention": self.retention,
                "decided_by": list(self.decided_by), "reason": self.reason, "then": self.then,
                "route_to": self.route_to, "do_not_record": self.do_not_record}


@dataclass(frozen=True)
class Prompt:
    """An announcement being played to one channel (by ARI, or by an AGI hook), kept until its
    consent audit row: the announcement's fields, and where and since when it plays."""

    playback_id: str
    channel_id: str
    leg: str  # the leg it is for (its own channel)
    number: str | None  # the party's number (its jurisdiction)
    started_at: datetime
    to: str
    when: When
    mode: ConsentMode
    language: str
    prompt: str
    media: str
    opt_out_dtmf: str | None
    at_answer: bool = False  # due at the callee's answer: it is connected after these

    @property
    def announcement(self) -> Announcement:
        return Announcement(self.to, self.when, self.mode, self.language, self.prompt,
                            self.media, self.opt_out_dtmf)


@dataclass(frozen=True)
class HookSession:
    """An AGI session (hook mode) waiting for the recorder's answer: which hook, on which leg,
    and the prompt it is playing, if any."""

    hook: str  # record | answered
    leg: str
    prompt: str | None = None
