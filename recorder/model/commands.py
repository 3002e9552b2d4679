"""What the call model asks the outside world to do. Adapters execute these in order.

Commands are data: the model never performs I/O, so any trace can be replayed through it and the
resulting commands compared with what a real run did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recorder.model.coverage import Gap
from recorder.model.state import Call


@dataclass(frozen=True)
class Command:
    call_id: str


# --- ARI requests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer(Command):
    channel_id: str


@dataclass(frozen=True)
class CreateBridge(Command):
    bridge_id: str
    name: str


@dataclass(frozen=True)
class AddChannel(Command):
    bridge_id: str
    channel_id: str


@dataclass(frozen=True)
class DestroyBridge(Command):
    bridge_id: str


@dataclass(frozen=True)
class Play(Command):
    channel_id: str
    playback_id: str
    media: str


@dataclass(frozen=True)
class StopPlayback(Command):
    playback_id: str


@dataclass(frozen=True)
class CreateChannel(Command):
    """POST /channels/create: the leg is only dialled after its StasisStart (else Asterisk 409s)."""

    channel_id: str
    endpoint: str
    app_args: str
    originator: str


@dataclass(frozen=True)
class Originate(Command):
    """POST /channels: Asterisk dials at once and the leg enters the app when it answers (and
    follows a 302 itself, unlike /channels/create)."""

    channel_id: str
    endpoint: str
    app_args: str
    originator: str
    timeout_s: int


@dataclass(frozen=True)
class DialChannel(Command):
    channel_id: str
    caller_id: str
    timeout_s: int


@dataclass(frozen=True)
class StartRecording(Command):
    bridge_id: str
    name: str
    format: str


@dataclass(frozen=True)
class Snoop(Command):
    """POST /channels/{id}/snoop (spy both, into our app): hook mode records a channel the
    dialplan keeps through it; the snoop dies with its channel."""

    channel_id: str
    snoop_id: str
    app_args: str


@dataclass(frozen=True)
class RecordChannel(Command):
    """POST /channels/{id}/record on a snoop channel (once it is in the app)."""

    channel_id: str
    name: str
    format: str


@dataclass(frozen=True)
class CheckChannel(Command):
    """GET /channels/{id}: whether Asterisk still has the channel, answered as a
    ChannelChecked input (hook mode: a snoop recording ended; a gap only if its leg lives)."""

    channel_id: str


@dataclass(frozen=True)
class PauseRecording(Command):
    """POST (pause) or DELETE (resume) /recordings/live/{name}/pause."""

    name: str
    pause: bool


@dataclass(frozen=True)
class StopRecording(Command):
    name: str


@dataclass(frozen=True)
class Hangup(Command):
    channel_id: str
    reason: str = "normal"


# --- persistence and files ----------------------------------------------------------------------


@dataclass(frozen=True)
class SaveCall(Command):
    """Upsert the call's whole snapshot: a later save repairs any earlier one that failed. The
    call as the step left it (the reducer never changes a call it handed out: a step changes a
    copy); recorder.db.mapping makes its rows."""

    call: Call


@dataclass(frozen=True)
class CallEvent:
    """Something that happened to a call, for its story (recorder.db.mapping: a call_events row)."""

    call_id: str
    asterisk_id: str
    at: datetime
    kind: str  # e.g. consent.played, recording.started, recording.gap, leg.hangup
    channel_id: str | None = None
    recording_name: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordEvent(Command):
    event: CallEvent


@dataclass(frozen=True)
class ContinueInDialplan(Command):
    """POST /channels/{id}/continue: an opt-out routed back to the dialplan (policy); with
    empty context/extension and priority 0, to the channel's next priority."""

    channel_id: str
    context: str
    extension: str
    priority: int


@dataclass(frozen=True)
class HookReply(Command):
    """Answer an AGI hook session: set these channel variables; play `prompts` ((file,
    escape digits), reported back as HookPrompted) unless empty; end the session if `final`."""

    session: str
    variables: tuple[tuple[str, str], ...] = ()
    prompts: tuple[tuple[str, str], ...] = ()
    final: bool = True


@dataclass(frozen=True)
class ControlDone(Command):
    """The outcome of an HTTP API control request (control_requests row)."""

    request_id: int
    status: str  # done | rejected | failed
    detail: str = ""


@dataclass(frozen=True)
class SaveTags(Command):
    tags: tuple[str, ...]
    by: str


@dataclass(frozen=True)
class SaveConsent(Command):
    """Consent audit rows (recorder.policy.ConsentRow): what each party heard and did."""

    rows: tuple[Any, ...]


@dataclass(frozen=True)
class SaveGaps(Command):
    """The coverage proof's uncovered intervals, flagged for ops (the server's: channel ids are
    unique only per Asterisk)."""

    asterisk_id: str
    gaps: tuple[Gap, ...]


@dataclass(frozen=True)
class FileRecording(Command):
    """Move a finished recording from Asterisk's spool into the archive, hashed and measured."""

    name: str
    format: str
    started_at_iso: str


@dataclass(frozen=True)
class Log(Command):
    """A log line the adapter writes with structlog; the model itself never logs."""

    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)
