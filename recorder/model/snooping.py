"""Recording a channel the dialplan keeps (hook mode): one snoop channel per leg, recorded.

A channel outside Stasis cannot be put in our bridge, but ARI can snoop on it: POST
/channels/{id}/snoop (spy both) makes a Snoop channel that enters our app and hears what the
channel says and hears, wherever the dialplan bridges it (Dial(), a transfer's new bridge). The
snoop is recorded (POST /channels/{snoop}/record; a bridged channel itself cannot be: trace
record_channel_in_bridge) and dies with its channel, which finishes the recording.

Each leg gets its own snoop when it first talks, so a transfer that takes one party away leaves
the other's recording running. A snoop recording that ends while its leg is still up is
replaced at once (the gap is logged), as a bridge recording is in Stasis mode.

When a channel hangs up, Asterisk ends its snoops before the channel's own ChannelDestroyed:
ast_hangup (main/channel.c) unlinks the channel and detaches its audiohooks; the snoop notices
on its next 20-ms tick (res_stasis_snoop.c snoop_read), its recording finishes
(res_stasis_recording.c: RecordingFinished), it leaves the app, and only then, the snoop's
reference released, is the channel destroyed. A callee that Dial() hangs up, or a transferer,
gets no ChannelHangupRequest first (observed/hook_mode_*). So a snoop recording that ends
while its leg is not yet known gone is no gap by itself: Asterisk is asked whether the leg
lives (a variable of it, read through ast_channel_get_by_name, which answers 404 from the
moment ast_hangup unlinked it; GET /channels/{id} reads the snapshot cache, which keeps the
leg until the snoop lets it go); only a leg that lives on has a gap, replaced at once.
"""

from __future__ import annotations

from dataclasses import replace

from recorder.model import commands as cmd
from recorder.model.ending import maybe_finish
from recorder.model.flow import Step
from recorder.model.inputs import RecordingRetryDue
from recorder.model.segments import (
    close_recording,
    could_not_run,
    is_retry,
    retry_later,
    retry_taken,
)
from recorder.model.sessions import answer_waiting
from recorder.model.state import (
    FOLLOWING,
    LEG_GONE,
    REC_LIVE,
    REC_RECORDING,
    REC_REQUESTED,
    Leg,
    Recording,
)

SNOOP_PREFIX = "snoop:"


def snooped_leg(rec: Recording) -> str | None:
    """The leg a snoop recording hears (None for a bridge recording)."""
    return rec.target.removeprefix(SNOOP_PREFIX) if rec.target.startswith(SNOOP_PREFIX) else None


def stopped(s: Step) -> bool:
    """Recording is off on purpose now: a stop control, or policy/consent said no (or says
    yes only once the announcements now due are heard: hooks.start_due)."""
    call = s.call
    return not call.record or call.open_pause("stop") is not None or call.recording_due()


def snoop_leg(s: Step, leg: Leg) -> None:
    """Start recording `leg` (nothing if it is already recorded, gone, or recording is off)."""
    call = s.call
    if leg.hook.recording is not None or leg.state == LEG_GONE or stopped(s):
        return
    n = call.next_segment
    call.next_segment += 1
    name, snoop_id = f"{call.call_id}-s{n}", f"{call.call_id}-n{n}"
    call.recordings[name] = Recording(
        name=name, segment=n, target=f"{SNOOP_PREFIX}{leg.channel_id}",
        format=s.settings.format, requested_at=s.at,
    )
    call.hook.snoops[snoop_id] = name
    leg.hook = replace(leg.hook, recording=name)
    s.add(cmd.Snoop(call.call_id, leg.channel_id, snoop_id, f"snoop,{call.call_id}"))
    s.log("recording.snoop", channel_id=leg.channel_id, recording=name, snoop=snoop_id)


def snoop_ready(s: Step, snoop_id: str) -> None:
    """The snoop channel entered our app: record it (or let it go, if no longer wanted)."""
    call = s.call
    rec = call.recordings.get(call.hook.snoops.get(snoop_id, ""))
    if rec is not None and rec.status == REC_REQUESTED and not wanted(s, rec):
        # stopped, refused or hung up while the snoop was being made: it records nothing, and
        # nothing went wrong
        close_recording(s, rec, True, "cancelled before it started (stop, refusal or hangup)",
                        snooped_leg(rec), expected=True)
        answer_waiting(s, snooped_leg(rec) or "", "NOT_RECORDED" if stopped(s) else "FAILED")
        maybe_finish(s)
    if rec is None or rec.status != REC_REQUESTED:
        s.add(cmd.Hangup(call.call_id, snoop_id))
        return
    s.add(cmd.RecordChannel(call.call_id, snoop_id, rec.name, rec.format))


def wanted(s: Step, rec: Recording) -> bool:
    """Whether this snoop recording should run: its leg is up, it is the leg's recording,
    and recording is on."""
    leg = s.call.legs.get(snooped_leg(rec) or "")
    return (leg is not None and leg.state != LEG_GONE and leg.hook.recording == rec.name
            and not stopped(s))


def snoop_gone(s: Step, snoop_id: str) -> None:
    """A snoop left the app (StasisEnd) or was destroyed; one that died before its recording
    was even asked for: nothing will come of it."""
    rec = s.call.recordings.get(s.call.hook.snoops.get(snoop_id, ""))
    if rec is None:
        return
    if not rec.snoop_left:
        rec.snoop_left = True
    if rec.status == REC_REQUESTED and rec.started_at is None:
        # most often its leg hung up as it was being set up: whether the leg lives on is
        # asked (snoop_ended); if it does, that is the gap, logged then (check_answered)
        snoop_ended(s, rec, True, "snoop channel ended before recording", expected=True)


def snoop_started(s: Step, rec: Recording) -> None:
    call = s.call
    if rec.status != REC_REQUESTED:
        return
    rec.status = REC_RECORDING
    rec.started_at = s.at
    s.record("recording.started", snooped_leg(rec), recording=rec.name, segment=rec.segment)
    s.log("recording.started", "debug", channel_id=snooped_leg(rec), recording=rec.name)
    if not wanted(s, rec):  # stopped or refused while it was being started: end it now
        s.add(cmd.StopRecording(call.call_id, rec.name))
    elif call.open_pause("pause") is not None:
        s.add(cmd.PauseRecording(call.call_id, rec.name, True))  # started during a pause


def snoop_ended(s: Step, rec: Recording, failed: bool, error: str,
                expected: bool = False) -> None:
    """A snoop recording finished or failed: file what exists; if its leg may live on and
    recording is wanted, ask Asterisk whether it does (check_answered). `expected`: as
    close_recording's."""
    call = s.call
    if rec.status not in REC_LIVE:
        return
    close_recording(s, rec, failed, error, snooped_leg(rec), expected=expected)
    leg = call.legs.get(snooped_leg(rec) or "")
    if leg is not None and leg.hook.recording == rec.name:
        leg.hook = replace(leg.hook, recording=None)
        if to_be_recorded(s, leg):
            leg.hook = replace(leg.hook, checking=rec.name)
            s.add(cmd.CheckChannel(call.call_id, leg.channel_id))
    maybe_finish(s)


def check_answered(s: Step, channel_id: str, exists: bool) -> None:
    """Asterisk said whether the leg whose snoop recording ended lives on: if it does, that
    was a gap (logged) and the leg is snooped again at once; if not, it is being hung up and
    its snoop's end was the leg's end."""
    call = s.call
    leg = call.legs.get(channel_id)
    if leg is None or leg.hook.checking is None:
        return
    ended = call.recordings.get(leg.hook.checking)
    leg.hook = replace(leg.hook, checking=None)
    if not exists or leg.hook.recording is not None or not to_be_recorded(s, leg):
        return
    name = ended.name if ended is not None else ""
    reason = (ended.error if ended is not None else None) or "snoop recording ended mid-call"
    retried = ended is not None and is_retry(call, ended, s.settings)
    s.log("recording.gap", "info" if retried else "warning", channel_id=leg.channel_id,
          recording=name, reason=reason)
    s.record("recording.gap", leg.channel_id, recording=name, reason=reason)
    call.gaps += 1
    old = call.snoop_of(name)
    if old is not None and ended is not None and not ended.snoop_left:
        s.add(cmd.Hangup(call.call_id, old))  # a snoop left without its recording
    if ended is not None and retry_later(s, ended, could_not_run(call, ended.target)):
        return  # not in a loop (recorder.model.segments.QUICK_SEGMENT_S): snoop_retry_due
    snoop_leg(s, leg)


def snoop_retry_due(s: Step, e: RecordingRetryDue) -> None:
    """The call's `retry_at` has passed: each leg whose snoop recordings could not run, still
    up and to be recorded, is snooped again."""
    call = s.call
    if not retry_taken(s):
        return
    for leg in call.legs.values():
        target = f"{SNOOP_PREFIX}{leg.channel_id}"
        if (leg.hook.recording is None and leg.hook.checking is None
                and to_be_recorded(s, leg)
                and could_not_run(call, target) >= s.settings.max_recording_attempts):
            s.log("recording.retry", channel_id=leg.channel_id)
            snoop_leg(s, leg)


def to_be_recorded(s: Step, leg: Leg) -> bool:
    """Whether the leg, if it lives, should be recorded now (not gone, recording on)."""
    return leg.state != LEG_GONE and s.call.phase == FOLLOWING and not stopped(s)


def live_recordings_of(s: Step) -> list[Recording]:
    return [r for r in s.call.recordings.values() if r.status == REC_RECORDING]
