"""Which call an event belongs to, and that call's mode (recorder.model.calls dispatches on both).

A call the dialplan keeps (hook mode) is found through every channel, bridge and recording the
event names, since its legs are followed wherever they go; a call in the Stasis app through the
one object each event is about. None: no call yet (a channel entering the app, a first hook).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.ari import events as ev
from recorder.model.following import local_base, local_partner
from recorder.model.hooks import hook_call_of
from recorder.model.inputs import (
    ChannelChecked,
    CommandFailed,
    ControlRequested,
    HookCalled,
    HookPrompted,
    PlaybackLost,
    RecordingFiled,
    RecordingFileFailed,
    RecordingRetryDue,
)
from recorder.model.state import CallMode, ModelState


def place(state: ModelState, e: ev.Event) -> tuple[CallMode | None, str]:
    """The mode of the call `e` belongs to and its id; (None, "") when it belongs to none."""
    call_id = _hooked_call_of(state, e)
    if call_id is None:
        find = _KEYS.get(type(e))
        call_id = find(state, e) if find is not None else None
    call = state.calls.get(call_id or "")
    return (call.mode, call.call_id) if call is not None else (None, "")


def _hooked_call_of(state: ModelState, e: ev.Event) -> str | None:
    ids: list[str | None] = []
    if isinstance(e, ev.StasisStart | ev.ChannelEvent | ev.BridgeBlindTransfer):
        ids.append(state.by_channel.get(e.channel.id))
    elif isinstance(e, ev.Dial):
        ids += [state.by_channel.get(e.peer.id),
                state.by_channel.get(e.caller.id) if e.caller else None]
        # a Local ;2 dialling for a hook-mode call (ring groups): only when a call has its pair
        if e.caller is not None and local_base(e.caller.name) in state.by_local:
            ids += [c.call_id for c in state.calls.values()
                    if c.mode == "hook" and local_partner(c, e.caller)]
    elif isinstance(e, ev.ChannelEnteredBridge) and e.channel is not None:
        # a channel joining a bridge where a leg of ours talks belongs to that call
        ids += [state.by_channel.get(e.channel.id),
                *(state.by_channel.get(c) for c in e.bridge.channels)]
    elif isinstance(e, ev.BridgeAttendedTransfer):
        ids += [state.by_channel.get(e.first_leg), state.by_channel.get(e.second_leg)]
    elif isinstance(e, ev.ChannelLeftBridge):
        ids.append(state.by_channel.get(e.channel.id))
    elif isinstance(e, ev.RecordingEvent):
        ids.append(state.by_recording.get(e.recording.name))
    elif isinstance(e, RecordingFiled | RecordingFileFailed):
        ids.append(state.by_recording.get(e.name))
    elif isinstance(e, CommandFailed) and e.command is not None:
        ids.append(e.command.call_id)
    elif isinstance(e, ChannelChecked):
        ids.append(e.call_id)
    for call_id in ids:
        call = state.calls.get(call_id or "")
        if call is not None and call.mode == "hook":
            return call.call_id
    return None


def _channel(state: ModelState, e: Any) -> str | None:
    return state.by_channel.get(e.channel.id)


def _bridge(state: ModelState, e: Any) -> str | None:
    return state.by_bridge.get(e.bridge.id)


def _recording(state: ModelState, e: Any) -> str | None:
    return state.by_recording.get(e.recording.name)


def _filed(state: ModelState, e: Any) -> str | None:
    return state.by_recording.get(e.name)


def _attended(state: ModelState, e: Any) -> str | None:
    return state.by_channel.get(e.first_leg) or state.by_channel.get(e.second_leg)


def _command(_state: ModelState, e: Any) -> str | None:
    return e.command.call_id if e.command is not None else None


# The one object each event is about, for a call in the Stasis app (and hook-mode inputs).
_KEYS: dict[type, Callable[[ModelState, Any], str | None]] = {
    ev.StasisStart: _channel,
    ev.StasisEnd: _channel,
    ev.ChannelStateChange: _channel,
    ev.ChannelDtmfReceived: _channel,
    ev.ChannelHold: _channel,
    ev.ChannelUnhold: _channel,
    ev.ChannelHangupRequest: _channel,
    ev.ChannelDestroyed: _channel,
    ev.BridgeBlindTransfer: _channel,
    ev.BridgeAttendedTransfer: _attended,
    ev.Dial: lambda state, e: state.by_channel.get(e.peer.id),
    ev.PlaybackFinished: lambda state, e: state.by_playback.get(e.playback.id),
    PlaybackLost: lambda state, e: state.by_playback.get(e.playback_id),
    RecordingRetryDue: lambda _state, e: e.call_id,
    ev.ChannelEnteredBridge: _bridge,
    ev.ChannelLeftBridge: _bridge,
    ev.BridgeDestroyed: _bridge,
    ev.RecordingStarted: _recording,
    ev.RecordingFinished: _recording,
    ev.RecordingFailed: _recording,
    RecordingFiled: _filed,
    RecordingFileFailed: _filed,
    CommandFailed: _command,
    ControlRequested: lambda _state, e: e.call_id,
    HookCalled: hook_call_of,
    HookPrompted: lambda state, e: state.by_channel.get(e.channel_id),
}
