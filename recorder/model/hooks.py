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

The call is then followed (recorder.model.following) through the events of a WebSocket
subscribed to everything (subscribeAll): a Dial from one of its legs adds the dialled channel as
a leg (so do forwards, and the Dial a blind transfer's transferee makes from the transfer
context), a channel that enters a bridge holding one of its legs joins it, and each leg is
snooped and recorded from the moment it first talks (recorder.model.snooping). The dialplan owns
every channel: nothing here dials, bridges or hangs up a party. The record hook does answer the
channel it runs on, to play the announcement (before Dial(): even a call whose extension then
proves unreachable is answered; on a forward's Local ;2 that answers the caller's Dial()). The
call ends when its last leg is gone and every snoop recording is filed; its coverage proof is
the same as in Stasis mode.

Results reach the dialplan as channel variables: VERBATIM_STATUS (RECORDING, NOT_RECORDED,
ROUTE with VERBATIM_ROUTE=context,exten,priority, HANGUP, OK, REJECTED, FAILED, ERROR) and
VERBATIM_ERROR or VERBATIM_DETAIL saying why.
"""

from __future__ import annotations

from recorder.common.direction import DIRECTIONS
from recorder.model import commands as cmd
from recorder.model.consent import (
    audit,
    consent_failed,
    decide_at_start,
    due_for,
    note_prompt,
    opt_out,
    present_parties,
)
from recorder.model.controls import (
    CONTROL_ACTIONS,
    DONE,
    apply,
)
from recorder.model.decisions import take_path_args
from recorder.model.dialing import fill_numbers
from recorder.model.flow import TARGET_RE, Result, Step, for_call, make_call_id
from recorder.model.following import (
    add_leg,
    conduit,
    local_partner,
    local_two,
    mark_answered,
)
from recorder.model.inputs import (
    HookCalled,
    HookPrompted,
)
from recorder.model.records import HookSession
from recorder.model.sessions import reply
from recorder.model.settings import CallSettings
from recorder.model.snooping import (
    snoop_leg,
)
from recorder.model.state import FOLLOWING, LEG_GONE, LEG_UP, Call, CallMode, Leg, ModelState
from recorder.policy import (
    Announcement,
    Party,
    announcements_on_answer,
)

HOOKS = ("record", "answered", "tag", "department", "policy", *CONTROL_ACTIONS)


def _refuse(session: str, channel_id: str, why: str) -> list[cmd.Command]:
    return [
        cmd.Log("", "hook.refused", "warning", {"channel_id": channel_id, "reason": why}),
        cmd.HookReply("", session, (("VERBATIM_STATUS", "ERROR"), ("VERBATIM_ERROR", why))),
    ]


# --- the hooks -------------------------------------------------------------------------------


def hook_call_of(state: ModelState, e: HookCalled) -> str | None:
    """The call a hook's channel belongs to (either mode), if any."""
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
    return call_id if call_id in state.calls else None


def first_hook(state: ModelState, e: HookCalled, settings: CallSettings, _call_id: str) -> Result:
    """A hook on a channel of no call: `record` starts one; any other is refused."""
    if e.hook == "record":
        return new_hooked_call(state, e, settings)
    why = (f"unknown hook {e.hook!r}" if e.hook not in HOOKS else
           "no call is being recorded on this channel (call the record hook first)")
    return state, _refuse(e.session, e.channel.id, why)


def stasis_hook(state: ModelState, e: HookCalled, _settings: CallSettings,
                _call_id: str) -> Result:
    """A hook on a channel of a call in the Stasis app: refused."""
    why = (f"unknown hook {e.hook!r}" if e.hook not in HOOKS else
           "this channel's call is in the Stasis app: use DTMF or the HTTP API")
    return state, _refuse(e.session, e.channel.id, why)


def on_hook(state: ModelState, e: HookCalled, settings: CallSettings, call_id: str) -> Result:
    """A hook on a channel of a call the dialplan keeps."""
    if e.hook not in HOOKS:
        return state, _refuse(e.session, e.channel.id, f"unknown hook {e.hook!r}")
    call = state.calls[call_id]

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
        mode=CallMode.HOOK,
    )
    fill_numbers(call, ch.caller_number, settings)
    call.legs[ch.id] = Leg(
        channel_id=ch.id, role="caller", channel_name=ch.name, started_at=e.timestamp,
        caller_name=ch.caller_name, caller_number=ch.caller_number, state=LEG_UP,
        answered_at=e.timestamp if ch.state == "Up" else None,
    )
    s = Step(call, e.timestamp, settings)
    dnid = "".join(c for c in e.dnid if c.isdigit() or c == "+")
    take_path_args(s, ([f"did={dnid}"] if direction == "inbound" and dnid else []) + [
        *e.args[2:]], ch.name)
    s.record("call.started", ch.id, direction=direction, target=target, mode="hook")
    s.log("call.started", channel_id=ch.id, direction=direction, target=target, mode="hook")
    if settings.policy is not None:
        call.announcements = decide_at_start(s, e.timestamp)
        prompt = due_for(call, "caller", "before-bridge")
    else:
        prompt = None
    if prompt is not None:
        playback_id = note_prompt(s, ch.id, prompt)
        call.hook.sessions[e.session] = HookSession("record", ch.id, playback_id)
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
              VERBATIM_DETAIL=(call.decision.reason if call.decision else "") or "not recorded")
        return
    snoop_leg(s, leg)
    rec = call.recordings.get(leg.hook.recording or "")
    if rec is None:  # recording is stopped (an in-call control): nothing to wait for
        reply(s, call.call_id, session, "NOT_RECORDED", __VERBATIM_CALL_ID=call.call_id,
              VERBATIM_DETAIL="recording is stopped on this call")
        return
    if rec.started_at is not None:
        reply(s, call.call_id, session, "RECORDING", __VERBATIM_CALL_ID=call.call_id)
        return
    call.hook.sessions[session] = HookSession("record", leg_id)


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
    call.hook.sessions[e.session] = HookSession("answered", leg.channel_id, playback_id)
    s.add(cmd.HookReply(call.call_id, e.session, (),
                        ((prompt.media.removeprefix("sound:"), prompt.opt_out_dtmf or ""),),
                        final=False))


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
    plays = announcements_on_answer(before, newcomer, policy,
                                    recorded_before=not call.recording_due())
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
    reply(s, call.call_id, e.session, "OK", VERBATIM_DETAIL=name)


def on_prompted(state: ModelState, e: HookPrompted, settings: CallSettings,
                call_id: str) -> Result:
    """The AGI session played a prompt: audit it, and act on a refusal or go on recording."""

    def body(s: Step) -> None:
        call = s.call
        session = call.hook.sessions.pop(e.session, None)
        if session is None:
            return
        prompt = call.prompts.get(session.prompt or "")
        leg_id = session.leg
        if prompt is None:
            return
        if e.hung_up:
            audit(s, prompt, "interrupted")
            return
        if e.error is not None:
            # As in Stasis mode: its row says it was not heard (before, hook mode wrote no
            # row at all), the call is recorded anyway (a missed recording is the worse
            # failure), and the missing announcement is an error for ops to mend.
            audit(s, prompt, "interrupted")
            consent_failed(s, leg_id, prompt.media, e.error)
        refused = e.digit is not None and e.digit == prompt.opt_out_dtmf
        if not refused:
            if e.error is None:
                audit(s, prompt, "finished")
            if session.hook == "record":
                start_or_answer(s, e.session, leg_id)
            else:
                start_due(s)
                reply(s, call.call_id, e.session, "RECORDING" if call.record else "NOT_RECORDED")
            return
        opt_out(s, prompt, e.digit, leg_id,
                end=lambda: reply(s, call.call_id, e.session, "HANGUP",
                                  VERBATIM_DETAIL="recording refused"),
                route=lambda to: reply(s, call.call_id, e.session, "ROUTE", VERBATIM_ROUTE=to),
                go_on=lambda: reply(s, call.call_id, e.session, "NOT_RECORDED",
                                    VERBATIM_DETAIL="refused"))

    return for_call(state, call_id, e, settings, body)


# --- routing -------------------------------------------------------------------------------


