"""Seeding for bench/search_bench.py: N calls with a law office's shape, written by PostgreSQL
itself (generate_series) one day of calls per transaction, so 10 M calls take minutes rather
than hours of round trips, print their progress, and resume where a stopped seed left off.

Calls are inserted in start-time order, as the daemon writes them, so the table's physical
order follows started_at as in production (a random order would make every newest-first walk
read a page per row). Each day's calls are sorted on their own: one sort of 10 M rows was what
kept the earlier single INSERT from finishing in 2 h.

Distributions (deterministic: setseed per day): two years of calls (N / 730 a day), 90 %
between 08:00 and 18:00; inbound 55 % / outbound 35 % / internal 10 %; 240 extensions in 8
departments of very different sizes (Intake takes a third, Tax 2 %); 250 000 outside numbers
with repeat callers (the first numbers call far more often, as clients with open matters do),
half written in national form; answered 80 %, no answer 9 %, abandoned 6 %, busy 3 %, failed
2 %; call length exponential around 3 minutes; answered calls have a filed recording (3 % two
segments); 8 % of calls carry a matter tag out of 20 000 matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

DEPARTMENTS = (  # name, share of extensions (%) -- also roughly its share of calls
    ("Intake", 33), ("Litigation", 18), ("Family Law", 14), ("Estates", 10),
    ("Corporate", 9), ("Real Estate", 8), ("Immigration", 6), ("Tax", 2),
)  # fmt: skip
EXTENSIONS = 240
NUMBERS = 250_000
MATTERS = 20_000

# One day of calls ($1 calls, ids from $6 + 1, on day $7 after 2024-06-01) with their recordings
# and tags, in one statement. Extension e (0..239) belongs to the department whose cumulative
# share covers e * 100 / 240; callers/callees come from a skewed pool (random()^3).
_DAY = """
WITH depts(name, lo, hi) AS (
    SELECT name, sum(share) OVER w - share, sum(share) OVER w
    FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS d(name, share, ord)
    WINDOW w AS (ORDER BY ord ROWS UNBOUNDED PRECEDING)
), raw AS (
    SELECT $6::bigint + i AS i,
        timestamptz '2024-06-01 00:00 UTC' + make_interval(days => $7::int)
          + CASE WHEN random() < 0.9 THEN ((8 + random() * 10) * 3600 || ' s')::interval
                 ELSE (random() * 86400 || ' s')::interval END AS t,
        random() AS rd, random() AS ro, floor(random() * $4::int)::int AS ext,
        floor(power(random(), 3) * $5::int)::int AS num, -ln(1 - random()) * 180 AS secs
    FROM generate_series(1, $1::int) AS i
), c AS (
INSERT INTO calls (call_id, asterisk_id, direction, caller_number, caller_e164, callee_number,
                   callee_e164, extension, department, started_at, answered_at, ended_at,
                   outcome, status)
SELECT to_char(t, 'YYYYMMDD"T"HH24MISS') || '-' || lpad(to_hex(i), 8, '0'),
       'pbx' || (i % 3),
       dir,
       CASE dir WHEN 'inbound' THEN outside WHEN 'outbound' THEN e ELSE e END,
       CASE dir WHEN 'inbound' THEN e164 END,
       CASE dir WHEN 'inbound' THEN e WHEN 'outbound' THEN '9' || outside
                ELSE (201 + (ext + 7) % $4::int)::text END,
       CASE dir WHEN 'outbound' THEN e164 END,
       e, (SELECT name FROM depts WHERE ext * 100.0 / $4::int >= lo AND ext * 100.0 / $4::int < hi),
       t,
       CASE WHEN outcome = 'answered' THEN t + interval '6 s' END,
       t + make_interval(secs => CASE WHEN outcome = 'answered' THEN 6 + secs
                                      ELSE 5 + secs / 10 END),
       outcome, 'ended'
FROM raw,
LATERAL (SELECT CASE WHEN rd < 0.55 THEN 'inbound' WHEN rd < 0.90 THEN 'outbound'
                     ELSE 'internal' END AS dir,
                CASE WHEN ro < 0.80 THEN 'answered' WHEN ro < 0.89 THEN 'no_answer'
                     WHEN ro < 0.95 THEN 'abandoned' WHEN ro < 0.98 THEN 'busy'
                     ELSE 'failed' END AS outcome,
                (201 + ext)::text AS e,
                '+1' || (200 + num % 700)::text || lpad(((num * 7919) % 10000000)::text, 7, '0')
                    AS e164) AS x,
LATERAL (SELECT CASE WHEN num % 2 = 0 THEN substr(e164, 3) ELSE e164 END AS outside) AS y
ORDER BY t  -- rows reach the table as calls happen, in time order, as in production
RETURNING call_id, asterisk_id, started_at, answered_at, ended_at, outcome
), r AS (
INSERT INTO recordings (asterisk_id, name, call_id, segment, target, format, status,
                        requested_at, started_at, ended_at, path, duration_ms, bytes, sha256)
SELECT asterisk_id, call_id || '-s' || s, call_id, s, 'bridge:x', 'wav', 'filed',
       answered_at, answered_at, ended_at,
       '/var/lib/verbatim/archive/' || to_char(started_at, 'YYYY/MM/DD') || '/' || call_id
           || '/' || call_id || '-s' || s || '.wav',
       extract(epoch FROM ended_at - answered_at)::bigint * 1000 / segs,
       extract(epoch FROM ended_at - answered_at)::bigint * 16000 / segs, repeat('a', 64)
FROM (SELECT *, CASE WHEN random() < 0.03 THEN 2 ELSE 1 END AS segs FROM c
      WHERE outcome = 'answered') c, LATERAL generate_series(1, segs) AS s
)
INSERT INTO call_tags (call_id, tag)
SELECT call_id, 'matter:' || lpad((floor(power(random(), 2) * $8::int))::int::text, 5, '0')
FROM c WHERE random() < 0.08
"""
DAYS = 730
_STATE = """
CREATE TABLE IF NOT EXISTS bench_seed (calls bigint NOT NULL, done boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS bench_seed_indexes (indexdef text NOT NULL);
CREATE TABLE IF NOT EXISTS bench_seed_days (day int PRIMARY KEY);
"""
_USERS = """
INSERT INTO users (id, name, role, departments, extension) OVERRIDING SYSTEM VALUE
VALUES (1, 'bench-admin', 'admin', '{}', NULL), (2, 'bench-manager', 'manager', '{Intake}', NULL),
       (3, 'bench-staff', 'staff', '{}', '201')
ON CONFLICT DO NOTHING
"""


async def seeded(conn: Any, calls: int) -> bool:
    """Whether a seed of `calls` calls finished in this database."""
    if not await conn.fetchval("SELECT to_regclass('bench_seed') IS NOT NULL"):
        return False
    return bool(await conn.fetchval("SELECT done FROM bench_seed WHERE calls = $1", calls))


async def seed(conn: Any, dsn: str, calls: int, log: Callable[[str], None] | None = None) -> None:
    """Insert `calls` calls with recordings and tags into the migrated database at `dsn` (`conn`
    is a connection to it): empty, or holding
    an unfinished seed of the same size (bench_seed* tables), which is carried on from its
    last finished day."""
    log = log or (lambda line: print(line, flush=True))
    await conn.execute(_STATE)
    started = await conn.fetchval("SELECT calls FROM bench_seed")
    if started is None:
        if await conn.fetchval("SELECT EXISTS (SELECT FROM calls)"):
            raise ValueError("seed: the calls table holds calls that are not a bench seed's")
        # Indexes are dropped while loading and rebuilt after: one sort each instead of
        # millions of random insertions (GIN trigram most of all). Their definitions are kept
        # in the database so a resumed seed rebuilds them too.
        async with conn.transaction():
            await conn.execute("INSERT INTO bench_seed (calls) VALUES ($1)", calls)
            rows = await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename IN ('calls', 'recordings', 'call_tags') "
                "AND indexname NOT LIKE '%_pkey'"
            )
            for row in rows:
                await conn.execute("INSERT INTO bench_seed_indexes VALUES ($1)", row["indexdef"])
                await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    elif started != calls:
        raise ValueError(f"seed: this database holds an unfinished seed of {started:,} calls, "
                         f"not {calls:,}: use another --dir")  # fmt: skip
    # A larger WAL keeps checkpoints from running every few days' worth of rows.
    await conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
    await conn.execute("SELECT pg_reload_conf()")
    done = {r[0] for r in await conn.fetch("SELECT day FROM bench_seed_days")}
    todo = iter([day for day in range(DAYS) if day not in done])
    names = [d for d, _ in DEPARTMENTS]
    shares = [s for _, s in DEPARTMENTS]
    t0, last = time.perf_counter(), 0.0

    async def load(conn: Any) -> None:
        nonlocal last
        # A lost commit is only a day to redo (the day's row goes with it). Foreign keys are
        # not checked (replica role): every recording and tag refers to a call of the same
        # statement, and the checks were a quarter of the load's time.
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET session_replication_role = replica")
        for day in todo:  # shared by the workers: days are taken in time order
            first, end = calls * day // DAYS, calls * (day + 1) // DAYS
            async with conn.transaction():
                await conn.execute("SELECT setseed($1)", (day + 1) / (DAYS + 1))
                await conn.execute(_DAY, end - first, names, shares, EXTENSIONS, NUMBERS, first,
                                   day, MATTERS)  # fmt: skip
                await conn.execute("INSERT INTO bench_seed_days VALUES ($1)", day)
            if time.perf_counter() - last > 30:
                last = time.perf_counter()
                log(f"seed: day {day + 1} of {DAYS}, {end:,} of {calls:,} calls "
                    f"({last - t0:.0f} s)")  # fmt: skip
        await conn.execute("RESET session_replication_role")

    # One more connection: two days load at once, one per core (a day's rows stay together,
    # so the table's order still follows started_at within a day and nearly across days).
    extra = await asyncpg.connect(dsn)
    try:
        await asyncio.gather(load(conn), load(extra))
    finally:
        await extra.close()
    log(f"seed: {calls:,} calls loaded ({time.perf_counter() - t0:.0f} s)")
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    for (indexdef,) in await conn.fetch("SELECT indexdef FROM bench_seed_indexes"):
        t1 = time.perf_counter()
        await conn.execute(indexdef.replace(" INDEX ", " INDEX IF NOT EXISTS ", 1))
        log(f"seed: {indexdef.split(' ON ')[0]} in {time.perf_counter() - t1:.0f} s")
    for table in ("calls", "recordings", "call_tags"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    await conn.execute(_USERS)
    await conn.execute("UPDATE bench_seed SET done = true")
    log(f"seed: done in {time.perf_counter() - t0:.0f} s")
