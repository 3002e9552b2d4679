"""Recording segments: start one, connect the answered party once it runs, replace one that
ends while the call is up (the gap is logged), and take in the filed file's facts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.ending import (
    maybe_finish,
)
from recorder.model.flow import (
    Result,
    Step,
    for_call,
)
from recorder.model.inputs import RecordingFiled, RecordingFileFailed, RecordingRetryDue
from recorder.model.phases import transition
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CONNECTING,
    LEG_UP,
    REC_FAILED,
    REC_FILED,
    REC_FINISHED,
    REC_LIVE,
    REC_MISSING,
    REC_RECORDING,
    RECORDING_PENDING,
    Call,
    ModelState,
    Recording,
)

# A segment that ran less than this could not run: Asterisk reports a recording whose file it
# cannot write (a full disk, a spool it may not write) as RecordingStarted then, at once,
# RecordingFinished (res_stasis_recording.c record_file: "done" however the recording
# returned), and a refused request fails it before it starts. Such segments are replaced at
# once at most max_recording_attempts times in a row, then after RETRY_AFTER_S (the last one
# repeated while the call is up; the daemon's periodic task, every 5 s, says when): before,
# each was replaced at once, in a loop of requests, gap warnings and missing files for every
# live call until the disk was mended.
QUICK_SEGMENT_S = 2.0
RETRY_AFTER_S = (5.0, 15.0, 60.0)


def start_segment(s: Step) -> None:
    call = s.call
    name = f"{call.call_id}-s{call.next_segment}"
    call.recordings[name] = Recording(
        name=name,
        segment=call.next_segment,
        target=f"bridge:{call.bridge_id}",
        format=s.settings.format,
        requested_at=s.at,
    )
    call.next_segment += 1
    call.stasis.current_recording = name
    s.add(cmd.StartRecording(call.call_id, call.bridge_id, name, s.settings.format))


def on_recording(state: ModelState, e: ev.Event, settings: CallSettings,
                 call_id: str) -> Result:
    assert isinstance(e, ev.RecordingEvent)
    name = e.recording.name

    def body(s: Step) -> None:
        rec = s.call.recordings.get(name)
        if rec is None:
            return
        if isinstance(e, ev.RecordingStarted):
            recording_started(s, rec)
        else:
            failed = isinstance(e, ev.RecordingFailed)
            recording_ended(s, rec, failed, e.recording.cause or ("failed" if failed else ""))

    return for_call(state, call_id, e, settings, body)


def recording_started(s: Step, rec: Recording) -> None:
    call = s.call
    if rec.status != "requested":
        return
    rec.status = REC_RECORDING
    rec.started_at = s.at
    s.record("recording.started", recording=rec.name, segment=rec.segment)
    s.log("recording.started", "debug", recording=rec.name, segment=rec.segment)
    if rec.name != call.stasis.current_recording and (
            call.stasis.current_recording is None and call.record
            and call.open_pause("stop") is None and not call.recording_due()):
        # stopped while queued, then wanted again (a start control before the parties are
        # bridged starts no segment of its own): it is the call's recording after all
        call.stasis.current_recording = rec.name
    if rec.name != call.stasis.current_recording:
        # Stopped (a stop control, an opt-out, policy) while Asterisk still had it queued: a
        # stop then only marks it, and it records all the same (res_stasis_recording.c
        # recording_disregard; record_file never looks): so it is stopped again, now.
        s.add(cmd.StopRecording(call.call_id, rec.name))
    else:
        call.recorded_from(s.at)
        if call.open_pause("pause") is not None:  # a segment replacing one during a pause
            s.add(cmd.PauseRecording(call.call_id, rec.name, True))
    if call.phase == RECORDING_PENDING and rec.name == call.stasis.current_recording:
        connect_callee(s)
    for leg in call.legs.values():
        bridge = leg.stasis.join_bridge
        if leg.stasis.waiting and bridge and not leg.in_bridge and leg.state == LEG_UP:
            # a joining party policy records from now on: it joins once the recording runs
            leg.stasis = replace(leg.stasis, waiting=False)
            s.add(cmd.AddChannel(call.call_id, bridge, leg.channel_id))


def connect_callee(s: Step) -> None:
    call = s.call
    transition(s, CONNECTING)
    callee = call.legs.get(call.callee_channel or "")
    if callee is not None and callee.stasis.originated and not callee.stasis.in_stasis:
        # it joins on its StasisStart (dialing.dialled_leg_ready)
        callee.stasis = replace(callee.stasis, waiting=True)
        return
    if call.callee_channel:
        s.add(cmd.AddChannel(call.call_id, call.bridge_id, call.callee_channel))


def close_recording(s: Step, rec: Recording, failed: bool, error: str,
                    channel_id: str | None = None, *, expected: bool = False) -> None:
    """A recording finished or failed (either mode): its end, who it heard, and filing.
    `expected`: a failure the call itself caused (a snoop cancelled by its leg's hang-up or a
    stop), logged at info: nothing is wrong."""
    call = s.call
    rec.ended_at = s.at
    rec.legs = legs_during(call, rec)
    if failed:
        rec.status = REC_FAILED
        rec.error = error or "failed"
        s.record("recording.failed", channel_id, recording=rec.name, error=rec.error)
        quiet = expected or is_retry(call, rec, s.settings)
        s.log("recording.failed", "info" if quiet else "error",
              recording=rec.name, error=rec.error)
    else:
        rec.status = REC_FINISHED
        s.record("recording.finished", channel_id, recording=rec.name)
    if not failed or rec.started_at is not None:
        # Whatever Asterisk wrote is evidence, even from a failed recording: file it.
        rec.file_pending = True
        s.add(_file_command(call, rec))


def filing_asked(call: Call) -> list[cmd.Command]:
    """The FileRecording commands a call is still waiting on (after a crash, asked again)."""
    return [_file_command(call, rec) for rec in call.recordings.values() if rec.file_pending]


def _file_command(call: Call, rec: Recording) -> cmd.FileRecording:
    began = rec.started_at or rec.requested_at
    return cmd.FileRecording(call.call_id, rec.name, rec.format, began.isoformat())


def recording_ended(s: Step, rec: Recording, failed: bool, error: str) -> None:
    call = s.call
    if rec.status not in REC_LIVE:
        return
    close_recording(s, rec, failed, error)
    if rec.name == call.stasis.current_recording:
        call.stasis.current_recording = None
        if call.phase in (RECORDING_PENDING, CONNECTING, BRIDGED):
            replace_segment(s, rec)
    maybe_finish(s)


def legs_during(call: Call, rec: Recording) -> list[str]:
    """The legs heard by a recording: those in its bridge while it ran, or, for a snoop
    (hook mode), its leg and whoever shared a bridge with that leg meanwhile."""
    start, end = rec.started_at or rec.requested_at, rec.ended_at or rec.requested_at

    def stays(leg_id: str) -> list[tuple[str, Any, Any]]:
        leg = call.legs.get(leg_id)
        return [(b, a, z) for b, a, z in (leg.spans if leg else [])
                if a <= end and (z is None or z >= start)]

    if rec.target.startswith("snoop:"):
        snooped = rec.target.removeprefix("snoop:")
        windows = stays(snooped)
        present = [snooped] if snooped in call.legs else []
        for leg in call.legs.values():
            if leg.channel_id != snooped and any(
                b == wb and a <= (wz or end) and (z is None or z >= wa)
                for b, a, z in stays(leg.channel_id) for wb, wa, wz in windows
            ):
                present.append(leg.channel_id)
        return present
    bridge = rec.target.removeprefix("bridge:")
    return [leg.channel_id for leg in call.legs.values() if any(b == bridge for b, _, _ in
                                                                stays(leg.channel_id))]


def replace_segment(s: Step, ended: Recording) -> None:
    """The call is still up but its recording stopped: log the gap and record again at once."""
    call = s.call
    s.log(
        "recording.gap",
        "info" if is_retry(call, ended, s.settings) else "warning",
        recording=ended.name,
        reason=ended.error or "recording ended while the call was up",
        since=s.at.isoformat(),
    )
    s.record("recording.gap", recording=ended.name, reason=ended.error or "ended mid-call")
    call.gaps += 1
    if call.phase == RECORDING_PENDING:
        call.stasis.recording_retries += 1
        if retry_later(s, ended, call.stasis.recording_retries):
            connect_callee(s)  # unrecorded for now: tried again at retry_at
            return
    elif retry_later(s, ended, could_not_run(call, ended.target)):
        return
    start_segment(s)


def segment_ran(rec: Recording) -> bool:
    """Whether an ended recording ran: not one that could not (QUICK_SEGMENT_S)."""
    return (rec.started_at is not None and rec.ended_at is not None
            and (rec.ended_at - rec.started_at).total_seconds() >= QUICK_SEGMENT_S)


def could_not_run(call: Call, target: str, before: int | None = None) -> int:
    """How many recordings of `target` (the call's bridge, or a leg's snoop), the latest
    first, ended in a row without running (`segment_ran`); `before`: of those older than that
    segment."""
    ended = sorted((r for r in call.recordings.values()
                    if r.target == target and r.status not in REC_LIVE
                    and (before is None or r.segment < before)),
                   key=lambda r: r.segment, reverse=True)
    return next((n for n, rec in enumerate(ended) if segment_ran(rec)), len(ended))


def is_retry(call: Call, rec: Recording, settings: CallSettings) -> bool:
    """Whether `rec` was asked for as a retry (`retry_later`): recording.unavailable said once
    that its target cannot be recorded, so its own failure is no news (info, not another
    error and warning every minute for every call while the fault lasts)."""
    return (could_not_run(call, rec.target, rec.segment) >= settings.max_recording_attempts
            and not segment_ran(rec))  # one that then ran is news again when it fails


def retry_later(s: Step, ended: Recording, tries: int) -> bool:
    """After `tries` recordings in a row that could not run (either mode): True once they are
    max_recording_attempts, the error said once and the call's `retry_at` set (one retry
    pending at a time: the earliest stands)."""
    most = s.settings.max_recording_attempts
    if tries < most:
        return False
    call = s.call
    if tries == most:  # said once; the slower tries that follow are info
        s.log("recording.unavailable", "error", recording=ended.name, attempts=tries,
              error=ended.error or "the recording ended as it started")
        s.record("recording.unavailable", attempts=tries)
    after = RETRY_AFTER_S[min(tries - most, len(RETRY_AFTER_S) - 1)]
    if call.retry_at is None:
        call.retry_at = s.at + timedelta(seconds=after)
    return True


def retry_taken(s: Step) -> bool:
    """Whether the call's `retry_at` has passed, taking it (either mode's RecordingRetryDue):
    False when it was asked for twice, early, or already taken."""
    call = s.call
    if call.retry_at is None or call.retry_at > s.at:
        return False
    call.retry_at = None
    return True


def retry_due(s: Step, e: RecordingRetryDue) -> None:
    """The call's `retry_at` has passed: a new segment, if the call is still up, to be
    recorded (no stop control open), and without one."""
    call = s.call
    if retry_taken(s) and (
            call.phase in (CONNECTING, BRIDGED) and call.stasis.current_recording is None
            and call.record and not call.recording_due() and call.open_pause("stop") is None):
        s.log("recording.retry", attempts=could_not_run(call, f"bridge:{call.bridge_id}"))
        start_segment(s)


def on_filed(state: ModelState, e: ev.Event, settings: CallSettings,
             call_id: str) -> Result:
    assert isinstance(e, RecordingFiled | RecordingFileFailed)

    def body(s: Step) -> None:
        rec = s.call.recordings.get(e.name)
        if rec is None:
            return
        rec.file_pending = False
        if isinstance(e, RecordingFiled):
            rec.path, rec.sha256, rec.bytes = e.path, e.sha256, e.bytes
            rec.duration_ms = e.duration_ms
            if e.audio_error:  # kept as evidence, but nothing in it counts as recorded
                rec.error = f"undecodable audio: {e.audio_error}"
                s.log("recording.undecodable", "error", recording=rec.name, error=e.audio_error)
            if rec.status == REC_FINISHED:
                rec.status = REC_FILED
            s.record(
                "recording.filed",
                recording=rec.name,
                sha256=e.sha256,
                bytes=e.bytes,
                duration_ms=e.duration_ms,
            )
            s.log("recording.filed", recording=rec.name, path=e.path, duration_ms=e.duration_ms)
        elif e.waiting and rec.status == REC_FINISHED:
            # Safe in the spool, measured; the spool sweep files it when space returns. The
            # alert is the daemon's (archive.full), once: not a missing recording per call.
            rec.waiting = True
            rec.duration_ms, rec.sha256, rec.bytes = e.duration_ms, e.sha256, e.bytes
            rec.error = f"waiting to be filed: {e.error}"
            s.record("recording.waiting", recording=rec.name, error=e.error, sha256=e.sha256,
                     duration_ms=e.duration_ms)
            s.log("recording.waiting", recording=rec.name, reason=e.error)
        else:
            if rec.status == REC_FINISHED:
                rec.status = REC_MISSING
            rec.error = e.error
            s.record("recording.missing", recording=rec.name, error=e.error)
            s.log("recording.missing", "error", recording=rec.name, error=e.error)
        maybe_finish(s)

    return for_call(state, call_id, e, settings, body)
