"""The call-search and recovery queries use the indexes meant for them (EXPLAIN on real data)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from recorder.api.auth import Principal
from recorder.api.search import NumberFilter, SearchQuery, digit_runs, search_sql
from recorder.db import repository as r
from recorder.db.migrate import migrate
from recorder.devtools.pgcluster import PrivateCluster

# 20 000 calls over 200 days, 50 extensions, 5 big departments and a small one ('tax', 0.2 %),
# 1 % active; 1 in 1,000 calls longer than 20 minutes (the others up to 10); every call has a
# recording, 1 % of them not yet filed; events for 2 000 calls.
# (A big department's date search is rightly served by calls_started_idx plus a filter.)
SEED = """
INSERT INTO calls (call_id, asterisk_id, direction, caller_number, caller_e164, callee_number,
                   callee_e164, extension, department, started_at, status, outcome, ended_at)
SELECT to_char(t, 'YYYYMMDD"T"HH24MISS') || '-' || lpad(to_hex(i), 8, '0'),
       'pbx' || (i % 2), (ARRAY['inbound', 'outbound', 'internal'])[1 + i % 3],
       '030' || (1000000 + i % 5000), '+4930' || (1000000 + i % 5000),
       (200 + i % 50)::text, NULL, (200 + i % 50)::text,
       CASE WHEN i % 500 = 0 THEN 'tax' ELSE 'dept' || (i % 5) END, t,
       CASE WHEN i % 100 = 0 THEN 'active' ELSE 'ended' END,
       CASE WHEN i % 100 = 0 THEN NULL ELSE 'answered' END,
       CASE WHEN i % 100 = 0 THEN NULL
            ELSE t + (CASE WHEN i % 1000 = 7 THEN 1500 ELSE i % 600 END) * interval '1 second' END
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
    "calls_extension_page_idx": (
        r.SELECT_CALLS + "WHERE extension = $1 AND started_at >= $2 AND started_at < $3 "
        "ORDER BY started_at DESC LIMIT 50",
        ["214", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)],
    ),
    "calls_department_started_idx": (
        r.SELECT_CALLS + "WHERE department = $1 AND started_at >= $2 ORDER BY started_at LIMIT 50",
        ["tax", datetime(2026, 3, 1, tzinfo=UTC)],
    ),
    "calls_caller_e164_page_idx calls_callee_e164_page_idx": (
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
    "recordings_call_page_idx": (r.SELECT_RECORDINGS + "WHERE call_id = $1", ["x"]),
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
            await conn.execute("VACUUM recordings")
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


async def _plan(dsn: str, principal: Principal, q: SearchQuery) -> Any:
    sql, args = search_sql(principal, q)
    conn = await asyncpg.connect(dsn)
    try:
        return json.loads(await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args))
    finally:
        await conn.close()


async def test_three_digits_walk_reads_no_call_rows(seeded_dsn: str) -> None:
    """3 digits that ~3 % of calls have: newest first through calls_started_idx, which carries
    number_digits (0013), so the walk is index-only and only the page's calls are read."""
    plan = await _plan(seeded_dsn, ADMIN, SearchQuery(number=NumberFilter("042", None, "042")))
    walks = [n for n in _nodes(plan, "Index Only Scan") if "number_digits" in n.get("Filter", "")]
    assert [n["Index Name"] for n in walks] == ["calls_started_idx"], plan


async def test_partial_number_walks_the_newest_calls_then_weeks(seeded_dsn: str) -> None:
    """4 digits or more: the newest calls index-only on calls_started_idx, then batches of weeks
    on calls_run_keys_idx (0015); never the trigram index."""
    for digits in ("10042", "0420", "1234567"):
        q = SearchQuery(number=NumberFilter(digits, None, digits))
        for principal in (ADMIN, TAX):
            plan = await _plan(seeded_dsn, principal, q)
            used = _index_names(plan)
            assert "calls_run_keys_idx" in used and "calls_number_digits_trgm_idx" not in used
            walks = {n["Index Name"] for n in _nodes(plan, "Index Only Scan")}
            assert "calls_started_idx" in walks, plan  # the newest calls, and the oldest's week
            tested = [n for n in _nodes(plan, "CTE Scan") if "strpos" in n.get("Filter", "")]
            assert [n["CTE Name"] for n in tested] == ["recent"], plan
            # one GIN scan a batch of weeks: the calls holding each run in one of its weeks
            scans = _nodes(plan, "Bitmap Index Scan")
            (batch,) = [n for n in scans if n["Index Name"] == "calls_run_keys_idx"]
            assert batch["Index Cond"].count("&&") == len(digit_runs(digits)), plan


async def test_staff_partial_number_walks_their_calls_index_only(seeded_dsn: str) -> None:
    """A staff member's (or one extension's) partial number: along that extension's calls,
    which calls_extension_page_idx carries with their digits (0014), so index-only; not the
    batches of weeks, which would read every extension's calls with those digits."""
    q = SearchQuery(number=NumberFilter("10042", None, "10042"))
    for principal, query in ((STAFF, q), (ADMIN, replace(q, extension="214"))):
        plan = await _plan(seeded_dsn, principal, query)
        walks = [n["Index Name"] for n in _nodes(plan, "Index Only Scan")]
        assert walks[:1] == ["calls_extension_page_idx"], plan


async def test_long_calls_are_taken_from_the_length_index(seeded_dsn: str) -> None:
    """"Longer than 20 minutes" (few calls, of every date): from calls_duration_page_idx, which
    carries call_id and the scope's columns (0015; at 10 M the walk is index-only), not a walk
    of every call newest first reading its row; each page call's recordings are counted
    index-only on recordings_call_page_idx."""
    for principal in (ADMIN, TAX, STAFF):
        plan = await _plan(seeded_dsn, principal, SearchQuery(min_duration_s=1200))
        used = _index_names(plan)
        assert "calls_duration_page_idx" in used and "calls_started_idx" not in used, plan
        counted = {n["Index Name"] for n in _nodes(plan, "Index Only Scan")}
        assert "recordings_call_page_idx" in counted, plan


ADMIN = Principal(1, "admin", "admin", (), None, "token")
TAX = Principal(2, "manager", "manager", ("tax", "dept3"), None, "token")
STAFF = Principal(3, "staff", "staff", (), "214", "token")
T0, T1 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC)
EARLY = datetime(2026, 1, 10, tzinfo=UTC)  # to T1: ~7,000 calls, past the newest 3,000
# What each principal above may see, as the plain scans the walks are checked against say it.
SCOPE = {"admin": "true", "manager": "department IN ('tax', 'dept3')", "staff": "extension = '214'"}


@pytest.mark.parametrize("digits", ["10042", "0420", "4930100", "1234567", "99999", "0301004999"])
@pytest.mark.parametrize("principal", [ADMIN, TAX, STAFF], ids=["admin", "manager", "staff"])
async def test_week_walk_finds_what_a_scan_finds(
    seeded_dsn: str, digits: str, principal: Principal
) -> None:
    """The week walk's pages (either order, a date range, a cursor, the user's scope) are the
    ones a plain scan of every call's digits gives."""
    conn = await asyncpg.connect(seeded_dsn)
    try:
        for order, start, stop in (("desc", None, None), ("asc", None, None), ("desc", T0, T1),
                                   ("desc", EARLY, T1), ("asc", EARLY, T1)):
            q = SearchQuery(number=NumberFilter(digits, None, digits), order=order, limit=20,
                            start=start, stop=stop)  # fmt: skip
            for _ in range(3):  # three pages, each after the last one's final call
                sql, args = search_sql(principal, q)
                got = [r["call_id"] for r in await conn.fetch(sql, *args)]
                scope = SCOPE[principal.role]
                cmp = "<" if order == "desc" else ">"
                after = "true" if q.after is None else f"(started_at, call_id) {cmp} ($4, $5)"
                want = await conn.fetch(
                    f"SELECT call_id, started_at FROM calls WHERE number_digits LIKE $1 "  # noqa: S608
                    f"AND {scope} AND started_at >= coalesce($2::timestamptz, '-infinity') "
                    f"AND started_at < coalesce($3::timestamptz, 'infinity') AND {after} "
                    f"ORDER BY started_at {order}, call_id {order} LIMIT 21",
                    f"%{digits}%", start, stop, *(q.after or ()),
                )
                assert got == [r["call_id"] for r in want], (order, start, q.after)
                if len(want) < 21:
                    break
                last = want[19]
                q = replace(q, after=(last["started_at"], last["call_id"]))
    finally:
        await conn.close()


def _nodes(plan: Any, node_type: str) -> list[dict[str, Any]]:
    if isinstance(plan, dict):
        found = [plan] if plan.get("Node Type") == node_type else []
        return found + [n for v in plan.values() for n in _nodes(v, node_type)]
    if isinstance(plan, list):
        return [n for v in plan for n in _nodes(v, node_type)]
    return []


@pytest.mark.parametrize("principal", [ADMIN, TAX], ids=["admin", "manager"])
async def test_full_number_merges_two_index_only_walks(
    seeded_dsn: str, principal: Principal
) -> None:
    """A full number: a page from the caller index and one from the callee index, merged; not a
    BitmapOr of all the number's calls sorted for one page (10 M calls: 3,800 pages read). The
    indexes carry call_id and department (0014): at 10 M, a manager's walks are index-only (here,
    with 4 calls a number, the planner rightly reads them by bitmap)."""
    number = NumberFilter("+49301001234", "+49301001234", "49301001234")
    plan = await _plan(seeded_dsn, principal, SearchQuery(number=number))
    walks = {"calls_caller_e164_page_idx", "calls_callee_e164_page_idx"}
    if principal is ADMIN:
        (merge,) = _nodes(plan, "Merge Append")
        assert _index_names(merge) == walks, plan
    # a manager's: never with the department's index (a BitmapAnd reading all its calls)
    assert _index_names(plan) & {*walks, "calls_department_started_idx"} == walks, plan
    assert not _nodes(plan, "BitmapOr"), plan


@pytest.mark.parametrize("number", ["+49301000014", "+49301001233", "+4930999"])
@pytest.mark.parametrize("principal", [ADMIN, TAX, STAFF], ids=["admin", "manager", "staff"])
async def test_full_number_finds_what_a_scan_finds(
    seeded_dsn: str, number: str, principal: Principal
) -> None:
    """Caller or callee (one call of +49301000014 is to itself), in the user's scope, newest
    first; the seed's callee numbers set in a transaction rolled back after."""
    conn = await asyncpg.connect(seeded_dsn)
    changes = conn.transaction()
    await changes.start()
    try:
        await conn.execute("UPDATE calls SET callee_e164 = '+4930' || (1000000 + (i + 1) % 5000) "
                           "FROM (SELECT call_id, ('x' || right(call_id, 8))::bit(32)::int AS i "
                           "FROM calls) n WHERE n.call_id = calls.call_id")  # fmt: skip
        await conn.execute("UPDATE calls SET callee_e164 = caller_e164 WHERE extension = '214' "
                           "AND started_at < '2026-02-01'")  # fmt: skip
        q = SearchQuery(number=NumberFilter(number, number, number[1:]), limit=20)
        sql, args = search_sql(principal, q)
        got = [r["call_id"] for r in await conn.fetch(sql, *args)]
        scope = SCOPE[principal.role]
        want = await conn.fetch(
            f"SELECT call_id FROM calls WHERE $1 IN (caller_e164, callee_e164) AND {scope} "  # noqa: S608
            "ORDER BY started_at DESC, call_id DESC LIMIT 21",
            number,
        )
        assert got == [r["call_id"] for r in want]
    finally:
        await changes.rollback()
        await conn.close()
