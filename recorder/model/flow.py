"""Shared pieces of the call model's steps: the per-step collector, call ids, playbacks.

A step copies the one call it changes into a `Step`, which collects the commands (requests,
events, log lines) in order; `for_call` applies it and returns the new state (the state it
was given when the step left the call as it was).

No handler says when the call must be stored: the step compares the call with the one
persistence last had and, if the step changed it, puts one snapshot of the call as the step
leaves it (`SaveCall`) before the first request made after a change (what Asterisk is about to
hear of is stored first), or at the end. A snapshot a few requests ahead of Asterisk is what a
crash just before those requests leaves too, which recovery handles (every name is stored before
its request). When and how the snapshot is written is recorder.service.writer's business.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.settings import CallSettings
from recorder.model.state import (
    Call,
    ModelState,
)

# What the dialplan may pass as a target: it is put into a dial string, so nothing that could
# name another technology or add options ('/', '&', ',', '@', '(' …) gets through.
TARGET_RE = re.compile(r"^[0-9A-Za-z*#+._-]{1,64}$")

# Dial statuses that end the attempt, with the call outcome and the hangup reason for the caller.
DIAL_FAILURES = {
    "BUSY": ("busy", "busy"),
    "NOANSWER": ("no_answer", "no_answer"),
    "CHANUNAVAIL": ("failed", "congestion"),
    "CONGESTION": ("failed", "congestion"),
}


# Q.850 causes of an unanswered dialled channel, when no Dial status said why.
CAUSE_OUTCOMES = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected"}


def make_call_id(at: datetime, asterisk_id: str, channel_id: str) -> str:
    """Readable, sortable and unique across offices: time plus a hash of server and channel."""
    digest = hashlib.sha256(f"{asterisk_id}/{channel_id}".encode()).hexdigest()[:8]
    return f"{at:%Y%m%dT%H%M%S}-{digest}"


@dataclass
class Step:
    """Collects the commands of one step for one call. `stored` is the call as persistence last
    had it (None: never, a call this step creates)."""

    call: Call
    at: datetime
    settings: CallSettings
    stored: Call | None = None
    out: list[cmd.Command] = field(default_factory=list)
    save_at: int | None = None  # where the snapshot goes: before the first request after a change

    def add(self, command: cmd.Command) -> None:
        if self.save_at is None and self.changed():
            self.save_at = len(self.out)  # what Asterisk is about to hear of is stored first
        self.out.append(command)

    def changed(self) -> bool:
        return self.stored is None or self.call != self.stored

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        self.out.append(cmd.Log(self.call.call_id, event, level, fields))

    def record(
        self,
        kind: str,
        channel_id: str | None = None,
        recording: str | None = None,
        **detail: Any,
    ) -> None:
        event = cmd.CallEvent(self.call.call_id, self.call.asterisk_id, self.at, kind, channel_id,
                              recording, detail)
        self.out.append(cmd.RecordEvent(self.call.call_id, event))

    def flush(self) -> None:
        """The step's end: its snapshot, if it changed the call, where `add` said."""
        if self.save_at is None and not self.changed():
            return
        self.out.insert(len(self.out) if self.save_at is None else self.save_at,
                        snapshot(self.call))
        self.save_at, self.stored = None, self.call


def snapshot(call: Call) -> cmd.SaveCall:
    """The call as persistence stores it (its rows: recorder.db.mapping)."""
    return cmd.SaveCall(call.call_id, call)


Result = tuple[ModelState, list[cmd.Command]]


def for_call(
    state: ModelState,
    call_id: str | None,
    event: ev.Event,
    settings: CallSettings,
    body: Callable[[Step], None],
) -> Result:
    if call_id is None or call_id not in state.calls:
        return state, []
    before = state.calls[call_id]
    s = Step(before.copy(), event.timestamp, settings, stored=before)
    body(s)
    s.flush()
    if s.stored is before and call_id not in state.robbed:
        return state, s.out  # the call is as it was (no snapshot): so is the state
    return state.with_call(s.call, before), s.out


def play(s: Step, channel_id: str, kind: str, media: str) -> None:
    call = s.call
    playback_id = f"{call.call_id}-p{call.next_playback}"
    call.next_playback += 1
    call.stasis.playback_id = playback_id
    call.stasis.playback_kind = kind
    s.add(cmd.Play(call.call_id, channel_id, playback_id, media))


def stop_recordings(s: Step) -> None:
    """Stop every live recording of the call, in either mode, as a deliberate stop (an in-call
    control, an opt-out, policy): none of their ends is a gap to replace, and no snoop is kept."""
    call = s.call
    call.stasis.current_recording = None  # Stasis mode: its end is not a gap to replace
    for leg in call.legs.values():
        if leg.hook.recording is not None:  # hook mode: likewise for each leg's snoop
            leg.hook = replace(leg.hook, recording=None)
    for rec in call.live_recordings():
        s.add(cmd.StopRecording(call.call_id, rec.name))
        snoop = call.snoop_of(rec.name)
        if snoop is not None:  # hook mode: its snoop is not needed any more
            s.add(cmd.Hangup(call.call_id, snoop))
