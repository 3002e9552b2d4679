"""The heart of the daemon: `step(state, event, settings) -> (state, commands)`.

Pure and deterministic: time comes from the event's timestamp, ids are derived from the call id,
and every effect (an ARI request, a database write, a log line, filing a file) is a command for
the adapters. So every captured trace can be replayed through this function without I/O.

The call flow (Stasis mode): the caller enters the app → answer, create a mixing bridge, add the
caller, play the consent announcement → when it has finished, ringback and dial the target
(/channels/create, then /dial after its StasisStart: Asterisk answers 409 before) → on answer,
start the bridge recording and wait for RecordingStarted (the 201 only means queued) → only then
add the answered party, so no word is missed and no recording starts with one party alone for
long (a lone, silent party makes Asterisk end the recording after ~4 s with an empty file).
Whenever a recording ends while the call is still up, a new segment starts at once and the gap
is logged: one recording is never assumed to cover a call.

Each event goes to one handler of HANDLERS, by the mode of the call it belongs to (Stasis, hook,
or none yet: recorder.model.routing.place) and its type; what the table lacks changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.ari import events as ev
from recorder.model.controls import on_control
from recorder.model.ending import (
    on_bridge_destroyed,
    on_entered,
    on_hangup,
    on_hold,
    on_left,
)
from recorder.model.failures import hooked_request_failed, stasis_request_failed
from recorder.model.flow import Result, Step, for_call, make_call_id
from recorder.model.following import (
    hooked_attended_transfer,
    hooked_blind_transfer,
    hooked_channel,
    hooked_dial,
    hooked_entered,
    hooked_left,
)
from recorder.model.hookrecordings import checked, hooked_recording
from recorder.model.hooks import first_hook, on_hook, on_prompted, stasis_hook
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
from recorder.model.outcomes import dial_status, dialled_leg_entered, on_state_change
from recorder.model.routing import place
from recorder.model.segments import on_filed, on_recording, retry_due
from recorder.model.settings import CallSettings
from recorder.model.sharing import peers_entered, peers_left
from recorder.model.snooping import snoop_retry_due
from recorder.model.starting import on_dtmf, on_new_channel, playback_done, playback_lost
from recorder.model.state import ENDED, REC_FILED, CallMode, ModelState
from recorder.model.transfers import on_attended_transfer, on_blind_transfer

# A handler gets the id of the call the event belongs to ("" for none yet).
Handler = Callable[[ModelState, Any, CallSettings, str], Result]


def step(state: ModelState, event: ev.Event, settings: CallSettings) -> Result:
    """Apply one event; return the new state and the commands to run, in order."""
    mode, call_id = place(state, event)
    handler = HANDLERS.get((mode, type(event)))
    if handler is None:
        return state, []
    return handler(state, event, settings, call_id)


def per_call(body: Callable[[Step, Any], None]) -> Handler:
    """The handler that runs `body` on the event's call (a copy, applied with its commands)."""

    def handler(state: ModelState, e: Any, settings: CallSettings, call_id: str) -> Result:
        return for_call(state, call_id, e, settings, lambda s: body(s, e))

    return handler


def then(first: Handler, second: Callable[[ModelState, Any, CallSettings], Result]) -> Handler:
    """`second` after `first`, on the state it left; both steps' commands."""

    def both(state: ModelState, e: Any, settings: CallSettings, call_id: str) -> Result:
        state, out = first(state, e, settings, call_id)
        state, more = second(state, e, settings)
        return state, out + more

    return both


STASIS, HOOK, NO_CALL = CallMode.STASIS, CallMode.HOOK, None

# Every (mode of the event's call, event type) the model acts on; anything else changes nothing.
HANDLERS: dict[tuple[CallMode | None, type], Handler] = {
    # a channel entering the app: a new call, a transfer's or forward's Local half, or stray
    (NO_CALL, ev.StasisStart): on_new_channel,
    (NO_CALL, HookCalled): first_hook,
    (NO_CALL, ControlRequested): on_control,
    # calls in the Stasis app
    (STASIS, ev.StasisStart): per_call(dialled_leg_entered),
    (STASIS, ev.PlaybackFinished): per_call(playback_done),
    (STASIS, PlaybackLost): per_call(playback_lost),
    (STASIS, RecordingRetryDue): per_call(retry_due),
    (STASIS, ev.Dial): per_call(dial_status),
    (STASIS, ev.ChannelStateChange): on_state_change,
    (STASIS, ev.RecordingStarted): on_recording,
    (STASIS, ev.RecordingFinished): on_recording,
    (STASIS, ev.RecordingFailed): on_recording,
    (STASIS, ev.ChannelEnteredBridge): on_entered,
    (STASIS, ev.ChannelLeftBridge): on_left,
    (STASIS, ev.BridgeDestroyed): on_bridge_destroyed,
    (STASIS, ev.BridgeBlindTransfer): on_blind_transfer,
    (STASIS, ev.BridgeAttendedTransfer): on_attended_transfer,
    (STASIS, ev.ChannelDtmfReceived): on_dtmf,
    (STASIS, ev.ChannelHold): on_hold,
    (STASIS, ev.ChannelUnhold): on_hold,
    (STASIS, ev.ChannelHangupRequest): on_hangup,
    (STASIS, ev.StasisEnd): on_hangup,
    (STASIS, ev.ChannelDestroyed): on_hangup,
    (STASIS, CommandFailed): stasis_request_failed,
    (STASIS, RecordingFiled): on_filed,
    (STASIS, RecordingFileFailed): on_filed,
    (STASIS, ControlRequested): on_control,
    (STASIS, HookCalled): stasis_hook,
    # calls the dialplan keeps (hook mode)
    (HOOK, HookCalled): on_hook,
    (HOOK, HookPrompted): on_prompted,
    (HOOK, ControlRequested): on_control,
    (HOOK, ev.StasisStart): hooked_channel,
    (HOOK, ev.StasisEnd): hooked_channel,
    (HOOK, ev.ChannelStateChange): hooked_channel,
    (HOOK, ev.ChannelDtmfReceived): hooked_channel,
    (HOOK, ev.ChannelHangupRequest): hooked_channel,
    (HOOK, ev.ChannelDestroyed): hooked_channel,
    (HOOK, ev.ChannelHold): on_hold,
    (HOOK, ev.ChannelUnhold): on_hold,
    (HOOK, ev.Dial): hooked_dial,
    (HOOK, ev.ChannelEnteredBridge): then(hooked_entered, peers_entered),
    (HOOK, ev.ChannelLeftBridge): then(hooked_left, peers_left),
    (HOOK, ev.BridgeBlindTransfer): hooked_blind_transfer,
    (HOOK, ev.BridgeAttendedTransfer): hooked_attended_transfer,
    (HOOK, ev.RecordingStarted): hooked_recording,
    (HOOK, ev.RecordingFinished): hooked_recording,
    (HOOK, ev.RecordingFailed): hooked_recording,
    (HOOK, CommandFailed): hooked_request_failed,
    (HOOK, ChannelChecked): per_call(checked),
    (HOOK, RecordingRetryDue): per_call(snoop_retry_due),
    (HOOK, RecordingFiled): on_filed,
    (HOOK, RecordingFileFailed): on_filed,
}

__all__ = ["ENDED", "REC_FILED", "CallSettings", "make_call_id", "step"]
