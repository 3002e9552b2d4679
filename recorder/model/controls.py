"""In-call controls, the same in both modes: pause/resume, stop/start, tag.

A staff member pauses while a card number is read, then resumes; records on demand where policy
allows; tags the matter. The controls come from DTMF codes (`CallSettings.controls`, e.g. "*1"
pause, "*2" resume: ChannelDtmfReceived), from AGI hooks (a features.conf applicationmap key in
a Dial() bridge) and from the HTTP API (a CRM or an IVR; control_requests rows).

Pause keeps the file and pauses Asterisk's live recording (POST/DELETE
/recordings/live/{name}/pause), so the audio is not kept. Stop ends the recording; start makes a
new one. Every such interval is stored (event rows, `Call.pauses`) and excluded from the coverage
proof: not recording on purpose is not a gap. Each control is idempotent (a DTMF code seen both
as an event and through the applicationmap acts once).

Policy decides what may be changed: a call it forces to be recorded cannot be stopped, one it
never records (or a party refused) cannot be started. Pause is always allowed: it exists for
what must not be kept (card numbers).
"""

from __future__ import annotations

from recorder.ari import events as ev
from recorder.common.tags import MAX_TAGS_PER_CALL, normal_tag, tag_problem
from recorder.model import commands as cmd
from recorder.model.consent import present_parties
from recorder.model.flow import Result, Step, for_call, stop_recordings
from recorder.model.inputs import ControlRequested
from recorder.model.records import Pause
from recorder.model.segments import connect_callee, start_segment
from recorder.model.settings import CallSettings
from recorder.model.snooping import live_recordings_of, snoop_leg
from recorder.model.state import (
    BRIDGED,
    ENDED,
    ENDING,
    FOLLOWING,
    LEG_GONE,
    REC_LIVE,
    REC_RECORDING,
    REC_REQUESTED,
    RECORDING_PENDING,
    Call,
    ModelState,
)
from recorder.policy import Party, announcements_at_start, announcements_on_start

MAX_CODE = 4  # digits kept per channel to match a control code
CONTROL_ACTIONS = ("pause", "resume", "start", "stop", "tag")

DONE, REJECTED = "done", "rejected"
# Event rows and log lines (the interval's ends, as stored and grepped).
EVENT_KINDS = {"pause": "recording.paused", "resume": "recording.resumed",
               "stop": "recording.stopped", "start": "recording.on_demand"}


def control_digit(s: Step, e: ev.ChannelDtmfReceived) -> None:
    """A digit from a party: run the control whose code it completes."""
    call = s.call
    leg = call.legs.get(e.channel.id)
    codes = s.settings.controls
    if leg is None or not codes or call.phase not in (BRIDGED, FOLLOWING):
        return
    typed = (call.dtmf.get(leg.channel_id, "") + e.digit)[-MAX_CODE:]
    call.dtmf[leg.channel_id] = typed
    for action, code in codes.items():
        if code and typed.endswith(code) and action in CONTROL_ACTIONS:
            call.dtmf[leg.channel_id] = ""
            apply(s, action, "dtmf", channel_id=leg.channel_id)
            return


def apply(s: Step, action: str, by: str, *, channel_id: str | None = None,
          tag: str | None = None) -> tuple[str, str]:
    """Run one control on the call; (done | rejected, why)."""
    call = s.call
    if call.phase in (ENDING, ENDED):
        return REJECTED, "the call has ended"
    if action == "tag":
        return _tag(s, tag, by)
    if action not in CONTROL_ACTIONS:
        return REJECTED, f"unknown control {action!r}"
    status, detail = {"pause": _pause, "resume": _resume, "stop": _stop, "start": _start}[
        action](s)
    if status == DONE and detail == "":
        kind = EVENT_KINDS[action]
        names = [r.name for r in s.call.recordings.values() if r.status in REC_LIVE]
        s.record(kind, channel_id, by=by, recordings=names)
        s.log(kind, channel_id=channel_id, by=by, recordings=names)
    return status, detail or action


def _pause(s: Step) -> tuple[str, str]:
    if s.call.open_pause("pause") is not None:
        return DONE, "already paused"
    live = live_recordings_of(s)
    if not live and not _recording_awaited(s.call):
        return REJECTED, "nothing is being recorded"
    s.call.pauses.append(Pause(s.at, None, "pause"))
    for rec in live:
        s.add(cmd.PauseRecording(s.call.call_id, rec.name, True))
    return DONE, ""


def _recording_awaited(call: Call) -> bool:
    """Whether the call waits for a recording to run: one Asterisk has queued, or a retry
    (recorder.model.segments.retry_later). A pause taken meanwhile pauses it as it starts
    (segments.recording_started, snooping.snoop_started): refused, the recording that then
    started would keep what the pause was asked for."""
    return call.record and call.open_pause("stop") is None and (
        call.retry_at is not None
        or any(r.status == REC_REQUESTED for r in call.recordings.values()))


def _resume(s: Step) -> tuple[str, str]:
    if s.call.open_pause("pause") is None:
        return DONE, "not paused"
    s.call.close_pause("pause", s.at)
    for rec in live_recordings_of(s):
        s.add(cmd.PauseRecording(s.call.call_id, rec.name, False))
    return DONE, ""


def pause_outlived(call: Call, failed: cmd.PauseRecording) -> bool:
    """Whether a refused pause (or resume) was of a recording that ended meanwhile (Asterisk:
    404/409): nothing was recorded against it, and an open pause stays open, so the next
    recording is paused as it starts (before, a pause during a retry wait was dropped and the
    retry kept the audio). No failure then."""
    rec = call.recordings.get(failed.name)
    return rec is None or rec.status != REC_RECORDING


def pause_refused(s: Step, failed: cmd.PauseRecording) -> None:
    """Asterisk refused to pause a recording: audio went on being written, so the interval the
    model opened is not true and goes (the coverage proof then counts that time as it is)."""
    call = s.call
    what = "recording.pause_failed" if failed.pause else "recording.resume_failed"
    if failed.pause:
        opened = call.open_pause("pause")
        if opened is not None:
            call.pauses.remove(opened)
    s.log(what, "error", recording=failed.name)
    s.record(what, recording=failed.name)


def _policy_action(s: Step) -> str | None:
    return s.call.decision.action if s.call.decision else None


def _stop(s: Step) -> tuple[str, str]:
    call = s.call
    if s.call.open_pause("stop") is not None or not call.record:
        return DONE, "not recording"
    if _policy_action(s) == "force":
        return REJECTED, "policy requires this call to be recorded"
    call.close_pause("pause", s.at)  # the stop takes over from the pause
    call.pauses.append(Pause(s.at, None, "stop"))
    stop_recordings(s)
    if call.mode == "stasis" and call.phase == RECORDING_PENDING:
        # the callee waited for the recording to run: it joins now, unrecorded (before, it
        # waited for a recording that, stopped, never counted, and the parties never met)
        connect_callee(s)
    return DONE, ""


def _start(s: Step) -> tuple[str, str]:
    call = s.call
    if call.opted_out:
        return REJECTED, f"refused by {', '.join(call.opted_out)}"
    if _policy_action(s) == "never":
        return REJECTED, "policy forbids recording this call"
    listed = call.decision.do_not_record if call.decision else None
    if listed:
        return REJECTED, f"on the do-not-record list ({listed})"
    stop = s.call.open_pause("stop")
    if call.record and stop is None:
        return DONE, "already recording"
    if not call.record and _unannounced(s):
        # Policy did not record it, so nobody heard an announcement: recording now would be
        # recording without one (a prompt cannot be played into a call already talking).
        return REJECTED, "no announcement was played on this call, and policy requires one"
    call.close_pause("stop", s.at)
    if not call.record:  # policy said no at the start; on demand it is recorded from now
        call.record = True
        call.recorded_from(s.at)
    if call.mode == "hook":
        for leg in call.legs.values():
            if leg.state != LEG_GONE and leg.role != "local" and (
                    leg.in_bridge or leg.role == "caller"):
                snoop_leg(s, leg)
    elif call.phase == BRIDGED and call.stasis.current_recording is None:
        start_segment(s)
    return DONE, ""


def _unannounced(s: Step) -> bool:
    """Whether a party on the call now has not heard the announcement policy requires of a
    recorded call: those at its start, and whoever joined while it was not recorded."""
    call, policy = s.call, s.settings.policy
    if policy is None:
        return False
    due = announcements_at_start(Party("caller", call.caller_number),
                                 Party("callee", call.target), policy, recording=True)
    if any(call.heard.get(a.to) is None for a in due):
        return True
    return bool(announcements_on_start(present_parties(call), policy))


def _tag(s: Step, tag: str | None, by: str) -> tuple[str, str]:
    call = s.call
    problem = "is missing" if tag is None else tag_problem(tag)
    if problem is not None or tag is None:
        return REJECTED, f"the tag {problem}"
    tag = normal_tag(tag)
    if tag not in call.tags and len(call.tags) >= MAX_TAGS_PER_CALL:
        return REJECTED, f"a call has at most {MAX_TAGS_PER_CALL} tags"
    if tag not in call.tags:
        call.tags.append(tag)
        s.add(cmd.SaveTags(call.call_id, (tag,), by))
        s.record("call.tagged", tag=tag, by=by)
        s.log("call.tagged", tag=tag, by=by)
    return DONE, "tagged"


def on_control(state: ModelState, e: ControlRequested, settings: CallSettings,
               _call_id: str) -> Result:
    """An HTTP API control request: act, and answer it (a call we do not hold is rejected)."""
    if e.call_id not in state.calls:
        return state, [cmd.ControlDone(e.call_id, e.request_id, REJECTED,
                                       "no such call in progress on this server")]

    def body(s: Step) -> None:
        status, detail = apply(s, e.action, f"api:{e.by}", tag=e.tag)
        s.add(cmd.ControlDone(s.call.call_id, e.request_id, status, detail))

    return for_call(state, e.call_id, e, settings, body)
