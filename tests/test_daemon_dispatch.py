"""How the daemon hands a step's commands to its calls: a call's rows with no lane of its own
waiting are staged at once; behind a lane's work they wait their turn, in the model's order."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from recorder.model import commands as cmd
from tests.harness.stack import running_stack


def recorded(call_id: str, kind: str) -> cmd.RecordEvent:
    return cmd.RecordEvent(call_id, cmd.CallEvent(call_id, "pbx1", datetime.now(UTC), kind))


async def test_a_calls_rows_are_staged_at_once_unless_its_lane_has_work_before_them(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        daemon, writer = st.daemon, st.daemon.writer
        staged = writer.staged["call.noted"]
        await daemon._dispatch([recorded("c1", "call.noted")])
        assert writer.staged["call.noted"] == staged + 1  # no lane, no loop turn
        assert "c1" not in daemon._lanes
        # a lane with work queued (its task not yet run): the rows go behind that work
        work: list[tuple[list[cmd.Command], list[float]]] = [([recorded("c2", "call.first")], [])]
        lane = daemon._lanes["c2"] = deque(work)
        await daemon._dispatch([recorded("c2", "call.noted")])
        assert writer.staged["call.noted"] == staged + 1
        assert [[c.event.kind for c in batch if isinstance(c, cmd.RecordEvent)]
                for batch, _ in lane] == [["call.first"], ["call.noted"]]
        del daemon._lanes["c2"]
        daemon._backlog.release()
