"""End to end with storage.compact: a call recorded on the simulator is filed by the daemon,
then its recording replaced by an Opus copy made by the real ffmpeg; the original's hash stays."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from recorder.config.model import CompactConfig
from recorder.storage.compact import compacts_if_configured
from tests.harness.calls import run_answered_call
from tests.harness.stack import running_stack


async def test_a_recorded_call_is_filed_then_compacted(pg_dsn: str, tmp_path: Path) -> None:
    storage = {"compact": CompactConfig("opus", 24, keep_original=False)}
    async with running_stack(tmp_path, pg_dsn, storage=storage) as st:
        assert st.config is not None
        async with compacts_if_configured(st.config, st.repo.pool, st.daemon.ready,
                                          lambda: st.daemon.asterisk_id, idle_s=0.1):  # fmt: skip
            _, call_id = await run_answered_call(st, ["inbound", "201"], "PJSIP/201",
                                                 "4155550100", 2.0, 6.0)  # fmt: skip
            for _ in range(100):
                rows = await st.repo.pool.fetch(
                    "SELECT * FROM recordings WHERE call_id = $1", call_id)  # fmt: skip
                if rows and all(r["format"] == "opus" and r["original_path"] is None
                                for r in rows):  # fmt: skip
                    break
                await asyncio.sleep(0.1)
        assert rows and all(r["status"] == "filed" for r in rows)
        for r in rows:
            data = Path(r["path"]).read_bytes()
            assert data[:4] == b"OggS" and hashlib.sha256(data).hexdigest() == r["sha256"]
            assert r["original_format"] == "wav" and r["original_bytes"] > len(data)
            filed = await st.repo.pool.fetchval(
                "SELECT subject_sha256 FROM custody WHERE kind = 'filed' AND recording_name = $1",
                r["name"])  # fmt: skip
            assert filed == r["original_sha256"]
        assert [p.suffix for p in st.archive.rglob("*") if p.is_file()] == [".opus"] * len(rows)
