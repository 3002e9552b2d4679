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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.controls import pause_refused
from recorder.model.dialing import (
    dial,
    dialled_leg_ready,
    new_call,
    on_dial,
    on_dtmf,
    on_playback_finished,
    on_state_change,
)
from recorder.model.ending import (
    begin_end,
    leg_gone,
    on_bridge_destroyed,
    on_entered,
    on_hangup,
    on_hold,
    on_left,
)
from recorder.model.flow import (
    Result,
    Step,
    for_call,
    make_call_id,
)
from recorder.model.hooks import route
from recorder.model.inputs import CommandFailed, RecordingFiled, RecordingFileFailed
from recorder.model.segments import (
    on_filed,
    on_recording,
    recording_ended,
)
from recorder.model.settings import DIRECTIONS, CallSettings
from recorder.model.state import (
    CONSENT,
    ENDED,
    REC_FILED,
    REC_LIVE,
    ModelState,
)
from recorder.model.transfers import (
    attach_forward_half,
    forward_half,
    local_replaces,
    on_attended_transfer,
    on_blind_transfer,
    transfer_half,
)


def step(state: ModelState, event: ev.Event, settings: CallSettings) -> Result:
    """Apply one event; return the new state and the commands to run, in order."""
    hooked = route(state, event)  # calls the dialplan keeps (hook mode), and hook inputs
    if hooked is not None:
        return hooked(state, event, settings)
    handler = HANDLERS.get(type(event))
    if handler is None:
        return state, []
    return handler(state, event, settings)


def on_stasis_start(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.StasisStart)
    call_id = state.by_channel.get(e.channel.id)
    if call_id is not None:
        return for_call(state, call_id, e, settings, lambda s: dialled_leg_ready(s, e))
    if e.replace_channel is not None and e.replace_channel.id in state.by_channel:
        return local_replaces(state, e, settings)
    kind = e.args[0] if e.args else ""
    followed = forward_half(state, e)
    if followed is not None:  # a 302 followed by Asterisk (originate form): not a new call
        return attach_forward_half(state, e, followed, settings)
    if kind == "transfer" and e.channel.name.endswith(";2"):
        return transfer_half(state, e, settings)
    if kind in DIRECTIONS:
        return new_call(state, e, settings)
    # A channel we did not create and cannot place: never leave it stuck in the app.
    reason = "stale dialled leg" if kind == "dialed" else f"unknown Stasis args {list(e.args)!r}"
    return state, [
        cmd.Log("", "call.rejected", "error", {"channel_id": e.channel.id, "reason": reason}),
        cmd.Hangup("", e.channel.id),
    ]


def on_command_failed(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, CommandFailed)
    failed = e.command
    if failed is None:
        return state, []

    def body(s: Step) -> None:
        call = s.call
        what = type(failed).__name__
        gone = e.status == 404
        if isinstance(failed, cmd.StartRecording):
            rec = call.recordings.get(failed.name)
            if rec is not None and rec.status in REC_LIVE:
                recording_ended(s, rec, True, f"{e.status} {e.message}".strip())
            return
        if isinstance(failed, cmd.StopRecording | cmd.StopPlayback | cmd.DestroyBridge):
            return  # already over: the event that says so comes, or came, by itself
        if isinstance(failed, cmd.Hangup):
            leg = call.legs.get(failed.channel_id)
            if gone and leg is not None:
                leg_gone(s, leg)  # its destruction was missed (e.g. while disconnected)
            return
        s.log("ari.request_failed", "error", command=what, status=e.status, message=e.message)
        s.record("ari.request_failed", command=what, status=e.status, message=e.message)
        if isinstance(failed, cmd.PauseRecording):
            pause_refused(s, failed)
        elif isinstance(failed, cmd.Play) and call.phase == CONSENT:
            s.record("consent.failed", call.caller_channel, media=failed.media)
            call.playback_id = call.playback_kind = None
            dial(s)
        elif isinstance(failed, cmd.CreateChannel | cmd.Originate | cmd.DialChannel):
            leg = call.legs.get(failed.channel_id)
            call.outcome = "failed"
            if leg is not None:
                leg.outcome = "failed"
                begin_end(s, leg, "congestion")
                if isinstance(failed, cmd.CreateChannel | cmd.Originate):  # it never existed
                    leg_gone(s, leg)
        elif isinstance(failed, cmd.CreateBridge):
            call.outcome = "failed"
            begin_end(s, call.legs[call.caller_channel], "congestion")

    return for_call(state, failed.call_id, e, settings, body)


HANDLERS: dict[type, Callable[[ModelState, Any, CallSettings], Result]] = {
    ev.StasisStart: on_stasis_start,
    ev.PlaybackFinished: on_playback_finished,
    ev.Dial: on_dial,
    ev.ChannelStateChange: on_state_change,
    ev.RecordingStarted: on_recording,
    ev.RecordingFinished: on_recording,
    ev.RecordingFailed: on_recording,
    ev.ChannelEnteredBridge: on_entered,
    ev.ChannelLeftBridge: on_left,
    ev.BridgeDestroyed: on_bridge_destroyed,
    ev.BridgeBlindTransfer: on_blind_transfer,
    ev.BridgeAttendedTransfer: on_attended_transfer,
    ev.ChannelDtmfReceived: on_dtmf,
    ev.ChannelHold: on_hold,
    ev.ChannelUnhold: on_hold,
    ev.ChannelHangupRequest: on_hangup,
    ev.StasisEnd: on_hangup,
    ev.ChannelDestroyed: on_hangup,
    CommandFailed: on_command_failed,
    RecordingFiled: on_filed,
    RecordingFileFailed: on_filed,
}

__all__ = ["ENDED", "REC_FILED", "CallSettings", "make_call_id", "step"]
