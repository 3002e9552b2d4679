"""ARI events as frozen dataclasses, built at the edge from the WebSocket's JSON.

Nothing here makes a call or logs: `parse_event` either returns a typed event, returns None for an
event type the daemon does not act on, or raises `EventError` naming the field that was wrong, so
the caller can log it and skip the message without stopping (a malformed event must never crash the
daemon). Field names follow Asterisk 22's events.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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
class PlaybackStarted(PlaybackEvent):
    pass


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
        "PlaybackContinuing",
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
    """Asterisk writes '2026-11-25T18:26:35.399+0000'; Python wants the offset as +00:00."""
    text = raw.strip()
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class _Reader:
    """Pulls typed fields out of one event's JSON, naming the path of anything wrong."""

    def __init__(self, event_type: str) -> None:
        self.type = event_type

    def obj(self, data: Any, path: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise EventError(self.type, path, f"expected an object, got {type(data).__name__}")
        return data

    def str_(self, data: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str):
            raise EventError(self.type, f"{path}.{key}", "missing or not a string")
        return value

    def int_(self, data: dict[str, Any], key: str, path: str) -> int | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventError(self.type, f"{path}.{key}", "not an integer")
        return value

    def channel(self, data: Any, path: str) -> ChannelInfo:
        ch = self.obj(data, path)
        caller = self.obj(ch.get("caller", {}), f"{path}.caller")
        connected = self.obj(ch.get("connected", {}), f"{path}.connected")
        dialplan = self.obj(ch.get("dialplan", {}), f"{path}.dialplan")
        return ChannelInfo(
            id=self.str_(ch, "id", path),
            name=self.str_(ch, "name", path),
            state=self.str_(ch, "state", path),
            caller_name=self.str_(caller, "name", f"{path}.caller", ""),
            caller_number=self.str_(caller, "number", f"{path}.caller", ""),
            connected_number=self.str_(connected, "number", f"{path}.connected", ""),
            dialplan_app=self.str_(dialplan, "app_name", f"{path}.dialplan", ""),
            dialplan_app_data=self.str_(dialplan, "app_data", f"{path}.dialplan", ""),
        )

    def opt_channel(self, data: dict[str, Any], key: str) -> ChannelInfo | None:
        return None if data.get(key) is None else self.channel(data[key], key)

    def bridge(self, data: Any, path: str) -> BridgeInfo:
        br = self.obj(data, path)
        members = br.get("channels", [])
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise EventError(self.type, f"{path}.channels", "not a list of channel ids")
        return BridgeInfo(
            id=self.str_(br, "id", path),
            channels=tuple(members),
            bridge_type=self.str_(br, "bridge_type", path, "mixing"),
        )

    def recording(self, data: Any, path: str) -> RecordingInfo:
        rec = self.obj(data, path)
        return RecordingInfo(
            name=self.str_(rec, "name", path),
            format=self.str_(rec, "format", path),
            state=self.str_(rec, "state", path),
            target_uri=self.str_(rec, "target_uri", path, ""),
            duration=self.int_(rec, "duration", path),
            cause=self.str_(rec, "cause", path, ""),
        )

    def playback(self, data: Any, path: str) -> PlaybackInfo:
        pb = self.obj(data, path)
        return PlaybackInfo(
            id=self.str_(pb, "id", path),
            media_uri=self.str_(pb, "media_uri", path, ""),
            target_uri=self.str_(pb, "target_uri", path, ""),
            state=self.str_(pb, "state", path, ""),
        )


def parse_event(data: Any) -> Event | None:
    """Build the typed event for one WebSocket message; None for types the daemon ignores."""
    if not isinstance(data, dict):
        raise EventError("?", "$", "event is not a JSON object")
    event_type = data.get("type")
    if not isinstance(event_type, str):
        raise EventError("?", "$.type", "missing or not a string")
    if event_type in IGNORED:
        return None
    r = _Reader(event_type)
    raw_ts = r.str_(data, "timestamp", "$")
    try:
        ts = parse_timestamp(raw_ts)
    except ValueError as exc:
        raise EventError(event_type, "$.timestamp", f"not a timestamp: {raw_ts!r}") from exc
    base: dict[str, Any] = {"timestamp": ts, "asterisk_id": data.get("asterisk_id") or ""}
    if not isinstance(base["asterisk_id"], str):
        raise EventError(event_type, "$.asterisk_id", "not a string")
    match event_type:
        case "StasisStart":
            args = data.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise EventError(event_type, "$.args", "not a list of strings")
            return StasisStart(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                args=tuple(args),
                replace_channel=r.opt_channel(data, "replace_channel"),
            )
        case "StasisEnd":
            return StasisEnd(**base, channel=r.channel(data.get("channel"), "$.channel"))
        case "ChannelStateChange":
            return ChannelStateChange(**base, channel=r.channel(data.get("channel"), "$.channel"))
        case "ChannelHold":
            return ChannelHold(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                musicclass=r.str_(data, "musicclass", "$", ""),
            )
        case "ChannelDtmfReceived":
            return ChannelDtmfReceived(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                digit=r.str_(data, "digit", "$"),
                duration_ms=r.int_(data, "duration_ms", "$") or 0,
            )
        case "ChannelUnhold":
            return ChannelUnhold(**base, channel=r.channel(data.get("channel"), "$.channel"))
        case "ChannelHangupRequest":
            return ChannelHangupRequest(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                cause=r.int_(data, "cause", "$"),
            )
        case "ChannelDestroyed":
            return ChannelDestroyed(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                cause=r.int_(data, "cause", "$") or 0,
                cause_txt=r.str_(data, "cause_txt", "$", ""),
            )
        case "Dial":
            return Dial(
                **base,
                peer=r.channel(data.get("peer"), "$.peer"),
                dialstatus=r.str_(data, "dialstatus", "$"),
                caller=r.opt_channel(data, "caller"),
                forward=r.str_(data, "forward", "$", ""),
                forwarded=r.opt_channel(data, "forwarded"),
                dialstring=r.str_(data, "dialstring", "$", ""),
            )
        case "ChannelEnteredBridge":
            return ChannelEnteredBridge(
                **base,
                bridge=r.bridge(data.get("bridge"), "$.bridge"),
                channel=r.opt_channel(data, "channel"),
            )
        case "ChannelLeftBridge":
            return ChannelLeftBridge(
                **base,
                bridge=r.bridge(data.get("bridge"), "$.bridge"),
                channel=r.channel(data.get("channel"), "$.channel"),
            )
        case "BridgeBlindTransfer":
            external = data.get("is_external", False)
            return BridgeBlindTransfer(
                **base,
                channel=r.channel(data.get("channel"), "$.channel"),
                exten=r.str_(data, "exten", "$", ""),
                context=r.str_(data, "context", "$", ""),
                result=r.str_(data, "result", "$", ""),
                is_external=external if isinstance(external, bool) else False,
                replace_channel=r.opt_channel(data, "replace_channel"),
                transferee=r.opt_channel(data, "transferee"),
                bridge=None if data.get("bridge") is None else r.bridge(data["bridge"], "$.bridge"),
            )
        case "BridgeAttendedTransfer":
            external = data.get("is_external", False)
            return BridgeAttendedTransfer(
                **base,
                first_leg=r.channel(data.get("transferer_first_leg"), "$.transferer_first_leg").id,
                second_leg=r.channel(
                    data.get("transferer_second_leg"), "$.transferer_second_leg"
                ).id,
                destination_type=r.str_(data, "destination_type", "$", ""),
                result=r.str_(data, "result", "$", ""),
                is_external=external if isinstance(external, bool) else False,
            )
        case "BridgeDestroyed":
            return BridgeDestroyed(**base, bridge=r.bridge(data.get("bridge"), "$.bridge"))
        case "RecordingStarted" | "RecordingFinished" | "RecordingFailed":
            cls = {
                "RecordingStarted": RecordingStarted,
                "RecordingFinished": RecordingFinished,
                "RecordingFailed": RecordingFailed,
            }[event_type]
            return cls(**base, recording=r.recording(data.get("recording"), "$.recording"))
        case "PlaybackStarted" | "PlaybackFinished":
            pcls = PlaybackStarted if event_type == "PlaybackStarted" else PlaybackFinished
            return pcls(**base, playback=r.playback(data.get("playback"), "$.playback"))
    raise EventError(event_type, "$.type", "unknown event type")


def parse_channel(data: Any) -> ChannelInfo:
    """A Channel model as GET /channels returns it (used when reconciling)."""
    return _Reader("Channel").channel(data, "$")


def parse_bridge(data: Any) -> BridgeInfo:
    """A Bridge model as GET /bridges returns it (used when reconciling)."""
    return _Reader("Bridge").bridge(data, "$")
