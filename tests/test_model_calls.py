"""The pure call model, driven by hand-written event sequences: no I/O, explicit times."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model import snapshot
from recorder.model.inputs import (
    CommandFailed,
    ControlRequested,
    RecordingFiled,
    RecordingFileFailed,
    RecordingRetryDue,
)
from recorder.model.settings import CallSettings
from tests.harness import builders as b
from tests.harness.model import CALLER, SETTINGS, Run, start_inbound, to_bridged, to_dialling


def test_new_inbound_call_answers_bridges_and_plays_consent_before_anything_else() -> None:
    run = Run()
    call_id = start_inbound(run)
    kinds = [type(c) for c in run.commands if not isinstance(c, cmd.Log | cmd.RecordEvent)]
    assert kinds[:5] == [cmd.SaveCall, cmd.Answer, cmd.CreateBridge, cmd.AddChannel, cmd.Play]
    play = run.of(cmd.Play)[0]
    assert (play.channel_id, play.media) == (CALLER, SETTINGS.consent_media)
    assert not run.of(cmd.CreateChannel)  # nobody is dialled before the announcement ends
    save = run.saved()[0]
    assert save.call.caller_e164 == "+14155550100"
    assert (save.call.extension, save.call.department) == ("201", "Intake")
    assert save.call.asterisk_id == b.AST
    # the call's id: when it began, then a hash of the server and the channel, so the same
    # StasisStart names the same call after a restart, and another office's channel another
    assert call_id.startswith(f"{b.T0:%Y%m%dT%H%M%S}-")
    assert call_id == started_as(CALLER, b.AST)
    assert call_id not in (started_as("1700000000.2", b.AST), started_as(CALLER, "pbx2"))


def started_as(channel_id: str, asterisk_id: str) -> str:
    """The id of a call whose StasisStart is this channel's on this server."""
    run = Run()
    run.feed(ev.StasisStart(timestamp=b.at(0), asterisk_id=asterisk_id,
                            channel=b.chan(channel_id, "Ring"), args=("inbound", "201")))
    return run.call.call_id


def test_ids_are_the_call_id_with_a_counter_per_kind() -> None:
    """Bridges, prompts, legs (the caller is leg 1) and segments are named after their call:
    the names of Asterisk's recordings and files say whose they are."""
    run = Run()
    call_id, callee, name = to_bridged(run)
    run.feed(b.recording(30, "finished", name))  # a second segment follows
    assert [run.bridge(), run.playback(0), callee, name, run.recording()] == [
        f"{call_id}-{n}" for n in ("b1", "p1", "l2", "s1", "s2")]


def test_dial_happens_after_consent_and_only_after_the_leg_is_in_stasis() -> None:
    run = Run()
    call_id = start_inbound(run)
    out = run.feed(b.playback_finished(3, run.playback()))
    create = run.of(cmd.CreateChannel, out)[0]
    assert create.endpoint == "PJSIP/201"
    assert create.app_args == f"dialed,{call_id}"
    # the leg's id is saved before the request that creates it
    assert out.index(run.of(cmd.SaveCall, out)[-1]) < out.index(create)
    assert [p.media for p in run.of(cmd.Play, out)] == [SETTINGS.ringback_media]
    assert not run.of(cmd.DialChannel)
    out = run.feed(b.stasis_start(3.01, b.chan(create.channel_id, "Down"), "dialed", call_id))
    (dial,) = run.of(cmd.DialChannel, out)
    assert (dial.channel_id, dial.caller_id, dial.timeout_s) == (create.channel_id, CALLER, 30)


@pytest.mark.parametrize("caller_left", [False, True])
def test_a_ringback_asterisk_cannot_play_is_warned(caller_left: bool) -> None:
    """The caller hears silence while the callee rings when Asterisk cannot play the ringback
    (a calls.ringback it lacks): many take the line for dead and hang up, so ops hear of
    it. (Before: nothing was logged.) A ringback that fails as the caller hangs up is not."""
    run = Run()
    _call_id, _callee = to_dialling(run)
    ringback = run.playback()
    if caller_left:
        run.feed(ev.ChannelHangupRequest(timestamp=b.at(4), asterisk_id=b.AST,
                                         channel=b.chan(CALLER), cause=16))
    out = run.feed(b.playback_finished(4.01, ringback, state="failed"))
    warned = [(c.event, c.level) for c in run.of(cmd.Log, out) if c.level != "debug"]
    assert warned == ([] if caller_left else [("ringback.failed", "warning")])


def test_answered_party_joins_only_after_recording_started() -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    out = run.feed(b.dial(13, callee, "ANSWER"))  # ten seconds of ringing
    (rec,) = run.of(cmd.StartRecording, out)
    assert rec.bridge_id == run.bridge()
    assert run.of(cmd.StopPlayback, out)  # ringback stops
    assert out.index(run.of(cmd.SaveCall, out)[-1]) < out.index(rec)  # name stored first
    assert not [a for a in run.of(cmd.AddChannel, out) if a.channel_id == callee]
    out = run.feed(b.recording(13.01, "started", rec.name))
    assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]
    run.feed(b.entered(13.02, run.bridge(), callee))
    assert run.call.phase == "bridged"


@pytest.mark.parametrize(
    ("dialstatus", "outcome", "reason"),
    [
        ("BUSY", "busy", "busy"),
        ("NOANSWER", "no_answer", "no_answer"),
        ("CHANUNAVAIL", "failed", "congestion"),
        ("CONGESTION", "failed", "congestion"),
    ],
)
def test_dial_failure_ends_the_call_with_its_outcome(
    dialstatus: str, outcome: str, reason: str
) -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    out = run.feed(b.dial(4, callee, dialstatus))
    assert [(h.channel_id, h.reason) for h in run.of(cmd.Hangup, out)] == [(CALLER, reason)]
    run.feed(b.stasis_end(4.1, CALLER))
    run.feed(b.destroyed(4.2, callee, 17))
    assert run.of(cmd.DestroyBridge)  # once no leg is left
    assert run.feed(b.destroyed(4.3, CALLER)) == []
    assert not run.state.calls  # ended and forgotten
    final = run.saved()[-1]
    assert (final.call.status, final.call.outcome) == ("ended", outcome)
    assert final.recordings == ()  # no orphan recording: none was ever started
    assert not run.of(cmd.StartRecording)
    # the caller's cause is the one the app asked Asterisk to hang it up with (no event says
    # it: its StasisEnd comes first); the callee's is its ChannelDestroyed's
    causes = {leg.role: leg.hangup_cause for leg in final.legs}
    assert causes == {"caller": {"busy": 17, "no_answer": 19, "congestion": 34}[reason],
                      "callee": 17}


def test_caller_abandoning_while_ringing_hangs_up_the_ringing_leg() -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.dial(3.02, callee, "RINGING"))
    out = run.feed(b.hangup_request(6, CALLER))
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == [callee]
    run.feed(b.stasis_end(6.01, CALLER))
    run.feed(b.stasis_end(6.02, callee))
    final = run.saved()[-1]
    assert (final.call.outcome, final.call.status) == ("abandoned", "ended")
    assert {leg.role: leg.outcome for leg in final.legs} == {
        "caller": "hangup",
        "callee": "cancelled",
    }


def test_caller_hanging_up_during_consent_leaves_no_recording_and_dials_nobody() -> None:
    run = Run()
    start_inbound(run)
    out = run.feed(b.hangup_request(1, CALLER))
    assert run.of(cmd.StopPlayback, out)
    run.feed(b.stasis_end(1.01, CALLER))
    assert not run.of(cmd.CreateChannel) and not run.of(cmd.StartRecording)
    assert run.saved()[-1].call.outcome == "abandoned"
    # a PlaybackFinished arriving afterwards changes nothing
    assert run.feed(b.playback_finished(1.1, run.playback())) == []


def test_full_call_files_its_recording_and_logs_a_summary() -> None:
    run = Run()
    _call_id, callee, name = to_bridged(run)
    out = run.feed(b.hangup_request(65, callee))
    assert [s.name for s in run.of(cmd.StopRecording, out)] == [name]
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == [CALLER]
    run.feed(b.stasis_end(65.01, callee))
    out = run.feed(b.recording(65.02, "finished", name))
    (filing,) = run.of(cmd.FileRecording, out)
    assert filing.name == name
    run.feed(b.stasis_end(65.03, CALLER))
    assert run.of(cmd.DestroyBridge)
    assert run.state.calls  # still waiting for the file
    run.feed(
        RecordingFiled(
            timestamp=b.at(66),
            name=name,
            path="/a/x.wav",
            sha256="ab" * 32,
            bytes=960_044,
            duration_ms=60_000,
        )
    )
    assert not run.state.calls
    (summary,) = run.logs("call.summary")
    # talking: callee joined at 5.02, its leg ended at 65.01; the file (60 s) covers all of it
    assert summary.fields["seconds_bridged"] == pytest.approx(59.99)
    assert summary.fields["seconds_recorded"] == pytest.approx(59.99)
    assert summary.fields["gaps"] == 0
    final = run.saved()[-1]
    assert final.call.outcome == "answered" and isinstance(final.call.state, dict)
    assert final.call.state["status"] == "ended"  # kept for the call's page, never adopted
    (rec,) = final.recordings
    assert (rec.status, rec.sha256, rec.duration_ms) == ("filed", "ab" * 32, 60_000)


@pytest.mark.parametrize("kind", ["finished", "failed"])
def test_recording_ending_mid_call_starts_a_new_segment_at_once(kind: str) -> None:
    run = Run()
    _call_id, _callee, name = to_bridged(run)
    out = run.feed(b.recording(30, kind, name, cause="disk full" if kind == "failed" else ""))
    (again,) = run.of(cmd.StartRecording, out)
    assert again.name != name and again.bridge_id == run.bridge()
    (gap,) = [c for c in out if isinstance(c, cmd.Log) and c.event == "recording.gap"]
    assert gap.level == "warning" and gap.fields["recording"] == name
    assert run.of(cmd.FileRecording, out)  # whatever was written is kept
    assert run.call.gaps == 1


def test_recording_that_cannot_start_is_retried_then_the_call_is_connected_anyway() -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.dial(4, callee, "ANSWER"))
    for attempt in range(1, 4):
        last = run.of(cmd.StartRecording)[-1]
        out = run.feed(
            CommandFailed(timestamp=b.at(4 + attempt), command=last, status=500, message="boom")
        )
    assert len(run.of(cmd.StartRecording)) == 3
    assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]
    assert [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"] == [
        "recording.failed",
        "recording.unavailable",
    ]
    # connected unrecorded for now, and tried again later (a full disk may be mended)
    assert run.call.retry_at == b.at(7 + 5)
    run.feed(b.entered(7.1, run.bridge(), callee))
    out = run.feed(RecordingRetryDue(timestamp=b.at(12), call_id=run.call.call_id))
    assert len(run.of(cmd.StartRecording, out)) == 1


@pytest.mark.parametrize(
    "args",
    [("inbound", "201&PJSIP/evil"), ("inbound", "200/x"), ("inbound", ""), ("bogus", "201"), ()],
)
def test_bad_stasis_args_are_rejected_and_the_channel_released(args: tuple[str, ...]) -> None:
    run = Run()
    out = run.feed(b.stasis_start(0, b.chan(CALLER, "Ring"), *args))
    assert not run.state.calls
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == [CALLER]
    assert [c.level for c in out if isinstance(c, cmd.Log)] == ["error"]


@pytest.mark.parametrize(
    ("direction", "caller", "target", "expect"),
    [
        ("inbound", "4155550100", "201", ("+14155550100", None, "201", "Intake")),
        ("outbound", "305", "914155550123", (None, "+14155550123", "305", "Family Law")),
        ("internal", "305", "201", (None, None, "305", "Family Law")),
        ("internal", "", "201", (None, None, "201", "Intake")),
        ("inbound", "anonymous", "18005550199", (None, "+18005550199", None, None)),
    ],
)
def test_numbers_extension_and_department(
    direction: str, caller: str, target: str, expect: tuple[str | None, ...]
) -> None:
    run = Run()
    run.feed(b.stasis_start(0, b.chan(CALLER, "Ring", number=caller), direction, target))
    row = run.saved()[0].call
    assert (row.caller_e164, row.callee_e164, row.extension, row.department) == expect
    assert row.direction == direction


def test_filing_failure_marks_the_recording_missing_and_still_ends_the_call() -> None:
    run = Run()
    _call_id, callee, name = to_bridged(run)
    run.feed(b.hangup_request(20, CALLER))
    run.feed(b.stasis_end(20.01, CALLER))
    run.feed(b.stasis_end(20.02, callee))
    run.feed(b.recording(20.03, "finished", name))
    run.feed(RecordingFileFailed(timestamp=b.at(21), name=name, error="no such file"))
    final = run.saved()[-1]
    assert final.call.status == "ended"
    assert [(r.status, r.error) for r in final.recordings] == [("missing", "no such file")]


def test_state_round_trips_through_json() -> None:
    run = Run()
    to_bridged(run)
    call = run.call
    stored = json.loads(json.dumps(snapshot.encode(call)))  # as the JSONB column keeps it
    assert snapshot.decode(stored) == call


def test_step_never_changes_the_state_it_was_given() -> None:
    run = Run()
    call_id, callee, _ = to_bridged(run)
    before = run.state
    kept = snapshot.encode(run.call)
    run.feed(b.hangup_request(9, callee))
    assert snapshot.encode(before.calls[call_id]) == kept
    assert snapshot.encode(run.call) != kept  # the step did change the call, in a new state


def test_302_forward_of_a_created_leg_is_dialled_once_as_a_new_leg() -> None:
    """Trace sip_forward_302_create_dial: HangupRequest (cause 23), then Dial CANCEL with
    `forward` three times, then the leg's end; the caller must not be dropped meanwhile."""
    run = Run()
    call_id, first = to_dialling(run, target="400")
    run.feed(b.dial(3.02, first, ""))
    out = run.feed(b.hangup_request(3.03, first, cause=23))
    assert not run.of(cmd.Hangup, out) and not run.of(cmd.StopPlayback, out)  # caller stays
    for t in (3.04, 3.041, 3.042):
        run.feed(b.dial(t, first, "CANCEL", forward="300"))
    run.feed(b.stasis_end(3.05, first))
    run.feed(b.destroyed(3.051, first, cause=23))
    creates = run.of(cmd.CreateChannel)
    assert [c.endpoint for c in creates] == ["PJSIP/400", "PJSIP/300"]
    assert not run.of(cmd.Hangup) and run.call.phase == "dialing"
    second = creates[1].channel_id
    assert run.call.legs[first].outcome == "forwarded"
    assert run.call.legs[second].stasis.forwarded_from == first
    run.feed(b.stasis_start(3.06, b.chan(second, "Down"), "dialed", call_id))
    run.feed(b.dial(5, second, "ANSWER"))
    assert len(run.of(cmd.StartRecording)) == 1


@pytest.mark.parametrize(("forward", "endpoint"), [("+14155550111", "PJSIP/+14155550111@trunk"),
                                                   ("305", "PJSIP/305")])
def test_forward_to_a_mobile_goes_out_the_trunk(forward: str, endpoint: str) -> None:
    run = Run()
    _call_id, first = to_dialling(run)
    run.feed(b.dial(4, first, "CANCEL", forward=forward))
    assert run.of(cmd.CreateChannel)[-1].endpoint == endpoint


def test_forward_loops_end_the_call_as_failed() -> None:
    run = Run(CallSettings(max_forwards=2))
    call_id = start_inbound(run)
    run.feed(b.playback_finished(3, run.playback()))
    for hop in range(4):
        leg = run.call.callee_channel
        assert leg is not None
        run.feed(b.stasis_start(3 + hop, b.chan(leg, "Down"), "dialed", call_id))
        run.feed(b.dial(3.5 + hop, leg, "CANCEL", forward="201" if hop % 2 else "202"))
        if run.call.phase != "dialing":
            break
    assert len(run.of(cmd.CreateChannel)) == 3
    assert run.call.outcome == "failed" and run.call.phase == "ending"


def test_unanswered_leg_without_dial_status_takes_its_outcome_from_the_cause() -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.hangup_request(23, callee, cause=32))  # an ARI /dial timeout (no NOANSWER)
    run.feed(b.stasis_end(23.01, callee))
    run.feed(b.destroyed(23.02, callee, cause=19))
    run.feed(b.stasis_end(23.03, CALLER))
    final = run.saved()[-1]
    assert (final.call.status, final.call.outcome) == ("ended", "no_answer")


GROUP = CallSettings(ring_groups={"600": ("201", "202", "203")})


def ring(run: Run) -> tuple[str, list[str]]:
    call_id = start_inbound(run, target="600")
    run.feed(b.playback_finished(3, run.playback()))
    creates: list[cmd.CreateChannel] = run.of(cmd.CreateChannel)
    assert [c.endpoint for c in creates] == ["PJSIP/201", "PJSIP/202", "PJSIP/203"]
    legs = [c.channel_id for c in creates]
    for i, leg in enumerate(legs):
        run.feed(b.stasis_start(3.01 + i / 100, b.chan(leg, "Down"), "dialed", call_id))
        run.feed(b.dial(3.1, leg, "RINGING"))
    return call_id, legs


def test_ring_group_first_answer_wins_and_the_others_are_cancelled() -> None:
    run = Run(GROUP)
    _call_id, (l1, l2, l3) = ring(run)
    run.feed(b.dial(4, l2, "BUSY"))  # one member busy: the others still ring
    run.feed(b.stasis_end(4.01, l2))
    assert run.call.phase == "dialing" and not run.of(cmd.Hangup)
    out = run.feed(b.dial(6, l3, "ANSWER"))
    assert [(h.channel_id, h.reason) for h in run.of(cmd.Hangup, out)] == [
        (l1, "answered_elsewhere")]
    run.feed(b.stasis_end(6.01, l1))  # the cancelled member leaving ends nothing
    assert len(run.of(cmd.StartRecording)) == 1
    run.feed(b.recording(6.02, "started", run.recording()))
    assert [a.channel_id for a in run.of(cmd.AddChannel)][-1] == l3
    assert {leg: run.call.legs[leg].outcome for leg in (l1, l2)} == {l1: "cancelled",
                                                                    l2: "busy"}
    assert run.call.legs[l1].hangup_cause == 26  # ARI's answered_elsewhere


@pytest.mark.parametrize(("statuses", "outcome"), [
    (("BUSY", "BUSY", "BUSY"), "busy"),
    (("BUSY", "NOANSWER", "BUSY"), "no_answer"),
    (("CHANUNAVAIL", "BUSY", "CONGESTION"), "failed"),
])
def test_ring_group_nobody_answers(statuses: tuple[str, ...], outcome: str) -> None:
    run = Run(GROUP)
    _call_id, legs = ring(run)
    for i, (leg, status) in enumerate(zip(legs, statuses, strict=True)):
        run.feed(b.dial(5 + i, leg, status))
        run.feed(b.stasis_end(5.01 + i, leg))
    run.feed(b.stasis_end(9, CALLER))
    final = run.saved()[-1]
    assert (final.call.status, final.call.outcome) == ("ended", outcome)
    assert not run.of(cmd.StartRecording)


def test_caller_giving_up_cancels_every_member() -> None:
    run = Run(GROUP)
    _call_id, legs = ring(run)
    out = run.feed(b.hangup_request(8, CALLER))
    assert sorted(h.channel_id for h in run.of(cmd.Hangup, out)) == sorted(legs)
    for leg in [CALLER, *legs]:
        run.feed(b.stasis_end(8.1, leg))
    final = run.saved()[-1]
    assert final.call.outcome == "abandoned"
    assert {x.outcome for x in final.legs if x.role == "callee"} == {"cancelled"}


ALLOCATION_FAILED = "Allocation failed"  # res_ari.c's answer when ast_request fails


@pytest.mark.parametrize("refused", ["create", "dial"])
def test_a_ring_group_member_asterisk_cannot_call_leaves_the_others_ringing(
    refused: str
) -> None:
    """A member whose endpoint is not configured (create answers 500) or whose channel cannot
    be dialled (409) failed, as a line Dial() could not call: the others ring on and the call
    is answered by one of them. Before, the whole call ended for one stale member."""
    run = Run(GROUP)
    call_id = start_inbound(run, target="600")
    run.feed(b.playback_finished(3, run.playback()))
    creates: list[cmd.CreateChannel] = run.of(cmd.CreateChannel)
    l1, l2, l3 = (c.channel_id for c in creates)
    for i, leg in enumerate((l1, l2, l3)):
        if leg != l2 or refused == "dial":  # a refused create made no channel
            run.feed(b.stasis_start(3.01 + i / 100, b.chan(leg, "Down"), "dialed", call_id))
    if refused == "create":
        failed: cmd.Command = creates[1]
        out = run.feed(CommandFailed(timestamp=b.at(3.05), command=failed, status=500,
                                     message=ALLOCATION_FAILED))
    else:
        (failed,) = [d for d in run.of(cmd.DialChannel) if d.channel_id == l2]
        out = run.feed(CommandFailed(timestamp=b.at(3.05), command=failed, status=409,
                                     message="Channel is not in the 'Down' state"))
    # only the refused member is released (a created one is in the app, never dialled)
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == ([l2] if refused == "dial"
                                                               else [])
    assert run.call.phase == "dialing" and run.call.outcome is None
    assert run.call.legs[l2].outcome == "failed"
    # a phone not registered is what Dial() calls CHANUNAVAIL: no alarm (a dial refused for
    # a channel not in the Down state is something wrong)
    loud = {(c.event, c.level) for c in run.of(cmd.Log, out) if c.level in ("warning", "error")}
    assert loud == ({("ari.request_failed", "error")} if refused == "dial" else set())
    if refused == "dial":
        run.feed(b.stasis_end(3.06, l2))
    assert run.call.legs[l2].state == "gone"
    out = run.feed(b.dial(6, l3, "ANSWER"))
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == [l1]
    run.feed(b.recording(6.02, "started", run.recording()))
    assert [a.channel_id for a in run.of(cmd.AddChannel)][-1] == l3
    run.feed(b.hangup_request(30, CALLER))
    assert run.call.outcome == "answered"


def test_a_call_whose_every_member_asterisk_cannot_call_ends_as_failed() -> None:
    run = Run(GROUP)
    start_inbound(run, target="600")
    run.feed(b.playback_finished(3, run.playback()))
    out: list[cmd.Command] = []
    for i, create in enumerate(run.of(cmd.CreateChannel)):
        out = run.feed(CommandFailed(timestamp=b.at(3.1 + i / 10), command=create,
                                     status=500, message=ALLOCATION_FAILED))
    assert [(h.channel_id, h.reason) for h in run.of(cmd.Hangup)] == [(CALLER, "congestion")]
    assert run.of(cmd.Hangup, out)  # by the last refusal, not before
    run.feed(b.stasis_end(3.5, CALLER))
    final = run.saved()[-1]
    assert (final.call.status, final.call.outcome) == ("ended", "failed")
    assert {x.outcome for x in final.legs if x.role == "callee"} == {"failed"}


@pytest.mark.parametrize(("message", "gone"), [
    ("Provided originator channel was not found", True),
    ("Invalid endpoint specified", False),
])
def test_an_originate_refused_because_the_caller_left_is_no_failure(
    message: str, gone: bool
) -> None:
    """dial_method: originate names the caller as the originator; Asterisk answers 400 once
    the caller is gone. The caller's own hang-up ends the call, as abandoned, not failed."""
    from dataclasses import replace

    run = Run(replace(CallSettings(), dial_method="originate"))
    start_inbound(run)
    run.feed(b.playback_finished(3, run.playback()))
    (originate,) = run.of(cmd.Originate)
    out = run.feed(CommandFailed(timestamp=b.at(3.1), command=originate, status=400,
                                 message=message))
    errors = [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"]
    assert errors == ([] if gone else ["ari.request_failed"])
    run.feed(b.hangup_request(3.2, CALLER))
    run.feed(b.stasis_end(3.21, CALLER))
    for hangup in run.of(cmd.Hangup):  # the leg that never was: 404
        if hangup.channel_id == originate.channel_id:
            run.feed(CommandFailed(timestamp=b.at(3.3), command=hangup, status=404,
                                   message="Channel not found"))
    final = run.saved()[-1]
    assert (final.call.status, final.call.outcome) == (
        "ended", "abandoned" if gone else "failed")
    # the leg never existed: its hang-up (404) never happened, so no cause is claimed for it
    assert [x.hangup_cause for x in final.legs if x.channel_id == originate.channel_id] == [None]


@pytest.mark.parametrize("file_ms", [0, 20_000])
def test_an_empty_or_short_file_is_a_gap_row_and_a_log_line(file_ms: int) -> None:
    run = Run()
    _call_id, callee, name = to_bridged(run)  # the callee joined at 5.02
    run.feed(b.hangup_request(65, CALLER))
    run.feed(b.stasis_end(65, CALLER))
    run.feed(b.stasis_end(65, callee))
    run.feed(b.recording(65, "finished", name))
    run.feed(RecordingFiled(timestamp=b.at(66), name=name, path="/a/x.wav", sha256="ab" * 32,
                            bytes=44 + file_ms * 16, duration_ms=file_ms))
    (saved,) = run.of(cmd.SaveGaps)
    assert sorted(g.channel_id for g in saved.gaps) == sorted([CALLER, callee])
    talked_ms = round((65 - 5.02) * 1000)
    assert all(g.ms == talked_ms - file_ms for g in saved.gaps)
    gap_logs = [c for c in run.logs("recording.gap") if "duration_ms" in c.fields]
    assert len(gap_logs) == 2 and all(c.level == "warning" for c in gap_logs)
    final = run.saved()[-1]
    assert {leg.covered_ms for leg in final.legs} == {file_ms}


@pytest.mark.parametrize("announced", [False, True])
def test_an_originated_callee_is_taken_as_answered_once_in_the_app(announced: bool) -> None:
    """dial_method: originate. Asterisk publishes the callee's Dial ANSWER (and its state Up)
    before the channel runs the app: a request to play to it or bridge it then could be
    refused (422, not in Stasis). Its answer is taken at its StasisStart: the announcement
    due to it (extensions announced to) or its join, only then."""
    from dataclasses import replace

    settings = _announced_to_extensions() if announced else CallSettings()
    run = Run(replace(settings, dial_method="originate"))
    call_id = start_inbound(run)
    run.feed(b.playback_finished(3, run.playback()))
    callee = run.dialled()
    early = run.feed(b.dial(5, callee, "ANSWER")) + run.feed(b.state_change(5, callee, "Up"))
    assert not [c for c in early if getattr(c, "channel_id", None) == callee
                and isinstance(c, cmd.Play | cmd.AddChannel)]
    assert run.call.answered_at is None
    out = run.feed(b.stasis_start(5.01, b.chan(callee, "Up"), "dialed", call_id))
    assert run.call.answered_at == b.at(5.01)
    if announced:
        assert [p.channel_id for p in run.of(cmd.Play, out)] == [callee]
    else:
        assert run.of(cmd.StartRecording, out)
        name = run.recording()
        out = run.feed(b.recording(5.1, "started", name))
        assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]


@pytest.mark.parametrize(("state", "hung_up", "played", "errors", "dialled"), [
    ("done", False, "finished", [], True),
    # Asterisk could not play the file (missing): never heard, so never "finished"; ops are
    # told, and the call goes on, recorded (a missed recording is the worse failure)
    ("failed", False, "interrupted", ["consent.failed"], True),
    # the caller hung up during it (Asterisk says "failed" then too): no error, nobody dialled
    ("failed", True, "interrupted", [], False),
])
def test_an_announcement_asterisk_could_not_play_is_not_taken_for_heard(
    state: str, hung_up: bool, played: str, errors: list[str], dialled: bool
) -> None:
    run = Run(_announced_to_extensions())
    start_inbound(run)
    out = run.feed(b.hangup_request(2, CALLER)) if hung_up else []
    out += run.feed(b.playback_finished(3, run.playback(0), state))
    rows = [r for c in run.of(cmd.SaveConsent) for r in c.rows]
    assert [(r.party, r.played) for r in rows] == [("caller", played)]
    assert [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"] == errors
    assert bool(run.of(cmd.CreateChannel)) is dialled
    assert ("consent.failed" in [c.event.kind for c in run.of(cmd.RecordEvent)]) is bool(errors)


@pytest.mark.parametrize(("status", "connected", "errors"), [
    (500, True, ["ari.request_failed"]),  # Asterisk in trouble: the call goes on, recorded
    (404, False, []),  # the callee hung up as it was asked for: no failure, nothing goes on
    (409, False, []),  # ... and had left the app to be hung up, not yet destroyed
])
def test_a_callee_whose_announcement_asterisk_refuses_is_connected_and_recorded(
    status: int, connected: bool, errors: list[str]
) -> None:
    """The callee's announcement (extensions announced to) refused: it is not waited for (before,
    the caller and callee stayed apart for good); the call is recorded, then bridged. Refused
    because the callee is gone (404): its row says interrupted, and its hang-up ends the call."""
    run = Run(_announced_to_extensions())
    start_inbound(run)
    run.feed(b.playback_finished(3, run.playback(0)))
    callee = run.dialled()
    run.feed(b.dial(5, callee, "ANSWER"))
    (play,) = [p for p in run.of(cmd.Play) if p.channel_id == callee]
    out = run.feed(CommandFailed(timestamp=b.at(5.1), command=play, status=status,
                                 message="boom"))
    assert [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"] == errors
    assert bool(run.of(cmd.StartRecording, out)) is connected
    if connected:
        out = run.feed(b.recording(5.2, "started", run.recording()))
        assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]
    rows = [r for c in run.of(cmd.SaveConsent) for r in c.rows]
    assert [(r.party, r.played) for r in rows] == [
        ("caller", "finished"), ("callee", "interrupted")]
    kinds = [c.event.kind for c in run.of(cmd.RecordEvent)]
    assert ("consent.failed" in kinds) is connected


def _announced_to_extensions() -> CallSettings:
    """The built-in policy, the firm's extensions announced to (201 is one)."""
    from dataclasses import replace

    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    policy = load_policy(None, numbering_from(CallsConfig()))
    to_extensions = replace(policy.announcements, to_extensions=True)
    return CallSettings(policy=replace(policy, announcements=to_extensions))


@pytest.mark.parametrize(("kind", "status", "gone"), [
    ("play", 404, True), ("play", 409, True), ("play", 500, False),
    ("answer", 409, True), ("answer", 500, False),
])
def test_a_caller_who_hangs_up_as_the_daemon_asks_for_something_is_no_failure(
    kind: str, status: int, gone: bool
) -> None:
    """A request about the caller refused because the caller is gone (404) or leaving the app
    to be hung up (409) races the hang-up: no error, and nobody is dialled for a caller who
    left (before, the callee's phone rang for nobody). Any other refusal is an error, and the
    call goes on as it can."""
    run = Run(_announced_to_extensions())
    start_inbound(run)
    failed = run.of(cmd.Play)[0] if kind == "play" else run.of(cmd.Answer)[0]
    out = run.feed(CommandFailed(timestamp=b.at(1), command=failed, status=status,
                                 message="Channel not in Stasis application"))
    errors = [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"]
    assert errors == ([] if gone else ["ari.request_failed"])
    if kind == "play":
        assert bool(run.of(cmd.CreateChannel)) is not gone  # a refused prompt: dialled anyway
        rows = [r for c in run.of(cmd.SaveConsent) for r in c.rows]
        assert [(r.party, r.played) for r in rows] == [("caller", "interrupted")]


@pytest.mark.parametrize("how", ["ends at once", "refused"])
def test_a_recording_asterisk_cannot_keep_is_retried_slowly_not_in_a_loop(how: str) -> None:
    """Asterisk cannot write the file (a full disk: RecordingStarted, then RecordingFinished at
    once) or refuses the request: after max_recording_attempts segments in a row that could
    not run, one error, then a try after 5 s, 15 s, then every 60 s (before: replaced at once,
    for good, a loop of requests and warnings for every live call). A segment that runs again
    starts the count afresh."""
    run = Run()
    call_id, _callee, _name = to_bridged(run)
    t = 30.0
    run.feed(b.recording(t, "finished", run.recording()))  # it ran 25 s: replaced at once

    def fail_next() -> list[cmd.Command]:
        nonlocal t
        t += 0.1
        if how == "refused":
            last = run.of(cmd.StartRecording)[-1]
            return run.feed(CommandFailed(timestamp=b.at(t), command=last, status=500,
                                          message="Internal Server Error"))
        run.feed(b.recording(t, "started", run.recording()))
        return run.feed(b.recording(t, "finished", run.recording()))

    started = len(run.of(cmd.StartRecording))
    outs = [fail_next() for _ in range(SETTINGS.max_recording_attempts)]
    assert len(run.of(cmd.StartRecording)) == started + SETTINGS.max_recording_attempts - 1
    assert run.call.retry_at == b.at(t + 5)
    errors = [c for out in outs for c in out if isinstance(c, cmd.Log) and c.level == "error"
              and c.event == "recording.unavailable"]
    assert len(errors) == 1
    waits: list[float] = []
    for _ in range(3):  # each retry fails too: slower and slower, no new error line
        due = run.call.retry_at
        assert due is not None
        early = run.feed(RecordingRetryDue(timestamp=due - timedelta(seconds=1), call_id=call_id))
        assert not run.of(cmd.StartRecording, early)  # not yet
        out = run.feed(RecordingRetryDue(timestamp=due, call_id=call_id))
        assert len(run.of(cmd.StartRecording, out)) == 1 and run.call.retry_at is None
        again = run.feed(RecordingRetryDue(timestamp=due, call_id=call_id))  # asked twice
        assert not run.of(cmd.StartRecording, again)
        t = (due - b.at(0)).total_seconds()
        out = fail_next()
        assert run.call.retry_at is not None
        waits.append(round((run.call.retry_at - b.at(t)).total_seconds(), 3))
        # said once: a retry's failure and its gap are no news, every minute, for every call
        assert not [c.event for c in out if isinstance(c, cmd.Log)
                    and c.level in ("error", "warning")]
        assert {c.event for c in out if isinstance(c, cmd.Log) and c.level == "info"} >= (
            {"recording.gap", "recording.failed"} if how == "refused" else {"recording.gap"})
    assert waits == [15.0, 60.0, 60.0]
    # the disk is mended: the retry's segment runs, and a later gap is replaced at once again
    run.feed(RecordingRetryDue(timestamp=run.call.retry_at, call_id=call_id))
    t += 60
    run.feed(b.recording(t + 0.1, "started", run.recording()))
    out = run.feed(b.recording(t + 40, "finished", run.recording()))
    assert run.of(cmd.StartRecording, out) and run.call.retry_at is None
    # a retry that ran and then ended mid-call is a gap like any other: news again
    assert [c.level for c in out if isinstance(c, cmd.Log) and c.event == "recording.gap"] == [
        "warning"]


@pytest.mark.parametrize("awaited", ["a retry", "a queued segment"])
def test_a_pause_while_the_next_recording_is_awaited_is_taken_and_applied_as_it_starts(
    awaited: str
) -> None:
    """A pause (a card number about to be read) while the call waits for its next recording
    (Asterisk could not keep the last ones and a retry is due, or the replacement is queued)
    is taken, and the recording is paused as it starts. Before, it was rejected ("nothing is
    being recorded") and the recording that then started kept the card number."""
    run = Run()
    call_id, _callee, name = to_bridged(run)
    t = 30.0
    run.feed(b.recording(t, "finished", name))  # it ran 25 s: its replacement is queued
    if awaited == "a retry":
        for _ in range(SETTINGS.max_recording_attempts):  # each ends as it starts
            t += 0.1
            run.feed(b.recording(t, "started", run.recording()))
            run.feed(b.recording(t, "finished", run.recording()))
        assert run.call.retry_at is not None
    out = run.feed(ControlRequested(timestamp=b.at(t + 1), asterisk_id=b.AST, request_id=1,
                                    call_id=call_id, action="pause", by="crm"))
    assert [(d.status, d.detail) for d in run.of(cmd.ControlDone, out)] == [("done", "pause")]
    assert not run.of(cmd.PauseRecording, out)  # nothing runs to pause yet
    if awaited == "a retry":
        due = run.call.retry_at
        assert due is not None
        run.feed(RecordingRetryDue(timestamp=due, call_id=call_id))
    segment = run.recording()
    out = run.feed(b.recording(t + 70, "started", segment))
    (pause,) = run.of(cmd.PauseRecording, out)
    assert (pause.name, pause.pause) == (segment, True)
    if awaited == "a retry":  # it ends as it starts again; Asterisk refuses the pause of it
        run.feed(b.recording(t + 70, "finished", segment))
        out = run.feed(CommandFailed(timestamp=b.at(t + 70.1), command=pause, status=404,
                                     message="Recording not found"))
        assert not [c for c in out if isinstance(c, cmd.Log) and c.level == "error"]
        due = run.call.retry_at
        assert due is not None and run.call.open_pause("pause") is not None  # still paused
        run.feed(RecordingRetryDue(timestamp=due, call_id=call_id))
        out = run.feed(b.recording((due - b.at(0)).total_seconds() + 0.1, "started",
                                   run.recording()))
        assert [c.pause for c in run.of(cmd.PauseRecording, out)] == [True]


def test_a_retry_due_asks_for_nothing_once_stopped_ended_or_recorded() -> None:
    """A retry that comes due while the call is recorded, after staff stopped recording (a
    stop control: the retry must not record what they asked not to keep), or after the end,
    starts no segment."""
    run = Run()
    call_id, _callee, name = to_bridged(run)
    run.call.retry_at = b.at(20)  # as retry_later leaves it
    out = run.feed(RecordingRetryDue(timestamp=b.at(20), call_id=call_id))
    assert not run.of(cmd.StartRecording, out)  # it is being recorded
    _stop_or_start(run, 21, "stop")
    run.feed(b.recording(21.1, "finished", name))
    run.call.retry_at = b.at(25)
    out = run.feed(RecordingRetryDue(timestamp=b.at(25), call_id=call_id))
    assert not run.of(cmd.StartRecording, out)
    run.call.retry_at = b.at(30)
    run.feed(b.hangup_request(29, CALLER))
    out = run.feed(RecordingRetryDue(timestamp=b.at(31), call_id=call_id))
    assert not run.of(cmd.StartRecording, out)


def test_a_recording_stopped_while_asterisk_had_it_queued_is_stopped_again_once_it_starts() -> None:
    """A stop control while a new segment is requested but not started: Asterisk takes the stop
    of a queued recording as done and records it all the same (res_stasis_recording.c
    recording_disregard); so the model stops it again when it starts (before: it recorded the
    rest of the call that staff had asked not to keep)."""
    run = Run()
    _call_id, _callee, name = to_bridged(run)
    run.feed(b.recording(30, "finished", name))  # replaced: the next is requested
    queued = run.recording()
    out = _stop_or_start(run, 30.05, "stop")
    assert [c.name for c in run.of(cmd.StopRecording, out)] == [queued]
    out = run.feed(b.recording(30.1, "started", queued))
    assert [c.name for c in run.of(cmd.StopRecording, out)] == [queued]
    out = run.feed(b.recording(30.2, "finished", queued))
    assert not run.of(cmd.StartRecording, out)  # a stop, not a gap


@pytest.mark.parametrize(("status", "dialled"), [(500, True), (409, False)])
def test_a_caller_whose_opt_out_route_is_refused_is_put_through_unrecorded(
    tmp_path: Path, status: int, dialled: bool
) -> None:
    """Policy routes a caller who refuses recording (`then: route`); Asterisk refuses the
    route (500): the call goes on as `then: continue` would, unrecorded (before: the caller
    stayed in the app in silence). Refused because the caller is leaving (409): nothing."""
    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    path = tmp_path / "policy.yaml"
    path.write_text('opt_out:\n  then: route\n  route_to: "verbatim-optout,s,1"\n')
    run = Run(CallSettings(policy=load_policy(path, numbering_from(CallsConfig()))))
    start_inbound(run)
    out = run.feed(ev.ChannelDtmfReceived(timestamp=b.at(1), asterisk_id=b.AST,
                                          channel=b.chan(CALLER, "Up"), digit="9"))
    (route,) = run.of(cmd.ContinueInDialplan, out)
    out = run.feed(CommandFailed(timestamp=b.at(1.1), command=route, status=status,
                                 message="boom"))
    assert bool(run.of(cmd.CreateChannel, out)) is dialled
    assert run.call.record is False and not run.of(cmd.StartRecording)


def test_a_callee_whose_opt_out_route_is_refused_is_connected_unrecorded(
    tmp_path: Path
) -> None:
    """The callee refuses recording during its announcement and policy routes the caller
    (`then: route`); Asterisk refuses the route (500): the callee is connected, unrecorded, as
    `then: continue` would (before: both parties waited in silence until one hung up)."""
    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    path = tmp_path / "policy.yaml"
    path.write_text('opt_out:\n  then: route\n  route_to: "verbatim-optout,s,1"\n'
                    "announcements:\n  to_extensions: true\n")
    run = Run(CallSettings(policy=load_policy(path, numbering_from(CallsConfig()))))
    call_id = start_inbound(run)
    run.feed(b.playback_finished(3, run.playback()))
    callee = run.dialled()
    run.feed(b.stasis_start(3.01, b.chan(callee, "Down"), "dialed", call_id))
    run.feed(b.dial(5, callee, "ANSWER"))
    (prompt,) = [p for p in run.of(cmd.Play) if p.channel_id == callee]
    out = run.feed(ev.ChannelDtmfReceived(timestamp=b.at(6), asterisk_id=b.AST,
                                          channel=b.chan(callee, "Up"), digit="9"))
    (route,) = run.of(cmd.ContinueInDialplan, out)
    out = run.feed(CommandFailed(timestamp=b.at(6.1), command=route, status=500,
                                 message="boom"))
    assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]
    out = run.feed(b.playback_finished(6.2, prompt.playback_id))  # the stopped announcement
    assert not run.of(cmd.AddChannel, out)
    assert run.call.record is False and not run.of(cmd.StartRecording)


def _stop_or_start(run: Run, t: float, action: str) -> list[cmd.Command]:
    return run.feed(ControlRequested(timestamp=b.at(t), asterisk_id=b.AST, request_id=int(t * 10),
                                     call_id=run.call.call_id, action=action, by="crm"))


def test_a_stop_before_the_recording_runs_connects_the_callee_unrecorded() -> None:
    """A stop control while the callee waits for the first recording to run (RECORDING_PENDING):
    the callee joins now, unrecorded (before: it waited for a recording that, stopped, never
    counted, and caller and callee never met), and the queued recording is stopped when it
    starts."""
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.dial(5, callee, "ANSWER"))
    queued = run.recording()
    out = _stop_or_start(run, 5.05, "stop")
    assert [a.channel_id for a in run.of(cmd.AddChannel, out)] == [callee]
    out = run.feed(b.recording(5.1, "started", queued))
    assert [c.name for c in run.of(cmd.StopRecording, out)] == [queued]


def test_a_recording_stopped_while_queued_then_started_again_is_kept() -> None:
    """Stop, then start, both while a replacing segment is still queued in Asterisk: it is the
    call's recording after all (a start control before the bridge starts none of its own)."""
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.dial(5, callee, "ANSWER"))
    queued = run.recording()
    _stop_or_start(run, 5.05, "stop")
    _stop_or_start(run, 5.07, "start")
    out = run.feed(b.recording(5.1, "started", queued))
    assert not run.of(cmd.StopRecording, out)
    assert run.call.stasis.current_recording == queued
