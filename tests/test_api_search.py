"""Call search over HTTP: every filter, numbers in any format, keyset pagination."""

from __future__ import annotations

import pytest

from tests.harness.api_world import World, world_fixture  # noqa: F401 (fixture)


async def _ids(w: World, query: str, user: str = "admin") -> list[str]:
    resp = await w.get(f"/api/calls?{query}", user)
    body = await resp.json()
    assert resp.status == 200, body
    letters = {v: k for k, v in w.calls.items()}
    return [letters[c["call_id"]] for c in body["calls"]]


async def test_latest_first_with_recordings_and_tags(world: World) -> None:
    resp = await world.get("/api/calls", "admin")
    body = await resp.json()
    assert [c["call_id"] for c in body["calls"]] == [world.calls[x] for x in "EDCBA"]
    a = body["calls"][-1]
    assert a["recordings"] == 2 and a["recorded_ms"] == 6000
    assert a["tags"] == ["matter:2026-0113"]
    assert a["duration_s"] == 95 and a["url"] == f"/api/calls/{world.calls['A']}"
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("number=555-0100", ["A"]),  # partial, as written
        ("number=555-01", ["E", "C", "A"]),
        ("number=4155550100", ["A"]),  # full national: matched on E.164
        ("number=%2B1%20(415)%20555-0100", ["A"]),  # "+1 (415) 555-0100"
        ("number=0044%2020%207946%200958", ["B"]),  # 00 international prefix
        ("number=7946", ["B"]),
        ("number=212.555", ["C"]),  # partial matches the dialled callee too
        ("number=230", ["D"]),  # an internal number
        ("number=999999", []),
        ("extension=201", ["D", "A"]),
        ("department=Intake", ["E", "C", "A"]),
        ("department=Family%20Law", ["B"]),
        ("direction=outbound", ["C"]),
        ("outcome=answered&direction=internal", ["D"]),
        ("outcome=busy", []),
        ("min_duration=90", ["B", "A"]),
        ("max_duration=20", ["E", "D"]),
        ("min_duration=30&max_duration=100", ["C", "A"]),
        ("tag=matter:2026-0113", ["A"]),
        ("tag=matter:other", []),
        ("from=2026-03-03", ["E", "D", "C"]),
        ("to=2026-03-02", ["B", "A"]),  # a date "to" includes that whole day
        ("from=2026-03-02T09:30:00Z&to=2026-03-03T09:00:00%2B00:00", ["B"]),
        ("from=2026-03-02T10:00:00&to=2026-03-03T10:00:01", ["C", "B"]),  # no offset: UTC
        ("order=asc", ["A", "B", "C", "D", "E"]),
    ],
)
async def test_filters(world: World, query: str, expected: list[str]) -> None:
    assert await _ids(world, query) == expected


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_keyset_pagination_visits_every_call_once(world: World, order: str) -> None:
    seen: list[str] = []
    url = f"/api/calls?limit=2&order={order}"
    pages = 0
    while True:
        body = await (await world.get(url, "admin")).json()
        seen += [c["call_id"] for c in body["calls"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        url = f"/api/calls?limit=2&order={order}&cursor={body['next_cursor']}"
    expected = [world.calls[x] for x in ("EDCBA" if order == "desc" else "ABCDE")]
    assert seen == expected and pages == 3


async def test_pagination_keeps_ties_apart(world: World) -> None:
    """Calls that started at the same instant are still each listed once (call_id breaks
    the tie)."""
    await world.pool.execute(
        "UPDATE calls SET started_at = '2026-03-10 12:00:00+00', ended_at = NULL"
    )
    seen: list[str] = []
    url = "/api/calls?limit=1"
    for _ in range(10):
        body = await (await world.get(url, "admin")).json()
        seen += [c["call_id"] for c in body["calls"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/calls?limit=1&cursor={body['next_cursor']}"
    assert sorted(seen) == sorted(world.calls.values()) and len(seen) == 5


async def test_case_filter_returns_a_call_and_the_calls_linked_to_it(pg_dsn: str) -> None:
    """An attended transfer links the consultation call to the original (calls.linked_calls):
    searching by case=<either call id> returns both, and nothing else."""
    from datetime import UTC, datetime, timedelta

    import asyncpg
    from multidict import MultiDict

    from recorder.api.search import parse_search, search_sql
    from recorder.db.repository import Repository
    from recorder.db.rows import CallRow

    t0 = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    repo = await Repository.connect(pg_dsn, max_size=1)
    try:
        def row(call_id: str, minutes: int, linked: list[str] | None) -> CallRow:
            return CallRow(call_id, "ast", "inbound", None, None, None, None, "201", "Intake",
                           t0 + timedelta(minutes=minutes), None, None, "answered", "ended",
                           linked_calls=linked)

        await repo.save_call(row("c-original", 0, ["c-consult"]), [], [])
        await repo.save_call(row("c-consult", 1, ["c-original"]), [], [])
        await repo.save_call(row("c-other", 2, None), [], [])
    finally:
        await repo.close()
    from recorder.api.auth import Principal

    admin = Principal(1, "a", "admin", (), None, "token")
    conn = await asyncpg.connect(pg_dsn)
    try:
        for case in ("c-original", "c-consult"):
            sql, args = search_sql(admin, parse_search(MultiDict({"case": case}), "US"))
            ids = {r["call_id"] for r in await conn.fetch(sql, *args)}
            assert ids == {"c-original", "c-consult"}
    finally:
        await conn.close()
