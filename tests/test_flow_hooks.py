"""Hook mode on the simulator: calls the dialplan keeps (AGI hooks + Dial()), recorded by snoop.

The whole product runs: the daemon's FastAGI server, its ARI WebSocket with subscribeAll, real
PostgreSQL; the simulator's dialplan runs AGI() against the daemon and Dial() in basic bridges.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from arisim.audio import tones_per_second
from structlog.testing import capture_logs

from recorder.db.rows import CallRow, EventRow, LegRow, RecordingRow
from recorder.policy import consent_rows
from tests.harness.calls import control_by_api, control_by_dtmf
from tests.harness.hooked import (
    CALLEE,
    CALLER,
    PROMPT_S,
    TARGET,
    agi,
    at,
    channel,
    hooked_dialplan,
    start_hooked,
)
from tests.harness.stack import Stack, extensions_announced, running_stack

FREQS = [CALLER, CALLEE, TARGET]


def only_call(st: Stack) -> Any:
    (call,) = st.daemon.state.calls.values()
    return call


async def test_a_dialplan_call_is_recorded_across_a_blind_transfer(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        hooked_dialplan(st)
        caller, call_id = await start_hooked(st)
        record_session = st.sim.agi_sessions[0]
        assert 'SET VARIABLE VERBATIM_STATUS "RECORDING"' in record_session.commands
        # Nothing was dialled before the caller's recording ran
        started = [at(e) for e in st.sim.events("RecordingStarted")]
        dialled = [at(e) for e in st.sim.events("Dial") if e["dialstatus"] == ""]
        assert started and dialled and started[0] <= dialled[0]
        await st.advance(1.0)  # 201 answers: Dial() bridges them
        callee = channel(st, "PJSIP/201")
        await st.advance(3.0)
        outcome = st.sim.blind_transfer(callee.id, "300", context="hook-xfer")
        assert outcome.result == "Success"
        await st.settle()
        await st.advance(1.0)  # 300 answers; the caller is bridged with it
        target = channel(st, "PJSIP/300")
        assert target.bridge_id == caller.bridge_id
        await st.advance(3.0)
        call, legs, recs, events = await st.hang_up(caller.id, call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        by_channel = {leg.channel_id: leg for leg in legs}
        assert set(by_channel) == {caller.id, callee.id, target.id}
        for leg in legs:  # every second each party talked is in a file, and no gap
            assert leg.talked_ms and leg.covered_ms is not None
            assert leg.talked_ms - leg.covered_ms <= 250, (leg.channel_id, leg.talked_ms,
                                                           leg.covered_ms)
        assert abs((by_channel[caller.id].talked_ms or 0) - 6000) <= 100
        assert await st.repo.gaps(call.started_at, call_id) == []
        assert "transfer.blind" in [e.kind for e in events]
        # what the files hold, second by second: the caller's snoop follows the caller
        by_target = {r.target: r for r in recs}
        assert {r.status for r in recs} == {"filed"}
        caller_file = tones_per_second(Path(by_target[f"snoop:{caller.id}"].path or ""), FREQS)
        # (recording from before Dial(): the caller alone while 201 rings, and while 300 does)
        assert caller_file == ([{CALLER}] + [{CALLER, CALLEE}] * 3 + [{CALLER}]
                               + [{CALLER, TARGET}] * 3)
        callee_file = tones_per_second(Path(by_target[f"snoop:{callee.id}"].path or ""), FREQS)
        assert callee_file == [{CALLER, CALLEE}] * 3
        target_file = tones_per_second(Path(by_target[f"snoop:{target.id}"].path or ""), FREQS)
        assert target_file == [{CALLER, TARGET}] * 3
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played) for r in rows][:1] == [("caller", "finished")]


@pytest.mark.parametrize("how", ["applicationmap", "dtmf", "api"])
async def test_pause_and_resume_in_hook_mode(tmp_path: Path, pg_dsn: str, how: str) -> None:
    # dtmf: the daemon's own codes, matched on ChannelDtmfReceived (subscribeAll) with no
    # applicationmap; applicationmap: the AGI hooks features.conf runs, and no codes
    codes = {"pause": "*1", "resume": "*2"} if how == "dtmf" else {}
    async with running_stack(tmp_path, pg_dsn, hooks=True, controls=codes) as st:
        st.sim.set_applicationmap({
            "verbatim-pause": ("*1", "self", f"AGI({agi(st, 'pause')})"),
            "verbatim-resume": ("*2", "self", f"AGI({agi(st, 'resume')})"),
        })
        if how == "applicationmap":
            hooked_dialplan(st, ("Set", "__DYNAMIC_FEATURES=verbatim-pause#verbatim-resume"))
        else:
            hooked_dialplan(st)
        _caller, call_id = await start_hooked(st)
        await st.advance(1.0)
        callee = channel(st, "PJSIP/201")
        await st.advance(2.0)
        await control(st, how, callee.id, call_id, "pause", "*1")
        await st.advance(3.0)
        await control(st, how, callee.id, call_id, "resume", "*2")
        await st.advance(2.0)
        call, legs, recs, events = await st.hang_up(callee.id, call_id)
        paused = [e for e in events if e.kind == "recording.paused"]
        resumed = [e for e in events if e.kind == "recording.resumed"]
        assert len(paused) == 1 and len(resumed) == 1
        assert paused[0].detail["by"] == {"applicationmap": "agi", "dtmf": "dtmf",
                                          "api": "api:crm"}[how]
        assert abs((resumed[0].at - paused[0].at).total_seconds() - 3.0) <= 0.1
        assert set(paused[0].detail["recordings"]) == {r.name for r in recs}
        for leg in legs:  # talked 7 s, 3 s of it paused: not recorded, and not a gap
            assert leg.talked_ms is not None and leg.covered_ms is not None
            assert abs(leg.talked_ms - leg.covered_ms - 3000) <= 150, (leg.talked_ms,
                                                                       leg.covered_ms)
        assert await st.repo.gaps(call.started_at, call_id) == []
        for rec in recs:  # each file lacks the paused 3 s: both parties before and after
            seconds = tones_per_second(Path(rec.path or ""), FREQS)
            assert {CALLER, CALLEE} in seconds
            assert all(s <= {CALLER, CALLEE} for s in seconds)
        callee_rec = next(r for r in recs if r.target == f"snoop:{callee.id}")
        assert abs((callee_rec.duration_ms or 0) - 4000) <= 150  # 2 s + 2 s of 7 s bridged
        pauses = [r for r in st.sim.requests if r.path.endswith("/pause")]
        assert sorted(r.method for r in pauses) == ["DELETE", "DELETE", "POST", "POST"]
        if how == "applicationmap":  # the digits reached the daemon too: each acted once
            assert [e.kind for e in events].count("recording.paused") == 1


async def control(st: Stack, how: str, channel_id: str, call_id: str, action: str,
                  code: str) -> None:
    if how == "api":
        await control_by_api(st, call_id, action)
        return
    if how == "dtmf":
        await control_by_dtmf(st, channel_id, code)
        return
    before = len(st.sim.agi_sessions)
    for digit in code:
        st.sim.send_dtmf(channel_id, digit)
    await st.settle()
    session = await st.sim.wait_agi(
        lambda s: st.sim.agi_sessions.index(s) >= before and s.script == action, "done")
    assert 'SET VARIABLE VERBATIM_STATUS "OK"' in session.commands
    await st.settle()


async def test_the_hook_fails_over_to_the_dialplan_when_the_recorder_cannot_record(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        st.sim.add_extension("hook-in", "_X.", [
            ("AGI", f"{agi(st, 'record')},sideways,${{EXTEN}}"),  # a dialplan author's typo
            ("Dial", "PJSIP/${EXTEN},30"),
        ])
        caller = st.sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER)
        await st.settle()
        session = await st.sim.wait_agi(caller.id, "done")
        assert 'SET VARIABLE VERBATIM_STATUS "ERROR"' in session.commands
        assert any("direction must be one of" in c for c in session.commands)
        assert session.status == "SUCCESS" and not st.daemon.state.calls
        # the call goes on (the dialplan's own fallback decides what to record): Dial() ran
        assert [e for e in st.sim.events("Dial") if e["dialstatus"] == ""]


def _answered_hook_dialplan(st: Stack) -> None:
    """The record hook, then Dial() with the answered hook, as dialplan/verbatim-hooks.conf."""
    st.sim.add_extension("verbatim-answered", "s", [
        ("AGI", f"{agi(st, 'answered')},${{ARG1}}"),
        ("Return", ""),
    ])
    st.sim.add_extension("hook-in", "_X.", [
        ("AGI", f"{agi(st, 'record')},inbound,${{EXTEN}}"),
        ("Dial", "PJSIP/${EXTEN},30,rU(verbatim-answered^${VERBATIM_CALL_ID})"),
    ])
    st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)


async def _bridged_then_hung_up(
    st: Stack, caller: Any, callee: Any, call_id: str
) -> tuple[CallRow, list[LegRow], list[RecordingRow], list[EventRow]]:
    """Once the callee's answered hook is done: it is bridged with the caller; 2 s later the
    caller hangs up. The call's rows (Stack.hang_up)."""
    await st.sim.wait_agi(callee.id, "done")
    await st.settle()
    assert callee.bridge_id is not None and callee.bridge_id == caller.bridge_id
    await st.advance(2.0)
    return await st.hang_up(caller.id, call_id)


async def test_a_prompt_asterisk_lacks_is_no_consent_and_the_call_is_recorded_anyway(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Hook mode's side of test_flow_consent's: the all-party prompt is not installed, so
    STREAM FILE answers result=-1 at once (res_agi.c handle_streamfile). Neither party heard
    it: neither row says "finished", ops get an error per prompt, and both parties are
    connected and recorded (a missed recording is the worse failure)."""
    policy = extensions_announced(tmp_path)
    async with running_stack(tmp_path, pg_dsn, hooks=True, policy_file=policy) as st:
        st.sim.dialplan.default_sound_seconds = None  # only verbatim/consent is installed
        _answered_hook_dialplan(st)
        with capture_logs() as logs:
            caller = st.sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER,
                                                caller_number="+14155550100")  # CA: all-party
            await st.settle()
            await st.sim.wait_agi(caller.id, "done")  # at once: nothing to play
            await st.settle()
            call_id = str(st.daemon.state.by_channel[caller.id])
            await st.advance(1.0)
            callee = channel(st, "PJSIP/201")
            _call, legs, recs, events = await _bridged_then_hung_up(st, caller, callee, call_id)
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played) for r in rows] == [
            ("caller", "interrupted"), ("callee", "interrupted")]
        errors = [e["event"] for e in logs if e["log_level"] == "error"]
        assert errors == ["consent.failed"] * 2  # one a fault, not one per layer
        assert [e.kind for e in events].count("consent.failed") == 2
        assert {r.target for r in recs} == {f"snoop:{caller.id}", f"snoop:{callee.id}"}
        assert all((leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250 for leg in legs)


async def test_the_callee_hears_its_announcement_before_it_is_bridged(
    tmp_path: Path, pg_dsn: str
) -> None:
    policy = extensions_announced(tmp_path)
    async with running_stack(tmp_path, pg_dsn, hooks=True, policy_file=policy) as st:
        _answered_hook_dialplan(st)
        caller, call_id = await start_hooked(st, "+14155550100")  # CA: all-party
        await st.advance(1.0)  # 201 answers and runs the answered hook: its announcement
        callee = channel(st, "PJSIP/201")
        session = await st.sim.wait_agi(callee.id, "playing")
        assert call_id in session.args  # the inherited __VERBATIM_CALL_ID
        assert callee.bridge_id is None  # not bridged while it hears it
        assert caller.waiting_hears == "ringing"  # the r option: never silence meanwhile
        await st.advance(PROMPT_S)
        call, legs, recs, _ = await _bridged_then_hung_up(st, caller, callee, call_id)
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played, r.mode) for r in rows] == [
            ("caller", "finished", "all-party"), ("callee", "finished", "all-party")]
        callee_rec = next(r for r in recs if r.target == f"snoop:{callee.id}")
        assert callee_rec.started_at is not None and rows[1].ended_at is not None
        assert callee_rec.started_at >= rows[1].ended_at  # recorded only once announced
        assert all((leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250 for leg in legs)
        assert await st.repo.gaps(call.started_at, call_id) == []


async def test_a_transfer_while_the_daemon_is_away_is_followed_after_it_reconnects(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        hooked_dialplan(st)
        caller, call_id = await start_hooked(st)
        await st.advance(3.0)
        callee = channel(st, "PJSIP/201")
        await st.sim.drop_websockets()
        st.sim.blind_transfer(callee.id, "300", context="hook-xfer")
        await st.sim.advance(1.5)  # 300 answers and talks with the caller, unseen
        target = channel(st, "PJSIP/300")
        await st.connected()  # reconnected: reconciled with GET /channels, /bridges
        await st.settle()
        call = only_call(st)
        assert target.id in call.legs and call.legs[callee.id].state == "gone"
        assert call.legs[target.id].hook.recording is not None  # found, and snooped
        await st.advance(2.0)
        row, legs, recs, _ = await st.hang_up(caller.id, call_id)
        assert (row.status, row.outcome) == ("ended", "answered")
        assert {leg.channel_id for leg in legs} == {caller.id, callee.id, target.id}
        assert {r.target for r in recs} == {f"snoop:{c}" for c in (caller.id, callee.id,
                                                                   target.id)}
        assert {r.status for r in recs} == {"filed"}
        caller_file = tones_per_second(Path(next(r.path for r in recs
                                                 if r.target == f"snoop:{caller.id}") or ""),
                                       FREQS)
        assert caller_file[-2:] == [{CALLER, TARGET}] * 2  # the caller's snoop never stopped
        assert await st.repo.gaps(row.started_at, call_id) == []


@pytest.mark.parametrize("how", ["forward", "ring_group"])
async def test_forwards_and_ring_groups_of_a_dialplan_call_are_followed(
    tmp_path: Path, pg_dsn: str, how: str
) -> None:
    """Dial() follows a 302 by itself, and rings several phones at once: the leg that talks is
    found (by its Dial event from a leg of the call) and recorded; the others are noted."""
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        dial = "PJSIP/201&PJSIP/202,30" if how == "ring_group" else "PJSIP/201,30"
        st.sim.add_extension("hook-in", "_X.", [
            ("AGI", f"{agi(st, 'record')},inbound,${{EXTEN}}"), ("Dial", dial)])
        if how == "forward":
            st.sim.set_endpoint("PJSIP/201", result="forward", forward_to="300",
                                answer_after=1.0)
            # Dial() follows the 302 to Local/300@<the phone's context>, which dials 300
            st.sim.add_extension("from-internal", "300", [("Dial", "PJSIP/300,30")])
        else:
            st.sim.set_endpoint("PJSIP/201", result="noanswer")
            st.sim.set_endpoint("PJSIP/202", tone_hz=TARGET, answer_after=1.5)
        st.sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
        caller, call_id = await start_hooked(st)
        await st.advance(2.5)
        talker = channel(st, "PJSIP/300" if how == "forward" else "PJSIP/202")
        assert talker.bridge_id is not None
        if how == "ring_group":
            assert talker.bridge_id == caller.bridge_id
        else:  # the caller talks to the Local ;1, 300 to the ;2 in a bridge of its own
            assert caller.bridge_id == channel(st, "Local/300@from-internal").bridge_id
        await st.advance(3.0)
        call, legs, recs, _ = await st.hang_up(caller.id, call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        by_channel = {leg.channel_id: leg for leg in legs}
        assert talker.id in by_channel and by_channel[talker.id].outcome == "answered"
        others = [leg for leg in legs if leg.role == "callee" and leg.channel_id != talker.id
                  and not leg.channel_name.startswith("Local/")]
        assert others and all(leg.outcome in ("forwarded", "cancelled") for leg in others)
        assert all(leg.talked_ms in (None, 0) for leg in others)
        talked = by_channel[talker.id]
        assert talked.talked_ms and talked.talked_ms - (talked.covered_ms or 0) <= 250
        target_rec = next(r for r in recs if r.target == f"snoop:{talker.id}")
        seconds = tones_per_second(Path(target_rec.path or ""), FREQS)
        assert len(seconds) >= 3 and all(x == {CALLER, TARGET} for x in seconds), seconds
        assert await st.repo.gaps(call.started_at, call_id) == []


async def test_hook_mode_gets_every_event_even_from_an_app_asterisk_already_had(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Asterisk applies subscribeAll only when it creates the app: one still held by a channel
    (Stasis mode ran before, or a reconnect mid-call) keeps its old subscriptions. The daemon
    asks for every channel's and bridge's events explicitly, so hook mode still follows."""
    from arisim.testing import AriClient

    async with running_stack(tmp_path, pg_dsn, hooks=True, start=False) as st:
        before = AriClient(st.sim)  # the app as Stasis mode left it: no subscribeAll
        await before.connect()
        st.sim.start_call(args=["inbound", "999"], caller_number="+13125550100")
        await st.sim.settle()
        await before.close()
        st.task = asyncio.create_task(st.running.daemon.run())
        await st.connected()
        subscribed = [r for r in st.sim.requests
                      if r.path == "/applications/verbatim/subscription"]
        assert [r.method for r in subscribed] == ["POST"]
        hooked_dialplan(st)
        caller, call_id = await start_hooked(st)
        await st.advance(4.0)
        callee = channel(st, "PJSIP/201")
        _, legs, recs, _ = await st.hang_up(caller.id, call_id)
        assert callee.id in {leg.channel_id for leg in legs}  # followed through Dial()
        assert {r.target for r in recs} == {f"snoop:{caller.id}", f"snoop:{callee.id}"}


async def test_a_hooked_channel_sent_into_the_app_goes_back_to_its_dialplan(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A dialplan that mixes the modes (Stasis() after the record hook): the channel is not
    left silent in the app; it goes on to its next priority and is still followed."""
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        hooked_dialplan(st)
        st.sim.add_extension("hook-in", "_X.", [
            ("AGI", f"{agi(st, 'record')},inbound,${{EXTEN}}"),
            ("Stasis", "verbatim,inbound,${EXTEN}"),
            ("Dial", "PJSIP/${EXTEN},30"),
        ])
        caller, call_id = await start_hooked(st)
        continued = [r for r in st.sim.requests if r.path == f"/channels/{caller.id}/continue"]
        assert continued and continued[0].params == {}
        await st.advance(3.0)
        callee = channel(st, "PJSIP/201")
        assert callee.bridge_id == caller.bridge_id  # Dial() ran after Stasis() returned
        call, _legs, recs, _ = await st.hang_up(caller.id, call_id)
        assert len(await st.repo.recent_calls(5)) == 1  # not a second call in the app
        assert {r.target for r in recs} == {f"snoop:{caller.id}", f"snoop:{callee.id}"}
        assert await st.repo.gaps(call.started_at, call_id) == []
