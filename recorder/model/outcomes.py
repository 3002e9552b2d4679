"""A dialled leg's outcomes (Stasis mode): ringing, the answer that starts the recording, failure,
and forwards (302) followed or dialled again.
"""

from __future__ import annotations

from dataclasses import replace

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.consent import (
    announce_join,
    due_for,
    start_prompt,
)
from recorder.model.decisions import path_changed
from recorder.model.dialing import (
    connect_answered,
    dial_leg,
    dialled_leg_ready,
    start_if_due,
    stop_ringback,
)
from recorder.model.ending import (
    begin_end,
    dial_outcome,
    hang_up,
    other_dialled_legs,
)
from recorder.model.flow import (
    DIAL_FAILURES,
    TARGET_RE,
    Result,
    Step,
    for_call,
)
from recorder.model.phases import transition
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CALLEE_CONSENT,
    CONNECTING,
    DIALING,
    LEG_DIALING,
    LEG_GONE,
    LEG_NEW,
    LEG_RINGING,
    LEG_UP,
    RECORDING_PENDING,
    Leg,
    ModelState,
    StasisLeg,
)
from recorder.policy import (
    Announcement,
    Join,
    Party,
    announcements_on_answer,
)
from recorder.policy.rules import target_label


def dial_status(s: Step, e: ev.Dial) -> None:
    call = s.call
    leg = call.legs.get(e.peer.id)
    if leg is None or leg.role != "callee" or leg.state == LEG_GONE:
        return
    leg.channel_name = e.peer.name or leg.channel_name
    status = e.dialstatus
    if status:
        leg.dialstatus = status
    if status in ("RINGING", "PROGRESS") and leg.state in (LEG_NEW, LEG_DIALING):
        leg.state = LEG_RINGING
    elif status == "ANSWER":
        answered(s, leg)
    elif status in DIAL_FAILURES:
        dial_failed(s, leg, status)
    elif status == "CANCEL" and e.forwarded is not None and call.phase == DIALING:
        forward_followed(s, leg, e.forward, e.forwarded)
    elif status == "CANCEL" and e.forward and (call.phase == DIALING or leg.stasis.join_bridge):
        forward(s, leg, e.forward)


def dial_failed(s: Step, leg: Leg, status: str) -> None:
    """A dialled leg failed (`status`, a key of DIAL_FAILURES): its Dial event said so, or
    Asterisk refused to create or dial it (recorder.model.failures). A blind transfer's target
    ends the transferee's call, as Asterisk's own transfer does (hearing the failure is a later
    refinement); a ring group goes on while another member still rings."""
    call = s.call
    outcome, reason = DIAL_FAILURES[status]
    if leg.stasis.join_bridge and call.phase == BRIDGED:
        leg.outcome = outcome
        s.record("transfer.failed", leg.channel_id, dialstatus=status)
        # a target busy or away, as a callee's dial.failed: the call's end, not a fault
        s.log("transfer.failed", "info", channel_id=leg.channel_id, dialstatus=status)
        begin_end(s, leg, reason)
    elif call.phase == DIALING:
        leg.outcome = outcome
        s.record("dial.failed", leg.channel_id, dialstatus=status)
        s.log("dial.failed", "info", channel_id=leg.channel_id, dialstatus=status)
        if not other_dialled_legs(call, leg):  # the last of a ring group, or the only one
            call.outcome = dial_outcome(call)
            begin_end(s, leg, reason)


def forward_followed(s: Step, leg: Leg, target: str, forwarded: ev.ChannelInfo) -> None:
    """A leg made with POST /channels (originate) follows a 302 itself (trace
    sip_forward_302_originate): Dial names the new channel, a Local ;1 that will become this
    call's callee when it answers; its ;2 enters the app through the dialplan like a new call and
    is linked back here by the pair's name (see transfers.attach_forward_half)."""
    call = s.call
    if leg.forwarded_to:
        return
    leg.forwarded_to = target
    leg.outcome = "forwarded"
    path_changed(s, "forward", leg.channel_id, join=Join(target, "forward"))
    call.legs[forwarded.id] = Leg(
        channel_id=forwarded.id, role="callee", channel_name=forwarded.name, started_at=s.at,
        state=LEG_DIALING, number=target,
        # the originate's own channel now: in the app once answered (dialled_leg_entered)
        stasis=StasisLeg(forwarded_from=leg.channel_id, originated=True),
        local_base=forwarded.name[:-2] if forwarded.name.endswith(";1") else None,
    )
    call.callee_channel = forwarded.id
    s.record("dial.forwarded", leg.channel_id, forward=target, followed_by=forwarded.id)
    s.log("dial.forwarded", channel_id=leg.channel_id, forward=target, followed=True)


def forward(s: Step, leg: Leg, target: str) -> None:
    """A dialled phone answered 302: a leg made with /channels/create does not follow it
    (trace sip_forward_302_create_dial, Dial CANCEL with `forward`, three times), so the app
    dials the new target itself, once, as a new leg of the same call."""
    call = s.call
    if leg.forwarded_to:
        return  # the repeated CANCEL events of the same forward
    leg.forwarded_to = target
    leg.outcome = "forwarded"
    s.record("dial.forwarded", leg.channel_id, forward=target)
    s.log("dial.forwarded", channel_id=leg.channel_id, forward=target)
    hops = sum(1 for x in call.legs.values() if x.forwarded_to)
    if not TARGET_RE.match(target) or hops > s.settings.max_forwards:
        call.outcome = "failed"
        s.log(
            "dial.forward_refused", "warning", channel_id=leg.channel_id, forward=target, hops=hops
        )
        begin_end(s, leg, "normal")
        return
    path_changed(s, "forward", leg.channel_id, join=Join(target, "forward"))
    new = dial_leg(s, target, forwarded_from=leg.channel_id)
    new.party = target_label(len(call.joins) - 1)


def on_state_change(state: ModelState, e: ev.Event, settings: CallSettings,
                    call_id: str) -> Result:
    assert isinstance(e, ev.ChannelStateChange)

    def body(s: Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is None or e.channel.state != "Up":
            return
        if leg.role == "caller":
            if leg.answered_at is None:
                leg.answered_at = s.at
        elif leg.role == "callee":  # an answer whose Dial event was lost still connects
            answered(s, leg)

    return for_call(state, call_id, e, settings, body)


def dialled_leg_entered(s: Step, e: ev.StasisStart) -> None:
    """A dialled leg entered the app. One made by originate (`calls.dial_method: originate`)
    enters once answered, after its answer was seen (dial.c publishes Dial ANSWER, then the
    channel runs the app): its answer is taken from here (`answered` waits for it)."""
    dialled_leg_ready(s, e)
    leg = s.call.legs.get(e.channel.id)
    if leg is not None and leg.stasis.originated and e.channel.state == "Up":
        answered(s, leg)


def answered(s: Step, leg: Leg) -> None:
    call = s.call
    if leg.stasis.originated and not leg.stasis.in_stasis:
        # Not in the app yet: a request to join it to a bridge (422) or to play it an
        # announcement (409) would be refused if Asterisk had not yet handed it over; its
        # StasisStart follows at once (dialled_leg_entered).
        return
    joinable = call.phase in (DIALING, RECORDING_PENDING, CONNECTING, BRIDGED)
    if leg.stasis.join_bridge and (not joinable or leg.state in (LEG_UP, LEG_GONE)):
        return  # a transfer/forward target joins its own bridge once; it never is "the" answer
    if bridge := leg.stasis.join_bridge:
        # A transfer (or followed forward) target: the call's recording runs in the call
        # bridge, which hears this bridge through the Local pair, so it joins at once.
        leg.state = LEG_UP
        leg.answered_at = s.at
        s.record("transfer.answered", leg.channel_id)
        s.log("transfer.answered", channel_id=leg.channel_id)
        if leg.stasis.via:  # the Local ;2 it is reached through answers too, so its ;1 comes Up
            s.add(cmd.Answer(call.call_id, leg.stasis.via))
        if announce_join(s, leg):
            pass  # it joins once its announcement is over (after_prompt)
        elif call.recording_due():
            leg.stasis = replace(leg.stasis, waiting=True)  # it joins once the recording runs
            start_if_due(s)
        else:  # nothing due: it joins at once
            s.add(cmd.AddChannel(call.call_id, bridge, leg.channel_id))
        return
    if call.phase != DIALING or leg.state == LEG_GONE:
        return
    leg.state = LEG_UP
    leg.answered_at = call.answered_at = s.at
    transition(s, RECORDING_PENDING)
    call.callee_channel = leg.channel_id
    for other in other_dialled_legs(call, leg):  # a ring group: the others stop ringing
        other.outcome = "cancelled"
        hang_up(s, other, "answered_elsewhere")
    s.record("call.answered", leg.channel_id)
    s.log("call.answered", "debug", channel_id=leg.channel_id)
    if s.settings.ring_groups.get(call.target) and leg.party is None:
        # a ring group's member answered: it is the callee now (its extension, department)
        path_changed(s, "ring group answer", leg.channel_id, answered_by=leg.number)
    plays = answer_prompts(s, leg)
    if plays:
        # The callee hears its announcement before it joins the recorded bridge (the caller
        # keeps hearing ringback meanwhile, unless it has one to hear too).
        transition(s, CALLEE_CONSENT)
        for ann in plays:
            if ann.to == "caller":
                stop_ringback(s)
                pid = start_prompt(s, call.caller_channel, ann)
            else:
                pid = start_prompt(s, leg.channel_id, ann, leg_id=leg.channel_id,
                                   number=leg.number)
            # the callee is connected after these
            call.prompts[pid] = replace(call.prompts[pid], at_answer=True)
        return
    connect_answered(s)


def answer_prompts(s: Step, leg: Leg) -> list[Announcement]:
    """What is due when the callee answers: the dialled callee's own prompt decided at the
    start; for a ring group's member or a forward's target, what policy requires when a party
    joins (the caller has heard its prompt); when policy records only now, every party's."""
    call, policy = s.call, s.settings.policy
    if not call.record:
        return []
    if policy is None or (leg.party is None and call.answered_by is None
                          and not call.recording_due()):
        prompt = due_for(call, "callee", "on-answer")
        return [prompt] if prompt is not None else []
    caller = Party("caller", call.caller_number, heard=call.heard.get("caller"))
    newcomer = Party(leg.party or "callee", leg.number)
    return announcements_on_answer([caller], newcomer, policy,
                                   recorded_before=not call.recording_due())
