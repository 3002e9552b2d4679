"""ARI events as frozen dataclasses, built at the edge from the WebSocket's JSON.

Nothing here makes a call or logs: `decode_event` (the WebSocket's text) and `parse_event` (JSON
already decoded) either return a typed event, return None for an event type the daemon does not
act on, or raise `EventError` naming the field that was wrong, so the caller can log it and skip
the message without stopping (a malformed event must never crash the daemon). Field names follow
Asterisk 22's events.json.

The text is decoded and checked in one pass by msgspec into structs shaped as Asterisk sends
them (`_Wire` and its kin below), then turned into the daemon's events: a generic JSON parse and
a field-by-field check of the dicts cost about twice as much, at every event of every call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Union

import msgspec


class EventError(ValueError):
    """A message from Asterisk that is not a well-formed event of its type."""

    def __init__(self, event_type: str, path: str, problem: str) -> None:
        super().__init__(f"{event_type}: {path}: {problem}")
        self.event_type = event_type
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class ChannelInfo:
    id: str
    name: str
    state: str
    caller_name: str = ""
    caller_number: str = ""
    connected_number: str = ""
    dialplan_app: str = ""
    dialplan_app_data: str = ""


@dataclass(frozen=True)
class BridgeInfo:
    id: str
    channels: tuple[str, ...] = ()
    bridge_type: str = "mixing"


@dataclass(frozen=True)
class RecordingInfo:
    name: str
    format: str
    state: str
    target_uri: str = ""
    duration: int | None = None  # whole seconds: never used to judge coverage
    cause: str = ""


@dataclass(frozen=True)
class PlaybackInfo:
    id: str
    media_uri: str
    target_uri: str
    state: str


@dataclass(frozen=True)
class Event:
    timestamp: datetime
    asterisk_id: str = ""


@dataclass(frozen=True)
class StasisStart(Event):
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))
    args: tuple[str, ...] = ()
    replace_channel: ChannelInfo | None = None


@dataclass(frozen=True)
class ChannelEvent(Event):
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))


@dataclass(frozen=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelHold(ChannelEvent):
    musicclass: str = ""


@dataclass(frozen=True)
class ChannelUnhold(ChannelEvent):
    pass


@dataclass(frozen=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int | None = None


@dataclass(frozen=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True)
class Dial(Event):
    peer: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))
    dialstatus: str = ""
    caller: ChannelInfo | None = None
    forward: str = ""
    forwarded: ChannelInfo | None = None
    dialstring: str = ""


@dataclass(frozen=True)
class BridgeEvent(Event):
    bridge: BridgeInfo = field(default_factory=lambda: BridgeInfo(""))


@dataclass(frozen=True)
class ChannelEnteredBridge(BridgeEvent):
    channel: ChannelInfo | None = None


@dataclass(frozen=True)
class ChannelLeftBridge(BridgeEvent):
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))


@dataclass(frozen=True)
class BridgeBlindTransfer(Event):
    channel: ChannelInfo = field(default_factory=lambda: ChannelInfo("", "", ""))  # transferer
    exten: str = ""
    context: str = ""
    result: str = ""
    is_external: bool = False
    replace_channel: ChannelInfo | None = None  # the Local ;1 that took the transferer's place
    transferee: ChannelInfo | None = None  # absent when a recorder is in the bridge (traced)
    bridge: BridgeInfo | None = None


@dataclass(frozen=True)
class BridgeAttendedTransfer(Event):
    first_leg: str = ""  # transferer_first_leg: the transferer's leg in the first call
    second_leg: str = ""  # transferer_second_leg: its leg in the consultation call
    destination_type: str = ""  # link | application | bridge | threeway | fail
    result: str = ""
    is_external: bool = False


@dataclass(frozen=True)
class BridgeDestroyed(BridgeEvent):
    pass


@dataclass(frozen=True)
class RecordingEvent(Event):
    recording: RecordingInfo = field(default_factory=lambda: RecordingInfo("", "", ""))


@dataclass(frozen=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(frozen=True)
class RecordingFinished(RecordingEvent):
    pass


@dataclass(frozen=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(frozen=True)
class PlaybackEvent(Event):
    playback: PlaybackInfo = field(default_factory=lambda: PlaybackInfo("", "", "", ""))


@dataclass(frozen=True)
class PlaybackFinished(PlaybackEvent):
    pass


# Event types the daemon receives but has no use for yet; they are skipped without a warning.
IGNORED = frozenset(
    {
        "ChannelVarset",
        "ChannelConnectedLine",
        "ChannelDialplan",
        "ChannelCallerId",
        "BridgeCreated",
        "BridgeMerged",
        "BridgeVideoSourceChanged",
        "ChannelTalkingStarted",
        "ChannelTalkingFinished",
        "ChannelToneDetected",
        "PlaybackStarted",  # a prompt's end is what matters (PlaybackFinished)
        "PlaybackContinuing",  # each playback has one media
        "ApplicationRegistered",
        "ApplicationReplaced",
        "ApplicationMoveFailed",
        "DeviceStateChanged",
        "EndpointStateChange",
        "PeerStatusChange",
        "ContactStatusChange",
        "ChannelUserevent",
        "TextMessageReceived",
        # Every channel's creation and the like reach a subscribeAll app (hook mode): the
        # model follows calls by Dial and bridge events, not by these.
        "ChannelCreated",
        "ChannelTransfer",
        "ApplicationUnregistered",
        "CallBroadcast",
        "CallClaimed",
        "RESTResponse",
        # The model keeps its own pause intervals (it asked for them).
        "RecordingPaused",
        "RecordingUnpaused",
    }
)


def parse_timestamp(raw: str) -> datetime:
    """Asterisk writes '2026-11-25T18:26:35.399+0000' (Python 3.11 reads that as it stands);
    any other offset is turned to UTC."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:  # e.g. padded: the older, slower path
        text = raw.strip()
        if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
            text = f"{text[:-2]}:{text[-2:]}"
        value = datetime.fromisoformat(text)
    if value.tzinfo is UTC:  # what Asterisk sends: +0000 reads as UTC itself
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- Asterisk's JSON as it comes: decoded and type-checked by msgspec in one pass ---


class _Party(msgspec.Struct):
    name: str = ""
    number: str = ""


class _Dialplan(msgspec.Struct):
    app_name: str = ""
    app_data: str = ""


class _Channel(msgspec.Struct):
    id: str
    name: str
    state: str
    caller: _Party = msgspec.field(default_factory=_Party)
    connected: _Party = msgspec.field(default_factory=_Party)
    dialplan: _Dialplan = msgspec.field(default_factory=_Dialplan)

    def info(self) -> ChannelInfo:
        return ChannelInfo(
            id=self.id,
            name=self.name,
            state=self.state,
            caller_name=self.caller.name,
            caller_number=self.caller.number,
            connected_number=self.connected.number,
            dialplan_app=self.dialplan.app_name,
            dialplan_app_data=self.dialplan.app_data,
        )


def _opt(channel: _Channel | None) -> ChannelInfo | None:
    return None if channel is None else channel.info()


class _Bridge(msgspec.Struct):
    id: str
    channels: tuple[str, ...] = ()
    bridge_type: str = "mixing"

    def info(self) -> BridgeInfo:
        return BridgeInfo(id=self.id, channels=self.channels, bridge_type=self.bridge_type)


class _Recording(msgspec.Struct):
    name: str
    format: str
    state: str
    target_uri: str = ""
    duration: int | None = None
    cause: str = ""

    def info(self) -> RecordingInfo:
        return RecordingInfo(name=self.name, format=self.format, state=self.state,
                             target_uri=self.target_uri, duration=self.duration, cause=self.cause)


class _Playback(msgspec.Struct):
    id: str
    media_uri: str = ""
    target_uri: str = ""
    state: str = ""

    def info(self) -> PlaybackInfo:
        return PlaybackInfo(id=self.id, media_uri=self.media_uri, target_uri=self.target_uri,
                            state=self.state)


class _Wire(msgspec.Struct, tag_field="type", kw_only=True):
    """An event the daemon acts on, as Asterisk sends it; `event` builds the daemon's."""

    timestamp: str
    asterisk_id: str | None = None

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        raise NotImplementedError


class _StasisStart(_Wire, tag="StasisStart", kw_only=True):
    channel: _Channel
    args: tuple[str, ...] = ()
    replace_channel: _Channel | None = None

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return StasisStart(timestamp=ts, asterisk_id=asterisk_id, channel=self.channel.info(),
                           args=self.args, replace_channel=_opt(self.replace_channel))


class _ChannelWire(_Wire, kw_only=True):
    """Events that carry only a channel: `kind` is the daemon's event of the same name (one
    subclass per kind, from `_kinds`)."""

    kind: ClassVar[type[ChannelEvent]]
    channel: _Channel

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return self.kind(timestamp=ts, asterisk_id=asterisk_id, channel=self.channel.info())


class _ChannelHold(_Wire, tag="ChannelHold", kw_only=True):
    channel: _Channel
    musicclass: str = ""

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return ChannelHold(timestamp=ts, asterisk_id=asterisk_id, channel=self.channel.info(),
                           musicclass=self.musicclass)


class _ChannelDtmfReceived(_Wire, tag="ChannelDtmfReceived", kw_only=True):
    channel: _Channel
    digit: str
    duration_ms: int | None = None

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return ChannelDtmfReceived(timestamp=ts, asterisk_id=asterisk_id,
                                   channel=self.channel.info(), digit=self.digit,
                                   duration_ms=self.duration_ms or 0)


class _ChannelHangupRequest(_Wire, tag="ChannelHangupRequest", kw_only=True):
    channel: _Channel
    cause: int | None = None
    soft: bool = False

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        # A soft hang-up's "cause" is the AST_SOFTHANGUP_* flag (main/channel.c
        # ast_softhangup: 32 for ARI's DELETE, 1 for a bridge's), not a Q.850 cause: kept as
        # none, or the legs table would show 32 for every leg the daemon hung up.
        return ChannelHangupRequest(timestamp=ts, asterisk_id=asterisk_id,
                                    channel=self.channel.info(),
                                    cause=None if self.soft else self.cause)


class _ChannelDestroyed(_Wire, tag="ChannelDestroyed", kw_only=True):
    channel: _Channel
    cause: int | None = None
    cause_txt: str = ""

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return ChannelDestroyed(timestamp=ts, asterisk_id=asterisk_id,
                                channel=self.channel.info(), cause=self.cause or 0,
                                cause_txt=self.cause_txt)


class _Dial(_Wire, tag="Dial", kw_only=True):
    peer: _Channel
    dialstatus: str
    caller: _Channel | None = None
    forward: str = ""
    forwarded: _Channel | None = None
    dialstring: str = ""

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return Dial(timestamp=ts, asterisk_id=asterisk_id, peer=self.peer.info(),
                    dialstatus=self.dialstatus, caller=_opt(self.caller), forward=self.forward,
                    forwarded=_opt(self.forwarded), dialstring=self.dialstring)


class _ChannelEnteredBridge(_Wire, tag="ChannelEnteredBridge", kw_only=True):
    bridge: _Bridge
    channel: _Channel | None = None

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return ChannelEnteredBridge(timestamp=ts, asterisk_id=asterisk_id,
                                    bridge=self.bridge.info(), channel=_opt(self.channel))


class _ChannelLeftBridge(_Wire, tag="ChannelLeftBridge", kw_only=True):
    bridge: _Bridge
    channel: _Channel

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return ChannelLeftBridge(timestamp=ts, asterisk_id=asterisk_id,
                                 bridge=self.bridge.info(), channel=self.channel.info())


class _BridgeBlindTransfer(_Wire, tag="BridgeBlindTransfer", kw_only=True):
    channel: _Channel
    exten: str = ""
    context: str = ""
    result: str = ""
    is_external: Any = False  # anything but a boolean reads as False
    replace_channel: _Channel | None = None
    transferee: _Channel | None = None
    bridge: _Bridge | None = None

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return BridgeBlindTransfer(
            timestamp=ts, asterisk_id=asterisk_id, channel=self.channel.info(),
            exten=self.exten, context=self.context, result=self.result,
            is_external=self.is_external is True, replace_channel=_opt(self.replace_channel),
            transferee=_opt(self.transferee),
            bridge=None if self.bridge is None else self.bridge.info(),
        )


class _BridgeAttendedTransfer(_Wire, tag="BridgeAttendedTransfer", kw_only=True):
    transferer_first_leg: _Channel
    transferer_second_leg: _Channel
    destination_type: str = ""
    result: str = ""
    is_external: Any = False

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return BridgeAttendedTransfer(
            timestamp=ts, asterisk_id=asterisk_id, first_leg=self.transferer_first_leg.id,
            second_leg=self.transferer_second_leg.id, destination_type=self.destination_type,
            result=self.result, is_external=self.is_external is True,
        )


class _BridgeDestroyed(_Wire, tag="BridgeDestroyed", kw_only=True):
    bridge: _Bridge

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return BridgeDestroyed(timestamp=ts, asterisk_id=asterisk_id, bridge=self.bridge.info())


class _RecordingWire(_Wire, kw_only=True):
    kind: ClassVar[type[RecordingEvent]]
    recording: _Recording

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return self.kind(timestamp=ts, asterisk_id=asterisk_id, recording=self.recording.info())


class _PlaybackWire(_Wire, kw_only=True):
    kind: ClassVar[type[PlaybackEvent]]
    playback: _Playback

    def event(self, ts: datetime, asterisk_id: str) -> Event:
        return self.kind(timestamp=ts, asterisk_id=asterisk_id, playback=self.playback.info())


class _Skipped(msgspec.Struct, tag_field="type"):
    """An event type in IGNORED: its fields are skipped unread."""


class _Envelope(msgspec.Struct):
    """Only the type, of a message that failed: to name it in the error."""

    type: Any = None


def _kinds(base: type[_Wire], kinds: tuple[type[Event], ...]) -> tuple[type[_Wire], ...]:
    """A tagged subclass of `base` for each of the daemon's event classes, named as it is."""
    made: list[Any] = [msgspec.defstruct(f"_{k.__name__}", [], bases=(base,), tag=k.__name__,
                                         namespace={"kind": k}, kw_only=True) for k in kinds]
    return tuple(made)


_HANDLED: tuple[type[_Wire], ...] = (
    _StasisStart, _ChannelHold, _ChannelDtmfReceived, _ChannelHangupRequest, _ChannelDestroyed,
    _Dial, _ChannelEnteredBridge, _ChannelLeftBridge, _BridgeBlindTransfer,
    _BridgeAttendedTransfer, _BridgeDestroyed,
    *_kinds(_ChannelWire, (StasisEnd, ChannelStateChange, ChannelUnhold)),
    *_kinds(_RecordingWire, (RecordingStarted, RecordingFinished, RecordingFailed)),
    *_kinds(_PlaybackWire, (PlaybackFinished,)),
)  # fmt: skip
_SKIPPED = tuple(
    msgspec.defstruct(name, [], bases=(_Skipped,), tag=name) for name in sorted(IGNORED)
)
_ANY_EVENT: Any = Union[(*_HANDLED, *_SKIPPED)]  # built from a tuple: no `|` form
_DECODER = msgspec.json.Decoder(_ANY_EVENT)
_MISSING = re.compile(r"Object missing required field `([^`]+)`")


def _build(wire: Any) -> Event | None:
    if isinstance(wire, _Skipped):
        return None
    assert isinstance(wire, _Wire)
    try:
        ts = parse_timestamp(wire.timestamp)
    except ValueError as exc:
        raise EventError(str(type(wire).__struct_config__.tag), "$.timestamp",
                         f"not a timestamp: {wire.timestamp!r}") from exc
    return wire.event(ts, wire.asterisk_id or "")


def _error(exc: msgspec.ValidationError, event_type: Any) -> EventError:
    """msgspec's "Expected `str`, got `int` - at `$.channel.id`" as an EventError."""
    problem, _, where = str(exc).partition(" - at `")
    path = where.rstrip("`") or "$"
    missing = _MISSING.fullmatch(problem)
    if missing is not None:
        path, problem = f"{path}.{missing[1]}", "missing"
    if not isinstance(event_type, str):
        kind = "?"
        if path == "$":
            problem = "event is not a JSON object"
        elif path == "$.type":
            problem = "missing or not a string"
    else:
        kind = event_type
        if path == "$.type":
            problem = "unknown event type"
    return EventError(kind, path, problem)


def decode_event(text: str | bytes) -> Event | None:
    """Decode one WebSocket message; None for types the daemon ignores."""
    try:
        wire = _DECODER.decode(text)
    except msgspec.ValidationError as exc:
        try:
            envelope = msgspec.json.decode(text, type=_Envelope)
        except msgspec.ValidationError:  # not an object
            envelope = _Envelope()
        raise _error(exc, envelope.type) from None
    except msgspec.DecodeError as exc:  # not JSON at all
        raise EventError("?", "$", f"not JSON: {exc}") from None
    return _build(wire)


def parse_event(data: Any) -> Event | None:
    """Build the typed event for one message already decoded from JSON (as `decode_event`)."""
    try:
        wire = msgspec.convert(data, _ANY_EVENT)
    except msgspec.ValidationError as exc:
        raise _error(exc, data.get("type") if isinstance(data, dict) else None) from None
    return _build(wire)


def parse_channel(data: Any) -> ChannelInfo:
    """A Channel model as GET /channels returns it (used when reconciling)."""
    try:
        return msgspec.convert(data, _Channel).info()
    except msgspec.ValidationError as exc:
        raise _error(exc, "Channel") from None


def parse_bridge(data: Any) -> BridgeInfo:
    """A Bridge model as GET /bridges returns it (used when reconciling)."""
    try:
        return msgspec.convert(data, _Bridge).info()
    except msgspec.ValidationError as exc:
        raise _error(exc, "Bridge") from None
