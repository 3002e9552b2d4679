"""In-call controls by DTMF and by the HTTP API's control requests (Stasis mode): a paused
interval holds no audio, is stored, and is not a gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from arisim.audio import tone_map

from recorder.db.controls import ControlQueue
from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    bridged_call,
    control_by_api,
    control_by_dtmf,
    dialled,
)
from tests.harness.stack import running_stack


@pytest.mark.parametrize("how", ["dtmf", "api"])
async def test_pause_and_resume(tmp_path: Path, pg_dsn: str, how: str) -> None:
    async with running_stack(tmp_path, pg_dsn, controls={"pause": "*1", "resume": "*2"}) as st:
        caller_id, call_id = await bridged_call(st)
        callee_id = dialled(st.sim, call_id)
        await st.advance(2.0)
        # the attorney pauses: a card number is read out
        if how == "dtmf":
            await control_by_dtmf(st, callee_id, "*1")
        else:
            await control_by_api(st, call_id, "pause")
        await st.advance(3.0)
        if how == "dtmf":
            await control_by_dtmf(st, callee_id, "*2")
        else:
            await control_by_api(st, call_id, "resume")
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        call, legs, (rec,), events = await st.call_rows(call_id)
        kinds = [e.kind for e in events]
        assert {e.detail["by"] for e in events if e.kind == "recording.paused"} == {
            "dtmf" if how == "dtmf" else "api:crm"}
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


async def test_a_pause_asterisk_refuses_is_answered_failed_and_not_counted(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CRM must never be told a card number was not kept when it was."""
    from recorder.ari.client import AriError

    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)

        async def refuse(name: str, pause: bool) -> None:
            raise AriError(500, "Internal Server Error", "POST", f"/recordings/live/{name}/pause")

        monkeypatch.setattr(st.daemon.client, "pause_recording", refuse)
        queue = ControlQueue(st.repo.pool)
        request_id = await queue.submit(call_id, "pause", None, "crm")
        for _ in range(300):
            await st.settle()
            state = await queue.get(request_id)
            if state is not None and state.final:
                break
            await asyncio.sleep(0.01)
        assert state is not None and state.status == "failed"
        assert "Asterisk refused" in (state.detail or "")
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        _call, legs, _recs, events = await st.call_rows(call_id)
        assert "recording.pause_failed" in [e.kind for e in events]
        for leg in legs:  # the audio went on being written: all of it counts as recorded
            assert (leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250
