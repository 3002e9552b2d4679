"""Hook mode: calls the dialplan keeps (Dial(), queues, ring groups), recorded by snoop.

Sites that do not hand calls to Stasis call FastAGI hooks (recorder.agi) from the dialplan:

- `record,<direction>,<target>` before Dial(): policy decides; the caller's announcement is
  played by the AGI itself (STREAM FILE, the opt-out key as escape digit); then the caller's
  snoop recording starts, and only once Asterisk says it runs does the hook answer
  VERBATIM_STATUS=RECORDING (the dialplan dials after that: nothing said is missed).
  `__VERBATIM_CALL_ID` is set, so every channel Dial() makes inherits the call's id.
- `answered[,<call id>]` on the called channel before it is bridged (Dial's U() option): the
  callee's announcement where all-party consent applies.
- `tag,<text>…`, `department,<name>`, `policy,record|no-record`, `pause`, `resume`, `start`,
  `stop`: see recorder.model.controls (also reachable by DTMF and the HTTP API).

The call is then followed through the events of a WebSocket subscribed to everything
(subscribeAll): a Dial from one of its legs adds the dialled channel as a leg (so do forwards,
and the Dial a blind transfer's transferee makes from the transfer context), a channel that
enters a bridge holding one of its legs joins it, and each leg is snooped and recorded from the
moment it first talks (recorder.model.snooping). The dialplan owns every channel: nothing here
dials, bridges or hangs up a party. The record hook does answer the channel it runs on, to play
the announcement (before Dial(): even a call whose extension then proves unreachable is
answered; on a forward's Local ;2 that answers the caller's Dial()). The call ends when its last
leg is gone and every snoop recording is filed; its coverage proof is the same as in Stasis mode.

Results reach the dialplan as channel variables: VERBATIM_STATUS (RECORDING, NOT_RECORDED,
ROUTE with VERBATIM_ROUTE=context,exten,priority, HANGUP, OK, REJECTED, FAILED, ERROR) and
VERBATIM_ERROR or VERBATIM_DETAIL saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.consent import (
    audit,
    decide_at_start,
    due_for,
    note_prompt,
    present_parties,
    refuse,
)
from recorder.model.controls import (
    ACTIONS,
    DONE,
    apply,
    control_digit,
    on_control,
    pause_refused,
)
from recorder.model.decisions import path_changed, take_path_args
from recorder.model.dialing import fill_numbers
from recorder.model.ending import dial_outcome, leave_bridge, maybe_finish, on_hold
from recorder.model.flow import DIAL_FAILURES, TARGET_RE, Result, Step, for_call, make_call_id
from recorder.model.inputs import (
    ChannelChecked,
    CommandFailed,
    ControlRequested,
    HookCalled,
    HookPrompted,
    RecordingFiled,
    RecordingFileFailed,
)
from recorder.model.phases import transition
from recorder.model.segments import close_recording, on_filed
from recorder.model.sessions import answer_waiting, reply
from recorder.model.settings import DIRECTIONS, CallSettings
from recorder.model.sharing import peers_entered, peers_left
from recorder.model.snooping import (
    check_answered,
    snoop_ended,
    snoop_gone,
    snoop_leg,
    snoop_ready,
    snoop_started,
    snooped_leg,
)
from recorder.model.state import (
    ENDING,
    FOLLOWING,
    LEG_DIALING,
    LEG_GONE,
    LEG_RINGING,
    LEG_UP,
    REC_FAILED,
    REC_LIVE,
    Call,
    Leg,
    ModelState,
)
from recorder.numbers import is_extension
from recorder.policy import (
    Announcement,
    Join,
    Party,
    announcements_on_join,
    announcements_on_start,
)
from recorder.policy.model import Via
from recorder.policy.rules import target_label

Handler = Callable[[ModelState, Any, CallSettings], Result]
HOOKS = ("record", "answered", "tag", "department", "policy", *ACTIONS)


def _refuse(session: str, channel_id: str, why: str) -> list[cmd.Command]:
    return [
        cmd.Log("", "hook.refused", "warning", {"channel_id": channel_id, "reason": why}),
        cmd.HookReply("", session, (("VERBATIM_STATUS", "ERROR"), ("VERBATIM_ERROR", why))),
    ]


# --- the hooks -------------------------------------------------------------------------------


def on_hook(state: ModelState, e: HookCalled, settings: CallSettings) -> Result:
    call_id = state.by_channel.get(e.channel.id)
    # A channel the call made (a Dial, a Local half, a queue member) inherited
    # __VERBATIM_CALL_ID: `answered,<id>` or `record,<direction>,<target>,<id>` joins it.
    at = {"answered": 0, "record": 2}.get(e.hook)
    inherited = e.args[at] if at is not None and len(e.args) > at else ""
    if call_id is None and inherited in state.calls and state.calls[inherited].mode == "hook":
        call_id = inherited
    if call_id is None and e.hook == "record":
        # Dial() followed a 302 to Local/<target>@<context> and that context calls the record
        # hook on the ;2 (a dialplan that does not pass the inherited id): its ;1 is our leg
        call_id = next((c.call_id for c in state.calls.values()
                        if c.mode == "hook" and local_partner(c, e.channel)), None)
    call = state.calls.get(call_id or "")
    if e.hook == "record" and call is None:
        return new_hooked_call(state, e, settings)
    why = None
    if e.hook not in HOOKS:
        why = f"unknown hook {e.hook!r}"
    elif call is None:
        why = "no call is being recorded on this channel (call the record hook first)"
    elif call.mode != "hook":
        why = "this channel's call is in the Stasis app: use DTMF or the HTTP API"
    if why is not None:
        return state, _refuse(e.session, e.channel.id, why)
    assert call is not None

    def body(s: Step) -> None:
        if e.hook == "record":
            record_leg_hook(s, e)
        elif e.hook == "answered":
            answered_hook(s, e)
        elif e.hook == "department":
            department_hook(s, e)
        else:
            action, tag = e.hook, None
            if e.hook == "policy":
                wanted = e.args[0] if e.args else ""
                action = {"record": "start", "no-record": "stop"}.get(wanted, "")
                if not action:
                    reply(s, call.call_id, e.session, "ERROR",
                          VERBATIM_ERROR=f"policy takes record or no-record, not {wanted!r}")
                    return
            if e.hook == "tag":
                tags = [a for a in e.args if a] or [""]
                for tag in tags[:-1]:
                    apply(s, "tag", "agi", channel_id=e.channel.id, tag=tag)
                tag = tags[-1]
            status, detail = apply(s, action, "agi", channel_id=e.channel.id, tag=tag)
            reply(s, call.call_id, e.session, "OK" if status == DONE else "REJECTED",
                  VERBATIM_DETAIL=detail)

    return for_call(state, call.call_id, e, settings, body)


def new_hooked_call(state: ModelState, e: HookCalled, settings: CallSettings) -> Result:
    ch = e.channel
    direction = e.args[0] if e.args else ""
    target = e.args[1] if len(e.args) > 1 and e.args[1] else e.exten
    if direction not in DIRECTIONS:
        return state, _refuse(e.session, ch.id,
                              f"direction must be one of {', '.join(DIRECTIONS)}, "
                              f"not {direction!r}")
    if not TARGET_RE.match(target):
        return state, _refuse(e.session, ch.id, f"invalid {direction} target {target!r}")
    call_id = make_call_id(e.timestamp, e.asterisk_id, ch.id)
    call = Call(
        call_id=call_id, asterisk_id=e.asterisk_id, direction=direction, target=target,
        started_at=e.timestamp, caller_channel=ch.id, bridge_id="", phase=FOLLOWING,
        mode="hook",
    )
    fill_numbers(call, ch.caller_number, settings)
    call.legs[ch.id] = Leg(
        channel_id=ch.id, role="caller", channel_name=ch.name, started_at=e.timestamp,
        caller_name=ch.caller_name, caller_number=ch.caller_number, state=LEG_UP,
        answered_at=e.timestamp if ch.state == "Up" else None,
    )
    s = Step(call, e.timestamp, settings)
    s.save()
    dnid = "".join(c for c in e.dnid if c.isdigit() or c == "+")
    take_path_args(s, ([f"did={dnid}"] if direction == "inbound" and dnid else []) + [
        *e.args[2:]], ch.name)
    s.record("call.started", ch.id, direction=direction, target=target, mode="hook")
    s.log("call.started", channel_id=ch.id, direction=direction, target=target, mode="hook")
    if settings.policy is not None:
        call.announcements = [asdict(a) for a in decide_at_start(s, e.timestamp)]
        prompt = due_for(call, "caller", "before-bridge")
    else:
        prompt = None
    if prompt is not None:
        playback_id = note_prompt(s, ch.id, prompt)
        call.hook_sessions[e.session] = {"hook": "record", "leg": ch.id, "prompt": playback_id}
        s.add(cmd.HookReply(call_id, e.session, (("__VERBATIM_CALL_ID", call_id),),
                            ((prompt.media.removeprefix("sound:"), prompt.opt_out_dtmf or ""),),
                            final=False))
    else:
        start_or_answer(s, e.session, ch.id)
    s.flush()
    return state.with_call(call), s.out


def start_or_answer(s: Step, session: str, leg_id: str) -> None:
    """Record the hooked leg and answer once it runs; or say at once why it is not recorded."""
    call = s.call
    leg = call.legs[leg_id]
    if not call.record:
        reply(s, call.call_id, session, "NOT_RECORDED", __VERBATIM_CALL_ID=call.call_id,
              VERBATIM_DETAIL=(call.decision or {}).get("reason") or "not recorded")
        return
    snoop_leg(s, leg)
    rec = call.recordings.get(leg.recording or "")
    if rec is None:  # recording is stopped (an in-call control): nothing to wait for
        reply(s, call.call_id, session, "NOT_RECORDED", __VERBATIM_CALL_ID=call.call_id,
              VERBATIM_DETAIL="recording is stopped on this call")
        return
    if rec.started_at is not None:
        reply(s, call.call_id, session, "RECORDING", __VERBATIM_CALL_ID=call.call_id)
        return
    call.hook_sessions[session] = {"hook": "record", "leg": leg_id}
    s.save()


def record_leg_hook(s: Step, e: HookCalled) -> None:
    """`record` again on a channel of a call we follow (a transfer context, a queue member, the
    ;2 of a forward Dial() followed through Local/<target>@<context>)."""
    call = s.call
    leg = call.legs.get(e.channel.id) or add_leg(
        s, e.channel, LEG_UP, role="local" if local_two(e.channel) else "callee")
    if leg.state == LEG_GONE:
        reply(s, call.call_id, e.session, "ERROR", VERBATIM_ERROR="the channel has ended")
        return
    if leg.role == "local":
        # A conduit: the caller is recorded and announced already, and nothing is played here
        # (it would answer the caller's Dial through the ;1); the phone it dials is followed
        # and hears what policy requires of a joining party by its answered hook.
        reply(s, call.call_id, e.session, "RECORDING" if call.record else "NOT_RECORDED",
              __VERBATIM_CALL_ID=call.call_id)
        return
    start_or_answer(s, e.session, leg.channel_id)


def answered_hook(s: Step, e: HookCalled) -> None:
    """The called channel, answered and not yet bridged: its announcement, where due."""
    call = s.call
    leg = call.legs.get(e.channel.id)
    if leg is None:  # its Dial event is not here yet: the inherited call id placed it
        leg = add_leg(s, e.channel, LEG_UP)
    mark_answered(s, leg)
    if leg.channel_id == call.callee_channel and call.answered_by is None and leg.party is None:
        prompt = due_for(call, "callee", "on-answer") if call.record else None
    elif conduit(call, leg):  # a followed forward's ;1: the phone behind it had its own hook
        prompt = None
    else:  # a joining party (a transfer's or forward's target, a ring group's member)
        prompt = join_prompt(s, leg)
    if prompt is None:
        start_due(s)
        reply(s, call.call_id, e.session, "RECORDING" if call.record else "NOT_RECORDED")
        return
    playback_id = note_prompt(s, leg.channel_id, prompt, number=leg.number or call.target)
    call.hook_sessions[e.session] = {"hook": "answered", "leg": leg.channel_id,
                                     "prompt": playback_id}
    s.add(cmd.HookReply(call.call_id, e.session, (),
                        ((prompt.media.removeprefix("sound:"), prompt.opt_out_dtmf or ""),),
                        final=False))
    s.save()


def join_prompt(s: Step, leg: Leg) -> Announcement | None:
    """The announcement a joining party hears by its hook. Those due to parties already in
    a Dial() bridge cannot be played there (no Stasis): logged for the dialplan's author; and
    when policy would start recording only now, it does not (nobody is recorded unannounced)."""
    call, policy = s.call, s.settings.policy
    if policy is None or not call.record:
        return None
    label = leg.party or "callee"
    before = [p for p in present_parties(call) if p.label != label]
    newcomer = Party(label, leg.number)
    if call.recording_due():
        plays = announcements_on_start([*before, newcomer], policy)
    else:
        plays = announcements_on_join(before, newcomer, policy)
    unplayed = [str(a) for a in plays if a.to != label]
    if unplayed:
        s.log("consent.not_announced", "warning", channel_id=leg.channel_id, prompts=unplayed,
              reason="parties in a Dial() bridge cannot hear a prompt from the recorder")
        s.record("consent.not_announced", leg.channel_id, prompts=unplayed)
        if call.recording_due():  # it would start recording them unannounced: it does not
            call.record = False
            why = ("policy records the call from this join, but parties already talking "
                   "cannot hear the announcement in hook mode")
            s.log("consent.recording_not_started", "warning", channel_id=leg.channel_id,
                  reason=why)
            s.record("consent.recording_not_started", leg.channel_id, reason=why)
            return None
    return next((a for a in plays if a.to == label), None)


def start_due(s: Step) -> None:
    """Policy records the call from a join and every announcement due was heard: record each
    party talking now (its snoop), from now on."""
    call = s.call
    if not call.recording_due() or call.prompts:
        return
    call.recorded_from(s.at)
    for leg in call.legs.values():
        if leg.state != LEG_GONE and leg.role != "local" and (
                leg.in_bridge or leg.role == "caller" or leg.answered_at is not None):
            snoop_leg(s, leg)


def department_hook(s: Step, e: HookCalled) -> None:
    call = s.call
    name = e.args[0] if e.args else ""
    known = set(s.settings.departments.values())
    if not (0 < len(name) <= 100 and name.isprintable()) or (known and name not in known):
        reply(s, call.call_id, e.session, "REJECTED",
              VERBATIM_DETAIL=f"unknown department {name!r}")
        return
    call.department = name
    s.record("call.department", e.channel.id, department=name)
    s.save()
    reply(s, call.call_id, e.session, "OK", VERBATIM_DETAIL=name)


def on_prompted(state: ModelState, e: HookPrompted, settings: CallSettings) -> Result:
    """The AGI session played a prompt: audit it, and act on a refusal or go on recording."""

    def body(s: Step) -> None:
        call = s.call
        session = call.hook_sessions.pop(e.session, None)
        if session is None:
            return
        prompt = call.prompts.get(str(session.get("prompt")))
        leg_id = str(session["leg"])
        if prompt is None:
            return
        if e.hung_up:
            audit(s, prompt, "interrupted")
            s.save()
            return
        if e.error is not None:
            # As in Stasis mode: the call is recorded anyway (a missed recording is the worse
            # failure), and the missing announcement is an error for ops to mend.
            call.prompts.pop(str(prompt["playback_id"]), None)
            s.record("consent.failed", leg_id, media=prompt.get("media"), error=e.error)
            s.log("consent.failed", "error", channel_id=leg_id, media=prompt.get("media"),
                  error=e.error)
        refused = e.digit is not None and e.digit == prompt.get("opt_out_dtmf")
        if not refused:
            if e.error is None:
                audit(s, prompt, "finished")
            if session["hook"] == "record":
                start_or_answer(s, e.session, leg_id)
            else:
                start_due(s)
                reply(s, call.call_id, e.session, "RECORDING" if call.record else "NOT_RECORDED")
            s.save()
            return
        decision = refuse(s, prompt, e.digit, leg_id)
        if decision.then == "end":
            call.outcome = "rejected"
            reply(s, call.call_id, e.session, "HANGUP", VERBATIM_DETAIL="recording refused")
        elif decision.then == "route" and decision.route_to:
            reply(s, call.call_id, e.session, "ROUTE", VERBATIM_ROUTE=decision.route_to)
        else:
            reply(s, call.call_id, e.session, "NOT_RECORDED", VERBATIM_DETAIL="refused")
        s.save()

    return for_call(state, state.by_channel.get(e.channel_id), e, settings, body)


# --- following the call ------------------------------------------------------------------------


def add_leg(s: Step, channel: ev.ChannelInfo, state: str, number: str | None = None,
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
    s.save()
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
        s.log("call.answered", channel_id=leg.channel_id)
        member = endpoint_extension(leg.channel_name, s.settings.extension_pattern)
        if first and leg.party is None and member not in (None, call.target):
            # Dial() of a ring group or a queue: the member who answered is the callee now
            path_changed(s, "ring group answer", leg.channel_id, answered_by=member)
            leg.number = member
    s.save()


def endpoint_extension(channel_name: str, pattern: str) -> str | None:
    """PJSIP/202-00000007 -> "202", when the endpoint is named as an extension."""
    tech, _, resource = channel_name.partition("/")
    endpoint = resource.rsplit("-", 1)[0]
    return endpoint if tech != "Local" and is_extension(endpoint, pattern) else None


def on_dial(state: ModelState, e: ev.Dial, settings: CallSettings, call_id: str) -> Result:
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
        s.save()

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
    return leg.transferred_to if leg is not None else None


def on_blind_transfer(state: ModelState, e: ev.BridgeBlindTransfer, settings: CallSettings,
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
            call.legs[transferee].transferred_to = e.exten
        s.save()

    return for_call(state, call_id, e, settings, body)


def on_attended_transfer(state: ModelState, e: ev.BridgeAttendedTransfer,
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
                s.save()

        state, commands = for_call(state, mine, e, settings, body)
        out += commands
    return state, out


def on_entered(state: ModelState, e: ev.ChannelEnteredBridge, settings: CallSettings,
               call_id: str) -> Result:
    assert e.channel is not None
    channel = e.channel

    def body(s: Step) -> None:
        call = s.call
        if channel.id in call.snoops:
            return
        leg = call.legs.get(channel.id) or add_leg(s, channel, LEG_UP)
        if leg.in_bridge or leg.state == LEG_GONE:
            return
        leg.in_bridge = True
        leg.spans.append([e.bridge.id, s.at, None])
        mark_answered(s, leg)
        unannounced(s, leg)
        together = [x for x in call.legs.values()
                    if x.in_bridge and x.spans and x.spans[-1][0] == e.bridge.id]
        if len(together) >= 2:
            call.bridged_at = call.bridged_at or s.at
            s.record("call.bridged", channel.id, bridge=e.bridge.id)
            s.log("call.bridged", channel_id=channel.id, bridge=e.bridge.id)
        if leg.role != "local":  # a Local half is heard through its partner's bridge
            snoop_leg(s, leg)
        s.save()

    return for_call(state, call_id, e, settings, body)


def unannounced(s: Step, leg: Leg) -> None:
    """The called party is bridged, recorded, and policy wanted it announced, but the dialplan
    ran no `answered` hook (Dial without U()): say so, loudly, when it is first bridged."""
    call = s.call
    if (leg.channel_id != call.callee_channel or len(leg.spans) != 1 or not call.record
            or "callee" in call.heard or due_for(call, "callee", "on-answer") is None):
        return
    s.log("consent.not_announced", "warning", channel_id=leg.channel_id, party="callee",
          reason="no answered hook ran (Dial's U(verbatim-answered) option)")
    s.record("consent.not_announced", leg.channel_id, party="callee")


def on_left(state: ModelState, e: ev.ChannelLeftBridge, settings: CallSettings,
            call_id: str) -> Result:
    def body(s: Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is not None and leg.in_bridge and leg.spans and leg.spans[-1][0] == e.bridge.id:
            leave_bridge(s.call, leg, s.at)
            s.save()

    return for_call(state, call_id, e, settings, body)


def on_channel(state: ModelState, e: ev.ChannelEvent, settings: CallSettings,
               call_id: str) -> Result:
    """Hangups, state changes, snoops entering the app, DTMF, hold."""

    def body(s: Step) -> None:
        call = s.call
        cid = e.channel.id
        if cid in call.snoops:
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
                s.save()
        elif isinstance(e, ev.ChannelDestroyed):
            leg.hangup_cause = e.cause
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
    s.record("leg.hangup", leg.channel_id, cause=leg.hangup_cause, role=leg.role)
    for session, info in list(call.hook_sessions.items()):
        if info.get("leg") == leg.channel_id:  # an AGI still waiting on a channel now gone
            del call.hook_sessions[session]
            prompt = call.prompts.get(str(info.get("prompt")))
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
        s.log("call.ending", channel_id=leg.channel_id, outcome=call.outcome)
    s.save()
    maybe_finish(s)


def on_recording(state: ModelState, e: ev.RecordingEvent, settings: CallSettings,
                 call_id: str) -> Result:
    def body(s: Step) -> None:
        call = s.call
        rec = call.recordings.get(e.recording.name)
        if rec is None:
            return
        if isinstance(e, ev.RecordingStarted):
            snoop_started(s, rec)
            answer_waiting(s, snooped_leg(rec) or "", "RECORDING")
        else:
            failed = isinstance(e, ev.RecordingFailed)
            snoop_ended(s, rec, failed, e.recording.cause or ("failed" if failed else ""))
            if failed:
                answer_waiting(s, snooped_leg(rec) or "", "FAILED")

    return for_call(state, call_id, e, settings, body)


def on_checked(state: ModelState, e: ChannelChecked, settings: CallSettings,
               call_id: str) -> Result:
    return for_call(state, call_id, e, settings,
                    lambda s: check_answered(s, e.channel_id, e.exists))


def on_failed(state: ModelState, e: CommandFailed, settings: CallSettings,
              call_id: str) -> Result:
    failed = e.command

    def body(s: Step) -> None:
        call = s.call
        if isinstance(failed, cmd.Snoop | cmd.RecordChannel):
            name = call.snoops.get(failed.snoop_id if isinstance(failed, cmd.Snoop)
                                   else failed.channel_id, "")
            rec = call.recordings.get(name)
            if rec is not None and rec.status in REC_LIVE:
                close_recording(s, rec, True, f"{e.status} {e.message}".strip(),
                                snooped_leg(rec))
                leg = call.legs.get(snooped_leg(rec) or "")
                if leg is not None and leg.recording == rec.name:
                    leg.recording = None
                if isinstance(failed, cmd.RecordChannel):
                    s.add(cmd.Hangup(call.call_id, failed.channel_id))
                # Asterisk unreachable or in trouble: try again, a few times. A 404 (the
                # channel is gone) or 409 would only be refused again.
                attempts = sum(1 for r in call.recordings.values()
                               if r.target == rec.target and r.status == REC_FAILED)
                if (leg is not None and e.status not in (404, 409)
                        and attempts < s.settings.max_recording_attempts):
                    snoop_leg(s, leg)
                else:
                    answer_waiting(s, snooped_leg(rec) or "", "FAILED")
                s.save()
                maybe_finish(s)
        elif not isinstance(failed, cmd.StopRecording | cmd.Hangup):
            what = type(failed).__name__
            s.log("ari.request_failed", "error", command=what, status=e.status, message=e.message)
            s.record("ari.request_failed", command=what, status=e.status, message=e.message)
            if isinstance(failed, cmd.PauseRecording):
                pause_refused(s, failed)

    return for_call(state, call_id, e, settings, body)


# --- routing -------------------------------------------------------------------------------


def route(state: ModelState, event: ev.Event) -> Callable[[ModelState, Any, CallSettings],
                                                          Result] | None:
    """The handler for an event of a hook-mode call (or a hook/control input); None: Stasis
    mode's handlers take it."""
    if isinstance(event, HookCalled):
        return on_hook
    if isinstance(event, HookPrompted):
        return on_prompted
    if isinstance(event, ControlRequested):
        return on_control
    call_id = _hooked_call_of(state, event)
    if call_id is None:
        return None
    handler = HANDLERS.get(type(event))
    if handler is None:
        return lambda st, _e, _s: (st, [])  # nothing a hook-mode call needs from it
    return lambda st, e, settings: handler(st, e, settings, call_id)


def _hooked_call_of(state: ModelState, e: ev.Event) -> str | None:
    ids: list[str | None] = []
    if isinstance(e, ev.StasisStart | ev.ChannelEvent | ev.BridgeBlindTransfer):
        ids.append(state.by_channel.get(e.channel.id))
    elif isinstance(e, ev.Dial):
        ids += [state.by_channel.get(e.peer.id),
                state.by_channel.get(e.caller.id) if e.caller else None]
        if e.caller is not None and e.caller.name.startswith("Local/"):
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


def chain(first: Result, e: Any, settings: CallSettings, then: Handler) -> Result:
    """`then` after a handler's result, on the state it left; both steps' commands."""
    state, out = first
    state, more = then(state, e, settings)
    return state, out + more


def _shared(handler: Handler) -> Callable[[ModelState, Any, CallSettings, str], Result]:
    return lambda state, e, settings, _call_id: handler(state, e, settings)


HANDLERS: dict[type, Callable[[ModelState, Any, CallSettings, str], Result]] = {
    ev.StasisStart: on_channel,
    ev.StasisEnd: on_channel,
    ev.ChannelStateChange: on_channel,
    ev.ChannelDtmfReceived: on_channel,
    ev.ChannelHangupRequest: on_channel,
    ev.ChannelDestroyed: on_channel,
    ev.ChannelHold: _shared(on_hold),
    ev.ChannelUnhold: _shared(on_hold),
    ev.Dial: on_dial,
    ev.ChannelEnteredBridge: lambda st, e, settings, call_id: chain(
        on_entered(st, e, settings, call_id), e, settings, peers_entered),
    ev.ChannelLeftBridge: lambda st, e, settings, call_id: chain(
        on_left(st, e, settings, call_id), e, settings, peers_left),
    ev.BridgeBlindTransfer: on_blind_transfer,
    ev.BridgeAttendedTransfer: on_attended_transfer,
    ev.RecordingStarted: on_recording,
    ev.RecordingFinished: on_recording,
    ev.RecordingFailed: on_recording,
    CommandFailed: on_failed,
    ChannelChecked: on_checked,
    RecordingFiled: _shared(on_filed),
    RecordingFileFailed: _shared(on_filed),
}
