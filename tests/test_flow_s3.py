"""End to end with storage.backend s3: a call recorded on the simulator is filed into the
archive by the daemon, then moved into a real SeaweedFS bucket, and plays from there."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from recorder.storage.objects import S3Store
from recorder.storage.tiered import bucket_if_configured
from recorder.storage.upload import uploads_if_s3
from tests.harness.calls import run_answered_call
from tests.harness.seaweedfs import SeaweedFS
from tests.harness.stack import running_stack


async def test_a_recorded_call_is_filed_then_moved_to_the_bucket(
    pg_dsn: str, tmp_path: Path, seaweed: SeaweedFS, bucket: S3Store
) -> None:
    storage = {"backend": "s3", "s3": seaweed.config()}
    async with running_stack(tmp_path, pg_dsn, storage=storage) as st:
        assert st.config is not None
        async with (
            bucket_if_configured(st.config) as opened,
            uploads_if_s3(st.config, st.repo.pool, opened, st.daemon.ready,
                          lambda: st.daemon.asterisk_id, idle_s=0.1),
        ):  # fmt: skip
            _, call_id = await run_answered_call(st, ["inbound", "201"], "PJSIP/201",
                                                 "4155550100", 2.0, 6.0)  # fmt: skip
            for _ in range(100):
                recordings = await st.repo.recordings(call_id)
                if recordings and all((r.path or "").startswith("s3://") for r in recordings):
                    break
                await asyncio.sleep(0.1)
    assert recordings and all(r.status == "filed" for r in recordings)
    for r in recordings:
        assert r.path is not None and r.sha256 is not None
        assert r.path.startswith(f"s3://recordings/{st.daemon.asterisk_id}/")
        data = b"".join([c async for c in bucket.read(r.path)])
        assert hashlib.sha256(data).hexdigest() == r.sha256 and len(data) == r.bytes
        assert data[:4] == b"RIFF"
    assert not [p for p in st.archive.rglob("*") if p.is_file()]  # nothing left locally
