"""Small builders of typed ARI events for the pure model tests (no I/O, explicit times)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from recorder.ari import events as ev
from recorder.db.mapping import call_rows
from recorder.model import commands as cmd
from recorder.model import snapshot
from recorder.model.state import ModelState

T0 = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)
AST = "00:11:22:33:44:55"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def chan(
    channel_id: str,
    state: str = "Up",
    name: str = "",
    number: str = "",
    app_data: str = "",
) -> ev.ChannelInfo:
    return ev.ChannelInfo(
        id=channel_id,
        name=name or f"PJSIP/{channel_id}",
        state=state,
        caller_number=number,
        dialplan_app="Stasis" if app_data else "",
        dialplan_app_data=app_data,
    )


def stasis_start(t: float, channel: ev.ChannelInfo, *args: str) -> ev.StasisStart:
    return ev.StasisStart(timestamp=at(t), asterisk_id=AST, channel=channel, args=args)


def stasis_end(t: float, channel_id: str) -> ev.StasisEnd:
    return ev.StasisEnd(timestamp=at(t), asterisk_id=AST, channel=chan(channel_id))


def hangup_request(t: float, channel_id: str, cause: int = 16) -> ev.ChannelHangupRequest:
    return ev.ChannelHangupRequest(
        timestamp=at(t), asterisk_id=AST, channel=chan(channel_id), cause=cause
    )


def destroyed(t: float, channel_id: str, cause: int = 16) -> ev.ChannelDestroyed:
    return ev.ChannelDestroyed(
        timestamp=at(t), asterisk_id=AST, channel=chan(channel_id), cause=cause
    )


def dial(t: float, peer_id: str, status: str, forward: str = "") -> ev.Dial:
    return ev.Dial(
        timestamp=at(t), asterisk_id=AST, peer=chan(peer_id), dialstatus=status, forward=forward
    )


def state_change(t: float, channel_id: str, state: str) -> ev.ChannelStateChange:
    return ev.ChannelStateChange(timestamp=at(t), asterisk_id=AST, channel=chan(channel_id, state))


def playback_finished(t: float, playback_id: str, state: str = "done") -> ev.PlaybackFinished:
    info = ev.PlaybackInfo(playback_id, "sound:x", "channel:x", state)
    return ev.PlaybackFinished(timestamp=at(t), asterisk_id=AST, playback=info)


def recording(t: float, kind: str, name: str, cause: str = "") -> ev.RecordingEvent:
    cls = {
        "started": ev.RecordingStarted,
        "finished": ev.RecordingFinished,
        "failed": ev.RecordingFailed,
    }[kind]
    info = ev.RecordingInfo(name, "wav", kind, "bridge:b", cause=cause)
    return cls(timestamp=at(t), asterisk_id=AST, recording=info)


def entered(t: float, bridge_id: str, channel_id: str) -> ev.ChannelEnteredBridge:
    return ev.ChannelEnteredBridge(
        timestamp=at(t), asterisk_id=AST, bridge=ev.BridgeInfo(bridge_id), channel=chan(channel_id)
    )


def left(t: float, bridge_id: str, channel_id: str) -> ev.ChannelLeftBridge:
    return ev.ChannelLeftBridge(
        timestamp=at(t), asterisk_id=AST, bridge=ev.BridgeInfo(bridge_id), channel=chan(channel_id)
    )


def bridge_destroyed(t: float, bridge_id: str) -> ev.BridgeDestroyed:
    return ev.BridgeDestroyed(timestamp=at(t), asterisk_id=AST, bridge=ev.BridgeInfo(bridge_id))


class Persisted:
    """What the model handed persistence (its `SaveCall`s), call by call, as the database would
    hold it. `check` after every step: what was stored gives back each call's state exactly, so
    no change of a call is left unstored (a crash would lose it)."""

    def __init__(self, adopted: ModelState | None = None) -> None:
        """`adopted`: calls a test starts from, as stored (a restarted daemon's)."""
        self.snapshots: dict[str, dict[str, Any]] = {
            call_id: json.loads(json.dumps(snapshot.encode(call)))
            for call_id, call in (adopted.calls.items() if adopted else ())}

    def check(self, state: ModelState, out: list[cmd.Command]) -> None:
        for c in out:
            if isinstance(c, cmd.SaveCall):
                row = call_rows(c.call).call  # as the daemon stages it
                assert row.state is not None, f"{c.call_id}: a snapshot without its state"
                self.snapshots[c.call_id] = json.loads(json.dumps(row.state))
        for call_id, call in state.calls.items():
            stored = self.snapshots.get(call_id)
            assert stored is not None, f"{call_id}: never stored"
            assert snapshot.decode(stored) == call, f"{call_id}: what was stored is behind"
