"""A request Asterisk refused (CommandFailed), in either mode: one path. Each mode first settles
what only it asks for (a recording, a snoop, a hang-up); every other refusal is reported the
same way (a log line and an event row), a refused pause is not kept as one, and Stasis mode then
goes on with the call as best it can (it owns the channels: a failed dial ends the call)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from recorder.model import commands as cmd
from recorder.model.consent import audit
from recorder.model.controls import pause_outlived, pause_refused
from recorder.model.dialing import dial
from recorder.model.ending import begin_end, hang_up, leg_gone, maybe_finish
from recorder.model.flow import Result, Step, for_call
from recorder.model.inputs import CommandFailed
from recorder.model.outcomes import dial_failed
from recorder.model.segments import close_recording, recording_ended
from recorder.model.sessions import answer_waiting
from recorder.model.settings import CallSettings
from recorder.model.snooping import snoop_leg, snooped_leg, to_be_recorded
from recorder.model.starting import after_prompt
from recorder.model.state import (
    CALLEE_CONSENT,
    CONSENT,
    LEG_GONE,
    LEG_UP,
    REC_FAILED,
    REC_LIVE,
    Call,
    ModelState,
)

# Settles a refusal only its mode knows about; True: nothing more to report.
Settle = Callable[[Step, cmd.Command, CommandFailed], bool]
# What the mode does after a refusal was reported.
Then = Callable[[Step, cmd.Command], None]
Handler = Callable[[ModelState, CommandFailed, CallSettings, str], Result]


def failed_request(settle: Settle, then: Then | None = None) -> Handler:
    """The handler of CommandFailed for a mode, from its own two parts."""

    def handler(state: ModelState, e: CommandFailed, settings: CallSettings,
                call_id: str) -> Result:
        failed = e.command
        if failed is None:
            return state, []

        def body(s: Step) -> None:
            if settle(s, failed, e):
                return
            if isinstance(failed, cmd.PauseRecording) and pause_outlived(s.call, failed):
                return
            what = type(failed).__name__
            level = "info" if line_unavailable(failed, e.status) else "error"
            s.log("ari.request_failed", level, command=what, status=e.status, message=e.message)
            s.record("ari.request_failed", command=what, status=e.status, message=e.message)
            if isinstance(failed, cmd.PauseRecording):
                pause_refused(s, failed)
            if then is not None:
                then(s, failed)

        return for_call(state, call_id, e, settings, body)

    return handler


def party_gone(c: cmd.Command, status: int, message: str = "") -> bool:
    """Whether a refusal says only that the channel it names is gone or leaving as it hangs
    up: a race with a hang-up, whose own events end or carry the call. A channel request
    answers 404 once the channel is destroyed and 409 ("not in a Stasis application") once it
    left the app to be hung up (a snoop: once its leg is unlinked; its recording: once the
    snoop channel, which ends with its leg, is gone); addChannel answers 400 and 422 for the
    same two moments (resource_channels.c find_control, resource_bridges.c
    control_find_by_channel_id). An originate answers 400 when its originator (the caller) is
    gone (resource_channels.c ari_originate_dial; 400 is also its answer to bad parameters,
    hence the message)."""
    if isinstance(c, cmd.Originate):
        return status == 400 and "originator channel was not found" in message
    if isinstance(c, cmd.AddChannel):
        return status in (400, 422)
    if isinstance(c, cmd.Play | cmd.Answer | cmd.ContinueInDialplan | cmd.Snoop
                  | cmd.RecordChannel):
        return status in (404, 409)
    return False


def snoop_in_doubt(c: cmd.Command, status: int) -> bool:
    """Whether a refusal is a Snoop answered 500: most often its leg in its zombie window
    (`snoop_of_a_zombie`), which Asterisk may not have said yet (the refusal outran the
    ChannelHangupRequest) or never says (a callee Dial() hangs up gets none). The model asks
    whether the leg lives (hook_settle): if it does, a gap, warned, and it is snooped again;
    so the refusal itself is no alarm."""
    return isinstance(c, cmd.Snoop) and status == 500


def snoop_of_a_zombie(call: Call | None, c: cmd.Command, status: int) -> bool:
    """Whether a refusal is a Snoop's of a leg Asterisk said is being hung up
    (ChannelHangupRequest) answered 500: its zombie window (ast_hangup flags the channel a
    zombie, runs its hang-up handlers, only then unlinks it; ast_audiohook_attach refuses a
    zombie), the race `party_gone` says a moment later with a 404."""
    if not isinstance(c, cmd.Snoop) or status != 500 or call is None:
        return False
    leg = call.legs.get(c.channel_id)
    return leg is not None and leg.hook.hanging_up


def line_unavailable(c: cmd.Command, status: int) -> bool:
    """Whether a refusal says that the phone or line cannot be called now: a create or an
    originate whose channel Asterisk could not request (ast_request failed: an endpoint not
    registered, unreachable, or not configured) answers 500 "Allocation failed"
    (resource_channels.c ari_channels_handle_create, ari_originate_dial). Dial() calls that
    CHANUNAVAIL, an everyday status (a phone logged off in a ring group), and so does the
    model (stasis_then): no alarm."""
    return isinstance(c, cmd.CreateChannel | cmd.Originate) and status == 500


def stasis_settle(s: Step, failed: cmd.Command, e: CommandFailed) -> bool:
    call = s.call
    if isinstance(failed, cmd.StartRecording):
        rec = call.recordings.get(failed.name)
        if rec is not None and rec.status in REC_LIVE:
            recording_ended(s, rec, True, f"{e.status} {e.message}".strip())
        return True
    if isinstance(failed, cmd.StopRecording | cmd.StopPlayback | cmd.DestroyBridge):
        return True  # already over: the event that says so comes, or came, by itself
    if party_gone(failed, e.status, e.message):
        # No failure, and nothing goes on for it (before, a caller's refused announcement had
        # the callee dialled after the caller had left): its hang-up's events end or carry
        # the call. An announcement asked for as its party left was not heard.
        if isinstance(failed, cmd.Play):
            if (prompt := call.prompts.get(failed.playback_id)) is not None:
                audit(s, prompt, "interrupted")
            if failed.playback_id == call.stasis.playback_id:
                call.stasis.playback_id = call.stasis.playback_kind = None
        s.log("ari.request_refused", "debug", command=type(failed).__name__,
              status=e.status, message=e.message)
        return True
    if isinstance(failed, cmd.Hangup):
        leg = call.legs.get(failed.channel_id)
        if e.status == 404 and leg is not None:
            # its destruction was missed (e.g. while disconnected), or it never existed: this
            # hang-up never happened, so its cause is not the leg's
            leg.stasis = replace(leg.stasis, hangup_asked=None)
            leg_gone(s, leg)
        return True
    return False


def stasis_then(s: Step, failed: cmd.Command) -> None:
    call = s.call
    if isinstance(failed, cmd.Play) and (prompt := call.prompts.get(failed.playback_id)):
        # Never played: its row says so now, and no reconciliation takes it for one to play
        # again (recorder.model.starting.playback_lost). The call goes on as after any
        # announcement, recorded (a missed recording is the worse failure): before, a callee
        # or transfer target whose announcement was refused waited for its end for good.
        audit(s, prompt, "interrupted")
        s.record("consent.failed", prompt.channel_id, media=failed.media)
        after_prompt(s, prompt.to, prompt.leg)
    elif isinstance(failed, cmd.Play) and call.phase == CONSENT:
        s.record("consent.failed", call.caller_channel, media=failed.media)
        call.stasis.playback_id = call.stasis.playback_kind = None
        dial(s)
    elif isinstance(failed, cmd.ContinueInDialplan) and call.phase in (CONSENT, CALLEE_CONSENT):
        # The route policy gives a party who refused recording could not be taken: the call
        # goes on as `then: continue` would, unrecorded (they refused), rather than leaving
        # the caller in the app in silence, or, when the callee refused, both parties apart.
        if call.phase == CONSENT:
            dial(s)
        else:
            after_prompt(s, "callee", call.callee_channel or "")
    elif isinstance(failed, cmd.ContinueInDialplan):
        # A transfer target refused during its join announcement, and the route (which names
        # the caller) was refused: the target joins, unrecorded, rather than waiting answered
        # outside its bridge. It is the target whose announcement is over and that has not
        # joined: one that opted out (one still hearing its own announcement, or whose join
        # is under way, joins by itself).
        hearing = {p.leg for p in call.prompts.values()}
        for target in list(call.legs.values()):
            if target.stasis.join_bridge and target.state == LEG_UP and not target.in_bridge \
                    and (target.party or "target") in call.opted_out \
                    and not target.stasis.waiting and target.channel_id not in hearing:
                after_prompt(s, target.party or "target", target.channel_id)
    elif isinstance(failed, cmd.CreateChannel | cmd.Originate | cmd.DialChannel):
        # As a line Asterisk's Dial() could not call (ast_request failed: an endpoint that is
        # not configured answers 500): the leg failed, and only it. Before, the whole call
        # ended, so a ring group with one stale member never reached the others, and a
        # transfer target's refusal overwrote an answered call's outcome with "failed".
        leg = call.legs.get(failed.channel_id)
        if leg is None or leg.state == LEG_GONE:
            return
        dial_failed(s, leg, "CHANUNAVAIL")
        if isinstance(failed, cmd.DialChannel):  # in the app, never dialled: released
            hang_up(s, leg, "congestion")
        else:  # it never existed: no event will say it is gone
            leg_gone(s, leg)
    elif isinstance(failed, cmd.CreateBridge):
        call.outcome = "failed"
        begin_end(s, call.legs[call.caller_channel], "congestion")


def hook_settle(s: Step, failed: cmd.Command, e: CommandFailed) -> bool:
    """A snoop or its recording refused: closed as failed, and tried again a few times."""
    call = s.call
    if isinstance(failed, cmd.StopRecording | cmd.Hangup):
        return True
    if not isinstance(failed, cmd.Snoop | cmd.RecordChannel):
        return False
    name = call.hook.snoops.get(failed.snoop_id if isinstance(failed, cmd.Snoop)
                           else failed.channel_id, "")
    rec = call.recordings.get(name)
    if rec is None or rec.status not in REC_LIVE:
        return True
    # 404/409: the leg (Snoop: ast_channel_get_by_name failed, so it is hanging up) or its
    # snoop channel (RecordChannel) is gone or leaving, most often with its leg: the race of
    # a hang-up just as its recording was being set up, no alarm; not retried as such (below).
    # A Snoop refused 500 of a leg being hung up: the same race a moment earlier; of another
    # leg, in doubt: whether it lives is asked (below).
    gone = party_gone(failed, e.status) or snoop_of_a_zombie(call, failed, e.status)
    doubt = not gone and snoop_in_doubt(failed, e.status)
    close_recording(s, rec, True, f"{e.status} {e.message}".strip(), snooped_leg(rec),
                    expected=gone or doubt)
    leg = call.legs.get(snooped_leg(rec) or "")
    mine = leg is not None and leg.hook.recording == rec.name
    if mine and leg is not None:
        leg.hook = replace(leg.hook, recording=None)
    if isinstance(failed, cmd.RecordChannel):
        s.add(cmd.Hangup(call.call_id, failed.channel_id))
    attempts = sum(1 for r in call.recordings.values()
                   if r.target == rec.target and r.status == REC_FAILED)
    waiting = any(info.leg == snooped_leg(rec) and info.prompt is None
                  for info in call.hook.sessions.values())
    if doubt and leg is not None and leg.hook.checking is None and to_be_recorded(s, leg):
        # the round trip gives Asterisk time to unlink a leg being hung up (then 404: no
        # alarm); one that lives has a gap, warned, and is snooped again (check_answered)
        leg.hook = replace(leg.hook, checking=rec.name)
        s.add(cmd.CheckChannel(call.call_id, leg.channel_id))
    elif (leg is not None and not gone and not doubt
            and attempts < s.settings.max_recording_attempts):
        # Asterisk unreachable or in trouble: try again, a few times
        snoop_leg(s, leg)
    elif (leg is not None and mine and gone and isinstance(failed, cmd.RecordChannel)
          and not waiting and to_be_recorded(s, leg)):
        # its snoop went, which its leg's hang-up does, but need not: whether the leg lives
        # is asked, as when a snoop ends (check_answered: if it does, a gap, warned, and it
        # is snooped again). A record hook waiting is answered instead: its dialplan's
        # fallback records the leg, and a snoop as well would record it twice.
        leg.hook = replace(leg.hook, checking=rec.name)
        s.add(cmd.CheckChannel(call.call_id, leg.channel_id))
    else:
        answer_waiting(s, snooped_leg(rec) or "", "FAILED")
    maybe_finish(s)
    return True


stasis_request_failed = failed_request(stasis_settle, stasis_then)
hooked_request_failed = failed_request(hook_settle)
