"""A new call, its consent announcement, dialling the target (and following forwards), and the
answer that starts the recording.
"""

from __future__ import annotations

from dataclasses import asdict

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.consent import (
    announce_join,
    audit,
    decide_at_start,
    due_for,
    prompt_playing_to,
    refuse,
    start_prompt,
)
from recorder.model.controls import control_digit
from recorder.model.decisions import path_changed, take_path_args
from recorder.model.ending import (
    begin_end,
    dial_outcome,
    other_dialled_legs,
)
from recorder.model.flow import (
    DIAL_FAILURES,
    TARGET_RE,
    Result,
    Step,
    for_call,
    make_call_id,
    play,
)
from recorder.model.phases import transition
from recorder.model.segments import (
    connect_callee,
    start_segment,
)
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CALLEE_CONSENT,
    CONNECTING,
    CONSENT,
    DIALING,
    LEG_DIALING,
    LEG_GONE,
    LEG_NEW,
    LEG_RINGING,
    LEG_UP,
    RECORDING_PENDING,
    Call,
    Leg,
    ModelState,
)
from recorder.numbers import is_extension, normalise
from recorder.policy import (
    Announcement,
    Join,
    Party,
    announcements_on_answer,
)
from recorder.policy.rules import target_label


def dialled_leg_ready(s: Step, e: ev.StasisStart) -> None:
    call = s.call
    leg = call.legs.get(e.channel.id)
    if leg is not None:
        leg.in_stasis = True
    if leg is not None and leg.originated:
        # An originated leg enters the app once answered: join now if its turn has come.
        if call.phase == CONNECTING and leg.channel_id == call.callee_channel and leg.waiting:
            leg.waiting = False
            s.add(cmd.AddChannel(call.call_id, call.bridge_id, leg.channel_id))
        return
    if leg is None or leg.state != LEG_NEW:
        return
    leg.channel_name = e.channel.name
    wanted = call.phase == DIALING or (leg.join_bridge is not None and call.phase == BRIDGED)
    if not wanted:  # the caller gave up while the leg was being created
        s.add(cmd.Hangup(call.call_id, leg.channel_id))
        return
    leg.state = LEG_DIALING
    caller = leg.via or call.caller_channel
    s.add(cmd.DialChannel(call.call_id, leg.channel_id, caller, s.settings.dial_timeout_s))
    s.record("dial.started", leg.channel_id, target=call.target)


def new_call(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
    ch = e.channel
    direction = e.args[0]
    target = e.args[1] if len(e.args) > 1 else ""
    if not TARGET_RE.match(target):
        return state, [
            cmd.Log(
                "",
                "call.rejected",
                "error",
                {"channel_id": ch.id, "reason": f"invalid {direction} target {target!r}"},
            ),
            cmd.Hangup("", ch.id, "unallocated"),
        ]
    asterisk_id = e.asterisk_id
    call_id = make_call_id(e.timestamp, asterisk_id, ch.id)
    call = Call(
        call_id=call_id,
        asterisk_id=asterisk_id,
        direction=direction,
        target=target,
        started_at=e.timestamp,
        caller_channel=ch.id,
        bridge_id=f"{call_id}-b1",
    )
    fill_numbers(call, ch.caller_number, settings)
    call.legs[ch.id] = Leg(
        channel_id=ch.id,
        role="caller",
        channel_name=ch.name,
        started_at=e.timestamp,
        caller_name=ch.caller_name,
        caller_number=ch.caller_number,
        state=LEG_UP,
        answered_at=e.timestamp if ch.state == "Up" else None,
    )
    s = Step(call, e.timestamp, settings)
    s.record("call.started", ch.id, direction=direction, target=target)
    s.log("call.started", channel_id=ch.id, direction=direction, target=target)
    if ch.state != "Up":
        s.add(cmd.Answer(call_id, ch.id))
    s.add(cmd.CreateBridge(call_id, call.bridge_id, call_id))
    call.bridge_created = True
    s.add(cmd.AddChannel(call_id, call.bridge_id, ch.id))
    take_path_args(s, e.args[2:], ch.name)
    if settings.policy is None:
        play(s, ch.id, "consent", settings.consent_media)
    else:
        call.announcements = [asdict(a) for a in decide_at_start(s, e.timestamp)]
        first = due_for(call, "caller", "before-bridge")
        if first is not None:
            start_prompt(s, ch.id, first)
        else:  # nothing to announce (not recorded): straight to dialling
            dial(s)
    s.flush()
    return state.with_call(call), s.out


def fill_numbers(call: Call, caller_number: str, settings: CallSettings) -> None:
    pattern = settings.extension_pattern
    region = settings.default_region
    call.caller_number = caller_number or None
    call.callee_number = call.target
    if call.direction == "inbound":
        call.caller_e164 = normalise(caller_number, default_region=region)
        if is_extension(call.target, pattern):
            call.extension = call.target
        else:  # a DID or a number: keep its E.164 form for search
            call.callee_e164 = normalise(call.target, default_region=region)
    elif call.direction == "outbound":
        call.extension = caller_number if is_extension(caller_number, pattern) else None
        call.callee_e164 = normalise(
            call.target, default_region=region, strip_prefix=settings.outside_line_prefix
        )
    else:  # internal: both sides are extensions; the caller's is the call's extension
        call.extension = caller_number if is_extension(caller_number, pattern) else call.target
    call.department = settings.departments.get(call.extension or "")
    if call.department is None and call.direction == "internal":
        call.department = settings.departments.get(call.target)


def on_playback_finished(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.PlaybackFinished)
    return for_call(
        state, state.by_playback.get(e.playback.id), e, settings, lambda s: playback_done(s, e)
    )


def playback_done(s: Step, e: ev.PlaybackFinished) -> None:
    call = s.call
    prompt = call.prompts.get(e.playback.id)
    if prompt is not None:
        audit(s, prompt, "finished")
        after_prompt(s, str(prompt["to"]), str(prompt["leg"]))
        return
    if e.playback.id != call.playback_id:
        return
    kind = call.playback_kind
    call.playback_id = call.playback_kind = None
    if kind == "consent" and call.phase == CONSENT:
        s.record("consent.played", call.caller_channel, media=s.settings.consent_media)
        dial(s)


def dial(s: Step) -> None:
    call = s.call
    transition(s, DIALING)
    play(s, call.caller_channel, "ringback", s.settings.ringback_media)
    members = s.settings.ring_groups.get(call.target)
    if not members:
        dial_leg(s, call.target)
        return
    # A ring group rings every member at once; the first to answer is the callee.
    s.record("dial.ring_group", group=call.target, members=list(members))
    for member in members:
        dial_leg(s, member)
    call.callee_channel = None


def dial_leg(
    s: Step,
    target: str,
    forwarded_from: str | None = None,
    via: str | None = None,
    join_bridge: str | None = None,
) -> Leg:
    call = s.call
    leg_id = f"{call.call_id}-l{len(call.legs) + 1}"
    previous = call.legs.get(forwarded_from or "")
    leg = Leg(
        channel_id=leg_id,
        role="callee",
        channel_name="",
        started_at=s.at,
        forwarded_from=forwarded_from,
        number=target,  # its jurisdiction, for consent when it answers
        party=previous.party if previous else None,
        via=via or (previous.via if previous else None),
        join_bridge=join_bridge or (previous.join_bridge if previous else None),
    )
    call.legs[leg_id] = leg
    call.callee_channel = leg_id
    dial_string, args = endpoint(s.settings, call, target), f"dialed,{call.call_id}"
    if s.settings.dial_method == "originate":
        leg.originated = True
        leg.state = LEG_DIALING
        s.add(cmd.Originate(call.call_id, leg_id, dial_string, args,
                            leg.via or call.caller_channel, s.settings.dial_timeout_s))
    else:
        s.add(cmd.CreateChannel(call.call_id, leg_id, dial_string, args,
                                leg.via or call.caller_channel))
    return leg


def endpoint(settings: CallSettings, call: Call, target: str) -> str:
    """The dial string: the call's own direction for its target; a forward to an outside
    number (a mobile) goes out through the outbound trunk, one to an extension stays inside."""
    if target == call.target:
        template = settings.dial_strings[call.direction]
    elif is_extension(target, settings.extension_pattern):
        template = settings.dial_strings["internal"]
    else:
        template = settings.dial_strings["outbound"]
    return template.replace("{target}", target).replace("{number}", target)


def on_dial(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.Dial)
    return for_call(
        state, state.by_channel.get(e.peer.id), e, settings, lambda s: dial_status(s, e)
    )


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
    elif status in DIAL_FAILURES and leg.join_bridge and call.phase == BRIDGED:
        # A blind transfer's target did not answer: as with Asterisk's own transfer, the
        # transferee's call ends (hearing the failure is a later refinement).
        leg.outcome = DIAL_FAILURES[status][0]
        s.record("transfer.failed", leg.channel_id, dialstatus=status)
        s.log("transfer.failed", "warning", channel_id=leg.channel_id, dialstatus=status)
        begin_end(s, leg, DIAL_FAILURES[status][1])
    elif status in DIAL_FAILURES and call.phase == DIALING:
        outcome, reason = DIAL_FAILURES[status]
        leg.outcome = outcome
        s.record("dial.failed", leg.channel_id, dialstatus=status)
        s.log("dial.failed", "info", channel_id=leg.channel_id, dialstatus=status)
        if not other_dialled_legs(call, leg):  # the last of a ring group, or the only one
            call.outcome = dial_outcome(call)
            begin_end(s, leg, reason)
    elif status == "CANCEL" and e.forwarded is not None and call.phase == DIALING:
        forward_followed(s, leg, e.forward, e.forwarded)
    elif status == "CANCEL" and e.forward and (call.phase == DIALING or leg.join_bridge):
        forward(s, leg, e.forward)


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
        state=LEG_DIALING, forwarded_from=leg.channel_id, number=target,
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


def on_state_change(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
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

    return for_call(state, state.by_channel.get(e.channel.id), e, settings, body)


def answered(s: Step, leg: Leg) -> None:
    call = s.call
    joinable = call.phase in (DIALING, RECORDING_PENDING, CONNECTING, BRIDGED)
    if leg.join_bridge and (not joinable or leg.state in (LEG_UP, LEG_GONE)):
        return  # a transfer/forward target joins its own bridge once; it never is "the" answer
    if leg.join_bridge:
        # A transfer (or followed forward) target: the call's recording runs in the call
        # bridge, which hears this bridge through the Local pair, so it joins at once.
        leg.state = LEG_UP
        leg.answered_at = s.at
        s.record("transfer.answered", leg.channel_id)
        s.log("transfer.answered", channel_id=leg.channel_id)
        if leg.via:  # the Local ;2 it is reached through answers too, so its ;1 comes Up
            s.add(cmd.Answer(call.call_id, leg.via))
        if announce_join(s, leg):
            pass  # it joins once its announcement is over (after_prompt)
        elif call.recording_due():
            leg.waiting = True  # it joins once the recording runs
            start_if_due(s)
        else:  # nothing due: it joins at once
            s.add(cmd.AddChannel(call.call_id, leg.join_bridge, leg.channel_id))
        return
    if call.phase != DIALING or leg.state == LEG_GONE:
        return
    leg.state = LEG_UP
    leg.answered_at = call.answered_at = s.at
    transition(s, RECORDING_PENDING)
    call.callee_channel = leg.channel_id
    for other in other_dialled_legs(call, leg):  # a ring group: the others stop ringing
        other.outcome = "cancelled"
        s.add(cmd.Hangup(call.call_id, other.channel_id, "answered_elsewhere"))
    s.record("call.answered", leg.channel_id)
    s.log("call.answered", channel_id=leg.channel_id)
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
            call.prompts[pid]["at_answer"] = True  # the callee is connected after these
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
    caller = Party("caller", call.caller_number, heard=call.heard.get("caller"))  # type: ignore[arg-type]
    newcomer = Party(leg.party or "callee", leg.number)
    return announcements_on_answer([caller], newcomer, policy,
                                   recorded_before=not call.recording_due())


def stop_ringback(s: Step) -> None:
    call = s.call
    if call.playback_id:
        s.add(cmd.StopPlayback(call.call_id, call.playback_id))
        call.playback_id = call.playback_kind = None


def after_prompt(s: Step, label: str, leg_id: str) -> None:
    """A party's announcement is over (finished, or refused with the call going on)."""
    call = s.call
    leg = call.legs.get(leg_id)
    if label == "caller" and call.phase == CONSENT:
        dial(s)
    elif leg is not None and leg.join_bridge and leg.state == LEG_UP and not leg.in_bridge:
        # a transfer target, announced to: now it joins (and is heard in the recording), or,
        # when policy records only from now, once the recording runs
        if call.recording_due():
            leg.waiting = True
        else:
            s.add(cmd.AddChannel(call.call_id, leg.join_bridge, leg.channel_id))
    elif call.phase == CALLEE_CONSENT and not any(
            p.get("at_answer") for p in call.prompts.values()):
        transition(s, RECORDING_PENDING)  # every announcement due at the answer is over
        connect_answered(s)
    start_if_due(s)


def start_if_due(s: Step) -> None:
    """Policy records the bridged call from now: start once every announcement due is over."""
    call = s.call
    if (call.recording_due() and not call.prompts and call.phase == BRIDGED
            and call.current_recording is None and call.open_pause("stop") is None):
        start_segment(s)


def connect_answered(s: Step) -> None:
    """Ringback off; record first (the callee joins on RecordingStarted), or, when policy
    says no recording, connect at once."""
    call = s.call
    stop_ringback(s)
    if call.record:
        start_segment(s)
    else:
        connect_callee(s)


def on_dtmf(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    """A digit from a party in the app: the opt-out key while its prompt plays, else perhaps
    an in-call control."""
    assert isinstance(e, ev.ChannelDtmfReceived)

    def body(s: Step) -> None:
        call = s.call
        prompt = prompt_playing_to(call, e.channel.id)
        if prompt is None:  # not during an announcement: an in-call control, perhaps
            control_digit(s, e)
            return
        if not prompt.get("opt_out_dtmf") or e.digit != prompt["opt_out_dtmf"]:
            return
        s.add(cmd.StopPlayback(call.call_id, str(prompt["playback_id"])))
        decision = refuse(s, prompt, e.digit, e.channel.id)
        leg = call.legs[e.channel.id]
        if decision.then == "end":
            call.outcome = "rejected"
            begin_end(s, leg, "rejected")
        elif decision.then == "route" and decision.route_to:
            context, _, rest = decision.route_to.partition(",")
            exten, _, priority = rest.partition(",")
            s.add(cmd.ContinueInDialplan(call.call_id, call.caller_channel, context, exten,
                                         int(priority or 1)))
        else:
            after_prompt(s, str(prompt["to"]), str(prompt["leg"]))

    return for_call(state, state.by_channel.get(e.channel.id), e, settings, body)
