"""PostgreSQL away, then the daemon killed (kill -9) while calls are up: nothing is lost.

The daemon runs as a real process against its own PostgreSQL (stopped and started by the test)
and the simulator. While the database is away the calls are answered and recorded, their rows
wait in memory and in the journal on disk; after the kill and a restart (once the database is
back) the journal is replayed: the calls are adopted under their own ids, no party is hung up or
dialled again, every segment is filed under its call, and each row is in PostgreSQL once.
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
from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    assert_both_tones,
    dialled,
    event_time,
)
from tests.harness.daemon import (
    assert_each_row_once,
    connected,
    free_port,
    journalled_daemon,
    until,
)

CALLS = 3


@pytest.fixture
def own_cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL of this test's own (on a fixed port, so it comes back where it was)."""
    base = Path(tempfile.mkdtemp(prefix="verbatim-outage-"))
    os.chmod(base, 0o711)  # noqa: S103 - the postgres user passes through (as conftest's)
    cluster = PrivateCluster(base / "data", port=free_port(), fsync=False)
    cluster.start()
    try:
        asyncio.run(migrate(cluster.dsn()))
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_a_crash_during_a_database_outage_cuts_no_call(
    tmp_path: Path, own_cluster: PrivateCluster
) -> None:
    dsn, journal = own_cluster.dsn(), tmp_path / "journal"
    async with journalled_daemon(tmp_path, dsn) as (sim, proc):
        proc.start()
        await connected(sim)
        await asyncio.to_thread(own_cluster.stop)  # PostgreSQL goes away
        callers = []
        for n in range(CALLS):
            sim.set_endpoint(f"PJSIP/{201 + n}", answer_after=1.0, tone_hz=CALLEE_HZ)
            callers.append(sim.start_call(caller_number=f"+1415555010{n}",
                                          args=["inbound", str(201 + n)], tone_hz=CALLER_HZ))
        await sim.settle()

        async def all_bridged() -> bool:
            return len(sim.events("ChannelEnteredBridge")) >= 2 * CALLS

        await until(all_bridged, sim)  # announced, dialled, answered, recorded: no database
        await sim.advance(2.0)
        assert (journal / "journal.jsonl").stat().st_size > 0  # on disk before Asterisk heard
        proc.kill9()
        await sim.advance(3.0)  # the conversations go on in Asterisk
        await asyncio.to_thread(own_cluster.start)
        proc.start()
        await connected(sim)
        await sim.advance(2.0)
        for caller in callers:
            sim.hangup(caller.id)
        await sim.settle()
        repo = await Repository.connect(dsn, max_size=2)
        try:
            async def all_closed() -> bool:
                calls = await repo.recent_calls(10)
                return len(calls) == CALLS and all(c.status == "ended" for c in calls)

            await until(all_closed, sim)
            log = proc.log.read_text()
            assert "call.adopt_orphan" not in log and "call.release_orphan" not in log
            assert "journal.replayed" in log
            # nobody was hung up by the daemon, nor dialled twice
            created = [r for r in sim.requests if r.path == "/channels/create"]
            assert len(created) == CALLS
            hangups = [r.path for r in sim.requests if r.method == "DELETE"
                       and r.path.startswith("/channels/")]
            for call in await repo.recent_calls(10):
                assert call.outcome == "answered", call
                recs = await repo.recordings(call.call_id)
                assert [r.status for r in recs] == ["filed"], recs  # one segment, its own call
                events = [e.kind for e in await repo.events(call.call_id)]
                assert events.count("call.started") == 1 and events.count("call.answered") == 1
                callee_id = dialled(sim, call.call_id)
                caller_id = next(leg.channel_id for leg in await repo.legs(call.call_id)
                                 if leg.role == "caller")
                hung = event_time(sim, "ChannelHangupRequest", channel__id=caller_id)
                joined = event_time(sim, "ChannelEnteredBridge", channel__id=callee_id)
                assert_both_tones(Path(recs[0].path or ""), hung - joined)  # every second
                assert hangups.count(f"/channels/{callee_id}") <= 1  # only after its caller hung up
            assert (journal / "journal.jsonl").stat().st_size == 0  # emptied once all was written
        finally:
            await repo.close()


MANY = 50


async def test_fifty_calls_through_a_minute_long_outage_and_a_crash(
    tmp_path: Path, own_cluster: PrivateCluster
) -> None:
    """20 calls set up with the database there, 30 more while it is away; during the outage
    (60 s of the simulator's clock) some callers hang up, the daemon is killed (-9), a few more
    hang up while no daemon runs; the database returns, the daemon restarts, the rest hang up.
    Every call, leg, recording and event is in PostgreSQL once, each recording under its call,
    and no party was hung up by the daemon."""
    dsn = own_cluster.dsn()
    async with journalled_daemon(tmp_path, dsn) as (sim, proc):
        proc.start()
        await connected(sim)
        callers = []

        async def bridged(n: int) -> bool:
            return len(sim.events("ChannelEnteredBridge")) >= 2 * n

        def call(n: int) -> None:
            sim.set_endpoint(f"PJSIP/{300 + n}", answer_after=1.0, tone_hz=CALLEE_HZ)
            callers.append(sim.start_call(caller_number=f"+14155551{n:03d}",
                                          args=["inbound", str(300 + n)], tone_hz=CALLER_HZ))

        for n in range(20):
            call(n)
        await sim.settle()
        await until(lambda: bridged(20), sim, limit=60)
        outage_from = sim.clock.now()
        await asyncio.to_thread(own_cluster.stop)  # PostgreSQL goes away
        for n in range(20, MANY):
            call(n)
        await sim.settle()
        await until(lambda: bridged(MANY), sim, limit=60)
        await sim.advance(5.0)
        for caller in callers[:5] + callers[20:25]:  # ended while only the journal has them
            sim.hangup(caller.id)
        await sim.settle()
        await sim.advance(10.0)
        proc.kill9()  # during the outage
        for caller in callers[5:8] + callers[25:28]:  # ended while no daemon runs
            sim.hangup(caller.id)
        await sim.settle()
        await sim.advance(outage_from + 60.0 - sim.clock.now())
        await asyncio.to_thread(own_cluster.start)
        proc.start()
        await connected(sim)
        await sim.advance(2.0)
        for caller in callers[8:20] + callers[28:]:
            sim.hangup(caller.id)
        await sim.settle()
        repo = await Repository.connect(dsn, max_size=2)
        try:
            async def all_closed() -> bool:
                calls = await repo.recent_calls(2 * MANY)
                return len(calls) == MANY and all(c.status == "ended" for c in calls)

            await until(all_closed, sim, limit=60)
            await assert_each_row_once(repo, sim, [c.id for c in callers])
        finally:
            await repo.close()
        log = proc.log.read_text()
        assert "call.adopt_orphan" not in log and "call.release_orphan" not in log
        assert '"daemon.event_failed"' not in log
        assert (tmp_path / "journal" / "journal.jsonl").stat().st_size == 0
        assert not list((tmp_path / "spool").iterdir())
        assert not sim.request_problems(), sim.request_problems()


