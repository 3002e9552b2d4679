"""The call-search and recovery queries use the indexes meant for them (EXPLAIN on real data)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from recorder.api.auth import Principal
from recorder.api.search import NumberFilter, SearchQuery, search_sql
from recorder.db import repository as r
from recorder.db.migrate import migrate
from recorder.devtools.pgcluster import PrivateCluster

# 20 000 calls over 200 days, 50 extensions, 5 big departments and a small one ('tax', 0.2 %),
# 1 % active; every call has a recording, 1 % of them not yet filed; events for 2 000 calls.
# (A big department's date search is rightly served by calls_started_idx plus a filter.)
SEED = """
INSERT INTO calls (call_id, asterisk_id, direction, caller_number, caller_e164, callee_number,
                   callee_e164, extension, department, started_at, status, outcome)
SELECT to_char(t, 'YYYYMMDD"T"HH24MISS') || '-' || lpad(to_hex(i), 8, '0'),
       'pbx' || (i % 2), (ARRAY['inbound', 'outbound', 'internal'])[1 + i % 3],
       '030' || (1000000 + i % 5000), '+4930' || (1000000 + i % 5000),
       (200 + i % 50)::text, NULL, (200 + i % 50)::text,
       CASE WHEN i % 500 = 0 THEN 'tax' ELSE 'dept' || (i % 5) END, t,
       CASE WHEN i % 100 = 0 THEN 'active' ELSE 'ended' END,
       CASE WHEN i % 100 = 0 THEN NULL ELSE 'answered' END
FROM generate_series(1, 20000) AS i,
     LATERAL (SELECT timestamptz '2026-01-01 UTC' + i * interval '864 seconds' AS t) AS x;
INSERT INTO recordings (asterisk_id, name, call_id, segment, target, format, status, requested_at,
                        path, sha256)
SELECT asterisk_id, call_id || '-s1', call_id, 1, 'bridge:x', 'wav',
       CASE WHEN started_at::time < '00:15' THEN 'finished' ELSE 'filed' END, started_at,
       '/a/' || call_id, repeat('a', 64)
FROM calls;
INSERT INTO call_events (call_id, asterisk_id, at, kind)
SELECT call_id, asterisk_id, started_at + n * interval '1 second', 'k' || n
FROM (SELECT * FROM calls ORDER BY call_id LIMIT 2000) c, generate_series(1, 5) n;
ANALYZE calls; ANALYZE recordings; ANALYZE call_events;
"""

SEARCHES: dict[str, tuple[str, list[Any]]] = {
    "calls_started_idx": (r.SELECT_CALLS + "ORDER BY started_at DESC, call_id DESC LIMIT 50", []),
    "calls_extension_started_idx": (
        r.SELECT_CALLS + "WHERE extension = $1 AND started_at >= $2 AND started_at < $3 "
        "ORDER BY started_at DESC LIMIT 50",
        ["214", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)],
    ),
    "calls_department_started_idx": (
        r.SELECT_CALLS + "WHERE department = $1 AND started_at >= $2 ORDER BY started_at LIMIT 50",
        ["tax", datetime(2026, 3, 1, tzinfo=UTC)],
    ),
    "calls_caller_e164_started_idx calls_callee_e164_started_idx": (
        r.SELECT_CALLS + "WHERE caller_e164 = $1 OR callee_e164 = $1 ORDER BY started_at DESC",
        ["+49301001234"],
    ),
    "calls_caller_number_idx": (
        r.SELECT_CALLS + "WHERE caller_number LIKE '0301001%' ORDER BY started_at DESC",
        [],
    ),
    "calls_active_idx": (
        r.SELECT_CALLS + "WHERE asterisk_id = $1 AND status = 'active' ORDER BY started_at",
        ["pbx1"],
    ),
    "recordings_unfiled_idx": (
        r.SELECT_RECORDINGS + f"WHERE asterisk_id = $1 AND {r.UNFILED_PREDICATE}",
        ["pbx1"],
    ),
    "recordings_call_idx": (r.SELECT_RECORDINGS + "WHERE call_id = $1", ["x"]),
    "legs_call_idx": (r.SELECT_LEGS + "WHERE call_id = $1", ["x"]),
    "call_events_call_idx": (r.SELECT_EVENTS + "WHERE call_id = $1 ORDER BY at, id", ["x"]),
}


def _index_names(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for v in plan.values():
            found |= _index_names(v)
    elif isinstance(plan, list):
        for v in plan:
            found |= _index_names(v)
    return found


@pytest.fixture(scope="module")
def seeded_dsn(pg_cluster: PrivateCluster) -> Iterator[str]:
    """A database of its own, seeded once for all the EXPLAINs of this module."""
    name = "idx_" + uuid.uuid4().hex[:12]
    pg_cluster.create_database(name)

    async def seed() -> None:
        await migrate(pg_cluster.dsn(name))
        conn = await asyncpg.connect(pg_cluster.dsn(name))
        try:
            await conn.execute(SEED)
            await conn.execute("VACUUM calls")  # as autovacuum would: index-only scans pay
        finally:
            await conn.close()

    asyncio.run(seed())
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


@pytest.mark.parametrize("indexes", list(SEARCHES))
async def test_query_uses_index(seeded_dsn: str, indexes: str) -> None:
    sql, args = SEARCHES[indexes]
    conn = await asyncpg.connect(seeded_dsn)
    try:
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    finally:
        await conn.close()
    used = _index_names(json.loads(plan))
    assert set(indexes.split()) <= used, f"{indexes}: plan used {used}\n{plan}"


async def test_partial_number_walk_reads_no_call_rows(seeded_dsn: str) -> None:
    """A partial number that 2 % of calls have: newest first through calls_started_idx, which
    carries number_digits (0013), so the walk is index-only and only the page's calls are read."""
    admin = Principal(1, "admin", "admin", (), None, "token")
    sql, args = search_sql(admin, SearchQuery(number=NumberFilter("10042", None, "10042")))
    conn = await asyncpg.connect(seeded_dsn)
    try:
        plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    finally:
        await conn.close()
    walks = _nodes(plan, "Index Only Scan")
    assert [n["Index Name"] for n in walks] == ["calls_started_idx"], plan
    assert "number_digits" in walks[0]["Filter"]


def _nodes(plan: Any, node_type: str) -> list[dict[str, Any]]:
    if isinstance(plan, dict):
        found = [plan] if plan.get("Node Type") == node_type else []
        return found + [n for v in plan.values() for n in _nodes(v, node_type)]
    if isinstance(plan, list):
        return [n for v in plan for n in _nodes(v, node_type)]
    return []


async def test_full_number_merges_two_ordered_walks(seeded_dsn: str) -> None:
    """A full number: a page from the caller index and one from the callee index, merged; not a
    BitmapOr of all the number's calls sorted for one page (10 M calls: 3,800 pages read)."""
    admin = Principal(1, "admin", "admin", (), None, "token")
    number = NumberFilter("+49301001234", "+49301001234", "49301001234")
    sql, args = search_sql(admin, SearchQuery(number=number))
    conn = await asyncpg.connect(seeded_dsn)
    try:
        plan = json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    finally:
        await conn.close()
    (merge,) = _nodes(plan, "Merge Append")
    assert {"calls_caller_e164_started_idx", "calls_callee_e164_started_idx"} <= _index_names(
        merge
    ), plan
    assert not _nodes(plan, "BitmapOr"), plan
