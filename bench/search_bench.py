"""p50/p95/p99 of the common call searches on 1 M (or 10 M) seeded calls.

Run: PYTHONPATH=.:asterisk-test .venv/bin/python -m bench.search_bench [--calls 1000000]
     [--runs 200] [--dir DIR --keep] [--explain] [--writer 50] [--only partial --only longer]

Starts a private PostgreSQL (recorder.devtools.pgcluster, fsync on as in production), applies the
migrations, seeds calls with a law office's distributions (bench/search_seed.py), then times
each search as the API runs it: CallService.search (scoped SQL + its access-log row) on a pool
configured like the server's. Prints figures; it is not a test. Target: p99 < 50 ms at 10 M.

`--writer RATE`: the searches run while the real daemon (`verbatim run`, against the simulator
in bench mode at 10 virtual seconds per real second) records RATE new calls per second into the
same database — a busy office's writes competing with the searches for the disk and both cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.load import PASSWORD, basic_auth, process, wait_http
from bench.search_seed import DEPARTMENTS, seed, seeded
from recorder.api.access_log import AccessLog, Origin
from recorder.api.auth import Principal
from recorder.api.search import NumberFilter, SearchQuery
from recorder.api.server import create_pool
from recorder.api.service import CallService
from recorder.db.migrate import migrate
from recorder.devtools.config import config_text
from recorder.devtools.pgcluster import PrivateCluster, free_port

FIRST, LAST = datetime(2024, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
ADMIN = Principal(1, "bench-admin", "admin", (), None, "token")
Search = Callable[[random.Random], tuple[Principal, SearchQuery]]


def _day(rng: random.Random) -> datetime:
    return FIRST + timedelta(days=rng.randrange((LAST - FIRST).days - 31))


def _manager(*departments: str) -> Principal:
    return Principal(2, "bench-manager", "manager", departments, None, "token")


def _staff(rng: random.Random) -> Principal:
    return Principal(3, "bench-staff", "staff", (), str(201 + rng.randrange(240)), "token")


def _digits(rng: random.Random, numbers: list[str], n: int) -> NumberFilter:
    number = rng.choice(numbers)[2:]  # without +1
    start = rng.randrange(len(number) - n + 1)
    part = number[start : start + n]
    return NumberFilter(part, None, part)


def searches(numbers: list[str], matters: list[str]) -> dict[str, Search]:
    depts = [d for d, _ in DEPARTMENTS]
    week, month = timedelta(days=7), timedelta(days=30)
    return {
        "latest calls (admin)": lambda r: (ADMIN, SearchQuery()),
        "deep page (cursor)": lambda r: (ADMIN, SearchQuery(after=(_day(r), "~"))),
        "one week": lambda r: (ADMIN, SearchQuery(start=(d := _day(r)), stop=d + week)),
        "extension, 30 days": lambda r: (ADMIN, SearchQuery(
            extension=str(201 + r.randrange(240)), start=(d := _day(r)), stop=d + month)),
        "extension, all time": lambda r: (ADMIN, SearchQuery(
            extension=str(201 + r.randrange(240)))),
        "department, 30 days": lambda r: (ADMIN, SearchQuery(
            department=r.choice(depts), start=(d := _day(r)), stop=d + month)),
        "manager of 2 depts, latest": lambda r: (_manager(*r.sample(depts, 2)), SearchQuery()),
        "manager of Tax (2 %), latest": lambda r: (_manager("Tax"), SearchQuery()),
        "manager, one week": lambda r: (_manager(r.choice(depts)),
                                        SearchQuery(start=(d := _day(r)), stop=d + week)),
        "staff, latest": lambda r: (_staff(r), SearchQuery()),
        "staff, 30 days": lambda r: (_staff(r), SearchQuery(start=(d := _day(r)), stop=d + month)),
        "full number (E.164)": lambda r: (ADMIN, SearchQuery(
            number=NumberFilter("x", (n := r.choice(numbers)), n[1:]))),
        "full number, manager": lambda r: (_manager(r.choice(depts)), SearchQuery(
            number=NumberFilter("x", (n := r.choice(numbers)), n[1:]))),
        "partial number, 4 digits": lambda r: (ADMIN, SearchQuery(number=_digits(r, numbers, 4))),
        "partial number, 7 digits": lambda r: (ADMIN, SearchQuery(number=_digits(r, numbers, 7))),
        "partial 4 digits, one month": lambda r: (ADMIN, SearchQuery(
            number=_digits(r, numbers, 4), start=(d := _day(r)), stop=d + month)),
        "partial 5 digits, staff": lambda r: (_staff(r), SearchQuery(
            number=_digits(r, numbers, 5))),
        "tag / matter": lambda r: (ADMIN, SearchQuery(tag=r.choice(matters))),
        "outbound, busy, 30 days": lambda r: (ADMIN, SearchQuery(
            direction="outbound", outcome="busy", start=(d := _day(r)), stop=d + month)),
        "longer than 20 min": lambda r: (ADMIN, SearchQuery(min_duration_s=1200)),
    }  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(calls: int, runs: int, folder: Path, keep: bool, explain: bool,
              writer: float, only: list[str]) -> None:
    cluster = PrivateCluster(folder / "data")
    cluster.start()
    try:
        dsn = cluster.dsn()
        pool = await create_pool(dsn, 1, 2)
        try:
            await migrate(dsn)  # also a kept cluster: migrations newer than its seed
            async with pool.acquire() as conn:
                if not await seeded(conn, calls):
                    t0 = time.perf_counter()
                    await seed(conn, dsn, calls)
                    print(f"seeded {calls:,} calls in {time.perf_counter() - t0:.0f} s", flush=True)
            if not writer:
                await _measure(pool, runs, explain, only)
                return
            since = datetime.now(UTC) - timedelta(minutes=1)  # the simulator's clock: ours
            async with daemon_writing(dsn, writer, folder):
                before = await _inserted(pool)
                t0 = time.perf_counter()
                await _measure(pool, runs, explain, only)
                wall = time.perf_counter() - t0
                wrote = await _inserted(pool) - before
            print(f"meanwhile the daemon wrote {wrote:,} new calls in {wall:.0f} s "
                  f"({wrote / wall:.1f} calls/s)")
            await _forget_calls_since(pool, since)
        finally:
            await pool.close()
    finally:
        if not keep:
            cluster.stop()


async def _forget_calls_since(pool: Any, since: datetime) -> None:
    """The writer's calls are removed again, or a kept cluster drifts: each run would leave
    its ~3,000 calls as the newest, which the next run's "latest first" searches walk past.
    The bench's own cluster only: the append-only guards (triggers) and foreign keys are off
    for this session (session_replication_role), as a restore tool would have them."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("CREATE TEMP TABLE written ON COMMIT DROP AS "
                           "SELECT call_id FROM calls WHERE started_at >= $1", since)
        for table in ("legs", "recordings", "call_events", "call_tags", "consent_audit",
                      "coverage_gaps", "control_requests", "calls"):
            await conn.execute(f"DELETE FROM {table} "  # noqa: S608 - names from this list
                               "WHERE call_id IN (SELECT call_id FROM written)")


async def _inserted(pool: Any) -> int:
    """Calls rows inserted since the statistics were reset (cheap: no count over 10 M rows)."""
    await pool.execute("SELECT pg_stat_clear_snapshot()")
    return int(await pool.fetchval(
        "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'calls'"))  # fmt: skip


@contextlib.asynccontextmanager
async def daemon_writing(dsn: str, rate: float, folder: Path) -> AsyncIterator[None]:
    """The real daemon recording `rate` new calls per second (each rings, talks 2-6 s of real
    time, hangs up) into the database at `dsn`, from the simulator in another process."""
    from arisim.control import SimControl

    work = folder / f"writer-{os.getpid()}"
    spool, archive = work / "spool", work / "archive"
    spool.mkdir(parents=True)
    port, speed = free_port(), 10.0
    url = f"http://127.0.0.1:{port}"
    conf = work / "verbatim.yaml"
    conf.write_text(config_text(url=url, spool=spool, archive=archive,
                                metrics_port=free_port()))
    env = {"VERBATIM_ARI_PASSWORD": PASSWORD, "VERBATIM_DATABASE_DSN": dsn}
    sim = [sys.executable, "-m", "arisim", "--bench", "--port", str(port), "--spool", str(spool),
           "--speed", str(speed), "--password", PASSWORD]
    daemon = [sys.executable, "-m", "recorder.cli", "run", "-c", str(conf)]
    with process(sim, work / "sim.log", env), process(daemon, work / "daemon.log", env):
        await wait_http(f"{url}/_sim/clock")
        await wait_http(f"{url}/ari/applications/verbatim", basic_auth("verbatim", PASSWORD))
        async with SimControl(url) as ctl:
            await ctl.set_endpoint("PJSIP/201", answer_after=3.0, tone_hz=700)
            calls: set[asyncio.Task[None]] = set()

            async def one(i: int) -> None:
                caller = await ctl.start_call(caller_number=f"+1415555{i % 10000:04d}",
                                              args=["inbound", "201"], tone_hz=440)
                await asyncio.sleep((6.0 + 20.0 + (i * 7919) % 41) / speed)
                with contextlib.suppress(Exception):  # already gone: the bench goes on
                    await ctl.hangup(caller)

            async def arrivals() -> None:
                for i in range(10**9):
                    task = asyncio.create_task(one(i))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                    await asyncio.sleep(1 / rate)

            feeder = asyncio.create_task(arrivals())
            await asyncio.sleep(5.0)  # until the daemon's writes reach their steady rate
            try:
                yield
            finally:
                feeder.cancel()
                for task in list(calls):
                    task.cancel()
                await asyncio.gather(feeder, *calls, return_exceptions=True)
    shutil.rmtree(work, ignore_errors=True)


async def _measure(pool: Any, runs: int, explain: bool, only: list[str]) -> None:
    numbers = [r[0] for r in await pool.fetch(
        "SELECT caller_e164 FROM calls TABLESAMPLE SYSTEM (1) WHERE caller_e164 IS NOT NULL "
        "LIMIT 2000")]  # fmt: skip
    matters = [r[0] for r in await pool.fetch(
        "SELECT DISTINCT tag FROM call_tags TABLESAMPLE BERNOULLI (5) LIMIT 2000")]  # fmt: skip
    access_log = _TimedLog(pool)
    service = CallService(pool, Path("/nonexistent"), access_log)
    origin = Origin("127.0.0.1", "search_bench")
    rng = random.Random(7)
    print(f"load average {os.getloadavg()[0]:.1f} (others' work inflates every figure)")
    print(f"{'search':<30} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'rows':>6}"
          "   of which the access-log row: p50 / p99 ms")
    worst = worst99 = 0.0
    for name, make in searches(numbers, matters).items():
        if only and not any(part in name for part in only):
            continue
        for _ in range(5):  # warm the cache and the connection's catalog
            await service.search(*make(rng), origin)
        times, rows = [], []
        access_log.times.clear()
        for _ in range(runs):
            principal, query = make(rng)
            t0 = time.perf_counter()
            page = await service.search(principal, query, origin)
            times.append((time.perf_counter() - t0) * 1000)
            rows.append(len(page.calls))
        p95 = _pct(times, 0.95)
        worst, worst99 = max(worst, p95), max(worst99, _pct(times, 0.99))
        logged = access_log.times
        print(f"{name:<30} {_pct(times, 0.5):8.1f} {p95:8.1f} {_pct(times, 0.99):8.1f} "
              f"{statistics.mean(rows):6.1f}   {_pct(logged, 0.5):5.1f} / "
              f"{_pct(logged, 0.99):5.1f}")  # fmt: skip
        if explain:
            await _explain(pool, *make(rng))
    print(f"worst p95: {worst:.1f} ms, worst p99: {worst99:.1f} ms "
          "(each figure includes the search's access-log insert); "
          f"load average {os.getloadavg()[0]:.1f}")


class _TimedLog(AccessLog):
    """The access log as the API writes it, each row's write timed (ms): a search's figure is
    its SQL and this row's commit (a WAL flush, fsync on, queued with the writer's)."""

    def __init__(self, pool: Any) -> None:
        super().__init__(pool)
        self.times: list[float] = []

    async def record(self, *args: Any, **kwargs: Any) -> None:
        t0 = time.perf_counter()
        await super().record(*args, **kwargs)
        self.times.append((time.perf_counter() - t0) * 1000)


async def _explain(pool: Any, principal: Principal, query: SearchQuery) -> None:
    from recorder.api.search import search_sql

    sql, args = search_sql(principal, query)
    plan = await pool.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    print("\n".join("    " + r[0] for r in plan))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000, help="e.g. 10000000 for 10 M")
    ap.add_argument("--runs", type=int, default=200, help="timed searches per kind")
    ap.add_argument("--dir", help="cluster folder; reused (not reseeded) when it has the calls")
    ap.add_argument("--keep", action="store_true", help="leave PostgreSQL running")
    ap.add_argument("--explain", action="store_true", help="print a plan per search kind")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="only the kinds whose name contains TEXT (repeatable)")
    ap.add_argument("--writer", type=float, default=0.0, metavar="RATE",
                    help="meanwhile the daemon records RATE new calls/s into the same database")
    args = ap.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="verbatim-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o711)  # noqa: S103 - the postgres user (when we are root) must pass through
    try:
        asyncio.run(run(args.calls, args.runs, folder, args.keep, args.explain, args.writer,
                        args.only))
    finally:
        if not args.dir and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
