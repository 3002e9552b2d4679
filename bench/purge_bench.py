"""Purge rate and memory: N expired recordings (files and rows) deleted by `verbatim purge`.

Run: .venv/bin/python -m bench.purge_bench [--recordings 100000] [--batch 1000] [--dir DIR]
     [--explain]

Starts a private PostgreSQL (recorder.devtools.pgcluster, fsync on as in production), applies the
migrations, seeds N ended calls of one server, each with one filed recording whose file (4 KiB)
is in an archive laid out as the daemon files it, all past their class; then runs the purge as
the daemon does (recorder/keeping/purge.py: tombstones, files, rows, custody events, in
batches) and prints its rate and the process's resident memory before and at its peak during
the purge (sampled every 50 ms), to show it stays flat. It is not a test. Target: >= 5,000
recordings/s on the 2-core machine, memory flat.

It also prints the batches' times, first ten against last ten: on a shared machine the rate
moves with the load, but a batch that costs more as the tables grow shows here whatever the
load. --explain writes EXPLAIN (ANALYZE, BUFFERS) of every statement of two batches near the
start and two near the end (auto_explain) to the cluster's server.log (kept with --dir).

The seeded files are flushed to disk (sync) before the purge, as a recording past its class
long has been: deleting a file still in the page cache frees no blocks and costs ext4 a tenth.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import Any

from recorder.api.server import create_pool
from recorder.db.migrate import migrate
from recorder.devtools.pgcluster import PrivateCluster
from recorder.keeping.purge import Purger
from recorder.policy.model import Length, Policy, RetentionClass, RetentionPolicy
from recorder.storage.store import LocalStore

SERVER = "bench-pbx"
FIRST = datetime(2020, 1, 1, tzinfo=UTC)
CHUNK = 10_000
FILE = b"RIFF" + bytes(4092)
SHA = hashlib.sha256(FILE).hexdigest()


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _write_files(archive: Path, rows: list[tuple[str, datetime]]) -> list[str]:
    paths = []
    for call_id, start in rows:
        folder = archive / f"{start:%Y/%m/%d}" / call_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{call_id}-s1.wav"
        path.write_bytes(FILE)
        paths.append(str(path))
    return paths


async def seed(pool: Any, archive: Path, n: int) -> None:
    async with pool.acquire() as conn:
        # The filing trigger's custody rows are not what is measured: off while seeding.
        await conn.execute("ALTER TABLE recordings DISABLE TRIGGER custody_filed_insert")
        try:
            for first in range(0, n, CHUNK):
                rows = [(f"c{i:08d}", FIRST + timedelta(seconds=40 * i))
                        for i in range(first, min(n, first + CHUNK))]  # fmt: skip
                paths = await asyncio.to_thread(_write_files, archive, rows)
                async with conn.transaction():
                    await conn.copy_records_to_table("calls", columns=[
                        "call_id", "asterisk_id", "direction", "started_at", "answered_at",
                        "ended_at", "outcome", "status", "recorded", "retention_class",
                        "decided_by"], records=[
                        (c, SERVER, "inbound", s, s, s + timedelta(minutes=3), "answered",
                         "ended", True, "standard", "rule 'Office hours'") for c, s in rows])
                    await conn.copy_records_to_table("recordings", columns=[
                        "asterisk_id", "name", "call_id", "segment", "target", "format",
                        "status", "requested_at", "started_at", "ended_at", "path",
                        "duration_ms", "bytes", "sha256"], records=[
                        (SERVER, f"{c}-s1", c, 1, "bridge:b", "wav", "filed", s, s,
                         s + timedelta(minutes=3), p, 180_000, len(FILE), SHA)
                        for (c, s), p in zip(rows, paths, strict=True)])  # fmt: skip
                print(f"  seeded {first + len(rows):,}", end="\r", flush=True)
        finally:
            await conn.execute("ALTER TABLE recordings ENABLE TRIGGER custody_filed_insert")
        await conn.execute("VACUUM ANALYZE calls")
        await conn.execute("VACUUM ANALYZE recordings")
    print()


async def _explain(pool: Any, on: bool) -> None:
    """Turn auto_explain's logging of every statement on or off, for every session."""
    await pool.execute(f"ALTER SYSTEM SET auto_explain.log_min_duration = {0 if on else -1}")
    await pool.execute("SELECT pg_reload_conf()")


async def _setup_explain(pool: Any) -> None:
    async with pool.acquire() as conn:
        await conn.execute("LOAD 'auto_explain'")  # its settings are known once loaded
        for setting, value in (("session_preload_libraries", "'auto_explain'"),
                               ("auto_explain.log_analyze", "on"),
                               ("auto_explain.log_buffers", "on"),
                               # Off: call_held's plan per row would drown the rest.
                               ("auto_explain.log_nested_statements", "off"),
                               ("auto_explain.log_min_duration", "-1")):  # fmt: skip
            await conn.execute(f"ALTER SYSTEM SET {setting} = {value}")
        await conn.execute("SELECT pg_reload_conf()")
    await pool.expire_connections()  # session_preload_libraries: new sessions only


def _first_last(times: list[float]) -> tuple[float, float] | None:
    """Mean ms of the first ten and of the last ten but one (the last batch may be short)."""
    if len(times) < 20:
        return None
    return mean(times[:10]) * 1000, mean(times[-11:-1]) * 1000


def batch_times(marks: list[float]) -> str:
    """Each batch's time (one mark to the next), the first ten against the last ten."""
    times = [b - a for a, b in itertools.pairwise(marks)]
    ends = _first_last(times)
    if ends is None:
        return f"batches: {len(times)} (too few to compare first and last ten)"
    first, last = ends
    return (f"batches: {len(times)}, first 10 {first:.0f} ms each, last 10 {last:.0f} ms each "
            f"({last / first:.2f}x); by tenth: "
            + " ".join(f"{mean(times[i * len(times) // 10:(i + 1) * len(times) // 10]) * 1000:.0f}"
                       for i in range(10)) + " ms")  # fmt: skip


def step2_times(marks: list[float], committed: list[float]) -> str:
    """Each batch's step 2, from its tombstones' commit to its rows' (two batches overlap, so
    this is longer than a batch's share of the run), first ten against last ten."""
    ends = _first_last([c - m for m, c in zip(marks, committed, strict=False)])
    if ends is None:
        return ""
    first, last = ends
    return f"step 2 (files, rows, custody, commit): first 10 {first:.0f} ms, last 10 {last:.0f} ms"


async def run(n: int, batch: int, folder: Path, explain: bool) -> None:
    cluster = PrivateCluster(folder / "data")
    cluster.start()
    try:
        dsn = cluster.dsn()
        await migrate(dsn)
        pool = await create_pool(dsn, 1, 2)
        if explain:
            await _setup_explain(pool)
        archive = folder / "archive"
        t0 = time.perf_counter()
        await seed(pool, archive, n)
        await asyncio.to_thread(os.sync)
        print(f"seeded {n:,} recordings (files and rows) in {time.perf_counter() - t0:.0f} s")

        policy = Policy(retention_policy=RetentionPolicy(
            {"standard": RetentionClass("standard", Length(days=1))}))  # fmt: skip
        batches = -(-n // batch)
        # Plans logged around these batches (their mark, then the whole of the next one).
        explained = {2: True, 4: False, batches - 2: True, batches: False} if explain else {}
        marks: list[float] = []  # each batch's "marked", in batch order
        committed: list[float] = []  # each batch's "purged" (step 2 committed), likewise

        async def on_step(step: str) -> None:
            if step == "purged":
                committed.append(time.perf_counter())
            if step != "marked":
                return
            marks.append(time.perf_counter())
            if (on := explained.get(len(marks))) is not None:
                await _explain(pool, on)

        purger = Purger(pool, LocalStore(archive), policy, SERVER, batch=batch, on_step=on_step)
        before, peak = rss_mb(), rss_mb()
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        t0 = time.perf_counter()
        report = await purger.run(datetime.now(UTC), kind="bench")
        elapsed = time.perf_counter() - t0
        done.set()
        await sampler
        left = await pool.fetchval("SELECT count(*) FROM recordings")
        files = sum(1 for _ in archive.rglob("*.wav"))
        links = await pool.fetchval("SELECT count(*) FROM custody WHERE kind = 'purged'")
        await pool.close()
        print(f"purged {report.audio:,} recordings in {elapsed:.1f} s: "
              f"{report.audio / elapsed:,.0f} recordings/s (batch {batch})")  # fmt: skip
        print(f"RSS {before:.0f} MB before the purge, peak {peak:.0f} MB during it")
        print(f"left: {left} rows, {files} files; {links:,} custody events 'purged'")
        print(batch_times([*marks, t0 + elapsed]))
        print(step2_times(marks, committed))
        if explain:
            print(f"plans: {cluster.log_file}")
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recordings", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed after)")
    ap.add_argument("--explain", action="store_true",
                    help="log the plans of two batches at the start and two at the end")
    args = ap.parse_args()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="verbatim-purge-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o711)  # noqa: S103 (the postgres user passes through when we are root)
    try:
        asyncio.run(run(args.recordings, args.batch, folder, args.explain))
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
