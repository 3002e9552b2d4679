"""PostgreSQL fails over mid-call: the primary stops, its streaming standby is promoted.

The test starts both (initdb, then pg_basebackup -R) and gives the daemon — a real process —
the multi-host DSN an HA setup uses (`target_session_attrs=read-write`). While no primary takes
writes the call's rows wait in memory and in the journal; once the standby is promoted the
daemon's pool connects to it and every row arrives, once.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.db.migrate import migrate
from recorder.db.repository import Repository
from recorder.devtools.pgcluster import PrivateCluster
from tests.harness.calls import CALLEE_HZ, CALLER_HZ
from tests.harness.daemon import (
    assert_each_row_once,
    both_bridged,
    connected,
    free_port,
    journalled_daemon,
    until,
)


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[PrivateCluster, PrivateCluster]]:
    base = Path(tempfile.mkdtemp(prefix="verbatim-failover-"))
    os.chmod(base, 0o711)  # noqa: S103 - the postgres user passes through (as conftest's)
    primary = PrivateCluster(base / "primary", port=free_port(), fsync=False)
    standby = PrivateCluster(base / "standby", port=free_port(), fsync=False, database=None)
    try:
        primary.start()
        asyncio.run(migrate(primary.dsn()))
        standby.clone(primary)
        standby.start()
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_failover_to_the_promoted_standby_loses_no_row(
    tmp_path: Path, primary_and_standby: tuple[PrivateCluster, PrivateCluster]
) -> None:
    primary, standby = primary_and_standby
    dsn = (f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/verbatim"
           "?target_session_attrs=read-write")
    async with journalled_daemon(tmp_path, dsn) as (sim, proc):
        proc.start()
        await connected(sim)
        sim.set_endpoint("PJSIP/201", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = sim.start_call(caller_number="+14155550100", args=["inbound", "201"],
                                tone_hz=CALLER_HZ)
        await sim.settle()
        await both_bridged(sim)
        await sim.advance(2.0)
        await asyncio.to_thread(primary.stop)  # the primary dies mid-call
        await sim.advance(3.0)
        sim.hangup(caller.id)  # the call ends while no server takes writes
        await sim.settle()

        async def write_failed() -> bool:
            return '"db.write_failed"' in proc.log.read_text()

        await until(write_failed, sim)
        await asyncio.to_thread(standby.promote)
        repo = await Repository.connect(standby.dsn(), max_size=2)
        try:
            async def closed() -> bool:
                calls = await repo.recent_calls(5)
                return len(calls) == 1 and calls[0].status == "ended"

            await until(closed, sim, limit=30)
            await assert_each_row_once(repo, sim, [caller.id])
        finally:
            await repo.close()
        log = proc.log.read_text()
        assert '"db.recovered"' in log
        assert '"daemon.event_failed"' not in log
