"""Bridge membership, hold, hangups and the end of a call (with its coverage proof).

A party leaving ends the call (the others are hung up, the recording stopped) unless it was
replaced by a transfer or was a dialled leg that lost (forwarded, not chosen). The call ends for
good once every leg is gone and every recording is filed or known missing; then the coverage
proof is computed from what the files hold.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Final

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.consent import audit
from recorder.model.coverage import coverage, unseen_end
from recorder.model.flow import (
    CAUSE_OUTCOMES,
    DIAL_FAILURES,
    Result,
    Step,
    for_call,
)
from recorder.model.phases import transition
from recorder.model.records import OnHold, Stay
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CONNECTING,
    DIALING,
    ENDED,
    ENDING,
    GONE_UNSEEN,
    LEG_GONE,
    REC_FAILED,
    REC_MISSING,
    Call,
    Leg,
    ModelState,
)


def on_entered(state: ModelState, e: ev.Event, settings: CallSettings,
               call_id: str) -> Result:
    assert isinstance(e, ev.ChannelEnteredBridge)
    if e.channel is None:
        return state, []
    channel_id = e.channel.id

    def body(s: Step) -> None:
        call = s.call
        leg = call.legs.get(channel_id)
        if leg is None or e.bridge.id not in call.all_bridges() or leg.in_bridge:
            return
        leg.in_bridge = True
        leg.spans.append(Stay(e.bridge.id, s.at))
        if len(call.bridged_parties()) >= 2 and call.phase == CONNECTING:
            transition(s, BRIDGED)
            if call.bridged_at is None:
                call.bridged_at = s.at
            s.record("call.bridged", channel_id)
            s.log("call.bridged", "debug", channel_id=channel_id,
                  recording=call.stasis.current_recording)

    return for_call(state, call_id, e, settings, body)


def leave_bridge(call: Call, leg: Leg, at: datetime) -> None:
    if not leg.in_bridge:
        return
    if len(call.bridged_parties()) == 2 and call.bridged_at and call.unbridged_at is None:
        call.unbridged_at = at
    leg.in_bridge = False
    leg.spans = [span._replace(left=at) if span.left is None else span for span in leg.spans]


def on_left(state: ModelState, e: ev.Event, settings: CallSettings,
            call_id: str) -> Result:
    assert isinstance(e, ev.ChannelLeftBridge)

    def body(s: Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is not None and e.bridge.id in s.call.all_bridges():
            leave_bridge(s.call, leg, s.at)

    return for_call(state, call_id, e, settings, body)


def on_bridge_destroyed(state: ModelState, e: ev.Event, settings: CallSettings,
                        call_id: str) -> Result:
    assert isinstance(e, ev.BridgeDestroyed)

    def body(s: Step) -> None:
        s.call.stasis.bridge_destroyed = True
        maybe_finish(s)

    return for_call(state, call_id, e, settings, body)


def on_hold(state: ModelState, e: ev.Event, settings: CallSettings,
            call_id: str) -> Result:
    assert isinstance(e, ev.ChannelHold | ev.ChannelUnhold)

    def body(s: Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is None:
            return
        open_hold = next((i for i, h in enumerate(leg.holds) if h.end is None), None)
        if isinstance(e, ev.ChannelHold):
            if open_hold is None:
                leg.holds.append(OnHold(s.at))
                s.record("leg.hold", leg.channel_id, musicclass=e.musicclass)
        elif open_hold is not None:  # Asterisk sends a lone Unhold at each transfer: not a hold
            leg.holds[open_hold] = leg.holds[open_hold]._replace(end=s.at)
            s.record("leg.unhold", leg.channel_id)

    return for_call(state, call_id, e, settings, body)


def on_hangup(state: ModelState, e: ev.Event, settings: CallSettings,
              call_id: str) -> Result:
    assert isinstance(e, ev.ChannelEvent)
    channel_id = e.channel.id

    def body(s: Step) -> None:
        leg = s.call.legs.get(channel_id)
        if leg is None:
            return
        if isinstance(e, ev.ChannelHangupRequest):
            if e.cause is not None and leg.hangup_cause is None:
                leg.hangup_cause = e.cause
            if leg.stasis.replaced_by is not None:  # a transferer leaving: the call goes on
                return
            if leg.role == "callee" and leg.answered_at is None:
                # Not yet the end: a 302 (cause 23) is followed by Dial CANCEL with `forward`
                # (trace sip_forward_302_create_dial); the leg's end decides when it goes.
                return
            begin_end(s, leg, "normal")
            return
        if isinstance(e, ev.ChannelDestroyed):
            destroyed(leg, e)
            refine_unanswered(s, leg)
        leg_gone(s, leg)

    return for_call(state, call_id, e, settings, body)


def leg_outcome(call: Call, leg: Leg) -> str:
    if leg.role == "caller":
        return "hangup"
    if leg.answered_at is not None:
        return "answered"
    if call.outcome == "abandoned":
        return "cancelled"
    return "failed"


def refine_unanswered(s: Step, leg: Leg) -> None:
    """A dialled leg that ended unanswered without a Dial status: its cause tells why.

    A dial timeout, a far end that rejects, or a 'busy' before any Dial event may reach us only
    as the channel's destruction (its Q.850 cause), after the hangup request already ended the
    call provisionally as 'failed'.
    """
    call = s.call
    if leg.role != "callee" or leg.answered_at is not None or call.answered_at is not None:
        return
    if leg.dialstatus in DIAL_FAILURES:  # Asterisk said why: that stands
        return
    outcome = CAUSE_OUTCOMES.get(leg.hangup_cause or 0)
    if (
        outcome is None
        or leg.outcome not in (None, "failed")
        or call.outcome not in (None, "failed")
    ):
        return
    leg.outcome = call.outcome = outcome


def leg_gone(s: Step, leg: Leg) -> None:
    if leg.state == LEG_GONE:
        return
    if leg.hangup_cause is None:  # no event said why: the app's own hang-up, if it was that
        leg.hangup_cause = leg.stasis.hangup_asked
    leave_bridge(s.call, leg, s.at)
    leg.state = LEG_GONE
    leg.ended_at = s.at
    if leg.outcome is None:
        leg.outcome = leg_outcome(s.call, leg)
    record_hangup(s, leg)
    if not superseded(s.call, leg):
        begin_end(s, leg, "normal")
    maybe_finish(s)


def destroyed(leg: Leg, e: ev.ChannelDestroyed) -> None:
    """What a leg's destruction says of it (either mode): its cause, and whether its end was
    seen (reconciliation's ghost for a leg found gone: GONE_UNSEEN)."""
    leg.hangup_cause = e.cause
    leg.end_unseen = e.cause_txt == GONE_UNSEEN


def record_hangup(s: Step, leg: Leg) -> None:
    """The leg's hang-up in the call's story (either mode); `unseen`: found gone on a
    reconnection, at a moment nobody saw."""
    detail: dict[str, Any] = {"cause": leg.hangup_cause, "role": leg.role}
    if leg.end_unseen:
        detail["unseen"] = True
    s.record("leg.hangup", leg.channel_id, **detail)


def end_as_heard(s: Step, leg: Leg) -> None:
    """A leg found gone by reconciliation ended when its recordings say (coverage.unseen_end),
    not when it was found gone: its stays and holds end then too."""
    end = unseen_end(s.call, leg)
    if end is None or leg.ended_at is None or end >= leg.ended_at:
        return
    s.log("leg.end_unseen", channel_id=leg.channel_id, found_gone=leg.ended_at.isoformat(),
          ended=end.isoformat())
    leg.ended_at = end
    leg.spans = [Stay(x.bridge, x.entered, end if x.left is None else min(x.left, end))
                 for x in leg.spans]
    leg.holds = [OnHold(h.start, end if h.end is None else min(h.end, end)) for h in leg.holds]


def superseded(call: Call, leg: Leg) -> bool:
    """Whether a leg's end leaves the call going: a transferer replaced by a Local channel, a
    dialled leg that forwarded or lost a ring group while another still rings, or one that was
    not chosen once another answered."""
    if leg.stasis.replaced_by is not None:
        return True
    if leg.role != "callee":
        return False
    if call.phase == DIALING:
        return bool(other_dialled_legs(call, leg))
    return leg.channel_id != call.callee_channel


def other_dialled_legs(call: Call, leg: Leg) -> list[Leg]:
    """Dialled legs still ringing (or being created) besides `leg`."""
    return [
        x
        for x in call.legs.values()
        if x.role == "callee"
        and x.channel_id != leg.channel_id
        and x.state != LEG_GONE
        and x.answered_at is None
        and x.outcome not in ("busy", "no_answer", "failed", "rejected", "forwarded")
    ]


def dial_outcome(call: Call) -> str:
    """The call's outcome when nobody answered: no answer if any leg rang out, else busy if
    every leg was busy, else failed."""
    outcomes = {x.outcome for x in call.legs.values() if x.role == "callee" and x.outcome}
    outcomes.discard("forwarded")
    if "no_answer" in outcomes:
        return "no_answer"
    if outcomes == {"busy"}:
        return "busy"
    return "failed"


# ARI's hang-up reasons and the Q.850 cause Asterisk sets for each (resource_channels.c
# convert_reason_to_hangup_code; causes.h): those the model asks for
REASON_CAUSES: Final = {"normal": 16, "busy": 17, "no_answer": 19, "rejected": 21,
                        "answered_elsewhere": 26, "congestion": 34, "unallocated": 1}


def hang_up(s: Step, leg: Leg, reason: str = "normal") -> None:
    """Ask Asterisk to hang up a leg of the call, keeping the cause that asks for: ARI sets it
    on the channel, then hangs it up softly, and the events that reach the app carry no cause
    (the soft request's is a flag; ChannelDestroyed comes after StasisEnd, if at all)."""
    s.add(cmd.Hangup(s.call.call_id, leg.channel_id, reason))
    if (cause := REASON_CAUSES.get(reason)) is not None:
        leg.stasis = replace(leg.stasis, hangup_asked=cause)


def begin_end(s: Step, leg: Leg, reason: str) -> None:
    """A party left or the dial failed: stop recording and release every other leg."""
    call = s.call
    if call.phase in (ENDING, ENDED):
        return
    if call.outcome is None:
        if call.answered_at is not None:
            call.outcome = "answered"
        elif leg.role == "caller":
            call.outcome = "abandoned"
            for callee in call.legs.values():
                if callee.role == "callee" and callee.outcome is None:
                    callee.outcome = "cancelled"
        else:
            call.outcome = dial_outcome(call)
    transition(s, ENDING)
    for prompt in list(call.prompts.values()):  # hung up during an announcement: interrupted
        s.add(cmd.StopPlayback(call.call_id, prompt.playback_id))
        audit(s, prompt, "interrupted")
    if call.bridged_at is not None and call.unbridged_at is None:
        call.unbridged_at = s.at
    if call.stasis.playback_id:
        s.add(cmd.StopPlayback(call.call_id, call.stasis.playback_id))
        call.stasis.playback_id = call.stasis.playback_kind = None
    for rec in call.live_recordings():
        s.add(cmd.StopRecording(call.call_id, rec.name))
    call.stasis.hangup_reason = reason
    for other in call.live_legs():
        if other.channel_id != leg.channel_id:  # a leg not yet created answers 404: then gone
            hang_up(s, other, reason)
    s.log("call.ending", "debug", channel_id=leg.channel_id, outcome=call.outcome)


def maybe_finish(s: Step) -> None:
    call = s.call
    if call.phase != ENDING or call.live_legs():
        return
    if call.stasis.bridge_created and not call.stasis.bridge_destroyed:
        for bridge_id in call.all_bridges():
            s.add(cmd.DestroyBridge(call.call_id, bridge_id))
        call.stasis.bridge_destroyed = True  # a 404 means Asterisk already destroyed it
    if not all(r.done for r in call.recordings.values()):
        return
    transition(s, ENDED)
    call.status = "ended"
    for leg in call.legs.values():
        if leg.end_unseen:
            end_as_heard(s, leg)
    call.ended_at = max((leg.ended_at for leg in call.legs.values() if leg.ended_at), default=s.at)
    if call.unbridged_at is not None:  # not later than its parties (end_as_heard)
        call.unbridged_at = max(call.bridged_at or call.unbridged_at,
                                min(call.unbridged_at, call.ended_at))
    proof = coverage(call, s.settings.gap_threshold_ms)
    for channel_id, leg_cov in proof.legs.items():
        leg = call.legs[channel_id]
        leg.talked_ms, leg.covered_ms, leg.held_ms = (
            leg_cov.talked_ms,
            leg_cov.covered_ms,
            leg_cov.held_ms,
        )
    for gap in proof.gaps:
        s.log(
            "recording.gap",
            "warning",
            channel_id=gap.channel_id,
            start=gap.start.isoformat(),
            end=gap.end.isoformat(),
            duration_ms=gap.ms,
            reason=gap.reason,
        )
    if proof.gaps:
        s.add(cmd.SaveGaps(call.call_id, call.asterisk_id, tuple(proof.gaps)))
    s.record("call.ended", outcome=call.outcome)
    s.log(
        "call.summary",
        direction=call.direction,
        outcome=call.outcome,
        legs=len(call.legs),
        recordings=[
            {"name": r.name, "status": r.status, "duration_ms": r.duration_ms}
            for r in call.recordings.values()
        ],
        seconds_recorded=round(proof.covered_ms / 1000, 3),
        seconds_bridged=round(proof.talked_ms / 1000, 3),
        gaps=len(proof.gaps),
        segments_replaced=call.gaps,
        missing=sum(1 for r in call.recordings.values() if r.status in (REC_FAILED, REC_MISSING)),
    )
