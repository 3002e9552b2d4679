"""Seeding for bench/search_bench.py: N calls with a law office's shape, written by PostgreSQL
itself (generate_series), so 1 M calls take a minute or two rather than an hour of round trips.

Calls are inserted in start-time order, as the daemon writes them, so the table's physical
order follows started_at as in production (a random order would make every newest-first walk
read a page per row).

Distributions (deterministic: setseed): two years of calls, 90 % between 08:00 and 18:00;
inbound 55 % / outbound 35 % / internal 10 %; 240 extensions in 8 departments of very
different sizes (Intake takes a third, Tax 2 %); 250 000 outside numbers with repeat callers
(the first numbers call far more often, as clients with open matters do), half written in
national form; answered 80 %, no answer 9 %, abandoned 6 %, busy 3 %, failed 2 %; call length
exponential around 3 minutes; answered calls have a filed recording (3 % two segments); 8 % of
calls carry a matter tag out of 20 000 matters.
"""

from __future__ import annotations

from typing import Any

DEPARTMENTS = (  # name, share of extensions (%) -- also roughly its share of calls
    ("Intake", 33), ("Litigation", 18), ("Family Law", 14), ("Estates", 10),
    ("Corporate", 9), ("Real Estate", 8), ("Immigration", 6), ("Tax", 2),
)  # fmt: skip
EXTENSIONS = 240
NUMBERS = 250_000
MATTERS = 20_000

# $1 = number of calls. Extension e (0..239) belongs to the department whose cumulative share
# covers e * 100 / 240; callers/callees come from a skewed pool (random()^3).
_CALLS = """
WITH depts(name, lo, hi) AS (
    SELECT name, sum(share) OVER w - share, sum(share) OVER w
    FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS d(name, share, ord)
    WINDOW w AS (ORDER BY ord ROWS UNBOUNDED PRECEDING)
), raw AS (
    SELECT i,
        timestamptz '2024-06-01 00:00 UTC'
          + (floor(random() * 730) || ' days')::interval
          + CASE WHEN random() < 0.9 THEN ((8 + random() * 10) * 3600 || ' s')::interval
                 ELSE (random() * 86400 || ' s')::interval END AS t,
        random() AS rd, random() AS ro, floor(random() * $4::int)::int AS ext,
        floor(power(random(), 3) * $5::int)::int AS num, -ln(1 - random()) * 180 AS secs
    FROM generate_series(1, $1::int) AS i
)
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
"""
_RECORDINGS = """
INSERT INTO recordings (asterisk_id, name, call_id, segment, target, format, status,
                        requested_at, started_at, ended_at, path, duration_ms, bytes, sha256)
SELECT asterisk_id, call_id || '-s' || s, call_id, s, 'bridge:x', 'wav', 'filed',
       answered_at, answered_at, ended_at,
       '/var/lib/verbatim/archive/' || to_char(started_at, 'YYYY/MM/DD') || '/' || call_id
           || '/' || call_id || '-s' || s || '.wav',
       extract(epoch FROM ended_at - answered_at)::bigint * 1000 / segs,
       extract(epoch FROM ended_at - answered_at)::bigint * 16000 / segs, repeat('a', 64)
FROM (SELECT *, CASE WHEN random() < 0.03 THEN 2 ELSE 1 END AS segs FROM calls
      WHERE outcome = 'answered') c, LATERAL generate_series(1, segs) AS s
"""
_TAGS = """
INSERT INTO call_tags (call_id, tag)
SELECT call_id, 'matter:' || lpad((floor(power(random(), 2) * $1::int))::int::text, 5, '0')
FROM calls WHERE random() < 0.08
"""


async def seed(conn: Any, calls: int) -> None:
    """Insert `calls` calls with recordings and tags into an empty, migrated database."""
    # Indexes are dropped while loading and rebuilt after: one sort each instead of a million
    # random insertions (GIN trigram most of all).
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename IN ('calls', 'recordings', 'call_tags') "
        "AND indexname NOT LIKE '%_pkey'"
    )
    for row in indexes:
        await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    await conn.execute("SELECT setseed(0.42)")
    names = [d for d, _ in DEPARTMENTS]
    shares = [s for _, s in DEPARTMENTS]
    await conn.execute(_CALLS, calls, names, shares, EXTENSIONS, NUMBERS)
    await conn.execute(_RECORDINGS)
    await conn.execute(_TAGS, MATTERS)
    await conn.execute("SET maintenance_work_mem = '512MB'")
    for row in indexes:
        await conn.execute(row["indexdef"])
    await conn.execute("VACUUM ANALYZE calls")
    await conn.execute("VACUUM ANALYZE recordings")
    await conn.execute("VACUUM ANALYZE call_tags")
