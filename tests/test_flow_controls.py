"""In-call controls by DTMF: a paused interval holds no audio, is stored, and is not a gap."""

from __future__ import annotations

from pathlib import Path

from arisim.audio import tone_map

from tests.stack import running_stack
from tests.test_flow_basic import CALLEE_HZ, CALLER_HZ
from tests.test_flow_resilience import bridged_call


async def test_pause_and_resume_by_dtmf(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn, controls={"pause": "*1", "resume": "*2"}) as st:
        caller_id, call_id = await bridged_call(st)
        callee_id = f"{call_id}-l2"
        await st.advance(2.0)
        for digit in "*1":  # the attorney pauses: a card number is read out
            st.sim.send_dtmf(callee_id, digit)
        await st.settle()
        await st.advance(3.0)
        for digit in "*2":
            st.sim.send_dtmf(callee_id, digit)
        await st.settle()
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        call, legs, (rec,), events = await st.call_rows(call_id)
        kinds = [e.kind for e in events]
        assert kinds.count("recording.paused") == 1 and kinds.count("recording.resumed") == 1
        paused = next(e for e in events if e.kind == "recording.paused").at
        resumed = next(e for e in events if e.kind == "recording.resumed").at
        assert abs((resumed - paused).total_seconds() - 3.0) <= 0.05
        # the file holds the 2.5 s before and the 2 s after, not the 3 s paused
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, CALLEE_HZ])
        assert abs(len(windows) * 0.1 - 4.5) <= 0.15, len(windows)
        assert all(w == {CALLER_HZ, CALLEE_HZ} for w in windows[:-1])
        for leg in legs:  # talked 7.5 s, 4.5 s in the file, and no gap: the rest was paused
            assert leg.talked_ms is not None and leg.covered_ms is not None
            assert abs(leg.talked_ms - leg.covered_ms - 3000) <= 100
        assert await st.repo.gaps(call.started_at, call_id) == []
        pauses = [r for r in st.sim.requests if r.path.endswith("/pause")]
        assert [r.method for r in pauses] == ["POST", "DELETE"]
