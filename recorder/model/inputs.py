"""Inputs to the call model that do not come from Asterisk's WebSocket.

Adapters report the outcome of commands they ran (a failed request, a filed recording) as events,
so the model's state changes only through `step`, and a replay sees the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.ari.events import ChannelInfo, Event
from recorder.model.commands import Command


@dataclass(frozen=True)
class CommandFailed(Event):
    command: Command | None = None
    status: int = 0  # HTTP status from ARI, 0 when Asterisk could not be reached
    message: str = ""


@dataclass(frozen=True)
class ChannelChecked(Event):
    """The answer to a CheckChannel: Asterisk has the channel (`exists`) or answered 404.
    A channel being hung up is already gone for ARI (main/channel.c ast_hangup unlinks it
    before its audiohooks are detached and its snoops end)."""

    call_id: str = ""
    channel_id: str = ""
    exists: bool = True


@dataclass(frozen=True)
class RecordingRetryDue(Event):
    """A call's `retry_at` has passed (recorder.model.segments.retry_later): the daemon's
    periodic task says so."""

    call_id: str = ""


@dataclass(frozen=True)
class PlaybackLost(Event):
    """Reconciliation (recorder.model.reconcile): a playback the model waits on is not in
    Asterisk (404), and no event said how it ended: it ended while the daemon was away, or it
    never started (the daemon died after journaling it, before asking for it)."""

    playback_id: str = ""


@dataclass(frozen=True)
class RecordingFiled(Event):
    name: str = ""
    path: str = ""
    sha256: str = ""
    bytes: int = 0
    duration_ms: int | None = None  # None: the audio could not be measured (filed anyway)
    audio_error: str | None = None


@dataclass(frozen=True)
class RecordingFileFailed(Event):
    name: str = ""
    error: str = ""
    # The archive is full: the file waits in the spool (measured here) to be filed when space
    # returns (the spool sweep files it). Not missing, and what it holds counts as recorded.
    waiting: bool = False
    duration_ms: int | None = None
    sha256: str | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class HookCalled(Event):
    """The dialplan ran a FastAGI hook (recorder.agi) on a channel it keeps.

    `session` names the AGI connection waiting for the answer (a HookReply command). `channel`
    is built from the AGI environment (agi_uniqueid is the ARI channel id).
    """

    session: str = ""
    hook: str = ""
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))
    args: tuple[str, ...] = ()
    exten: str = ""  # agi_extension: the dialplan's extension, the default target
    dnid: str = ""  # agi_dnid: the number dialled on the trunk, an inbound call's DID


@dataclass(frozen=True)
class HookPrompted(Event):
    """The AGI session played the announcements a HookReply asked for: `digit` is the key that
    interrupted them (None: heard to the end); `hung_up` when the channel went meanwhile."""

    session: str = ""
    channel_id: str = ""
    digit: str | None = None
    hung_up: bool = False
    error: str | None = None  # the prompt could not be played (a missing sound file)


@dataclass(frozen=True)
class ControlRequested(Event):
    """An in-call control from the HTTP API (a CRM, an IVR), stored in control_requests."""

    request_id: int = 0
    call_id: str = ""
    action: str = ""  # pause | resume | start | stop | tag
    tag: str | None = None
    by: str = ""
