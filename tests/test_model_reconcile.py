"""Reconciliation: what Asterisk holds after a reconnect becomes the events the model missed."""

from __future__ import annotations

import pytest

from recorder.ari import events as ev
from recorder.model import commands as cmd
from recorder.model.inputs import CommandFailed, RecordingFiled
from recorder.model.reconcile import ABSENT, LIVE, STORED, AriSnapshot
from recorder.model.settings import CallSettings
from tests.harness import builders as b
from tests.harness.model import CALLER, Run, start_inbound, to_bridged, to_dialling


def snapshot(
    channels: list[ev.ChannelInfo], bridges: dict[str, tuple[str, ...]], recs: dict[str, str]
) -> AriSnapshot:
    return AriSnapshot(
        b.AST,
        {c.id: c for c in channels},
        {k: ev.BridgeInfo(k, v) for k, v in bridges.items()},
        recs,
    )


def test_nothing_changed_means_no_requests() -> None:
    run = Run()
    call_id, callee, name = to_bridged(run)
    snap = snapshot(
        [b.chan(CALLER), b.chan(callee)], {run.bridge(): (CALLER, callee)}, {name: LIVE}
    )
    out = run.reconcile(snap, b.at(40))
    assert [c for c in out if not isinstance(c, cmd.Log)] == []
    assert run.state.calls[call_id].phase == "bridged"


def test_recording_that_finished_while_away_is_filed_and_replaced() -> None:
    run = Run()
    _call_id, callee, name = to_bridged(run)
    snap = snapshot(
        [b.chan(CALLER), b.chan(callee)], {run.bridge(): (CALLER, callee)}, {name: STORED}
    )
    out = run.reconcile(snap, b.at(40))
    assert [f.name for f in out if isinstance(f, cmd.FileRecording)] == [name]
    assert [(r.bridge_id, r.name != name) for r in out if isinstance(r, cmd.StartRecording)] == [
        (run.bridge(), True)]  # a new segment, of the call's bridge
    assert any(isinstance(c, cmd.Log) and c.event == "recording.gap" for c in out)


def test_call_that_ended_while_away_is_closed() -> None:
    run = Run()
    call_id, _callee, name = to_bridged(run)
    out = run.reconcile(snapshot([], {}, {name: STORED}), b.at(40))
    assert [f.name for f in out if isinstance(f, cmd.FileRecording)] == [name]
    assert not any(isinstance(c, cmd.StartRecording) for c in out)
    call = run.state.calls[call_id]
    assert call.phase == "ending"  # waiting only for the file
    assert all(leg.state == "gone" for leg in call.legs.values())
    assert call.outcome == "answered"


def test_answer_missed_while_away_is_caught_up() -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    snap = snapshot([b.chan(CALLER), b.chan(callee, "Up")], {run.bridge(): (CALLER,)}, {})
    out = run.reconcile(snap, b.at(9))
    assert [r.bridge_id for r in out if isinstance(r, cmd.StartRecording)] == [run.bridge()]


def test_recording_absent_after_restart_is_a_gap_and_a_new_segment() -> None:
    run = Run()
    call_id, callee, name = to_bridged(run)
    adopted = run.restarted()
    snap = snapshot(
        [b.chan(CALLER), b.chan(callee)], {run.bridge(): (CALLER, callee)}, {name: ABSENT}
    )
    out = adopted.reconcile(snap, b.at(40))
    assert adopted.state.calls[call_id].recordings[name].status == "failed"
    assert [(r.bridge_id, r.name != name) for r in out if isinstance(r, cmd.StartRecording)] == [
        (run.bridge(), True)]  # a new segment, of the call's bridge


def test_orphan_caller_in_the_app_becomes_a_call_and_stale_legs_are_released() -> None:
    run = Run()
    caller = b.chan("1700.9", "Up", number="+12125550111", app_data="verbatim,inbound,201")
    stale = b.chan("1700.10", "Up", app_data="verbatim,dialed,20260101T000000-deadbeef")
    other_app = b.chan("1700.11", "Up", app_data="otherapp,inbound,201")
    out = run.reconcile(snapshot([caller, stale, other_app], {}, {}), b.at(0))
    (call,) = run.state.calls.values()
    assert call.caller_channel == "1700.9" and call.caller_e164 == "+12125550111"
    assert [h.channel_id for h in out if isinstance(h, cmd.Hangup)] == ["1700.10"]


@pytest.mark.parametrize(("state", "answers"), [("Ring", ["1700.9"]), ("Up", [])])
def test_an_orphan_caller_is_taken_on_whether_or_not_its_answer_went_out(
    state: str, answers: list[str]
) -> None:
    """The daemon answers a new caller before the call is journaled (the fsync overlaps the
    answer): a crash in between leaves the caller Up in the app, no call knowing it. It is taken
    on as a crash before the answer leaves it, only not answered again."""
    run = Run()
    caller = b.chan("1700.9", state, number="+12125550111", app_data="verbatim,inbound,201")
    out = run.reconcile(snapshot([caller], {}, {}), b.at(0))
    (call,) = run.state.calls.values()
    assert call.caller_channel == "1700.9"
    assert [c.channel_id for c in out if isinstance(c, cmd.Answer)] == answers
    assert [c.bridge_id for c in out if isinstance(c, cmd.CreateBridge)] == [call.bridge_id]
    assert [c.channel_id for c in out if isinstance(c, cmd.Play)] == ["1700.9"]


def test_an_orphan_leg_talking_in_a_bridge_is_never_hung_up() -> None:
    run = Run()
    talking = b.chan("1700.12", "Up", app_data="verbatim,dialed,20260101T000000-deadbeef")
    peer = b.chan("1700.13", "Up", app_data="otherapp,x")
    ringing = b.chan("1700.14", "Ringing", app_data="verbatim,dialed,20260101T000000-deadbeef")
    snap = snapshot([talking, peer, ringing], {"b1": ("1700.12", "1700.13")}, {})
    out = run.reconcile(snap, b.at(0))
    assert [h.channel_id for h in out if isinstance(h, cmd.Hangup)] == ["1700.14"]
    (kept,) = [c for c in out if isinstance(c, cmd.Log) and c.event == "call.orphan_left_talking"]
    assert kept.level == "error" and kept.fields["channel_id"] == "1700.12"


def test_a_teardown_lost_in_a_crash_is_carried_out_after_it() -> None:
    """The caller hung up; the daemon asked for the callee's hang-up and died before Asterisk
    saw it: after the restart the callee still talks to no one in the call bridge. The call's
    end is resumed — the callee released — instead of the call staying open."""
    run = Run()
    call_id, callee, name = to_bridged(run)
    out = run.feed(b.destroyed(30, CALLER))
    assert [h.channel_id for h in run.of(cmd.Hangup, out)] == [callee]  # lost with the crash
    bridge = run.bridge()
    run = run.restarted()
    snap = snapshot([b.chan(callee)], {bridge: (callee,)}, {name: LIVE})
    out = run.reconcile(snap, b.at(40))
    assert [(h.call_id, h.channel_id) for h in run.of(cmd.Hangup, out)] == [(call_id, callee)]
    run.feed(b.destroyed(41, callee))
    assert run.state.calls[call_id].phase == "ending"  # its recording's file still to come


# What a Stasis call's end had asked before the crash, what Asterisk still holds after it, and
# what the restarted daemon asks (StopRecording, Hangup, DestroyBridge, in order). "caller":
# the caller hung up (the recording's stop and the callee's hang-up asked); "both": the callee
# went too (the bridge's destruction asked); "none": the call was talking at the crash.
@pytest.mark.parametrize(
    ("ended", "callee_there", "bridge_there", "recording", "asked"),
    [
        ("caller", True, True, LIVE, ["stop", "hangup"]),  # nothing reached Asterisk
        ("caller", True, True, STORED, ["hangup"]),  # the stop did
        ("both", False, True, LIVE, ["stop", "destroy"]),  # a Recorder alone in the bridge
        ("both", False, True, STORED, ["destroy"]),
        ("both", False, False, STORED, []),  # all of it did
        # ended while no daemon ran: the end begun now asks each once (not again on top)
        ("none", True, True, LIVE, ["stop", "hangup"]),
    ],
)
def test_what_an_ending_call_asked_before_a_crash_is_asked_again(
    ended: str, callee_there: bool, bridge_there: bool, recording: str, asked: list[str]
) -> None:
    run = Run()
    call_id, callee, name = to_bridged(run)
    bridge = run.bridge()
    if ended != "none":
        run.feed(b.destroyed(30, CALLER))
    if ended == "both":
        run.feed(b.destroyed(31, callee))
        assert [d.bridge_id for d in run.of(cmd.DestroyBridge)] == [bridge]  # lost with the crash
    run = run.restarted()
    channels = [b.chan(callee)] if callee_there else []  # the caller gone, in every row
    bridges = {bridge: tuple(c.id for c in channels)} if bridge_there else {}
    out = run.reconcile(snapshot(channels, bridges, {name: recording}), b.at(40))
    want = {"stop": cmd.StopRecording(call_id, name), "hangup": cmd.Hangup(call_id, callee),
            "destroy": cmd.DestroyBridge(call_id, bridge)}
    resent = cmd.StopRecording | cmd.Hangup | cmd.DestroyBridge
    assert [c for c in out if isinstance(c, resent)] == [want[k] for k in asked]


@pytest.mark.parametrize(("status", "reason"), [("BUSY", "busy"), ("CONGESTION", "congestion")])
def test_a_hang_up_asked_again_after_a_crash_keeps_its_reason(status: str, reason: str) -> None:
    """The callee was busy: the caller is hung up as busy (the phone plays a busy tone). The
    daemon died before Asterisk heard it: asked again, still as busy, not as a normal end."""
    run = Run()
    call_id, callee = to_dialling(run)
    out = run.feed(b.dial(4, callee, status))
    assert [(h.channel_id, h.reason) for h in run.of(cmd.Hangup, out)] == [(CALLER, reason)]
    bridge = run.bridge()
    run = run.restarted()
    out = run.reconcile(snapshot([b.chan(CALLER)], {bridge: (CALLER,)}, {}), b.at(10))
    assert [(h.call_id, h.channel_id, h.reason) for h in run.of(cmd.Hangup, out)] == [
        (call_id, CALLER, reason)]


def test_a_callee_left_outside_the_bridge_by_a_crash_is_added_again() -> None:
    """The step that asks for the callee's join (its recording started) was journaled, and the
    daemon died before Asterisk heard of it: the callee talks to no one until it is added."""
    run = Run()
    call_id, callee = to_dialling(run)
    run.feed(b.dial(3.02, callee, "RINGING"))
    run.feed(b.dial(5, callee, "ANSWER"))
    name = run.recording()
    run.feed(b.recording(5.01, "started", name))  # asks for the join; the daemon dies
    adopted = run.restarted()
    assert adopted.state.calls[call_id].phase == "connecting"
    in_app = b.chan(callee, "Up", app_data=f"verbatim,dialed,{call_id}")
    snap = snapshot([b.chan(CALLER), in_app], {run.bridge(): (CALLER,)}, {name: LIVE})
    out = adopted.reconcile(snap, b.at(9))
    assert [(c.bridge_id, c.channel_id) for c in out if isinstance(c, cmd.AddChannel)] == [
        (run.bridge(), callee)]
    adopted.feed(b.entered(9.01, run.bridge(), callee))
    assert adopted.state.calls[call_id].phase == "bridged"


def test_a_callee_already_joined_is_not_added_again() -> None:
    run = Run()
    call_id, callee = to_dialling(run)
    run.feed(b.dial(3.02, callee, "RINGING"))
    run.feed(b.dial(5, callee, "ANSWER"))
    name = run.recording()
    run.feed(b.recording(5.01, "started", name))
    adopted = run.restarted()
    in_app = b.chan(callee, "Up", app_data=f"verbatim,dialed,{call_id}")
    snap = snapshot([b.chan(CALLER), in_app], {run.bridge(): (CALLER, callee)}, {name: LIVE})
    out = adopted.reconcile(snap, b.at(9))
    assert not [c for c in out if isinstance(c, cmd.AddChannel)]
    assert adopted.state.calls[call_id].phase == "bridged"


def test_an_originated_callee_that_entered_the_app_while_away_joins() -> None:
    """dial_method: originate: the callee enters the app once answered, and its answer is
    taken then. It answered and entered the app while the daemon was away: taken as entered,
    the call goes on as if its StasisStart had been seen (recorded, then joined)."""
    run = Run(CallSettings(dial_method="originate"))
    call_id = start_inbound(run)
    run.feed(b.playback_finished(3, run.playback()))
    callee = run.dialled()
    run.feed(b.dial(5, callee, "ANSWER"))  # not in the app yet; the daemon dies
    adopted = run.restarted()
    in_app = b.chan(callee, "Up", app_data=f"verbatim,dialed,{call_id}")
    snap = snapshot([b.chan(CALLER), in_app], {run.bridge(): (CALLER,)}, {})
    adopted.reconcile(snap, b.at(9))
    name = adopted.recording()
    out = adopted.feed(b.recording(9.1, "started", name))
    assert [(c.bridge_id, c.channel_id) for c in out if isinstance(c, cmd.AddChannel)] == [
        (run.bridge(), callee)]


def test_a_transfer_target_in_its_own_bridge_is_not_pulled_into_the_call() -> None:
    """The callee's join was refused (the call stays connecting); the caller blind-transfers,
    and the target joins the transfer's bridge while the daemon is away: it stays there."""
    run = Run()
    call_id, callee = to_dialling(run)
    run.feed(b.dial(5, callee, "ANSWER"))
    name = run.recording()
    (add,) = run.of(cmd.AddChannel, run.feed(b.recording(5.01, "started", name)))
    run.feed(CommandFailed(b.at(5.02), b.AST, add, 409, "refused"))
    l1 = b.chan("L1", "Up", name="Local/300@transfer-0001;1")
    l2 = b.chan("L2", "Up", name="Local/300@transfer-0001;2")
    run.feed(ev.StasisStart(timestamp=b.at(6), asterisk_id=b.AST, channel=l1, args=(),
                            replace_channel=b.chan(CALLER)))
    run.feed(b.stasis_start(6.01, l2, "transfer", "300"))
    target, transfer_bridge = run.dialled(), run.bridge()
    assert run.call.callee_channel == target and run.call.phase == "connecting"
    run.feed(b.stasis_start(6.02, b.chan(target, "Down"), "dialed", call_id))
    run.feed(b.dial(8, target, "ANSWER"))  # joins its bridge; that event is lost
    in_app = f"verbatim,dialed,{call_id}"
    snap = snapshot([b.chan(CALLER), b.chan(callee, "Up", app_data=in_app), l1, l2,
                     b.chan(target, "Up", app_data=in_app)],
                    {run.bridge(0): ("L1",), transfer_bridge: ("L2", target)}, {name: LIVE})
    out = run.reconcile(snap, b.at(20))
    assert (run.bridge(0), target) not in [(c.bridge_id, c.channel_id)
                                           for c in out if isinstance(c, cmd.AddChannel)]


def test_ring_group_members_cancelled_before_a_crash_are_hung_up_again() -> None:
    """A member answered and the others were to stop ringing; the daemon died before Asterisk
    heard the hang-ups: they would ring on, unanswerable, until the call ends."""
    run = Run(CallSettings(ring_groups={"600": ("201", "202", "203")}))
    call_id = start_inbound(run, target="600")
    run.feed(b.playback_finished(3, run.playback()))
    l1, l2, l3 = (c.channel_id for c in run.of(cmd.CreateChannel))
    for i, leg in enumerate((l1, l2, l3)):
        run.feed(b.stasis_start(3.01 + i / 100, b.chan(leg, "Down"), "dialed", call_id))
        run.feed(b.dial(3.1, leg, "RINGING"))
    run.feed(b.dial(6, l3, "ANSWER"))  # asks l1 and l2 hung up; the daemon dies
    name = run.recording()
    adopted = run.restarted()
    in_app = f"verbatim,dialed,{call_id}"
    snap = snapshot([b.chan(CALLER), *(b.chan(x, "Ringing", app_data=in_app) for x in (l1, l2)),
                     b.chan(l3, "Up", app_data=in_app)], {run.bridge(): (CALLER,)}, {name: LIVE})
    out = adopted.reconcile(snap, b.at(9))
    assert sorted((h.channel_id, h.reason) for h in out if isinstance(h, cmd.Hangup)) == [
        (l1, "answered_elsewhere"), (l2, "answered_elsewhere")]
    assert [a.channel_id for a in out if isinstance(a, cmd.AddChannel)] == [l3]


@pytest.mark.parametrize(("gone", "replayed"), [
    (False, False),  # still playing: nothing to do
    (True, True),  # ended, or never started: played again from the start
])
def test_an_announcement_gone_while_away_is_played_again(gone: bool, replayed: bool) -> None:
    run = Run()
    call_id = start_inbound(run)
    lost = run.playback()
    snap = AriSnapshot(b.AST, {CALLER: b.chan(CALLER)}, {run.bridge(): ev.BridgeInfo(
        run.bridge(), (CALLER,))}, {}, frozenset({lost} if gone else ()))
    out = run.reconcile(snap, b.at(20))
    plays = [c for c in out if isinstance(c, cmd.Play)]
    assert [(p.channel_id, p.playback_id != lost) for p in plays] == (
        [(CALLER, True)] if replayed else [])
    assert not any(isinstance(c, cmd.CreateChannel | cmd.DialChannel) for c in out)
    if replayed:  # its end is now the new playback's: then the callee is dialled
        run.feed(b.playback_finished(30, plays[0].playback_id))
        assert run.of(cmd.DialChannel) or run.of(cmd.CreateChannel)
        assert run.state.calls[call_id].phase != "consent"


def test_an_announcement_whose_party_is_gone_is_not_played_again() -> None:
    run = _policy_run()
    call_id = start_inbound(run)
    lost = run.playback()
    out = run.reconcile(AriSnapshot(b.AST, {}, {}, {}, frozenset({lost})), b.at(20))
    assert not any(isinstance(c, cmd.Play) for c in out)
    rows = [r for c in out if isinstance(c, cmd.SaveConsent) for r in c.rows]
    assert [r.played for r in rows] == ["interrupted"]  # its row, once
    assert call_id not in run.state.calls  # over: nobody is left


def _policy_run() -> Run:
    from recorder.config import CallsConfig
    from recorder.policy import load_policy, numbering_from

    return Run(CallSettings(policy=load_policy(None, numbering_from(CallsConfig()))))


def _caller_only(run: Run, lost: str, *others: ev.ChannelInfo) -> AriSnapshot:
    channels = {c.id: c for c in (b.chan(CALLER), *others)}
    return AriSnapshot(b.AST, channels, {run.bridge(): ev.BridgeInfo(
        run.bridge(), (CALLER,))}, {}, frozenset({lost}))


def test_a_caller_announcement_lost_while_away_is_played_again_under_a_new_id() -> None:
    run = _policy_run()
    call_id = start_inbound(run)
    lost = run.playback()
    assert lost in run.state.calls[call_id].prompts
    out = run.reconcile(_caller_only(run, lost), b.at(20))
    (again,) = [c for c in out if isinstance(c, cmd.Play)]
    prompts = run.state.calls[call_id].prompts
    assert again.playback_id in prompts and lost not in prompts
    assert again.channel_id == CALLER and again.media == prompts[again.playback_id].media
    run.feed(b.playback_finished(30, again.playback_id))
    assert run.of(cmd.CreateChannel | cmd.Originate)  # then the callee is dialled


def test_an_announcement_whose_play_failed_is_audited_and_never_played_again() -> None:
    run = _policy_run()
    call_id = start_inbound(run)
    (play,) = run.of(cmd.Play)
    run.feed(CommandFailed(timestamp=b.at(1), asterisk_id=b.AST, command=play, status=0))
    assert run.of(cmd.CreateChannel | cmd.Originate)  # dialled without it (as before)
    rows = [r for c in run.last if isinstance(c, cmd.SaveConsent) for r in c.rows]
    assert [r.played for r in rows] == ["interrupted"]
    ringing = b.chan(run.dialled(), "Ringing")
    out = run.reconcile(_caller_only(run, play.playback_id, ringing), b.at(20))
    assert not any(isinstance(c, cmd.Play) for c in out)
    assert run.state.calls[call_id].phase == "dialing"
    assert play.playback_id not in run.state.calls[call_id].prompts


@pytest.mark.parametrize(("answered", "replayed"), [(False, True), (True, False)])
def test_a_ringback_lost_while_away_rings_again_unless_the_callee_answered(
    answered: bool, replayed: bool
) -> None:
    run = Run()
    _call_id, callee = to_dialling(run)
    run.feed(b.dial(3.5, callee, "RINGING"))
    ringback = run.playback()
    assert run.state.calls[_call_id].stasis.playback_kind == "ringback"
    snap = AriSnapshot(b.AST, {CALLER: b.chan(CALLER), callee: b.chan(
        callee, "Up" if answered else "Ringing")}, {run.bridge(): ev.BridgeInfo(
            run.bridge(), (CALLER,))}, {}, frozenset({ringback}))
    out = run.reconcile(snap, b.at(9))
    plays = [c for c in out if isinstance(c, cmd.Play)]
    assert [p.media for p in plays] == (["tone:ring"] if replayed else [])


def test_a_call_that_ended_while_away_ends_when_its_recording_shows_it() -> None:
    """Stasis mode: the parties hung up at 12 s while the daemon was away (back at 40 s); the
    bridge's recording stopped writing as they went (one party alone, a Local channel: an
    empty tail), so its file ends at 12 s: so do the legs, and no gap is claimed."""
    run = Run()
    _call_id, _callee, name = to_bridged(run)  # recorded from 5.01 s, bridged at 5.02 s
    out = run.reconcile(snapshot([], {}, {name: STORED}), b.at(40))
    out += run.feed(_filed(41, name, round((12 - 5.02) * 1000)))  # mixed from 5.02 s
    assert not run.of(cmd.SaveGaps, out)
    save = run.saved(out)[-1]
    assert {leg.ended_at for leg in save.legs} == {b.at(12)} and save.call.ended_at == b.at(12)


def _filed(t: float, name: str, ms: int) -> RecordingFiled:
    return RecordingFiled(timestamp=b.at(t), asterisk_id=b.AST, name=name, path="/x",
                          sha256="0" * 64, bytes=1, duration_ms=ms)


def _control(run: Run, t: float, action: str) -> list[cmd.Command]:
    from recorder.model.inputs import ControlRequested

    return run.feed(ControlRequested(timestamp=b.at(t), asterisk_id=b.AST, request_id=1,
                                     call_id=run.call.call_id, action=action, by="api"))


@pytest.mark.parametrize("before", ["gap_seen", "paused", "stopped"])
def test_what_the_daemon_saw_before_it_went_away_is_not_undone(before: str) -> None:
    """Found gone at 20 s, the parties' ends are not moved back to a recording's end that
    says nothing of when they left: a recording that ended while the daemon watched (a gap
    it saw and warned, its replacement never run; a stop) or one paused at its end. Before
    (review), the gap seen live was erased, and a stop or a pause at 10 s became the call's
    end."""
    run = Run()
    _call_id, _callee, name = to_bridged(run)
    if before == "gap_seen":
        out = run.feed(b.recording(10, "finished", name))
        (new,) = [c.name for c in run.of(cmd.StartRecording, out)]
        run.feed(_filed(10.5, name, 4990))
        fates = {new: ABSENT}
    elif before == "paused":
        _control(run, 10, "pause")
        fates = {name: STORED}
    else:
        assert run.of(cmd.StopRecording, _control(run, 10, "stop"))
        run.feed(b.recording(10.1, "finished", name))
        run.feed(_filed(10.5, name, 5080))
        fates = {}
    run = run.restarted()
    out = run.reconcile(snapshot([], {}, fates), b.at(20))
    if before == "paused":
        out += run.feed(_filed(20.5, name, 4980))
    save = run.saved(out)[-1]
    assert {leg.ended_at for leg in save.legs} == {b.at(20)}
    assert not run.logs("leg.end_unseen")
    assert bool(run.of(cmd.SaveGaps, out)) is (before == "gap_seen")
