"""A reconnect's reconciliation waits for the calls' lanes: a snapshot taken while a lane still
held a request would take its recording for absent, replace it, and leave the first running
where nothing could stop it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.harness.calls import advance_around
from tests.harness.stack import running_stack


async def test_reconcile_while_a_lane_holds_start_recording(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=2.0)
        caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"])
        await st.settle()
        await st.advance(3.2)  # the caller's announcement: now dialling
        (call,) = st.daemon.state.calls.values()
        assert call.phase == "dialing", call.phase
        release = st.sim.stall("POST", f"/bridges/{call.bridge_id}/record")
        await advance_around(st, 2.5)  # the callee answers; StartRecording s1 is held
        assert st.sim.stalled == 1
        await st.sim.drop_websockets()  # a network blip: Asterisk keeps everything
        await asyncio.wait_for(st.daemon.stream.connected.wait(), 5)
        await advance_around(st, 0.5)
        (call,) = st.daemon.state.calls.values()
        release.set()
        await st.settle()
        await st.advance(2.0)
        live = sorted(st.sim.recordings)
        st.sim.hangup(caller.id)
        await st.settle()
        await st.advance(1.0)
        assert len(live) <= 1, f"two recordings of one bridge ran at once: {live}"
        assert not list(st.spool.iterdir()), "a recording was left in the spool, never filed"


async def test_after_that_race_a_stop_leaves_the_orphan_recording_running(
    tmp_path: Path, pg_dsn: str
) -> None:
    from recorder.model.inputs import ControlRequested

    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=2.0)
        caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"])
        await st.settle()
        await st.advance(3.2)
        (call,) = st.daemon.state.calls.values()
        release = st.sim.stall("POST", f"/bridges/{call.bridge_id}/record")
        await advance_around(st, 2.5)
        await st.sim.drop_websockets()
        await asyncio.wait_for(st.daemon.stream.connected.wait(), 5)
        await advance_around(st, 0.5)
        release.set()
        await st.settle()
        await st.advance(1.0)
        # The same stop_recordings a policy flip to "not recorded" runs (decisions.path_changed)
        await st.daemon.queue.put(ControlRequested(
            timestamp=st.daemon.clock.now(), asterisk_id=st.daemon.asterisk_id, request_id=1,
            call_id=call.call_id, action="stop", tag=None, by="review"))
        await st.settle()
        await st.advance(1.0)
        live = sorted(st.sim.recordings)
        st.sim.hangup(caller.id)
        await st.settle()
        assert not live, f"still recording after a stop: {live}"
