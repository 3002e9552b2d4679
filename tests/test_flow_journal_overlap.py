"""Requests that overlap the fsync of their step's journal lines: a new caller's answer, and an
ending call's hang-ups, recording stops and bridge destruction.

Answering names nothing Asterisk does not have, and a crash before the new call is journaled
leaves a caller that reconciliation takes on Up or not (tests/test_model_reconcile.py); an ending
call replayed from before its ending step is ended the same way by reconciliation (channels
gone, recordings stored: tests/test_flow_crash.py). Every request that names something new (the
bridge, the playback, a recording) still waits for the journal, and so does a stop while the
call goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path

import pytest

from recorder.model import commands as cmd
from recorder.model.state import BRIDGED, DIALING, ENDING, FOLLOWING, Call, ModelState, Phase
from recorder.service.daemon import winds_down
from recorder.service.journal import Journal
from tests.harness import builders as b
from tests.harness.stack import running_stack


async def test_the_answer_goes_out_while_the_journal_syncs_and_the_bridge_waits_for_it(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        journal: Journal | None = st.daemon.writer.journal
        assert journal is not None
        disk = threading.Event()  # a slow disk: the journal's appends wait for it
        real_write = journal.write

        def slow_write(data: bytes) -> bool:
            disk.wait(10.0)
            return real_write(data)

        journal.write = slow_write  # type: ignore[method-assign]
        try:
            caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"])
            for _ in range(100):
                if any(r.path == f"/channels/{caller.id}/answer" for r in st.sim.requests):
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # time for any request that would not wait
            asked = [r.path for r in st.sim.requests if r.method == "POST"]
            assert asked == [f"/channels/{caller.id}/answer"]  # not the bridge, not the prompt
        finally:
            disk.set()
        call_id = await st.until_bridged_call(caller.id)
        assert call_id in st.daemon.state.calls
        st.sim.hangup(caller.id)
        await st.settle()
        (row,) = await st.repo.recent_calls(5)
        assert row.call_id == call_id and row.status == "ended"


CALL = Call(call_id="c1", asterisk_id=b.AST, direction="inbound", target="201", started_at=b.T0,
            caller_channel="ch1", bridge_id="c1-b1")


@pytest.mark.parametrize(("command", "phase", "overlaps"), [
    (cmd.Hangup("c1", "ch2"), ENDING, True),  # the other party of an ending call
    (cmd.StopRecording("c1", "r1"), ENDING, True),
    (cmd.DestroyBridge("c1", "c1-b1"), ENDING, True),
    (cmd.Hangup("", "ch9", "unallocated"), None, True),  # no call's: nothing is journaled
    (cmd.StopRecording("c1", "r1"), BRIDGED, False),  # an opt-out or a control: it waits
    (cmd.Hangup("c1", "ch3"), DIALING, False),  # a forwarded leg: the call goes on
    (cmd.Hangup("c1", "snoop1"), FOLLOWING, False),
    (cmd.AddChannel("c1", "c1-b1", "ch2"), ENDING, False),  # only the three wind down
    (cmd.StartRecording("c1", "c1-b1", "r2", "wav"), ENDING, False),  # names something new
    (cmd.StopPlayback("c1", "p1"), ENDING, False),  # reconciliation does not read playbacks
])
def test_which_requests_go_before_their_rows_are_journaled(
    command: cmd.Command, phase: Phase | None, overlaps: bool
) -> None:
    state = ModelState()
    if phase is not None:
        state = state.with_call(dataclasses.replace(CALL, phase=phase))
    assert winds_down(state, command) is overlaps


async def test_an_ending_calls_hang_up_and_stop_go_while_the_journal_syncs(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"])
        call_id = await st.until_bridged_call(caller.id)
        journal: Journal | None = st.daemon.writer.journal
        assert journal is not None
        disk = threading.Event()
        real_write = journal.write

        def slow_write(data: bytes) -> bool:
            disk.wait(10.0)
            return real_write(data)

        journal.write = slow_write  # type: ignore[method-assign]
        try:
            call = st.daemon.state.calls[call_id]
            (rec,) = call.live_recordings()
            (callee,) = [x.channel_id for x in call.legs.values()
                         if x.channel_id != caller.id]
            asked = len(st.sim.requests)
            st.sim.hangup(caller.id)
            wanted = {("POST", f"/recordings/live/{rec.name}/stop"),
                      ("DELETE", f"/channels/{callee}")}
            for _ in range(100):
                if wanted <= {(r.method, r.path) for r in st.sim.requests[asked:]}:
                    break
                await asyncio.sleep(0.02)
            assert wanted <= {(r.method, r.path) for r in st.sim.requests[asked:]}
            assert st.daemon.state.calls[call_id].phase == ENDING
        finally:
            disk.set()
        await st.settle()
        row = await st.repo.call(call_id)
        assert row is not None and row.status == "ended"
        recs = await st.repo.recordings(call_id)
        assert [r.status for r in recs] == ["filed"]
