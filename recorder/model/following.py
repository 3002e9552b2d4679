"""Hook mode: following a call the dialplan keeps through its ARI events.

A Dial from one of the call's legs adds the dialled channel as a leg (so do forwards, and the
Dial a blind transfer's transferee makes from the transfer context); a channel that enters a
bridge holding one of its legs joins it; each leg is snooped and recorded from the moment it
first talks (recorder.model.snooping); hang-ups, hold and DTMF are followed here, the snoops'
recordings in recorder.model.hookrecordings. The AGI hooks themselves (record, answered,
controls) are recorder.model.hooks'.
"""

from __future__ import annotations

from dataclasses import replace

from recorder.ari import events as ev
from recorder.common.numbers import is_extension
from recorder.model import commands as cmd
from recorder.model.consent import (
    audit,
    due_for,
)
from recorder.model.controls import (
    control_digit,
)
from recorder.model.decisions import path_changed
from recorder.model.ending import (
    destroyed,
    dial_outcome,
    leave_bridge,
    maybe_finish,
    record_hangup,
)
from recorder.model.flow import DIAL_FAILURES, Result, Step, for_call
from recorder.model.phases import transition
from recorder.model.records import Stay
from recorder.model.sessions import reply
from recorder.model.settings import CallSettings
from recorder.model.snooping import (
    snoop_gone,
    snoop_leg,
    snoop_ready,
)
from recorder.model.state import (
    ENDING,
    FOLLOWING,
    LEG_DIALING,
    LEG_GONE,
    LEG_RINGING,
    LEG_UP,
    Call,
    Leg,
    LegState,
    ModelState,
)
from recorder.policy import (
    Join,
)
from recorder.policy.model import Via
from recorder.policy.rules import target_label


def add_leg(s: Step, channel: ev.ChannelInfo, state: LegState, number: str | None = None,
            role: str = "callee") -> Leg:
    call = s.call
    leg = Leg(
        channel_id=channel.id, role=role, channel_name=channel.name, started_at=s.at,
        caller_name=channel.caller_name, caller_number=channel.caller_number, state=state,
        number=number or call.target,
        # Dial() follows a 302 through a Local pair (Local/<target>@<context>;1 is dialled, its
        # ;2 dials the phone): both halves are known by their common name.
        local_base=local_base(channel.name),
    )
    call.legs[channel.id] = leg
    s.record("leg.found", channel.id, channel=channel.name)
    s.log("leg.found", channel_id=channel.id, channel=channel.name)
    return leg


def local_base(name: str) -> str | None:
    return name[:-2] if name.startswith("Local/") and name[-2:] in (";1", ";2") else None


def local_two(channel: ev.ChannelInfo) -> bool:
    return local_base(channel.name) is not None and channel.name.endswith(";2")


def local_partner(call: Call, channel: ev.ChannelInfo) -> bool:
    """Whether `channel` is the ;2 half of a Local ;1 that is a leg of this call."""
    base = local_base(channel.name)
    return local_two(channel) and any(leg.local_base == base for leg in call.legs.values())


def conduit(call: Call, leg: Leg) -> bool:
    """Whether `leg` is the ;1 of a Local pair whose ;2 this call follows as a conduit."""
    return leg.local_base is not None and any(
        x.role == "local" and x.local_base == leg.local_base and x is not leg
        for x in call.legs.values())


def mark_answered(s: Step, leg: Leg) -> None:
    call = s.call
    if leg.answered_at is not None or leg.state == LEG_GONE:
        return
    leg.state = LEG_UP
    leg.answered_at = s.at
    leg.outcome = None
    if leg.role == "callee":
        call.answered_at = call.answered_at or s.at
        first = call.callee_channel is None
        call.callee_channel = call.callee_channel or leg.channel_id
        s.record("call.answered", leg.channel_id)
        s.log("call.answered", "debug", channel_id=leg.channel_id)
        member = endpoint_extension(leg.channel_name, s.settings.extension_pattern)
        if first and leg.party is None and member not in (None, call.target):
            # Dial() of a ring group or a queue: the member who answered is the callee now
            path_changed(s, "ring group answer", leg.channel_id, answered_by=member)
            leg.number = member


def endpoint_extension(channel_name: str, pattern: str) -> str | None:
    """PJSIP/202-00000007 -> "202", when the endpoint is named as an extension."""
    tech, _, resource = channel_name.partition("/")
    endpoint = resource.rsplit("-", 1)[0]
    return endpoint if tech != "Local" and is_extension(endpoint, pattern) else None


def hooked_dial(state: ModelState, e: ev.Dial, settings: CallSettings, call_id: str) -> Result:
    def body(s: Step) -> None:
        call = s.call
        leg = call.legs.get(e.peer.id)
        if leg is None:
            if e.caller is None:
                return
            if e.caller.id not in call.legs:
                if not local_partner(call, e.caller):
                    return
                # the ;2 half of a followed forward dials the phone: a conduit, not a party
                add_leg(s, e.caller, LEG_UP, role="local")
            transferred = transfer_exten(call, e.caller.id)
            forwarded = forward_exten(call, e.caller)
            number = transferred or forwarded or call.target
            leg = add_leg(s, e.peer, LEG_DIALING, number)
            s.record("dial.started", leg.channel_id, caller=e.caller.id, dialstring=e.dialstring)
            if transferred or forwarded:  # a party joins the call's path: decide again
                via: Via = "transfer" if transferred else "forward"
                path_changed(s, via, leg.channel_id, join=Join(number, via))
                leg.party = target_label(len(call.joins) - 1)
        status = e.dialstatus
        if status:
            leg.dialstatus = status
        if status in ("RINGING", "PROGRESS") and leg.state == LEG_DIALING:
            leg.state = LEG_RINGING
        elif status == "ANSWER":
            mark_answered(s, leg)
        elif status in DIAL_FAILURES and leg.answered_at is None:
            leg.outcome = DIAL_FAILURES[status][0]
            s.record("dial.failed", leg.channel_id, dialstatus=status)
        elif status == "CANCEL" and leg.answered_at is None:
            leg.outcome = "forwarded" if e.forward else "cancelled"
            if e.forward:  # Dial() follows it through Local/<forward>@<context>
                leg.forwarded_to = e.forward

    return for_call(state, call_id, e, settings, body)


def forward_exten(call: Call, channel: ev.ChannelInfo) -> str | None:
    """Dial() followed a 302 through Local/<target>@<context>: its ;2, a conduit of this call,
    dials the phone; <target> is whom the forward reaches."""
    leg = call.legs.get(channel.id)
    base = local_base(channel.name)
    if leg is None or leg.role != "local" or base is None or not channel.name.endswith(";2"):
        return None
    exten = base.split("/", 1)[1].split("@", 1)[0]
    # Only a Local pair a 302 made: a ring group or a queue dials its members through Local
    # channels too, and a member ringing is no one joining (the one who answers is the callee).
    forwarded = any(x.forwarded_to == exten for x in call.legs.values())
    return exten if exten and forwarded else None


def transfer_exten(call: Call, channel_id: str) -> str | None:
    """A blind transfer sent this leg to dial an extension: that is whom it reaches."""
    leg = call.legs.get(channel_id)
    return leg.hook.transferred_to if leg is not None else None


def hooked_blind_transfer(state: ModelState, e: ev.BridgeBlindTransfer, settings: CallSettings,
                      call_id: str) -> Result:
    """Asterisk sends the transferee to exten@context (the same channel): its next Dial is
    followed as a new leg. Kept as an event row, as in Stasis mode."""

    def body(s: Step) -> None:
        call = s.call
        transferee = e.transferee.id if e.transferee else None
        s.record("transfer.blind", e.channel.id, exten=e.exten, context=e.context,
                 result=e.result, transferee=transferee)
        s.log("transfer.blind", channel_id=e.channel.id, exten=e.exten, result=e.result,
              transferee=transferee)
        if transferee in call.legs and e.result == "Success":
            leg = call.legs[transferee]
            leg.hook = replace(leg.hook, transferred_to=e.exten)

    return for_call(state, call_id, e, settings, body)


def hooked_attended_transfer(state: ModelState, e: ev.BridgeAttendedTransfer,
                         settings: CallSettings, _call_id: str) -> Result:
    """Kept as an event row in each of the transferer's calls, which are linked, as in Stasis
    mode, when it succeeded: the caller of one now talks with the target of the other
    (recorder.model.sharing), each recorded by its own snoop. The parties are followed as they
    enter the bridge they end up in; prompts policy would play to them cannot be played in a
    Dial() bridge."""
    calls = [state.by_channel.get(e.first_leg), state.by_channel.get(e.second_leg)]
    out: list[cmd.Command] = []
    for mine, other in ((calls[0], calls[1]), (calls[1], calls[0])):
        if mine is None or (mine == other and mine == calls[1]):
            continue
        linked = other if e.result == "Success" and other != mine else None

        def body(s: Step, linked: str | None = linked) -> None:
            s.record("transfer.attended", e.first_leg, second_leg=e.second_leg,
                     destination=e.destination_type, result=e.result, linked_call=linked)
            s.log("transfer.attended", channel_id=e.first_leg, second_leg=e.second_leg,
                  destination=e.destination_type, result=e.result, linked_call=linked)
            if linked is not None and linked not in s.call.linked_calls:
                s.call.linked_calls.append(linked)

        state, commands = for_call(state, mine, e, settings, body)
        out += commands
    return state, out


def hooked_entered(state: ModelState, e: ev.ChannelEnteredBridge, settings: CallSettings,
               call_id: str) -> Result:
    assert e.channel is not None
    channel = e.channel

    def body(s: Step) -> None:
        call = s.call
        if channel.id in call.hook.snoops:
            return
        leg = call.legs.get(channel.id) or add_leg(s, channel, LEG_UP)
        if leg.in_bridge or leg.state == LEG_GONE:
            return
        leg.in_bridge = True
        leg.spans.append(Stay(e.bridge.id, s.at))
        mark_answered(s, leg)
        unannounced(s, leg)
        together = [x for x in call.legs.values()
                    if x.in_bridge and x.spans and x.spans[-1].bridge == e.bridge.id]
        if len(together) >= 2:
            call.bridged_at = call.bridged_at or s.at
            s.record("call.bridged", channel.id, bridge=e.bridge.id)
            s.log("call.bridged", "debug", channel_id=channel.id, bridge=e.bridge.id)
        if leg.role != "local":  # a Local half is heard through its partner's bridge
            snoop_leg(s, leg)

    return for_call(state, call_id, e, settings, body)


def unannounced(s: Step, leg: Leg) -> None:
    """The called party is bridged, recorded, and policy wanted it announced, but it heard
    none: the dialplan ran no `answered` hook (Dial without U()), or its announcement could
    not be played (consent.failed said so). Said loudly when it is first bridged."""
    call = s.call
    if (leg.channel_id != call.callee_channel or len(leg.spans) != 1 or not call.record
            or "callee" in call.heard or due_for(call, "callee", "on-answer") is None):
        return
    s.log("consent.not_announced", "warning", channel_id=leg.channel_id, party="callee",
          reason="it heard no announcement: no answered hook ran (Dial's "
                 "U(verbatim-answered) option), or its announcement could not be played")
    s.record("consent.not_announced", leg.channel_id, party="callee")


def hooked_left(state: ModelState, e: ev.ChannelLeftBridge, settings: CallSettings,
            call_id: str) -> Result:
    def body(s: Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is not None and leg.in_bridge and leg.spans and leg.spans[-1].bridge == e.bridge.id:
            leave_bridge(s.call, leg, s.at)

    return for_call(state, call_id, e, settings, body)


def hooked_channel(state: ModelState, e: ev.ChannelEvent, settings: CallSettings,
               call_id: str) -> Result:
    """Hangups, state changes, snoops entering the app, DTMF, hold."""

    def body(s: Step) -> None:
        call = s.call
        cid = e.channel.id
        if cid in call.hook.snoops:
            if isinstance(e, ev.StasisStart):
                snoop_ready(s, cid)
            elif isinstance(e, ev.StasisEnd | ev.ChannelDestroyed):
                snoop_gone(s, cid)
            return
        leg = call.legs.get(cid)
        if leg is None:
            return
        if isinstance(e, ev.StasisStart):
            # A hooked channel sent into the app (a dialplan mixing both modes): it would sit
            # there silent. Give it back to its dialplan; the snoop goes on recording it.
            s.log("hook.stasis_refused", "error", channel_id=cid, args=list(e.args),
                  reason="the channel's call is recorded in hook mode")
            s.add(cmd.ContinueInDialplan(call.call_id, cid, "", "", 0))
        elif isinstance(e, ev.ChannelStateChange) and e.channel.state == "Up":
            mark_answered(s, leg)
        elif isinstance(e, ev.ChannelDtmfReceived):
            control_digit(s, e)
        elif isinstance(e, ev.ChannelHangupRequest):
            if e.cause is not None and leg.hangup_cause is None:
                leg.hangup_cause = e.cause
            if not leg.hook.hanging_up:
                leg.hook = replace(leg.hook, hanging_up=True)
        elif isinstance(e, ev.ChannelDestroyed):
            destroyed(leg, e)
            hooked_leg_gone(s, leg)

    return for_call(state, call_id, e, settings, body)


def hooked_leg_gone(s: Step, leg: Leg) -> None:
    call = s.call
    if leg.state == LEG_GONE:
        return
    leave_bridge(call, leg, s.at)
    leg.state = LEG_GONE
    leg.ended_at = s.at
    if leg.outcome is None:
        leg.outcome = ("hangup" if leg.role == "caller" else
                       "answered" if leg.answered_at else "failed")
    record_hangup(s, leg)
    for session, info in list(call.hook.sessions.items()):
        if info.leg == leg.channel_id:  # an AGI still waiting on a channel now gone
            del call.hook.sessions[session]
            prompt = call.prompts.get(info.prompt or "")
            if prompt is not None:  # hung up during its announcement
                audit(s, prompt, "interrupted")
            reply(s, call.call_id, session, "FAILED", VERBATIM_ERROR="the channel ended")
    if not call.live_legs() and call.phase == FOLLOWING:
        transition(s, ENDING)
        if call.outcome is None:
            # nobody answered: the dial failed, or the caller gave up (Dial cancelled them)
            failed = [x for x in call.legs.values() if x.role == "callee"
                      and x.outcome not in (None, "cancelled", "forwarded")]
            call.outcome = ("answered" if call.answered_at else
                            dial_outcome(call) if failed else "abandoned")
        if call.bridged_at is not None:
            call.unbridged_at = call.unbridged_at or s.at
        for rec in call.live_recordings():  # each snoop dies with its channel; to be sure
            s.add(cmd.StopRecording(call.call_id, rec.name))
        s.log("call.ending", "debug", channel_id=leg.channel_id, outcome=call.outcome)
    maybe_finish(s)


