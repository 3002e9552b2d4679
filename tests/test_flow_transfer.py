"""Transfers, forwards and hold on the simulator: every leg has rows, every second is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from arisim.audio import tone_map
from structlog.testing import capture_logs

from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    assert_talked_throughout,
    bridged_call,
    dialled,
    event_time,
)
from tests.harness.stack import Stack, running_stack

TARGET_HZ = 1900


async def finish(st: Stack, caller_id: str, call_id: str) -> None:
    st.sim.hangup(caller_id)
    await st.settle()
    await st.advance(0.1)
    call = await st.repo.call(call_id)
    assert call is not None and call.status == "ended", call


@pytest.mark.parametrize("by", ["callee", "caller"])
async def test_blind_transfer_is_recorded_without_a_gap(
    tmp_path: Path, pg_dsn: str, by: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        caller_id, call_id = await bridged_call(st)
        callee_id = dialled(st.sim, call_id)
        await st.advance(3.0)
        transferer, stayer = (callee_id, caller_id) if by == "callee" else (caller_id, callee_id)
        stayer_hz = CALLER_HZ if by == "callee" else CALLEE_HZ
        st.sim.blind_transfer(transferer, "300")
        await st.settle()
        await st.advance(6.0)
        await finish(st, stayer, call_id)
        call, legs, recs, events = await st.call_rows(call_id)
        roles = sorted(leg.role for leg in legs)
        assert roles == ["callee", "callee", "caller", "local", "local"]
        assert [r.status for r in recs] == ["filed"]  # one recording, never interrupted
        kinds = [e.kind for e in events]
        assert "transfer.blind" in kinds and "transfer.answered" in kinds
        gaps = [leg for leg in legs if leg.talked_ms and leg.covered_ms != leg.talked_ms]
        assert not gaps, [(g.channel_id, g.talked_ms, g.covered_ms) for g in gaps]
        assert await st.repo.gaps(call.started_at, call_id) == []
        # the file: both original parties, then the one who stayed with the new party
        windows = tone_map(Path(recs[0].path or ""), [CALLER_HZ, CALLEE_HZ, TARGET_HZ])
        target = next(leg for leg in legs if leg.role == "callee" and leg.channel_id != callee_id)
        joined = event_time(st.sim, "ChannelEnteredBridge", channel__id=target.channel_id)
        start = event_time(st.sim, "RecordingStarted")
        after = [w for i, w in enumerate(windows) if start + i * 0.1 > joined + 0.1][:-1]
        assert after and all(w == {stayer_hz, TARGET_HZ} for w in after), after[:5]
        assert windows[0] == {CALLER_HZ, CALLEE_HZ}


async def test_forward_302_of_a_created_leg_rings_the_new_target(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/400", result="forward", forward_to="300")
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "400"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(3.0)
        await st.advance(2.0)
        await st.advance(4.0)
        call_id = await st.only_call_id()
        await finish(st, caller.id, call_id)
        call, legs, recs, _events = await st.call_rows(call_id)
        assert call.outcome == "answered"
        assert sorted((leg.role, leg.outcome) for leg in legs) == [
            ("callee", "answered"), ("callee", "forwarded"), ("caller", "hangup")]
        creates = [r.params.get("endpoint") for r in st.sim.requests
                   if r.path == "/channels/create"]
        assert creates == ["PJSIP/400", "PJSIP/300"]  # the new target dialled once
        (rec,) = recs
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, TARGET_HZ])
        assert_talked_throughout(windows, CALLER_HZ, TARGET_HZ)
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)


async def test_hold_and_resume_stays_recorded_and_is_reported_as_held(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        callee_id = dialled(st.sim, call_id)
        await st.advance(2.0)
        st.sim.hold(callee_id)
        await st.settle()
        await st.advance(3.0)
        st.sim.unhold(callee_id)
        await st.settle()
        await st.advance(2.0)
        await finish(st, caller_id, call_id)
        _call, legs, recs, events = await st.call_rows(call_id)
        assert [r.status for r in recs] == ["filed"]
        kinds = [e.kind for e in events]
        assert kinds.count("leg.hold") == 1 and kinds.count("leg.unhold") == 1
        for leg in legs:
            assert leg.held_ms is not None and abs(leg.held_ms - 3000) <= 100
            assert leg.covered_ms == leg.talked_ms


async def test_forward_on_no_answer_to_a_mobile_goes_out_the_trunk(
    tmp_path: Path, pg_dsn: str
) -> None:
    mobile = "+14155550199"
    async with running_stack(tmp_path, pg_dsn) as st:
        # the attorney's phone rings 8 s, then forwards to their mobile (302)
        st.sim.set_endpoint("PJSIP/201", result="forward", forward_to=mobile, answer_after=8.0)
        st.sim.set_endpoint(f"PJSIP/{mobile}@trunk", result="answer", answer_after=2.0,
                            tone_hz=TARGET_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(3.0 + 8.0 + 2.0)
        call_id = await st.until_bridged()  # after the mobile's own announcement
        await st.advance(5.0)
        await finish(st, caller.id, call_id)
        call, _legs, recs, events = await st.call_rows(call_id)
        assert call.outcome == "answered"
        assert "dial.forwarded" in [e.kind for e in events]
        (rec,) = recs
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, TARGET_HZ])
        assert abs(len(windows) * 0.1 - 5.0) <= 0.2
        assert_talked_throughout(windows, CALLER_HZ, TARGET_HZ)


async def test_transfer_after_a_forward(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=0.5)
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        st.sim.set_endpoint("PJSIP/301", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "400"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(3.0 + 0.5 + 1.0 + 0.1)
        call_id = await st.until_bridged()  # past the forward target's announcement
        forwarded = next(leg for leg in (await st.call_rows(call_id))[1]
                         if leg.role == "callee" and leg.answered_at is not None)
        st.sim.blind_transfer(forwarded.channel_id, "301")
        await st.settle()
        await st.advance(5.0)
        await finish(st, caller.id, call_id)
        call, legs, recs, _events = await st.call_rows(call_id)
        callees = sorted(leg.outcome or "" for leg in legs if leg.role == "callee")
        assert callees == ["answered", "answered", "forwarded"]
        assert [r.status for r in recs] == ["filed"]
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
        assert await st.repo.gaps(call.started_at, call_id) == []


@pytest.mark.parametrize(("second", "outcome"), [
    ("busy", "busy"),
    # 202 was removed from the PBX but not from the ring group: Asterisk refuses to create its
    # channel (500). It fails alone, named for ops; before, the whole call ended at once.
    ("nonexistent", "failed"),
])
async def test_ring_group_of_three_one_answers(
    tmp_path: Path, pg_dsn: str, second: Literal["busy", "nonexistent"], outcome: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, ring_groups={"600": ("201", "202", "203")}) as st:
        st.sim.set_endpoint("PJSIP/201", result="noanswer")
        st.sim.set_endpoint("PJSIP/202", result=second, answer_after=1.0)
        st.sim.set_endpoint("PJSIP/203", result="answer", answer_after=3.0, tone_hz=CALLEE_HZ)
        with capture_logs() as logs:
            caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "600"],
                                       tone_hz=CALLER_HZ)
            await st.settle()
            await st.advance(3.0 + 3.0)
            call_id = await st.until_bridged()
            await st.advance(4.0)
            await finish(st, caller.id, call_id)
        # a member busy or not registered is an everyday call: nothing for ops to chase
        assert not [(x["event"], x["log_level"]) for x in logs
                    if x["log_level"] in ("warning", "error")]
        call, legs, recs, events = await st.call_rows(call_id)
        assert call.outcome == "answered"
        callees = {leg.channel_name.split("-")[0]: leg.outcome for leg in legs
                   if leg.role == "callee"}
        refused_leg = "" if second == "nonexistent" else "PJSIP/202"  # no channel, no name
        assert callees == {"PJSIP/201": "cancelled", refused_leg: outcome,
                           "PJSIP/203": "answered"}
        refused = [e for e in events if e.kind == "ari.request_failed"]
        assert [(e.detail or {}).get("status") for e in refused] == (
            [500] if second == "nonexistent" else [])
        (rec,) = recs
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, CALLEE_HZ])
        assert_talked_throughout(windows, CALLER_HZ, CALLEE_HZ)
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
        # only the answered member was ever in the bridge
        assert sorted(rec.legs or []) == sorted([caller.id] + [
            leg.channel_id for leg in legs if leg.outcome == "answered" and leg.role == "callee"])


async def assert_joined_pair_recorded(st: Stack, first_call: str) -> None:
    """From the moment the Local ;1 joined the first call's bridge to the end, every 100 ms of
    that call's file holds the caller and the consulted party (300), nobody else."""
    _c, legs, (rec,), _e = await st.call_rows(first_call)
    local = next(leg.channel_id for leg in legs if leg.role == "local")
    consulted = next(c for c in await st.repo.recent_calls(5) if c.call_id != first_call)
    _c2, legs2, _r2, _e2 = await st.call_rows(consulted.call_id)
    target = next(leg.channel_id for leg in legs2 if leg.role == "callee" and leg.answered_at)
    # connected once the pair is in the first bridge and 300 in the second
    joined = max(event_time(st.sim, "ChannelEnteredBridge", channel__id=local),
                 event_time(st.sim, "ChannelEnteredBridge", channel__id=target))
    started = event_time(st.sim, "RecordingStarted", recording__name=rec.name)
    windows = tone_map(Path(rec.path or ""), [CALLER_HZ, CALLEE_HZ, TARGET_HZ])
    after = [w for i, w in enumerate(windows) if started + i * 0.1 >= joined + 0.1][:-1]
    assert len(after) >= 30, len(after)
    assert all(w == {CALLER_HZ, TARGET_HZ} for w in after), after[:5]


async def consultation(st: Stack) -> tuple[str, str, str, str]:
    """200 answers the caller, holds it, and calls 300 through the app: (caller channel,
    first call, consultation channel, consultation call), both bridged and recorded."""
    st.sim.set_endpoint("PJSIP/200", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
    st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
    caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "200"],
                               tone_hz=CALLER_HZ)
    await st.settle()
    first_call = await st.until_bridged()
    await st.advance(2.0)
    st.sim.hold(f"{first_call}-l2")
    consult = st.sim.start_call(endpoint="PJSIP/200", caller_number="200",
                                args=["internal", "300"], tone_hz=CALLEE_HZ)
    await st.settle()
    for _ in range(200):
        calls = [c for c in st.daemon.state.calls.values() if c.call_id != first_call]
        if calls and calls[0].phase == "bridged":
            break
        await st.advance(0.1, step=0.1)
    (second,) = calls
    await st.advance(2.0)
    return caller.id, first_call, consult.id, second.call_id


async def test_attended_transfer_links_two_recorded_calls(tmp_path: Path, pg_dsn: str) -> None:
    """Trace sip_attended_transfer_refer (destination "link"): 200 talks with the caller, calls
    300 through the app (a second recorded call), then joins the caller to 300."""
    async with running_stack(tmp_path, pg_dsn) as st:
        caller, first_call, consult, second = await consultation(st)
        outcome = st.sim.attended_transfer(f"{first_call}-l2", consult)
        assert outcome.result == "Success"
        await st.settle()
        await st.advance(4.0)
        st.sim.hangup(caller)  # either end hangs up: the whole chain goes
        await st.settle()
        await st.advance(0.1)
        await st.settle()
        for call_id, other in ((first_call, second), (second, first_call)):
            call, legs, recs, events = await st.call_rows(call_id)
            assert call.status == "ended", call_id
            linked = [e for e in events if e.kind == "transfer.attended"]
            assert linked and linked[0].detail["linked_call"] == other
            assert linked[0].detail["destination_type"] == "link"
            assert [r.status for r in recs] == ["filed"]  # one recording each, never stopped
            assert sorted(leg.role for leg in legs).count("local") == 1
            assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
        assert not [c.name for c in st.sim.channels.values() if not c.destroyed]
        for call_id, other in ((first_call, second), (second, first_call)):
            row = await st.repo.call(call_id)
            assert row is not None and row.linked_calls == [other]  # one case in search
        # after the transfer, the caller and 300 are in each other's call's file
        await assert_joined_pair_recorded(st, first_call)


async def test_failed_attended_transfer_keeps_the_first_call_recorded(
    tmp_path: Path, pg_dsn: str
) -> None:
    """main/bridge.c: a failed attended transfer hangs up the consultation leg; the first call
    goes on, still recorded, and its story says the transfer failed."""
    async with running_stack(tmp_path, pg_dsn) as st:
        caller, first_call, consult, second = await consultation(st)
        outcome = st.sim.attended_transfer(f"{first_call}-l2", consult, result="fail")
        assert outcome.result == "Fail"
        await st.settle()
        await st.advance(1.0)
        assert st.daemon.state.calls[first_call].phase == "bridged"
        st.sim.unhold(f"{first_call}-l2")
        await st.advance(2.0)
        st.sim.hangup(caller)
        await st.settle()
        for call_id in (first_call, second):
            call, legs, recs, _events = await st.call_rows(call_id)
            assert call.status == "ended" and [r.status for r in recs] == ["filed"]
            assert "local" not in {leg.role for leg in legs}
        _c, _l, _r, events = await st.call_rows(first_call)
        (attended,) = [e for e in events if e.kind == "transfer.attended"]
        assert attended.detail["destination_type"] == "fail"


async def test_abandoned_attended_transfer_returns_to_the_caller(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller, first_call, consult, second = await consultation(st)
        st.sim.abandon_transfer(f"{first_call}-l2", consult)
        await st.settle()
        await st.advance(3.0)
        second_row = await st.repo.call(second)
        assert second_row is not None and second_row.status == "ended"
        assert st.daemon.state.calls[first_call].phase == "bridged"
        st.sim.hangup(caller)
        await st.settle()
        call, legs, recs, events = await st.call_rows(first_call)
        assert call.status == "ended" and [r.status for r in recs] == ["filed"]
        assert "transfer.attended" not in [e.kind for e in events]
        held = [leg for leg in legs if leg.held_ms]
        assert held and all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)


@pytest.mark.parametrize("forwarding", [False, True])
async def test_originated_legs_are_recorded_and_a_302_is_followed(
    tmp_path: Path, pg_dsn: str, forwarding: bool
) -> None:
    """calls.dial_method: originate. Asterisk follows a 302 itself (trace
    sip_forward_302_originate): the Local pair it dials through is linked back to the call."""
    async with running_stack(tmp_path, pg_dsn, dial_method="originate") as st:
        if forwarding:
            st.sim.set_endpoint("PJSIP/400", result="forward", forward_to="300",
                                answer_after=0.5)
        else:
            st.sim.set_endpoint("PJSIP/400", result="answer", answer_after=1.0,
                                tone_hz=TARGET_HZ)
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "400"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(3.0 + 0.5)
        call_id = await st.until_bridged()
        await st.advance(5.0)
        await finish(st, caller.id, call_id)
        assert len(await st.repo.recent_calls(5)) == 1  # the forwarded pair is no new call
        call, legs, recs, events = await st.call_rows(call_id)
        assert call.outcome == "answered"
        originated = [r.params["endpoint"] for r in st.sim.requests
                      if r.method == "POST" and r.path == "/channels"]
        # with a 302, Asterisk dials 300 itself; the daemon originates 300 for the Local ;2
        assert originated == (["PJSIP/400", "PJSIP/300"] if forwarding else ["PJSIP/400"])
        assert not [r for r in st.sim.requests if r.path.endswith("/dial")]
        (rec,) = recs
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, TARGET_HZ])
        assert abs(len(windows) * 0.1 - 5.0) <= 0.2
        assert_talked_throughout(windows, CALLER_HZ, TARGET_HZ)
        assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms), [
            (leg.role, leg.channel_id, leg.talked_ms, leg.covered_ms) for leg in legs]
        if forwarding:
            assert "dial.forwarded" in [e.kind for e in events]
            assert sorted(leg.role for leg in legs) == ["callee", "callee", "callee", "caller",
                                                        "local"]


async def test_attended_transfer_to_a_consultation_not_yet_bridged(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Trace sip_attended_transfer_unbridged (destination "application"): 200 transfers while
    its consultation leg is in the app but not yet bridged; the Local ;2 takes that leg's place
    and the daemon finishes the consultation call to 300 for it."""
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/200", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "200"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        first_call = await st.until_bridged()
        await st.advance(2.0)
        consult = st.sim.start_call(endpoint="PJSIP/200", caller_number="200",
                                    args=["internal", "300"], tone_hz=CALLEE_HZ)
        outcome = st.sim.attended_transfer(f"{first_call}-l2", consult.id, delay=0.0)
        assert outcome.result == "Success"
        await st.settle()
        for _ in range(300):
            if all(c.phase == "bridged" for c in st.daemon.state.calls.values()) and len(
                    st.daemon.state.calls) == 2:
                break
            await st.advance(0.1, step=0.1)
        await st.advance(4.0)
        st.sim.hangup(caller.id)
        await st.settle()
        await st.advance(0.1)
        await st.settle()
        attended = [e for e in st.sim.events("BridgeAttendedTransfer")]
        assert attended and attended[0]["destination_type"] == "application"
        calls = await st.repo.recent_calls(5)
        assert len(calls) == 2 and all(c.status == "ended" for c in calls)
        for call in calls:
            _c, legs, recs, _e = await st.call_rows(call.call_id)
            assert [r.status for r in recs] == ["filed"]
            assert all(leg.covered_ms == leg.talked_ms for leg in legs if leg.talked_ms)
        assert not [c.name for c in st.sim.channels.values() if not c.destroyed]
        await assert_joined_pair_recorded(st, first_call)
