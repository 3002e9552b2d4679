"""A new call in the Stasis app and its announcements: the caller's consent prompt, then dialling;
the opt-out key while a prompt plays.
"""

from __future__ import annotations

from dataclasses import replace

from recorder.ari import events as ev
from recorder.common.direction import DIRECTIONS
from recorder.model import commands as cmd
from recorder.model.consent import (
    audit,
    consent_failed,
    decide_at_start,
    due_for,
    opt_out,
    prompt_playing_to,
    start_prompt,
)
from recorder.model.controls import control_digit
from recorder.model.decisions import take_path_args
from recorder.model.dialing import (
    connect_answered,
    dial,
    fill_numbers,
    start_if_due,
)
from recorder.model.ending import (
    begin_end,
)
from recorder.model.flow import (
    TARGET_RE,
    Result,
    Step,
    for_call,
    make_call_id,
    play,
)
from recorder.model.inputs import PlaybackLost
from recorder.model.phases import transition
from recorder.model.settings import CallSettings
from recorder.model.state import (
    CALLEE_CONSENT,
    CONSENT,
    LEG_GONE,
    LEG_UP,
    RECORDING_PENDING,
    Call,
    Leg,
    ModelState,
)
from recorder.model.transfers import (
    attach_forward_half,
    forward_half,
    local_replaces,
    transfer_half,
)


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
    call.stasis.bridge_created = True
    s.add(cmd.AddChannel(call_id, call.bridge_id, ch.id))
    take_path_args(s, e.args[2:], ch.name)
    if settings.policy is None:
        play(s, ch.id, "consent", settings.consent_media)
    else:
        call.announcements = decide_at_start(s, e.timestamp)
        first = due_for(call, "caller", "before-bridge")
        if first is not None:
            start_prompt(s, ch.id, first)
        else:  # nothing to announce (not recorded): straight to dialling
            dial(s)
    s.flush()
    return state.with_call(call), s.out


def playback_done(s: Step, e: ev.PlaybackFinished) -> None:
    """A playback ended. State "failed" (res_stasis_playback.c playback_final_update): Asterisk
    could not play the file (missing, unreadable), or its channel hung up meanwhile. An
    announcement that failed was not heard: its row says "interrupted", never "finished", and
    the call goes on as after any announcement (recorded: a missed recording is the worse
    failure, as in hook mode); a file that failed, its party still there, is an error."""
    call = s.call
    failed = e.playback.state == "failed"
    prompt = call.prompts.get(e.playback.id)
    if prompt is not None:
        audit(s, prompt, "interrupted" if failed else "finished")
        if failed and not _hanging_up(call, prompt.leg):
            consent_failed(s, prompt.channel_id, prompt.media, "Asterisk could not play it")
        after_prompt(s, prompt.to, prompt.leg)
        return
    if e.playback.id != call.stasis.playback_id:
        return
    kind = call.stasis.playback_kind
    call.stasis.playback_id = call.stasis.playback_kind = None
    if kind == "ringback" and failed and not _hanging_up(call, call.caller_channel):
        # the caller hears silence while the callee rings (a media Asterisk lacks): many take
        # the line for dead and hang up. (One stopped at the answer ends "done", not failed.)
        s.log("ringback.failed", "warning", channel_id=call.caller_channel,
              media=s.settings.ringback_media)
    if kind == "consent" and call.phase == CONSENT:
        media = s.settings.consent_media
        if not failed:
            s.record("consent.played", call.caller_channel, media=media)
        elif not _hanging_up(call, call.caller_channel):
            consent_failed(s, call.caller_channel, media, "Asterisk could not play it")
        dial(s)


def _hanging_up(call: Call, leg_id: str) -> bool:
    """Whether the party is leaving: its playback "failed" for that, not for a missing file.
    (A hang-up that ends the call audits its prompts first, begin_end; this is for those that
    outlive one: a transferer's, or an end Asterisk reported before the hang-up.)"""
    leg = call.legs.get(leg_id)
    return (leg is None or leg.state == LEG_GONE or leg.hangup_cause is not None
            or leg.stasis.replaced_by is not None)


def playback_lost(s: Step, e: PlaybackLost) -> None:
    """A playback the call waits on is gone from Asterisk, and no event said how it ended
    (recorder.model.reconcile): it is played again, from the start. An announcement heard
    twice is better than one never heard (it may never have started), and without its end
    the call would wait for it for good: a caller in silence, never put through."""
    call = s.call
    prompt = call.prompts.get(e.playback_id)
    if prompt is not None:
        leg = call.legs.get(prompt.leg)
        if leg is None or leg.state == LEG_GONE:  # its party hung up: as its end would have
            audit(s, prompt, "interrupted")
            after_prompt(s, prompt.to, prompt.leg)
            return
        del call.prompts[e.playback_id]
        playback_id = f"{call.call_id}-p{call.next_playback}"
        call.next_playback += 1
        call.prompts[playback_id] = replace(prompt, playback_id=playback_id, started_at=s.at)
        # info: the restart or reconnection that lost its end was the news (ari.disconnected)
        s.log("consent.prompt_replayed", "info", channel_id=prompt.channel_id,
              lost=e.playback_id, playback=playback_id, prompt=prompt.prompt)
        s.add(cmd.Play(call.call_id, prompt.channel_id, playback_id, prompt.media))
        return
    kind = call.stasis.playback_kind
    caller = call.legs.get(call.caller_channel)
    if e.playback_id != call.stasis.playback_id or kind is None or caller is None \
            or caller.state == LEG_GONE:
        return  # (a ringback is cleared when the callee answers: one still named still rings)
    media = s.settings.consent_media if kind == "consent" else s.settings.ringback_media
    s.log("playback.replayed", "info", channel_id=call.caller_channel, lost=e.playback_id,
          kind=kind)
    play(s, call.caller_channel, kind, media)


def after_prompt(s: Step, label: str, leg_id: str) -> None:
    """A party's announcement is over (finished, or refused with the call going on)."""
    call = s.call
    leg = call.legs.get(leg_id)
    if label == "caller" and call.phase == CONSENT:
        dial(s)
    elif leg is not None and (bridge := leg.stasis.join_bridge) and leg.state == LEG_UP \
            and not leg.in_bridge:
        # a transfer target, announced to: now it joins (and is heard in the recording), or,
        # when policy records only from now, once the recording runs
        if call.recording_due():
            leg.stasis = replace(leg.stasis, waiting=True)
        else:
            s.add(cmd.AddChannel(call.call_id, bridge, leg.channel_id))
    elif call.phase == CALLEE_CONSENT and not any(
            p.at_answer for p in call.prompts.values()):
        transition(s, RECORDING_PENDING)  # every announcement due at the answer is over
        connect_answered(s)
    start_if_due(s)


def on_dtmf(state: ModelState, e: ev.Event, settings: CallSettings,
            call_id: str) -> Result:
    """A digit from a party in the app: the opt-out key while its prompt plays, else perhaps
    an in-call control."""
    assert isinstance(e, ev.ChannelDtmfReceived)

    def body(s: Step) -> None:
        call = s.call
        prompt = prompt_playing_to(call, e.channel.id)
        if prompt is None:  # not during an announcement: an in-call control, perhaps
            control_digit(s, e)
            return
        if not prompt.opt_out_dtmf or e.digit != prompt.opt_out_dtmf:
            return
        s.add(cmd.StopPlayback(call.call_id, prompt.playback_id))
        leg = call.legs[e.channel.id]

        def route(to: str) -> None:
            context, _, rest = to.partition(",")
            exten, _, priority = rest.partition(",")
            s.add(cmd.ContinueInDialplan(call.call_id, call.caller_channel, context, exten,
                                         int(priority or 1)))

        opt_out(s, prompt, e.digit, e.channel.id, end=lambda: begin_end(s, leg, "rejected"),
                route=route, go_on=lambda: after_prompt(s, prompt.to, prompt.leg))

    return for_call(state, call_id, e, settings, body)


def on_new_channel(state: ModelState, e: ev.StasisStart, settings: CallSettings,
                   _call_id: str) -> Result:
    """A channel of no call entered the app: a new call, or a Local half of a transfer or a
    forward, or one we cannot place."""
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
