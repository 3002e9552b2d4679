"""The heart of the daemon: `step(state, event, settings) -> (state, commands)`.

Pure and deterministic: time comes from the event's timestamp, ids are derived from the call id,
and every effect (an ARI request, a database write, a log line, filing a file) is a command for
the adapters. So every captured trace can be replayed through this function without I/O.

The call flow (Stasis mode): the caller enters the app → answer, create a mixing bridge, add the
caller, play the consent announcement → when it has finished, ringback and dial the target
(/channels/create, then /dial after its StasisStart: Asterisk answers 409 before) → on answer,
start the bridge recording and wait for RecordingStarted (the 201 only means queued) → only then
add the answered party, so no word is missed and no recording starts with one party alone for
long (a lone, silent party makes Asterisk end the recording after ~4 s with an empty file).
Whenever a recording ends while the call is still up, a new segment starts at once and the gap
is logged: one recording is never assumed to cover a call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from recorder.ari import events as ev
from recorder.db.rows import EventRow, GapRow
from recorder.model import commands as cmd
from recorder.model.coverage import coverage
from recorder.model.inputs import CommandFailed, RecordingFiled, RecordingFileFailed
from recorder.model.persist import rows_of
from recorder.model.settings import DIRECTIONS, CallSettings
from recorder.model.state import (
    BRIDGED,
    CONNECTING,
    CONSENT,
    DIALING,
    ENDED,
    ENDING,
    LEG_DIALING,
    LEG_GONE,
    LEG_NEW,
    LEG_RINGING,
    LEG_UP,
    REC_FAILED,
    REC_FILED,
    REC_FINISHED,
    REC_LIVE,
    REC_MISSING,
    REC_RECORDING,
    RECORDING_PENDING,
    Call,
    Leg,
    ModelState,
    Recording,
)
from recorder.numbers import is_extension, normalise

# What the dialplan may pass as a target: it is put into a dial string, so nothing that could
# name another technology or add options ('/', '&', ',', '@', '(' …) gets through.
TARGET_RE = re.compile(r"^[0-9A-Za-z*#+._-]{1,64}$")

# Dial statuses that end the attempt, with the call outcome and the hangup reason for the caller.
DIAL_FAILURES = {
    "BUSY": ("busy", "busy"),
    "NOANSWER": ("no_answer", "no_answer"),
    "CHANUNAVAIL": ("failed", "congestion"),
    "CONGESTION": ("failed", "congestion"),
}


# Q.850 causes of an unanswered dialled channel, when no Dial status said why.
CAUSE_OUTCOMES = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected"}


def make_call_id(at: datetime, asterisk_id: str, channel_id: str) -> str:
    """Readable, sortable and unique across offices: time plus a hash of server and channel."""
    digest = hashlib.sha256(f"{asterisk_id}/{channel_id}".encode()).hexdigest()[:8]
    return f"{at:%Y%m%dT%H%M%S}-{digest}"


@dataclass
class _Step:
    """Collects the commands of one step for one call."""

    call: Call
    at: datetime
    settings: CallSettings
    out: list[cmd.Command] = field(default_factory=list)
    dirty: bool = False

    def add(self, command: cmd.Command) -> None:
        self.flush()  # what Asterisk is about to hear of is stored first
        self.out.append(command)

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        self.out.append(cmd.Log(self.call.call_id, event, level, fields))

    def record(
        self,
        kind: str,
        channel_id: str | None = None,
        recording: str | None = None,
        **detail: Any,
    ) -> None:
        row = EventRow(
            call_id=self.call.call_id,
            asterisk_id=self.call.asterisk_id,
            at=self.at,
            kind=kind,
            channel_id=channel_id,
            recording_name=recording,
            detail=detail,
        )
        self.out.append(cmd.RecordEvent(self.call.call_id, row))

    def save(self) -> None:
        """Mark the call changed; one snapshot is written before the next request, or at the end."""
        self.dirty = True

    def flush(self) -> None:
        if self.dirty:
            self.dirty = False
            call_row, legs, recs = rows_of(self.call)
            self.out.append(cmd.SaveCall(self.call.call_id, call_row, legs, recs))


Result = tuple[ModelState, list[cmd.Command]]


def step(state: ModelState, event: ev.Event, settings: CallSettings) -> Result:
    """Apply one event; return the new state and the commands to run, in order."""
    handler = _HANDLERS.get(type(event))
    if handler is None:
        return state, []
    return handler(state, event, settings)


def _for_call(
    state: ModelState,
    call_id: str | None,
    event: ev.Event,
    settings: CallSettings,
    body: Callable[[_Step], None],
) -> Result:
    if call_id is None or call_id not in state.calls:
        return state, []
    s = _Step(state.calls[call_id].copy(), event.timestamp, settings)
    body(s)
    s.flush()
    return state.with_call(s.call), s.out


# --- a channel enters the app ----------------------------------------------------------------


def _on_stasis_start(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.StasisStart)
    call_id = state.by_channel.get(e.channel.id)
    if call_id is not None:
        return _for_call(state, call_id, e, settings, lambda s: _dialled_leg_ready(s, e))
    if e.replace_channel is not None and e.replace_channel.id in state.by_channel:
        return _local_replaces(state, e, settings)
    kind = e.args[0] if e.args else ""
    if kind == "transfer" and e.channel.name.endswith(";2"):
        return _transfer_half(state, e, settings)
    if kind in DIRECTIONS:
        return _new_call(state, e, settings)
    # A channel we did not create and cannot place: never leave it stuck in the app.
    reason = "stale dialled leg" if kind == "dialed" else f"unknown Stasis args {list(e.args)!r}"
    return state, [
        cmd.Log("", "call.rejected", "error", {"channel_id": e.channel.id, "reason": reason}),
        cmd.Hangup("", e.channel.id),
    ]


def _dialled_leg_ready(s: _Step, e: ev.StasisStart) -> None:
    call = s.call
    leg = call.legs.get(e.channel.id)
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
    s.save()


def _new_call(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
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
    _fill_numbers(call, ch.caller_number, settings)
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
    s = _Step(call, e.timestamp, settings)
    s.save()
    s.record("call.started", ch.id, direction=direction, target=target)
    s.log("call.started", channel_id=ch.id, direction=direction, target=target)
    if ch.state != "Up":
        s.add(cmd.Answer(call_id, ch.id))
    s.add(cmd.CreateBridge(call_id, call.bridge_id, call_id))
    call.bridge_created = True
    s.add(cmd.AddChannel(call_id, call.bridge_id, ch.id))
    _play(s, ch.id, "consent", settings.consent_media)
    s.flush()
    return state.with_call(call), s.out


def _fill_numbers(call: Call, caller_number: str, settings: CallSettings) -> None:
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


def _play(s: _Step, channel_id: str, kind: str, media: str) -> None:
    call = s.call
    playback_id = f"{call.call_id}-p{call.next_playback}"
    call.next_playback += 1
    call.playback_id = playback_id
    call.playback_kind = kind
    s.add(cmd.Play(call.call_id, channel_id, playback_id, media))


# --- consent, then dialling --------------------------------------------------------------------


def _on_playback_finished(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.PlaybackFinished)
    return _for_call(
        state, state.by_playback.get(e.playback.id), e, settings, lambda s: _playback_done(s, e)
    )


def _playback_done(s: _Step, e: ev.PlaybackFinished) -> None:
    call = s.call
    if e.playback.id != call.playback_id:
        return
    kind = call.playback_kind
    call.playback_id = call.playback_kind = None
    if kind == "consent" and call.phase == CONSENT:
        s.record("consent.played", call.caller_channel, media=s.settings.consent_media)
        _dial(s)


def _dial(s: _Step) -> None:
    call = s.call
    call.phase = DIALING
    _play(s, call.caller_channel, "ringback", s.settings.ringback_media)
    _dial_leg(s, call.target)


def _dial_leg(
    s: _Step,
    target: str,
    forwarded_from: str | None = None,
    via: str | None = None,
    join_bridge: str | None = None,
) -> Leg:
    call = s.call
    leg_id = f"{call.call_id}-l{len(call.legs) + 1}"
    previous = call.legs.get(forwarded_from or "")
    leg = Leg(
        channel_id=leg_id, role="callee", channel_name="", started_at=s.at,
        forwarded_from=forwarded_from,
        via=via or (previous.via if previous else None),
        join_bridge=join_bridge or (previous.join_bridge if previous else None),
    )
    call.legs[leg_id] = leg
    call.callee_channel = leg_id
    s.save()  # the leg's id is stored before Asterisk hears of it
    s.add(
        cmd.CreateChannel(
            call.call_id, leg_id, _endpoint(s.settings, call, target), f"dialed,{call.call_id}",
            leg.via or call.caller_channel,
        )
    )
    return leg


def _endpoint(settings: CallSettings, call: Call, target: str) -> str:
    """The dial string: the call's own direction for its target; a forward to an outside
    number (a mobile) goes out through the outbound trunk, one to an extension stays inside."""
    if target == call.target:
        template = settings.dial_strings[call.direction]
    elif is_extension(target, settings.extension_pattern):
        template = settings.dial_strings["internal"]
    else:
        template = settings.dial_strings["outbound"]
    return template.replace("{target}", target).replace("{number}", target)


def _on_dial(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.Dial)
    return _for_call(
        state, state.by_channel.get(e.peer.id), e, settings, lambda s: _dial_status(s, e)
    )


def _dial_status(s: _Step, e: ev.Dial) -> None:
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
        s.save()
    elif status == "ANSWER":
        _answered(s, leg)
    elif status in DIAL_FAILURES and leg.join_bridge and call.phase == BRIDGED:
        # A blind transfer's target did not answer: as with Asterisk's own transfer, the
        # transferee's call ends (hearing the failure is a later refinement).
        leg.outcome = DIAL_FAILURES[status][0]
        s.record("transfer.failed", leg.channel_id, dialstatus=status)
        s.log("transfer.failed", "warning", channel_id=leg.channel_id, dialstatus=status)
        _begin_end(s, leg, DIAL_FAILURES[status][1])
    elif status in DIAL_FAILURES and call.phase == DIALING:
        outcome, reason = DIAL_FAILURES[status]
        call.outcome = leg.outcome = outcome
        s.record("dial.failed", leg.channel_id, dialstatus=status)
        s.log("dial.failed", "info", channel_id=leg.channel_id, dialstatus=status)
        _begin_end(s, leg, reason)
    elif status == "CANCEL" and e.forward and (call.phase == DIALING or leg.join_bridge):
        _forward(s, leg, e.forward)


def _forward(s: _Step, leg: Leg, target: str) -> None:
    """A dialled phone answered 302: a leg made with /channels/create does not follow it
    (trace sip_forward_302_create_dial, Dial CANCEL with `forward`, three times), so the app
    dials the new target itself, once, as a new leg of the same call."""
    call = s.call
    if leg.forwarded_to or leg.channel_id != call.callee_channel:
        return  # the repeated CANCEL events of the same forward
    leg.forwarded_to = target
    leg.outcome = "forwarded"
    s.record("dial.forwarded", leg.channel_id, forward=target)
    s.log("dial.forwarded", channel_id=leg.channel_id, forward=target)
    hops = sum(1 for x in call.legs.values() if x.forwarded_to)
    if not TARGET_RE.match(target) or hops > s.settings.max_forwards:
        call.outcome = "failed"
        s.log("dial.forward_refused", "warning", channel_id=leg.channel_id, forward=target,
              hops=hops)
        _begin_end(s, leg, "normal")
        return
    _dial_leg(s, target, forwarded_from=leg.channel_id)


def _on_state_change(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.ChannelStateChange)

    def body(s: _Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is None or e.channel.state != "Up":
            return
        if leg.role == "caller":
            if leg.answered_at is None:
                leg.answered_at = s.at
                s.save()
        else:  # an answer whose Dial event was lost still connects the call
            _answered(s, leg)

    return _for_call(state, state.by_channel.get(e.channel.id), e, settings, body)


def _answered(s: _Step, leg: Leg) -> None:
    call = s.call
    if leg.join_bridge and call.phase == BRIDGED and leg.state not in (LEG_UP, LEG_GONE):
        # A transfer target: the call's recording runs in the call bridge, which hears this
        # bridge through the Local pair, so it joins at once.
        leg.state = LEG_UP
        leg.answered_at = s.at
        s.record("transfer.answered", leg.channel_id)
        s.log("transfer.answered", channel_id=leg.channel_id)
        s.add(cmd.AddChannel(call.call_id, leg.join_bridge, leg.channel_id))
        s.save()
        return
    if call.phase != DIALING or leg.state == LEG_GONE:
        return
    leg.state = LEG_UP
    leg.answered_at = call.answered_at = s.at
    call.phase = RECORDING_PENDING
    if call.playback_id:
        s.add(cmd.StopPlayback(call.call_id, call.playback_id))
        call.playback_id = call.playback_kind = None
    s.record("call.answered", leg.channel_id)
    s.log("call.answered", channel_id=leg.channel_id)
    _start_segment(s)


def _start_segment(s: _Step) -> None:
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
    call.current_recording = name
    s.save()  # the name is stored before the request: nothing Asterisk writes is nameless
    s.add(cmd.StartRecording(call.call_id, call.bridge_id, name, s.settings.format))


# --- recordings ------------------------------------------------------------------------------


def _on_recording(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.RecordingEvent)
    name = e.recording.name

    def body(s: _Step) -> None:
        rec = s.call.recordings.get(name)
        if rec is None:
            return
        if isinstance(e, ev.RecordingStarted):
            _recording_started(s, rec)
        else:
            failed = isinstance(e, ev.RecordingFailed)
            _recording_ended(s, rec, failed, e.recording.cause or ("failed" if failed else ""))

    return _for_call(state, state.by_recording.get(name), e, settings, body)


def _recording_started(s: _Step, rec: Recording) -> None:
    call = s.call
    if rec.status != "requested":
        return
    rec.status = REC_RECORDING
    rec.started_at = s.at
    s.record("recording.started", recording=rec.name, segment=rec.segment)
    s.log("recording.started", recording=rec.name, segment=rec.segment)
    if call.phase == RECORDING_PENDING and rec.name == call.current_recording:
        _connect_callee(s)
    s.save()


def _connect_callee(s: _Step) -> None:
    call = s.call
    call.phase = CONNECTING
    if call.callee_channel:
        s.add(cmd.AddChannel(call.call_id, call.bridge_id, call.callee_channel))


def _recording_ended(s: _Step, rec: Recording, failed: bool, error: str) -> None:
    call = s.call
    if rec.status not in REC_LIVE:
        return
    rec.ended_at = s.at
    rec.legs = _legs_during(call, rec)
    if failed:
        rec.status = REC_FAILED
        rec.error = error or "failed"
        s.record("recording.failed", recording=rec.name, error=rec.error)
        s.log("recording.failed", "error", recording=rec.name, error=rec.error)
    else:
        rec.status = REC_FINISHED
        s.record("recording.finished", recording=rec.name)
    if not failed or rec.started_at is not None:
        # Whatever Asterisk wrote is evidence, even from a failed recording: file it.
        rec.file_pending = True
        began = rec.started_at or rec.requested_at
        s.add(cmd.FileRecording(call.call_id, rec.name, rec.format, began.isoformat()))
    if rec.name == call.current_recording:
        call.current_recording = None
        if call.phase in (RECORDING_PENDING, CONNECTING, BRIDGED):
            _replace_segment(s, rec)
    s.save()
    _maybe_finish(s)


def _legs_during(call: Call, rec: Recording) -> list[str]:
    bridge = rec.target.removeprefix("bridge:")
    start, end = rec.started_at or rec.requested_at, rec.ended_at or rec.requested_at
    present = []
    for leg in call.legs.values():
        for b, entered, left in leg.spans:
            if b == bridge and entered <= end and (left is None or left >= start):
                present.append(leg.channel_id)
                break
    return present


def _replace_segment(s: _Step, ended: Recording) -> None:
    """The call is still up but its recording stopped: log the gap and record again at once."""
    call = s.call
    s.log(
        "recording.gap",
        "warning",
        recording=ended.name,
        reason=ended.error or "recording ended while the call was up",
        since=s.at.isoformat(),
    )
    s.record("recording.gap", recording=ended.name, reason=ended.error or "ended mid-call")
    call.gaps += 1
    if call.phase == RECORDING_PENDING:
        call.recording_retries += 1
        if call.recording_retries >= s.settings.max_recording_attempts:
            s.log("recording.unavailable", "error", attempts=call.recording_retries)
            s.record("recording.unavailable", attempts=call.recording_retries)
            _connect_callee(s)
            return
    _start_segment(s)


def _on_filed(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, RecordingFiled | RecordingFileFailed)

    def body(s: _Step) -> None:
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
        else:
            if rec.status == REC_FINISHED:
                rec.status = REC_MISSING
            rec.error = e.error
            s.record("recording.missing", recording=rec.name, error=e.error)
            s.log("recording.missing", "error", recording=rec.name, error=e.error)
        s.save()
        _maybe_finish(s)

    return _for_call(state, state.by_recording.get(e.name), e, settings, body)


# --- bridges ---------------------------------------------------------------------------------


def _on_entered(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.ChannelEnteredBridge)
    if e.channel is None:
        return state, []
    channel_id = e.channel.id

    def body(s: _Step) -> None:
        call = s.call
        leg = call.legs.get(channel_id)
        if leg is None or e.bridge.id not in call.all_bridges() or leg.in_bridge:
            return
        leg.in_bridge = True
        leg.spans.append([e.bridge.id, s.at, None])
        if len(call.bridged_parties()) >= 2 and call.phase == CONNECTING:
            call.phase = BRIDGED
            if call.bridged_at is None:
                call.bridged_at = s.at
            s.record("call.bridged", channel_id)
            s.log("call.bridged", channel_id=channel_id, recording=call.current_recording)
        s.save()

    return _for_call(state, state.by_bridge.get(e.bridge.id), e, settings, body)


def _leave_bridge(call: Call, leg: Leg, at: datetime) -> None:
    if not leg.in_bridge:
        return
    if len(call.bridged_parties()) == 2 and call.bridged_at and call.unbridged_at is None:
        call.unbridged_at = at
    leg.in_bridge = False
    for span in leg.spans:
        if span[2] is None:
            span[2] = at


def _on_left(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.ChannelLeftBridge)

    def body(s: _Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is not None and e.bridge.id in s.call.all_bridges():
            _leave_bridge(s.call, leg, s.at)
            s.save()

    return _for_call(state, state.by_bridge.get(e.bridge.id), e, settings, body)


def _on_bridge_destroyed(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.BridgeDestroyed)

    def body(s: _Step) -> None:
        s.call.bridge_destroyed = True
        _maybe_finish(s)

    return _for_call(state, state.by_bridge.get(e.bridge.id), e, settings, body)


# --- blind transfers ---------------------------------------------------------------------------
# Traces blind_transfer and sip_blind_transfer_refer: a Local pair appears. Its ;1 takes the
# transferer's place in the call bridge (StasisStart, no args, replace_channel = transferer); its
# ;2 runs the transfer context, which sends it into the app with args ("transfer", exten) like a
# new call. The two StasisStarts come in either order; the pair is linked by its shared name. The
# app bridges ;2 with the dialled target in a bridge of its own: the call bridge, still recorded,
# hears the target through the pair.


def _local_replaces(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
    assert e.replace_channel is not None
    replaced_id = e.replace_channel.id
    base = e.channel.name[:-2] if e.channel.name.endswith(";1") else None
    pending = state.pending_locals.get(base or "")

    def body(s: _Step) -> None:
        call = s.call
        replaced = call.legs.get(replaced_id)
        if replaced is None:
            return
        call.legs[e.channel.id] = Leg(
            channel_id=e.channel.id, role="local", channel_name=e.channel.name,
            started_at=s.at, state=LEG_UP, local_base=base, replaces=replaced_id,
        )
        replaced.replaced_by = e.channel.id
        s.record("transfer.replaced", e.channel.id, replaces=replaced_id, role=replaced.role)
        s.log("transfer.replaced", channel_id=e.channel.id, replaces=replaced_id)
        if pending is not None:
            _attach_target(s, pending[0], pending[1])
        s.save()

    new_state, out = _for_call(state, state.by_channel[replaced_id], e, settings, body)
    if pending is not None and base is not None:
        new_state.pending_locals.pop(base, None)
    return new_state, out


def _transfer_half(state: ModelState, e: ev.StasisStart, settings: CallSettings) -> Result:
    base = e.channel.name[:-2]
    exten = e.args[1] if len(e.args) > 1 else ""
    for call in state.calls.values():
        if any(leg.local_base == base for leg in call.legs.values()):
            return _for_call(
                state, call.call_id, e, settings, lambda s: _attach_target(s, e.channel, exten)
            )
    new_state = state.with_call_none()
    new_state.pending_locals[base] = (e.channel, exten)
    return new_state, [cmd.Log("", "transfer.pending", "info", {"channel_id": e.channel.id})]


def _attach_target(s: _Step, half: ev.ChannelInfo, exten: str) -> None:
    """Connect the pair's ;2 to the transfer target: a bridge of its own, then dial."""
    call = s.call
    base = half.name[:-2]
    call.legs[half.id] = Leg(
        channel_id=half.id, role="local", channel_name=half.name, started_at=s.at,
        state=LEG_UP, local_base=base,
    )
    if not TARGET_RE.match(exten) or call.phase != BRIDGED:
        s.log("transfer.refused", "warning", channel_id=half.id, exten=exten, phase=call.phase)
        s.add(cmd.Hangup(call.call_id, half.id))
        return
    bridge_id = f"{call.call_id}-b{len(call.extra_bridges) + 2}"
    call.extra_bridges.append(bridge_id)
    s.save()
    s.add(cmd.CreateBridge(call.call_id, bridge_id, call.call_id))
    s.add(cmd.AddChannel(call.call_id, bridge_id, half.id))
    s.record("transfer.dialing", half.id, exten=exten)
    _dial_leg(s, exten, via=half.id, join_bridge=bridge_id)


def _on_blind_transfer(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.BridgeBlindTransfer)
    call_id = state.by_channel.get(e.channel.id)

    def body(s: _Step) -> None:
        s.record(
            "transfer.blind", e.channel.id, exten=e.exten, context=e.context, result=e.result,
            is_external=e.is_external,
            local=e.replace_channel.id if e.replace_channel else None,
        )
        s.log("call.transfer", channel_id=e.channel.id, exten=e.exten, context=e.context,
              result=e.result)

    return _for_call(state, call_id, e, settings, body)


# --- hold ------------------------------------------------------------------------------------


def _on_hold(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.ChannelHold | ev.ChannelUnhold)

    def body(s: _Step) -> None:
        leg = s.call.legs.get(e.channel.id)
        if leg is None:
            return
        open_hold = next((h for h in leg.holds if h[1] is None), None)
        if isinstance(e, ev.ChannelHold):
            if open_hold is None:
                leg.holds.append([s.at, None])
                s.record("leg.hold", leg.channel_id, musicclass=e.musicclass)
                s.save()
        elif open_hold is not None:  # Asterisk sends a lone Unhold at each transfer: not a hold
            open_hold[1] = s.at
            s.record("leg.unhold", leg.channel_id)
            s.save()

    return _for_call(state, state.by_channel.get(e.channel.id), e, settings, body)


# --- hangups and the end of the call ---------------------------------------------------------


def _on_hangup(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, ev.ChannelEvent)
    channel_id = e.channel.id

    def body(s: _Step) -> None:
        leg = s.call.legs.get(channel_id)
        if leg is None:
            return
        if isinstance(e, ev.ChannelHangupRequest):
            if e.cause is not None and leg.hangup_cause is None:
                leg.hangup_cause = e.cause
            if leg.replaced_by is not None:  # a transferer leaving: the call goes on
                s.save()
                return
            if leg.role == "callee" and leg.answered_at is None:
                # Not yet the end: a 302 (cause 23) is followed by Dial CANCEL with `forward`
                # (trace sip_forward_302_create_dial); the leg's end decides when it goes.
                s.save()
                return
            _begin_end(s, leg, "normal")
            return
        if isinstance(e, ev.ChannelDestroyed):
            leg.hangup_cause = e.cause
            _refine_unanswered(s, leg)
        _leg_gone(s, leg)

    return _for_call(state, state.by_channel.get(channel_id), e, settings, body)


def _leg_outcome(call: Call, leg: Leg) -> str:
    if leg.role == "caller":
        return "hangup"
    if leg.answered_at is not None:
        return "answered"
    if call.outcome == "abandoned":
        return "cancelled"
    return "failed"


def _refine_unanswered(s: _Step, leg: Leg) -> None:
    """A dialled leg that ended unanswered without a Dial status: its cause tells why.

    A dial timeout, a far end that rejects, or a 'busy' before any Dial event may reach us only
    as the channel's destruction (its Q.850 cause), after the hangup request already ended the
    call provisionally as 'failed'.
    """
    call = s.call
    if leg.role != "callee" or leg.answered_at is not None or call.answered_at is not None:
        return
    if leg.dialstatus in DIAL_FAILURES:  # Asterisk said why: that stands
        return
    outcome = CAUSE_OUTCOMES.get(leg.hangup_cause or 0)
    if (
        outcome is None
        or leg.outcome not in (None, "failed")
        or call.outcome not in (None, "failed")
    ):
        return
    leg.outcome = call.outcome = outcome
    s.save()


def _leg_gone(s: _Step, leg: Leg) -> None:
    if leg.state == LEG_GONE:
        return
    _leave_bridge(s.call, leg, s.at)
    leg.state = LEG_GONE
    leg.ended_at = s.at
    if leg.outcome is None:
        leg.outcome = _leg_outcome(s.call, leg)
    s.record("leg.hangup", leg.channel_id, cause=leg.hangup_cause, role=leg.role)
    superseded = leg.replaced_by is not None or (
        leg.role == "callee" and leg.channel_id != s.call.callee_channel
    )
    if not superseded:  # a forwarded or losing dialled leg ends alone, not the call
        _begin_end(s, leg, "normal")
    s.save()
    _maybe_finish(s)


def _begin_end(s: _Step, leg: Leg, reason: str) -> None:
    """A party left or the dial failed: stop recording and release every other leg."""
    call = s.call
    if call.phase in (ENDING, ENDED):
        return
    if call.outcome is None:
        if call.answered_at is not None:
            call.outcome = "answered"
        elif leg.role == "caller":
            call.outcome = "abandoned"
            callee = call.legs.get(call.callee_channel or "")
            if callee is not None and callee.outcome is None:
                callee.outcome = "cancelled"
        else:
            call.outcome = "failed"
    call.phase = ENDING
    if call.bridged_at is not None and call.unbridged_at is None:
        call.unbridged_at = s.at
    if call.playback_id:
        s.add(cmd.StopPlayback(call.call_id, call.playback_id))
        call.playback_id = call.playback_kind = None
    for rec in call.live_recordings():
        s.add(cmd.StopRecording(call.call_id, rec.name))
    for other in call.live_legs():
        if other.channel_id != leg.channel_id:  # a leg not yet created answers 404: then gone
            s.add(cmd.Hangup(call.call_id, other.channel_id, reason))
    s.log("call.ending", channel_id=leg.channel_id, outcome=call.outcome)
    s.save()


def _maybe_finish(s: _Step) -> None:
    call = s.call
    if call.phase != ENDING or call.live_legs():
        return
    if call.bridge_created and not call.bridge_destroyed:
        for bridge_id in call.all_bridges():
            s.add(cmd.DestroyBridge(call.call_id, bridge_id))
        call.bridge_destroyed = True  # a 404 means Asterisk already destroyed it
    if not all(r.done for r in call.recordings.values()):
        return
    call.phase = ENDED
    call.status = "ended"
    call.ended_at = max((leg.ended_at for leg in call.legs.values() if leg.ended_at), default=s.at)
    proof = coverage(call, s.settings.gap_threshold_ms)
    for channel_id, leg_cov in proof.legs.items():
        leg = call.legs[channel_id]
        leg.talked_ms, leg.covered_ms, leg.held_ms = (
            leg_cov.talked_ms, leg_cov.covered_ms, leg_cov.held_ms)
    for gap in proof.gaps:
        s.log("recording.gap", "warning", channel_id=gap.channel_id, start=gap.start.isoformat(),
              end=gap.end.isoformat(), duration_ms=gap.ms, reason=gap.reason)
    if proof.gaps:
        s.add(cmd.SaveGaps(call.call_id, tuple(
            GapRow(call.call_id, call.asterisk_id, g.channel_id, g.start, g.end, g.ms, g.reason)
            for g in proof.gaps)))
    s.record("call.ended", outcome=call.outcome)
    s.save()
    s.log(
        "call.summary",
        direction=call.direction,
        outcome=call.outcome,
        legs=len(call.legs),
        recordings=[
            {"name": r.name, "status": r.status, "duration_ms": r.duration_ms}
            for r in call.recordings.values()
        ],
        seconds_recorded=round(proof.covered_ms / 1000, 3),
        seconds_bridged=round(proof.talked_ms / 1000, 3),
        gaps=len(proof.gaps),
        segments_replaced=call.gaps,
        missing=sum(1 for r in call.recordings.values() if r.status in (REC_FAILED, REC_MISSING)),
    )


# --- failures the adapters report ------------------------------------------------------------


def _on_command_failed(state: ModelState, e: ev.Event, settings: CallSettings) -> Result:
    assert isinstance(e, CommandFailed)
    failed = e.command
    if failed is None:
        return state, []

    def body(s: _Step) -> None:
        call = s.call
        what = type(failed).__name__
        gone = e.status == 404
        if isinstance(failed, cmd.StartRecording):
            rec = call.recordings.get(failed.name)
            if rec is not None and rec.status in REC_LIVE:
                _recording_ended(s, rec, True, f"{e.status} {e.message}".strip())
            return
        if isinstance(failed, cmd.StopRecording | cmd.StopPlayback | cmd.DestroyBridge):
            return  # already over: the event that says so comes, or came, by itself
        if isinstance(failed, cmd.Hangup):
            leg = call.legs.get(failed.channel_id)
            if gone and leg is not None:
                _leg_gone(s, leg)  # its destruction was missed (e.g. while disconnected)
            return
        s.log("ari.request_failed", "error", command=what, status=e.status, message=e.message)
        s.record("ari.request_failed", command=what, status=e.status, message=e.message)
        if isinstance(failed, cmd.Play) and call.phase == CONSENT:
            s.record("consent.failed", call.caller_channel, media=failed.media)
            call.playback_id = call.playback_kind = None
            _dial(s)
        elif isinstance(failed, cmd.CreateChannel | cmd.DialChannel):
            leg = call.legs.get(failed.channel_id)
            call.outcome = "failed"
            if leg is not None:
                leg.outcome = "failed"
                _begin_end(s, leg, "congestion")
                if isinstance(failed, cmd.CreateChannel):  # it never existed
                    _leg_gone(s, leg)
        elif isinstance(failed, cmd.CreateBridge):
            call.outcome = "failed"
            _begin_end(s, call.legs[call.caller_channel], "congestion")
        s.save()

    return _for_call(state, failed.call_id, e, settings, body)


_HANDLERS: dict[type, Callable[[ModelState, Any, CallSettings], Result]] = {
    ev.StasisStart: _on_stasis_start,
    ev.PlaybackFinished: _on_playback_finished,
    ev.Dial: _on_dial,
    ev.ChannelStateChange: _on_state_change,
    ev.RecordingStarted: _on_recording,
    ev.RecordingFinished: _on_recording,
    ev.RecordingFailed: _on_recording,
    ev.ChannelEnteredBridge: _on_entered,
    ev.ChannelLeftBridge: _on_left,
    ev.BridgeDestroyed: _on_bridge_destroyed,
    ev.BridgeBlindTransfer: _on_blind_transfer,
    ev.ChannelHold: _on_hold,
    ev.ChannelUnhold: _on_hold,
    ev.ChannelHangupRequest: _on_hangup,
    ev.StasisEnd: _on_hangup,
    ev.ChannelDestroyed: _on_hangup,
    CommandFailed: _on_command_failed,
    RecordingFiled: _on_filed,
    RecordingFileFailed: _on_filed,
}

__all__ = ["ENDED", "REC_FILED", "CallSettings", "make_call_id", "step"]
