"""Two offices, one database and one bucket: each office's Asterisk has its own daemon, and both
write to one PostgreSQL (and move their recordings into one object store). Calls made at the
same instant with the same channel ids on both never collide (rows are keyed by the Asterisk
server's id), both are found by one search, and each daemon holds only its own server's calls."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from recorder.storage.objects import S3Store
from recorder.storage.tiered import bucket_if_configured
from recorder.storage.upload import uploads_if_s3
from tests.harness.calls import CALLEE_HZ, CALLER_HZ, assert_both_tones
from tests.harness.seaweedfs import SeaweedFS
from tests.harness.stack import Stack, running_stack

OFFICES = {"sf": "02:fc:00:00:00:0a", "ny": "02:fc:00:00:00:0b"}
START = 1_795_600_000.0  # both simulators' clocks: the same instants, the same channel ids


async def test_two_offices_write_to_one_database_without_colliding(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path / "sf", pg_dsn, asterisk_id=OFFICES["sf"],
                             start_epoch=START) as sf, \
            running_stack(tmp_path / "ny", pg_dsn, asterisk_id=OFFICES["ny"],
                          start_epoch=START) as ny:
        callers = []
        for st in (sf, ny):
            st.sim.set_endpoint("PJSIP/201", answer_after=1.0, tone_hz=CALLEE_HZ)
            callers.append(st.sim.start_call(caller_number="+12125550100",
                                             args=["inbound", "201"], tone_hz=CALLER_HZ))
        assert callers[0].id == callers[1].id  # the same channel id on both servers
        await asyncio.gather(sf.settle(), ny.settle())
        ids = await asyncio.gather(sf.until_bridged(), ny.until_bridged())
        await asyncio.gather(sf.advance(3.0), ny.advance(3.0))
        assert ids[0] != ids[1]
        rows = await asyncio.gather(sf.hang_up(callers[0].id, ids[0]),
                                    ny.hang_up(callers[1].id, ids[1]))
        for (call, legs, recs, _events), office in zip(rows, ("sf", "ny"), strict=True):
            assert call.asterisk_id == OFFICES[office] and call.outcome == "answered"
            assert {leg.asterisk_id for leg in legs} == {OFFICES[office]}
            (rec,) = recs
            assert rec.asterisk_id == OFFICES[office] and rec.status == "filed"
            assert_both_tones(Path(rec.path or ""), 3.0)
        found = await sf.repo.recent_calls(10)  # one search sees both offices
        assert sorted(c.asterisk_id for c in found) == sorted(OFFICES.values())
        for st, office in ((sf, "sf"), (ny, "ny")):
            assert await st.repo.open_calls(OFFICES[office]) == []
            assert all(c.asterisk_id == OFFICES[office]
                       for c in st.daemon.state.calls.values())


async def one_call(st: Stack) -> str:
    """A caller to 201, answered, 3 s of talk, hung up; the call's id."""
    st.sim.set_endpoint("PJSIP/201", answer_after=1.0, tone_hz=CALLEE_HZ)
    caller = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"],
                               tone_hz=CALLER_HZ)
    await st.settle()
    call_id = await st.until_bridged()
    await st.advance(3.0)
    await st.hang_up(caller.id, call_id)
    return call_id


async def test_two_offices_move_their_recordings_into_one_bucket(
    tmp_path: Path, pg_dsn: str, seaweed: SeaweedFS, bucket: S3Store
) -> None:
    """The same two offices with one object store: each daemon moves its own recordings into
    the bucket under its server's id, and either office's recording is read back from it."""
    storage = {"backend": "s3", "s3": seaweed.config()}
    async with running_stack(tmp_path / "sf", pg_dsn, asterisk_id=OFFICES["sf"],
                             start_epoch=START, storage=storage) as sf, \
            running_stack(tmp_path / "ny", pg_dsn, asterisk_id=OFFICES["ny"],
                          start_epoch=START, storage=storage) as ny:
        assert sf.config is not None and ny.config is not None
        async with (
            bucket_if_configured(sf.config) as sf_bucket,
            bucket_if_configured(ny.config) as ny_bucket,
            uploads_if_s3(sf.config, sf.repo.pool, sf_bucket, sf.daemon.ready,
                          lambda: sf.daemon.asterisk_id, idle_s=0.1),
            uploads_if_s3(ny.config, ny.repo.pool, ny_bucket, ny.daemon.ready,
                          lambda: ny.daemon.asterisk_id, idle_s=0.1),
        ):  # fmt: skip
            call_ids = await asyncio.gather(*(one_call(st) for st in (sf, ny)))
            assert call_ids[0] != call_ids[1]
            for _ in range(100):
                recs = [r for c in call_ids for r in await sf.repo.recordings(c)]
                if len(recs) == 2 and all((r.path or "").startswith("s3://") for r in recs):
                    break
                await asyncio.sleep(0.1)
    assert sorted((r.path or "").split("/")[3] for r in recs) == sorted(OFFICES.values())
    for r in recs:
        assert r.path is not None and r.path.startswith(f"s3://recordings/{r.asterisk_id}/")
        data = b"".join([c async for c in bucket.read(r.path)])
        assert hashlib.sha256(data).hexdigest() == r.sha256 and len(data) == r.bytes
