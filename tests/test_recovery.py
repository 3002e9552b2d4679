"""Start-up recovery: the spool is emptied into the archive, fallback recordings become calls."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from recorder.db.rows import CallRow, RecordingRow
from tests.harness.calls import assert_both_tones, bridged_call, recordings
from tests.harness.stack import running_stack
from tests.harness.wav import write_wav

AST = "02:fc:00:00:00:01"  # the simulator's entity id


def age(path: Path, seconds: float = 120) -> None:
    """Make a spool file look settled (Asterisk stopped writing it a while ago)."""
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_fallback_recording_is_imported_as_a_call_of_its_own(
    tmp_path: Path, pg_dsn: str
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    name = "fallback-1795600000-1795631195.79-inbound-+14155550100-201"
    wav = spool / f"{name}.wav"
    write_wav(wav, seconds=2.0)
    age(wav)
    async with running_stack(tmp_path, pg_dsn) as st:
        await st.settle()
        (call,) = await st.repo.recent_calls(5)
        assert call.fallback and call.status == "ended" and call.outcome == "unknown"
        assert (call.direction, call.caller_number, call.callee_number) == (
            "inbound", "+14155550100", "201")
        assert call.started_at == datetime.fromtimestamp(1795600000, UTC)
        (rec,) = await st.repo.recordings(call.call_id)
        assert rec.fallback and rec.status == "filed" and rec.duration_ms == 2000
        assert rec.path and hashlib.sha256(Path(rec.path).read_bytes()).hexdigest() == rec.sha256
        assert not wav.exists()


async def test_leftover_recording_of_a_crashed_call_is_filed_and_the_row_closed(
    tmp_path: Path, pg_dsn: str
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    call_id = "20261125T120000-0badcafe"
    from recorder.db.repository import Repository

    repo = await Repository.connect(pg_dsn, max_size=1)
    try:
        await repo.save_call(
            CallRow(call_id, AST, "inbound", "4155550100", "+14155550100", "201", None, "201",
                    None, t0, t0, None, None, "active", state=None),
            [],
            [RecordingRow(AST, f"{call_id}-s1", call_id, 1, "bridge:x", "wav", "recording",
                          requested_at=t0, started_at=t0)],
        )
    finally:
        await repo.close()
    wav = spool / f"{call_id}-s1.wav"
    write_wav(wav, seconds=1.5)
    age(wav)
    async with running_stack(tmp_path, pg_dsn) as st:
        await st.settle()
        call, _legs, recs, events = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "interrupted")
        assert [(r.status, r.duration_ms) for r in recs] == [("filed", 1500)]
        assert "recording.recovered" in [e.kind for e in events]
        assert not wav.exists()
        assert await st.repo.open_calls(AST) == []


async def test_unknown_spool_files_are_left_alone(tmp_path: Path, pg_dsn: str) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    stranger = spool / "voicemail-greeting.wav"
    write_wav(stranger, seconds=0.5)
    age(stranger)
    async with running_stack(tmp_path, pg_dsn) as st:
        await st.settle()
        assert stranger.exists()
        assert await st.repo.recent_calls(5) == []


async def test_recordings_fetched_over_ari_when_the_spool_is_not_shared(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, spool_shared=False) as st:
        caller_id, call_id = await bridged_call(st)
        await st.advance(4.0)
        st.sim.hangup(caller_id)
        await st.settle()
        _call, _legs, (rec,), _ = await st.call_rows(call_id)
        assert rec.status == "filed" and rec.path
        fetched = [r for r in st.sim.requests if r.path.endswith(f"{rec.name}/file")]
        deleted = [r for r in st.sim.requests
                   if r.method == "DELETE" and r.path == f"/recordings/stored/{rec.name}"]
        assert [r.status for r in fetched] == [200] and [r.status for r in deleted] == [204]
        assert not list(st.spool.iterdir())
        assert_both_tones(Path(rec.path), (rec.duration_ms or 0) / 1000)
@pytest.mark.parametrize("delete", ["gone", "unanswered"])
async def test_a_recording_filed_over_ari_stays_filed_whatever_its_delete_meets(
    tmp_path: Path, pg_dsn: str, delete: str
) -> None:
    """Once the recording is safe in the archive, the DELETE of Asterisk's stored copy finds
    it gone (404: removed meanwhile) or gets no answer (ari.request_timeout_s): either way the
    recording is filed (before: `missing`, with no path and no hash); a copy that may be left
    on the PBX's disk is a warning."""
    async with running_stack(tmp_path, pg_dsn, spool_shared=False) as st:
        caller_id, call_id = await bridged_call(st)
        (name,) = recordings(st.sim)
        release = st.sim.stall("DELETE", f"/recordings/stored/{name}")
        await st.advance(4.0)
        with capture_logs() as logs:
            st.sim.hangup(caller_id)
            async with asyncio.timeout(30):
                while not st.sim.stalled:  # noqa: ASYNC110 - the held DELETE, bounded
                    await asyncio.sleep(0.01)
                if delete == "gone":
                    for stored in st.spool.glob(f"{name}.*"):
                        stored.unlink()
                else:  # held past the daemon's timeout
                    while not [x for x in logs if x["event"] == "recording.filed"]:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            st.sim.unstall(release)
            await st.settle()
        _call, _legs, (rec,), _ = await st.call_rows(call_id)
        assert (rec.status, rec.name) == ("filed", name) and rec.path and rec.sha256
        assert_both_tones(Path(rec.path), (rec.duration_ms or 0) / 1000)
        loud = [(x["event"], x["log_level"], x.get("recording")) for x in logs
                if x["log_level"] in ("warning", "error")]
        assert loud == ([] if delete == "gone" else
                        [("recording.stored_not_deleted", "warning", name)])


