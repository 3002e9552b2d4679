"""Hook mode in the pure model: a call the dialplan keeps, followed and recorded by snoop."""

from __future__ import annotations

from typing import Any

import pytest

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.inputs import (
    ChannelChecked,
    CommandFailed,
    ControlRequested,
    HookCalled,
    HookPrompted,
    RecordingFiled,
    RecordingRetryDue,
)
from recorder.model.settings import CallSettings
from tests.harness import builders as b
from tests.harness.model import Run, to_bridged

A, B, C = "1700000000.1", "1700000000.2", "1700000000.3"
SETTINGS = CallSettings(controls={"pause": "*1", "resume": "*2"})


def hook(t: float, hook: str, channel: str, *args: str, session: str = "s1") -> HookCalled:
    return HookCalled(timestamp=b.at(t), asterisk_id=b.AST, session=session, hook=hook,
                      channel=b.chan(channel, number="+14155550100"), args=args, exten="201")


def dial(t: float, caller: str, peer: str, status: str) -> ev.Dial:
    return ev.Dial(timestamp=b.at(t), asterisk_id=b.AST, caller=b.chan(caller),
                   peer=b.chan(peer, "Ring"), dialstatus=status)


def snoop_runs(run: Run, t: float, out: list[cmd.Command]) -> str:
    """The snoop the model asked for enters the app and its recording starts."""
    (snoop,) = run.of(cmd.Snoop, out)
    rec_cmds = run.feed(b.stasis_start(t, b.chan(snoop.snoop_id), "snoop"))
    (record,) = run.of(cmd.RecordChannel, rec_cmds)
    assert record.channel_id == snoop.snoop_id
    run.feed(b.recording(t + 0.01, "started", record.name))
    return str(record.name)


def bridged_pair(run: Run) -> tuple[str, str]:
    """A hooked at 0 s and recorded; B dialled, answered and bridged with A at 1 s, recorded:
    the names of A's and B's snoop recordings."""
    s1 = snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, "ANSWER"))
    run.feed(b.entered(1, "x", A))
    return s1, snoop_runs(run, 1.01, run.feed(b.entered(1, "x", B)))


def filed(t: float, name: str, ms: int) -> RecordingFiled:
    return RecordingFiled(timestamp=b.at(t), asterisk_id=b.AST, name=name, path=f"/a/{name}",
                          sha256="0" * 64, bytes=ms * 16, duration_ms=ms)


def test_record_hook_answers_once_the_snoop_records() -> None:
    run = Run(SETTINGS)
    out = run.feed(hook(0, "record", A, "inbound", "201"))
    assert not run.of(cmd.HookReply, out)  # the dialplan waits: nothing is dialled unrecorded
    (snoop,) = run.of(cmd.Snoop, out)
    assert snoop.channel_id == A and run.call.mode == "hook" and run.call.target == "201"
    name = snoop_runs(run, 0.01, out)
    (answer,) = run.of(cmd.HookReply)
    assert answer.session == "s1" and answer.final
    assert dict(answer.variables)["VERBATIM_STATUS"] == "RECORDING"
    assert dict(answer.variables)["__VERBATIM_CALL_ID"] == run.call.call_id
    assert run.call.recordings[name].status == "recording"
    # the same hook again (the transfer context calls it too): answered at once, no new snoop
    again = run.feed(hook(0.5, "record", A, "inbound", "201", session="s2"))
    assert not run.of(cmd.Snoop, again)
    assert dict(run.of(cmd.HookReply, again)[0].variables)["VERBATIM_STATUS"] == "RECORDING"


def test_followed_across_a_blind_transfer_with_full_coverage() -> None:
    run = Run(SETTINGS)
    s1 = snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, ""))
    run.feed(dial(1.1, A, B, "RINGING"))
    run.feed(dial(2, A, B, "ANSWER"))
    run.feed(b.entered(2, "x", A))
    s2 = snoop_runs(run, 2.01, run.feed(b.entered(2, "x", B)))
    assert run.call.answered_at == b.at(2) and run.call.callee_channel == B
    # B transfers A to 300: A leaves for the transfer context and dials C from there
    run.feed(ev.BridgeBlindTransfer(timestamp=b.at(5), asterisk_id=b.AST, channel=b.chan(B),
                                    exten="300", context="transfer", result="Success",
                                    is_external=True, transferee=b.chan(A)))
    run.feed(b.left(5, "x", A))
    run.feed(b.left(5, "x", B))
    run.feed(b.destroyed(5.2, B))
    run.feed(b.recording(5.2, "finished", s2))
    run.feed(dial(5.5, A, C, ""))
    assert run.call.legs[C].number == "300"
    run.feed(dial(7, A, C, "ANSWER"))
    run.feed(b.entered(7, "y", A))
    s3 = snoop_runs(run, 7.01, run.feed(b.entered(7, "y", C)))
    assert len(run.of(cmd.Snoop)) == 3  # A once (it moved bridges with its snoop), B, C
    run.feed(b.destroyed(12, C))
    run.feed(b.destroyed(12, A))
    assert run.call.phase == "ending" and not run.of(cmd.Hangup)  # the dialplan owns them
    run.feed(b.recording(12, "finished", s3))
    run.feed(b.recording(12, "finished", s1))
    run.feed(filed(12.1, s1, 11980))
    run.feed(filed(12.1, s2, 3180))
    out = run.feed(filed(12.1, s3, 4980))
    assert not run.state.calls  # ended
    (save,) = run.saved(out)
    legs = {leg.channel_id: leg for leg in save.legs}
    assert legs[A].talked_ms == 8000 and legs[A].covered_ms == 8000
    assert legs[B].talked_ms == 3000 and legs[B].covered_ms == 3000
    assert legs[C].talked_ms == 5000 and legs[C].covered_ms == 5000
    assert not run.of(cmd.SaveGaps)
    assert save.call.outcome == "answered"
    recs = {r.name: r for r in save.recordings}
    assert set(recs[s1].legs or []) == {A, B, C} and recs[s1].target == f"snoop:{A}"


def checked(run: Run, t: float, channel_id: str, exists: bool) -> ChannelChecked:
    """Asterisk's answer to the model's CheckChannel."""
    return ChannelChecked(timestamp=b.at(t), asterisk_id=b.AST, call_id=run.call.call_id,
                          channel_id=channel_id, exists=exists)


def test_a_snoop_recording_ending_mid_call_is_replaced_and_the_gap_reported() -> None:
    run = Run(SETTINGS)
    s1, s2 = bridged_pair(run)
    out = run.feed(b.recording(4, "failed", s1, cause="disk full"))
    # A's snoop ended: Asterisk is asked whether A lives (a hangup ends the snoop first)
    assert run.of(cmd.CheckChannel, out) == [cmd.CheckChannel(run.call.call_id, A)]
    assert not run.of(cmd.Snoop, out) and not gap_logged(out)
    out = run.feed(checked(run, 4, A, exists=True))
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [A]  # A is snooped again
    assert gap_logged(out)
    (hangup,) = run.of(cmd.Hangup, out)  # the snoop left without its recording
    assert hangup.channel_id == run.snoop(0)
    assert run.call.gaps == 1 and run.call.legs[A].hook.recording not in (None, s1)
    assert s2 in run.call.recordings


def test_a_snoop_recording_asterisk_cannot_keep_is_retried_slowly_not_in_a_loop() -> None:
    """Hook mode's side of recorder.model.segments.QUICK_SEGMENT_S: A's snoop recordings end
    as they start (a full disk): after the first (it ran 4 s: replaced at once) three in a row,
    then one error and a try after 5 s; the retry snoops A again (not B, recorded all along)."""
    run = Run(SETTINGS)
    s1, _s2 = bridged_pair(run)
    name, t, out = s1, 4.0, []
    for _ in range(1 + SETTINGS.max_recording_attempts):
        run.feed(b.recording(t, "finished", name))
        out = run.feed(checked(run, t, A, exists=True))
        if run.of(cmd.Snoop, out):
            name = snoop_runs(run, t + 0.01, out)
        t += 0.1
    assert len(run.of(cmd.Snoop)) == 2 + SETTINGS.max_recording_attempts
    assert run.call.retry_at == b.at(t - 0.1 + 5)
    assert [c.event for c in out if isinstance(c, cmd.Log) and c.level == "error"] == [
        "recording.unavailable"]
    out = run.feed(RecordingRetryDue(timestamp=run.call.retry_at, call_id=run.call.call_id))
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [A]
    assert run.call.retry_at is None
    # the retry's recording ends as it starts too: a gap said at info (said once already)
    name = snoop_runs(run, t + 5, out)
    run.feed(b.recording(t + 5.1, "finished", name))
    out = run.feed(checked(run, t + 5.1, A, exists=True))
    assert [(c.event, c.level) for c in out if isinstance(c, cmd.Log)
            and c.event == "recording.gap"] == [("recording.gap", "info")]
    assert run.call.retry_at is not None


def gap_logged(out: list[cmd.Command]) -> bool:
    return any(isinstance(c, cmd.Log) and c.event == "recording.gap" for c in out)


@pytest.mark.parametrize("order", ["checked_first", "destroyed_first"])
def test_a_leg_hung_up_ends_its_snoop_first_and_that_is_no_gap(order: str) -> None:
    """Asterisk's order when Dial() hangs up the callee (observed/hook_mode_basic): B leaves
    the bridge with no ChannelHangupRequest, its snoop's recording finishes and the snoop
    leaves the app, then B is destroyed, then the snoop."""
    run = Run(SETTINGS)
    _s1, s2 = bridged_pair(run)
    snoop = run.snoop(1)
    run.feed(b.left(4, "x", A))
    run.feed(b.left(4, "x", B))
    out = run.feed(b.recording(4.01, "finished", s2))
    assert run.of(cmd.CheckChannel, out) == [cmd.CheckChannel(run.call.call_id, B)]
    run.feed(b.stasis_end(4.01, snoop))
    if order == "checked_first":
        out = run.feed(checked(run, 4.01, B, exists=False))
        out += run.feed(b.destroyed(4.01, B))
    else:
        out = run.feed(b.destroyed(4.01, B))
        out += run.feed(checked(run, 4.01, B, exists=False))
    out += run.feed(b.destroyed(4.01, snoop))
    assert not run.of(cmd.Snoop, out) and not run.of(cmd.Hangup, out) and not gap_logged(out)
    assert run.call.gaps == 0 and run.call.legs[B].state == "gone"


def test_a_leg_hung_up_before_its_snoop_entered_is_no_failure_to_log() -> None:
    """B answers and hangs up while its snoop is being made: the snoop enters the app with
    nothing to record. That is a normal hang-up, logged as nothing worse than info."""
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, "ANSWER"))
    run.feed(b.entered(1, "x", A))
    (snoop,) = run.of(cmd.Snoop, run.feed(b.entered(1, "x", B)))
    run.feed(b.left(1.005, "x", B))
    run.feed(b.destroyed(1.005, B))
    out = run.feed(b.stasis_start(1.01, b.chan(snoop.snoop_id), "snoop"))
    assert run.of(cmd.Hangup, out) == [cmd.Hangup(run.call.call_id, snoop.snoop_id)]
    assert not run.of(cmd.RecordChannel, out)
    (rec,) = [r for r in run.call.recordings.values() if r.target == f"snoop:{B}"]
    assert rec.status == "failed" and rec.started_at is None
    assert [(c.event, c.level) for c in run.of(cmd.Log, out)] == [("recording.failed", "info")]


def refused(t: float, command: cmd.Command, status: int, message: str) -> CommandFailed:
    return CommandFailed(timestamp=b.at(t), asterisk_id=b.AST, command=command, status=status,
                         message=message)


def loud(out: list[cmd.Command]) -> list[tuple[str, str]]:
    return [(c.event, c.level) for c in out
            if isinstance(c, cmd.Log) and c.level in ("warning", "error")]


@pytest.mark.parametrize("race", ["snoop_404", "snoop_500_zombie", "snoop_left_then_record_409",
                                  "record_404"])
def test_a_hang_up_racing_the_snoops_set_up_raises_no_alarm(race: str) -> None:
    """B hangs up just as it answered, while its snoop is being made (the order as Asterisk
    answers it: the Snoop 404 once the leg is unlinked, 500 while ast_hangup runs its hang-up
    handlers before unlinking it; the snoop leaving the app, and its recording refused, once
    the snoop ended with its leg): a normal hang-up, no warning or error (before:
    recording.failed at error each time; the 500 tried again at once, three errors)."""
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, "ANSWER"))
    run.feed(b.entered(1, "x", A))
    (snoop,) = run.of(cmd.Snoop, run.feed(b.entered(1, "x", B)))
    out = run.feed(b.left(1.003, "x", B))
    if race == "snoop_404":
        out += run.feed(refused(1.004, snoop, 404, "Provided channel was not found"))
    elif race == "snoop_500_zombie":
        out += run.feed(b.hangup_request(1.003, B))
        out += run.feed(refused(1.004, snoop, 500, "Snoop channel could not be created"))
    else:
        out += run.feed(b.stasis_start(1.01, b.chan(snoop.snoop_id), "snoop"))
        (record,) = run.of(cmd.RecordChannel, out)
        if race == "record_404":
            out += run.feed(refused(1.013, record, 404, "Channel not found"))
        else:
            out += run.feed(b.stasis_end(1.012, snoop.snoop_id))
            out += run.feed(refused(1.013, record, 409, "Channel not in Stasis application"))
        out += run.feed(b.stasis_end(1.014, snoop.snoop_id))
        for check in run.of(cmd.CheckChannel, out):
            out += run.feed(checked(run, 1.015, check.channel_id, exists=False))
        out += run.feed(b.destroyed(1.015, snoop.snoop_id))
    out += run.feed(b.destroyed(1.016, B))
    assert not loud(out)
    assert not run.of(cmd.Snoop, out)  # nothing to record again
    (rec,) = [r for r in run.call.recordings.values() if r.target == f"snoop:{B}"]
    assert rec.status == "failed"


def test_a_snoop_recording_refused_while_its_leg_lives_is_a_gap() -> None:
    """B's snoop recording is refused 409 (its snoop left the app) while B is up: no alarm
    yet, but Asterisk is asked whether B lives; it does, so that is a gap, warned, and B is
    snooped again (before: closed at error and B left unrecorded)."""
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, "ANSWER"))
    run.feed(b.entered(1, "x", A))
    (snoop,) = run.of(cmd.Snoop, run.feed(b.entered(1, "x", B)))
    (record,) = run.of(cmd.RecordChannel,
                       run.feed(b.stasis_start(1.01, b.chan(snoop.snoop_id), "snoop")))
    out = run.feed(refused(1.013, record, 409, "Channel not in Stasis application"))
    out += run.feed(b.stasis_end(1.014, snoop.snoop_id))
    assert not loud(out)
    assert run.of(cmd.CheckChannel, out) == [cmd.CheckChannel(run.call.call_id, B)]
    out = run.feed(checked(run, 1.02, B, exists=True))
    assert loud(out) == [("recording.gap", "warning")]
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [B]


def test_a_snoop_that_ends_before_its_recording_while_its_leg_lives_is_a_gap() -> None:
    """The same snoop's end with B still up (Asterisk says so) is a fault: a gap, warned, and
    B is snooped again."""
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(dial(1, A, B, "ANSWER"))
    run.feed(b.entered(1, "x", A))
    (snoop,) = run.of(cmd.Snoop, run.feed(b.entered(1, "x", B)))
    run.feed(b.stasis_start(1.01, b.chan(snoop.snoop_id), "snoop"))
    out = run.feed(b.stasis_end(1.012, snoop.snoop_id))
    assert run.of(cmd.CheckChannel, out) == [cmd.CheckChannel(run.call.call_id, B)]
    out = run.feed(checked(run, 1.02, B, exists=True))
    assert loud(out) == [("recording.gap", "warning")]
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [B]


def test_pause_and_resume_act_on_every_live_snoop_and_answer_the_request() -> None:
    run = Run(SETTINGS)
    s1, s2 = bridged_pair(run)
    call_id = run.call.call_id
    out = run.feed(ControlRequested(timestamp=b.at(3), asterisk_id=b.AST, request_id=7,
                                    call_id=call_id, action="pause", by="crm"))
    assert {(c.name, c.pause) for c in run.of(cmd.PauseRecording, out)} == {(s1, True), (s2, True)}
    assert run.of(cmd.ControlDone, out) == [cmd.ControlDone(call_id, 7, "done", "pause")]
    # the same pause by the applicationmap hook: acknowledged, nothing done twice
    out = run.feed(hook(3.1, "pause", B, session="s9"))
    assert not run.of(cmd.PauseRecording, out)
    assert dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"] == "OK"
    out = run.feed(hook(6, "resume", A, session="s10"))
    assert {(c.name, c.pause) for c in run.of(cmd.PauseRecording, out)} == {(s1, False),
                                                                            (s2, False)}
    assert run.call.pauses[0][:2] == (b.at(3), b.at(6))


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (hook(0, "tag", A, "matter:1"), "no call is being recorded"),
        (hook(0, "record", A, "sideways", "201"), "direction must be one of"),
        (hook(0, "record", A, "inbound", "20/1"), "invalid inbound target"),
        (hook(0, "launch", A), "unknown hook"),
    ],
)
def test_bad_hooks_get_an_error_and_change_nothing(event: HookCalled, error: str) -> None:
    run = Run(SETTINGS)
    out = run.feed(event)
    (answer,) = run.of(cmd.HookReply, out)
    values = dict(answer.variables)
    assert values["VERBATIM_STATUS"] == "ERROR" and error in values["VERBATIM_ERROR"]
    assert not run.state.calls


def test_tag_department_and_policy_hooks() -> None:
    run = Run(CallSettings(departments={"201": "Intake", "305": "Family Law"}))
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(hook(1, "tag", A, "matter:2026-0113", "note: card", session="t"))
    assert [c.tags for c in run.of(cmd.SaveTags, out)] == [("matter:2026-0113",), ("note: card",)]
    out = run.feed(hook(1, "department", A, "Nowhere", session="d"))
    assert dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"] == "REJECTED"
    run.feed(hook(1, "department", A, "Family", session="d2"))
    assert run.call.department == "Intake"  # "Family" is not a configured department
    out = run.feed(hook(1, "department", A, "Family Law", session="d3"))
    assert run.call.department == "Family Law"
    assert dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"] == "OK"
    out = run.feed(hook(2, "policy", A, "no-record", session="p"))
    assert run.of(cmd.StopRecording, out) and run.call.open_pause("stop") is not None
    out = run.feed(hook(3, "policy", A, "record", session="p2"))
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [A]


def policy_settings() -> CallSettings:
    """The built-in policy, with the firm's extensions announced to (to_extensions: true): the
    tests using it are about the prompts of extension 201 and of transfer targets."""
    from dataclasses import replace

    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    policy = load_policy(None, numbering_from(CallsConfig()))
    announced = replace(policy.announcements, to_extensions=True)
    return CallSettings(policy=replace(policy, announcements=announced))


def prompted(t: float, session: str, channel: str, digit: str | None = None) -> HookPrompted:
    return HookPrompted(timestamp=b.at(t), asterisk_id=b.AST, session=session,
                        channel_id=channel, digit=digit)


def test_announcements_are_played_by_the_hook_before_anything_is_recorded() -> None:
    run = Run(policy_settings())
    out = run.feed(hook(0, "record", A, "inbound", "201"))  # +1 415: California, all-party
    (ask,) = run.of(cmd.HookReply, out)
    assert not ask.final and not run.of(cmd.Snoop, out)
    ((media, escape),) = ask.prompts
    assert media.startswith("verbatim/consent-all-party") and escape == "9"
    out = run.feed(prompted(4, "s1", A))
    assert run.of(cmd.SaveConsent, out) and run.of(cmd.Snoop, out)  # heard: now recorded
    snoop_runs(run, 4.01, out)
    assert dict(run.of(cmd.HookReply)[-1].variables)["VERBATIM_STATUS"] == "RECORDING"
    # the callee (all-party) hears its own before it is bridged, and refuses
    run.feed(dial(5, A, B, ""))
    run.feed(dial(6, A, B, "ANSWER"))
    out = run.feed(hook(6, "answered", B, run.call.call_id, session="s2"))
    (ask,) = run.of(cmd.HookReply, out)
    assert not ask.final and ask.prompts[0][1] == "9"
    out = run.feed(prompted(8, "s2", B, digit="9"))
    (stop,) = run.of(cmd.StopRecording, out)
    (answer,) = run.of(cmd.HookReply, out)
    assert answer.final and dict(answer.variables)["VERBATIM_STATUS"] == "NOT_RECORDED"
    assert run.call.record is False and run.call.opted_out == ["callee"]
    # nothing more is recorded, even when the callee is bridged
    assert not run.of(cmd.Snoop, run.feed(b.entered(8, "x", B)))
    assert stop.name in run.call.recordings


def test_a_caller_who_refuses_is_routed_as_policy_says() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))
    out = run.feed(prompted(1, "s1", A, digit="9"))
    (answer,) = run.of(cmd.HookReply, out)
    assert answer.final and dict(answer.variables)["VERBATIM_STATUS"] == "NOT_RECORDED"
    assert not run.of(cmd.Snoop) and run.call.unrecorded_since == b.at(1)
    (row,) = [r for c in run.of(cmd.SaveConsent) for r in c.rows]
    assert (row.played, row.opted_out, row.dtmf) == ("interrupted", True, "9")


def test_a_refused_snoop_fails_the_hook_so_the_dialplan_falls_back() -> None:
    from recorder.model.inputs import CommandFailed

    run = Run(SETTINGS)
    (snoop,) = run.of(cmd.Snoop, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(CommandFailed(timestamp=b.at(0.01), asterisk_id=b.AST, command=snoop,
                                 status=404, message="Channel not found"))
    (answer,) = run.of(cmd.HookReply, out)
    assert answer.final and dict(answer.variables)["VERBATIM_STATUS"] == "FAILED"
    assert not run.of(cmd.Snoop, out)  # not retried against a channel Asterisk says is gone
    (rec,) = run.call.recordings.values()
    assert (rec.status, rec.error) == ("failed", "404 Channel not found")


def test_a_hooked_call_survives_its_stored_snapshot() -> None:
    """A daemon that crashed adopts a hooked call from its row's state, snoops included."""
    run = Run(SETTINGS)
    bridged_pair(run)
    run.feed(ControlRequested(timestamp=b.at(2), asterisk_id=b.AST, request_id=1,
                              call_id=run.call.call_id, action="pause", by="crm"))
    call = run.call
    adopted = run.restarted()
    again = adopted.call
    assert again == call and again.mode == "hook" and again.hook.snoops == call.hook.snoops
    assert set(adopted.state.by_channel) == {A, B, *call.hook.snoops}


def test_a_callee_bridged_without_its_announcement_is_reported() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))  # California: the callee must hear one
    snoop_runs(run, 4.01, run.feed(prompted(4, "s1", A)))
    run.feed(dial(5, A, B, ""))
    run.feed(dial(6, A, B, "ANSWER"))  # no answered hook: Dial() had no U() option
    run.feed(b.entered(6, "x", A))
    out = run.feed(b.entered(6, "x", B))
    (warning,) = [c for c in out if isinstance(c, cmd.Log) and c.event == "consent.not_announced"]
    assert warning.level == "warning" and warning.fields["channel_id"] == B


def test_a_transfer_target_hears_the_join_announcement_by_its_hook() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))
    snoop_runs(run, 4.01, run.feed(prompted(4, "s1", A)))
    run.feed(dial(5, A, B, ""))
    run.feed(hook(6, "answered", B, session="s2"))
    run.feed(prompted(9, "s2", B))
    run.feed(b.entered(9, "x", A))
    snoop_runs(run, 9.01, run.feed(b.entered(9, "x", B)))
    run.feed(ev.BridgeBlindTransfer(timestamp=b.at(12), asterisk_id=b.AST, channel=b.chan(B),
                                    exten="300", context="t", result="Success",
                                    transferee=b.chan(A)))
    run.feed(b.left(12, "x", A))
    run.feed(b.left(12, "x", B))
    run.feed(b.destroyed(12, B))
    run.feed(dial(12.5, A, C, ""))
    out = run.feed(hook(14, "answered", C, session="s3"))
    (ask,) = run.of(cmd.HookReply, out)
    assert not ask.final and ask.prompts[0][0].startswith("verbatim/consent")
    assert run.call.legs[C].party == "target1"


# --- what a review found: orderings off the happy path ----------------------------------------


def policy_from(tmp_path: Any, text: str) -> CallSettings:
    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return CallSettings(policy=load_policy(path, numbering_from(CallsConfig())))


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ("do_not_record:\n  - name: Court\n    numbers: ['+14155550100']\n",
         "on the do-not-record list (Court)"),
        ("defaults:\n  action: no\n", "no announcement was played"),
    ],
)
def test_start_on_demand_respects_what_kept_the_call_unrecorded(
    tmp_path: Any, policy: str, why: str
) -> None:
    run = Run(policy_from(tmp_path, policy))
    out = run.feed(hook(0, "record", A, "inbound", "201"))
    assert dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"] == "NOT_RECORDED"
    out = run.feed(ControlRequested(timestamp=b.at(2), asterisk_id=b.AST, request_id=3,
                                    call_id=run.call.call_id, action="start", by="crm"))
    (done,) = run.of(cmd.ControlDone, out)
    assert done.status == "rejected" and why in done.detail
    assert not run.of(cmd.Snoop)


def test_a_stop_while_the_snoop_is_being_made_leaves_nothing_recording() -> None:
    run = Run(SETTINGS)
    (snoop,) = run.of(cmd.Snoop, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(hook(0.005, "stop", A, session="st"))
    out = run.feed(b.stasis_start(0.01, b.chan(snoop.snoop_id), "snoop"))
    assert not run.of(cmd.RecordChannel, out)
    assert [c.channel_id for c in run.of(cmd.Hangup, out)] == [snoop.snoop_id]
    (rec,) = run.call.recordings.values()
    assert rec.status == "failed" and "cancelled" in (rec.error or "")
    # and the hook the dialplan waits on is answered, not left to time out
    assert dict(run.of(cmd.HookReply)[-1].variables)["VERBATIM_STATUS"] == "NOT_RECORDED"


def test_a_recording_that_starts_after_a_stop_is_ended_at_once() -> None:
    run = Run(SETTINGS)
    out = run.feed(hook(0, "record", A, "inbound", "201"))
    (snoop,) = run.of(cmd.Snoop, out)
    (record,) = run.of(cmd.RecordChannel,
                       run.feed(b.stasis_start(0.01, b.chan(snoop.snoop_id), "snoop")))
    run.feed(hook(0.015, "stop", A, session="st"))  # its StopRecording met a 404: queued
    out = run.feed(b.recording(0.02, "started", record.name))
    assert [c.name for c in run.of(cmd.StopRecording, out)] == [record.name]


def test_the_record_hook_during_a_stop_is_answered_at_once() -> None:
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(hook(1, "stop", A, session="st"))
    out = run.feed(hook(2, "record", A, "inbound", "201", session="again"))
    (answer,) = run.of(cmd.HookReply, out)
    assert answer.final and dict(answer.variables)["VERBATIM_STATUS"] == "NOT_RECORDED"
    assert not run.call.hook.sessions


def test_a_hang_up_during_the_announcement_is_audited() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))
    out = run.feed(b.destroyed(1, A))  # before the AGI reports the prompt
    (row,) = [r for c in run.of(cmd.SaveConsent, out) for r in c.rows]
    assert row.played == "interrupted"
    assert not run.state.calls  # ended: nothing recorded, nothing pending


def test_a_prompt_that_cannot_be_played_is_an_error_and_the_call_is_recorded() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))
    out = run.feed(HookPrompted(timestamp=b.at(0.1), asterisk_id=b.AST, session="s1",
                                channel_id=A, error="STREAM FILE: result=-1"))
    assert any(isinstance(c, cmd.Log) and c.event == "consent.failed" for c in out)
    assert run.of(cmd.Snoop, out)
    # its row says it was not heard, as in Stasis mode (before, hook mode wrote none)
    rows = [r for c in run.of(cmd.SaveConsent, out) for r in c.rows]
    assert [(r.party, r.played) for r in rows] == [("caller", "interrupted")]


def test_a_hooked_channel_sent_into_the_app_is_given_back_to_its_dialplan() -> None:
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(b.stasis_start(1, b.chan(A), "transfer", "300"))
    assert run.of(cmd.ContinueInDialplan, out) == [
        cmd.ContinueInDialplan(run.call.call_id, A, "", "", 0)]


def test_odd_events_of_a_hooked_call_do_not_reach_stasis_handlers() -> None:
    run = Run(policy_settings())
    run.feed(hook(0, "record", A, "inbound", "201"))
    snoop_runs(run, 4.01, run.feed(prompted(4, "s1", A)))
    run.feed(dial(5, A, B, "ANSWER"))
    out = run.feed(ev.BridgeAttendedTransfer(timestamp=b.at(6), asterisk_id=b.AST, first_leg=A,
                                             second_leg=B, destination_type="link",
                                             result="Success"))
    assert not run.of(cmd.Play, out) and not run.of(cmd.Hangup, out)
    nobody = ev.ChannelEnteredBridge(timestamp=b.at(7), asterisk_id=b.AST,
                                     bridge=ev.BridgeInfo("x", (A,)), channel=None)
    assert run.feed(nobody) == []


@pytest.mark.parametrize(("status", "hanging_up", "retried"), [
    (0, False, True), (404, False, False),
    (500, True, False),  # its zombie window: no fault (the hang-up race above)
    (0, True, True),  # a lost answer says nothing of the leg
])
def test_a_snoop_refused_by_a_passing_fault_is_tried_again(
    status: int, hanging_up: bool, retried: bool
) -> None:
    from recorder.model.inputs import CommandFailed

    run = Run(SETTINGS)
    (snoop,) = run.of(cmd.Snoop, run.feed(hook(0, "record", A, "inbound", "201")))
    if hanging_up:
        run.feed(b.hangup_request(0.005, A))
    out = run.feed(CommandFailed(timestamp=b.at(0.01), asterisk_id=b.AST, command=snoop,
                                 status=status, message="x"))
    assert bool(run.of(cmd.Snoop, out)) is retried
    assert bool(run.of(cmd.HookReply, out)) is not retried  # waits for the retry instead
    assert bool(loud(out)) is retried  # a fault, said; the race, not


@pytest.mark.parametrize("lives", [True, False])
def test_a_snoop_refused_500_asks_whether_its_leg_lives(lives: bool) -> None:
    """A Snoop 500 whose leg Asterisk has not said is being hung up (the refusal outran its
    ChannelHangupRequest, or it gets none: a callee Dial() hangs up) may still be the zombie
    window: whether the leg lives is asked before any alarm (before: three errors)."""
    from recorder.model.inputs import CommandFailed

    run = Run(SETTINGS)
    (snoop,) = run.of(cmd.Snoop, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(CommandFailed(timestamp=b.at(0.01), asterisk_id=b.AST, command=snoop,
                                 status=500, message="Snoop channel could not be created"))
    assert run.of(cmd.CheckChannel, out) == [cmd.CheckChannel(run.call.call_id, A)]
    assert not run.of(cmd.Snoop, out) and not run.of(cmd.HookReply, out) and not loud(out)
    out = run.feed(checked(run, 0.02, A, exists=lives))
    if lives:  # a fault after all: a gap, warned, and the leg snooped again
        assert loud(out) == [("recording.gap", "warning")]
        assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [A]
    else:  # it was being hung up: nothing to say, nothing to record
        out += run.feed(b.destroyed(0.03, A))
        assert not loud(out) and not run.of(cmd.Snoop, out)


def test_stasis_mode_a_segment_replacing_one_during_a_pause_is_paused_too() -> None:
    run = Run(SETTINGS)
    call_id, _, name = to_bridged(run)
    run.feed(ControlRequested(timestamp=b.at(20), asterisk_id=b.AST, request_id=1,
                              call_id=call_id, action="pause", by="crm"))
    run.feed(b.recording(21, "finished", name))  # ended by itself mid-pause
    out = run.feed(b.recording(21.1, "started", run.recording()))
    assert run.of(cmd.PauseRecording, out) == [cmd.PauseRecording(call_id, run.recording(), True)]
    assert run.recording() != name


def test_a_channel_that_inherited_the_call_id_joins_the_call_by_the_record_hook() -> None:
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    call_id = run.call.call_id
    out = run.feed(hook(3, "record", C, "internal", "300", call_id, session="s7"))
    assert len(run.state.calls) == 1 and C in run.call.legs  # not a call of its own
    assert [c.channel_id for c in run.of(cmd.Snoop, out)] == [C]
    # an id that names no call (or a stale one) starts a call of its own, as without it
    run.feed(hook(4, "record", B, "inbound", "202", "20990101T000000-deadbeef", session="s8"))
    assert len(run.state.calls) == 2


ODD_ARGS: list[tuple[str, ...]] = [
    (), ("",), ("inbound",), ("inbound", ""), ("x" * 5000,), ("inbound", "201", "", "", "extra"),
    ("inbound", "2\n01"), ("tag\x00",), ("Ωμέγα", "201"), ("record", "no-record"),
]


@pytest.mark.parametrize("with_call", [False, True])
def test_every_hook_with_odd_arguments_is_answered_and_never_raises(with_call: bool) -> None:
    run = Run(policy_settings())
    if with_call:
        run.feed(hook(0, "record", A, "inbound", "201"))
        snoop_runs(run, 4.01, run.feed(prompted(4, "s1", A)))
    from recorder.model.hooks import HOOKS

    n = 0
    for name in (*HOOKS, "", "RECORD", "../etc"):
        for args in ODD_ARGS:
            n += 1
            session = f"odd{n}"
            out = run.feed(hook(5, name, A if with_call else C, *args, session=session))
            replies = [c for c in run.of(cmd.HookReply, out) if c.session == session]
            waiting = any(session in c.hook.sessions for c in run.state.calls.values())
            assert replies or waiting, (name, args)  # answered, or waiting for a recording
            for r in replies:
                assert r.prompts or dict(r.variables)["VERBATIM_STATUS"]


@pytest.mark.parametrize(
    ("tag", "stored"),
    [
        ("matter:2026-0113", "matter:2026-0113"),
        ("cafe\u0301", "caf\u00e9"),  # NFD typed: one tag with the NFC spelling
        (" matter:1", None), ("matter:1 ", None), ("\u00a0", None), ("\u3000", None),
        ("\u0301x", None), ("a\u202eb", None), ("a\u0085b", None), ("x" * 101, None),
        ("\ue000", None),  # private use
    ],
)
def test_tags_are_stored_in_one_spelling_and_odd_ones_refused(tag: str, stored: str | None) -> None:
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(hook(1, "tag", A, tag, session="t"))
    saved = [t for c in run.of(cmd.SaveTags, out) for t in c.tags]
    assert saved == ([] if stored is None else [stored])
    status = dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"]
    assert status == ("REJECTED" if stored is None else "OK")


def test_a_call_holds_at_most_fifty_tags() -> None:
    from recorder.common.tags import MAX_TAGS_PER_CALL

    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(hook(1, "tag", A, *[f"t{i}" for i in range(MAX_TAGS_PER_CALL)], session="t"))
    assert len(run.call.tags) == MAX_TAGS_PER_CALL
    out = run.feed(hook(2, "tag", A, "one-more", session="u"))
    assert not run.of(cmd.SaveTags, out)
    assert dict(run.of(cmd.HookReply, out)[0].variables)["VERBATIM_STATUS"] == "REJECTED"


def test_a_pause_asterisk_refuses_is_not_kept_as_a_pause() -> None:
    from recorder.model.inputs import CommandFailed

    run = Run(SETTINGS)
    s1 = snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    out = run.feed(hook(1, "pause", A, session="p"))
    (pause,) = run.of(cmd.PauseRecording, out)
    assert run.call.open_pause("pause") is not None
    out = run.feed(CommandFailed(timestamp=b.at(1.01), asterisk_id=b.AST, command=pause,
                                 status=500, message="boom"))
    assert run.call.open_pause("pause") is None and pause.name == s1
    assert any(isinstance(c, cmd.Log) and c.event == "recording.pause_failed" for c in out)


def test_a_local_pair_optimised_away_keeps_every_leg_recorded() -> None:
    """Asterisk may optimise a followed forward's Local pair out (bridge.c
    ast_bridge_unreal_optimize_out): the phone is moved into the caller's bridge and both
    halves hang up. The phone's snoop moves with it; nothing is lost, nothing ends."""
    one = ev.ChannelInfo("L1", "Local/300@from-internal-00000026;1", "Up")
    two = ev.ChannelInfo("L2", "Local/300@from-internal-00000026;2", "Up")
    phone = "1700000000.9"
    run = Run(SETTINGS)
    snoop_runs(run, 0.01, run.feed(hook(0, "record", A, "inbound", "201")))
    run.feed(ev.Dial(timestamp=b.at(1), asterisk_id=b.AST, caller=b.chan(A), peer=one,
                     dialstatus=""))
    run.feed(ev.Dial(timestamp=b.at(1.1), asterisk_id=b.AST, caller=two,
                     peer=b.chan(phone, "Ring"), dialstatus=""))
    assert run.call.legs["L2"].role == "local" and phone in run.call.legs
    run.feed(ev.Dial(timestamp=b.at(2), asterisk_id=b.AST, caller=two, peer=b.chan(phone),
                     dialstatus="ANSWER"))
    run.feed(ev.Dial(timestamp=b.at(2), asterisk_id=b.AST, caller=b.chan(A), peer=one,
                     dialstatus="ANSWER"))
    for bridge, channel in (("y", "L2"), ("y", phone), ("x", A), ("x", "L1")):
        out = run.feed(ev.ChannelEnteredBridge(
            timestamp=b.at(2), asterisk_id=b.AST, bridge=ev.BridgeInfo(bridge),
            channel=ev.ChannelInfo(channel, run.call.legs[channel].channel_name, "Up")))
        if channel in ("L1", phone):
            snoop_runs(run, 2.01, out)
    # the swap, at 5 s: the phone goes to the caller's bridge; the pair leaves and dies
    run.feed(b.left(5, "y", phone))
    run.feed(b.entered(5, "x", phone))
    run.feed(b.left(5, "x", "L1"))
    run.feed(b.left(5, "y", "L2"))
    run.feed(b.destroyed(5, "L1"))
    run.feed(b.destroyed(5, "L2"))
    assert run.call.phase == "following" and not run.of(cmd.Hangup)
    assert run.call.legs[phone].hook.recording is not None  # its snoop goes on, in bridge x
    run.feed(b.destroyed(9, phone))
    run.feed(b.destroyed(9, A))
    names = {r.target: r.name for r in run.call.recordings.values()}
    for name in names.values():
        run.feed(b.recording(9, "finished", name))
    ms = {f"snoop:{A}": 8990, "snoop:L1": 2990, f"snoop:{phone}": 6990}
    last: list[cmd.Command] = []
    for target, name in names.items():
        last = run.feed(filed(9.1, name, ms[target]))
    (save,) = run.saved(last)
    legs = {leg.channel_id: leg for leg in save.legs}
    assert legs[phone].talked_ms == 7000 and legs[phone].covered_ms == 7000
    assert legs[A].talked_ms == 7000 and legs[A].covered_ms == 7000
    assert not run.of(cmd.SaveGaps)


def test_a_hooked_call_that_ended_while_away_claims_no_gap() -> None:
    """Hook mode: A and B hung up at 12 s while the daemon was away (back at 20 s); each
    snoop ended with its leg, so the files end at 12 s. The legs ended then, not when they
    were found gone: no gap (before: 8 s of each leg reported unrecorded, with a warning,
    for audio that was all there)."""
    from recorder.model.reconcile import STORED, AriSnapshot

    run = Run(SETTINGS)
    s1, s2 = bridged_pair(run)  # A recorded from 0.02 s, B from 1.02 s, bridged at 1 s
    run = run.restarted()
    out = run.reconcile(AriSnapshot(b.AST, recordings={s1: STORED, s2: STORED}), b.at(20))
    out += run.feed(filed(20.5, s1, 11980))
    out += run.feed(filed(20.5, s2, 10980))
    assert not [c for c in out if isinstance(c, cmd.Log) and c.level in ("warning", "error")]
    assert not run.of(cmd.SaveGaps, out)
    (save,) = run.saved(out)[-1:]
    legs = {leg.channel_id: leg for leg in save.legs}
    assert legs[A].ended_at == legs[B].ended_at == b.at(12)
    assert (legs[B].talked_ms, legs[B].covered_ms) == (11000, 11000)  # A's snoop hears B
    assert save.call.ended_at == b.at(12)
    assert [c.fields["ended"] for c in run.logs("leg.end_unseen")] == [b.at(12).isoformat()] * 2
    hangups = [c.event for c in run.of(cmd.RecordEvent, out) if c.event.kind == "leg.hangup"]
    assert [h.detail.get("unseen") for h in hangups] == [True, True]
