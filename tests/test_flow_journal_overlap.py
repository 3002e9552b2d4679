"""A new caller's answer overlaps the fsync of its call's first journal lines.

Answering names nothing Asterisk does not have, and a crash before the new call is journaled
leaves a caller that reconciliation takes on Up or not (tests/test_model_reconcile.py); every
request that names something (the bridge, the playback) still waits for the journal.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from recorder.service.journal import Journal
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
