"""A call's detail: legs, recordings with their URLs, timeline, transfers, tags, consent rows
(when the consent feature's table is there, and null when it is not)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from recorder.api.access_log import AccessLog, Origin
from recorder.api.auth import Principal
from recorder.api.service import CallService
from recorder.db.repository import Repository
from tests.harness.api_world import World, world_fixture  # noqa: F401 (fixture)

ADMIN = Principal(1, "admin", "admin", (), None, "token")


async def test_detail_of_a_call(world: World) -> None:
    a = world.calls["A"]
    resp = await world.get(f"/api/calls/{a}", "admin")
    body = await resp.json()
    assert resp.status == 200
    assert body["call"]["call_id"] == a and body["call"]["department"] == "Intake"
    assert [leg["role"] for leg in body["legs"]] == ["caller", "callee"]
    assert [r["name"] for r in body["recordings"]] == [world.rec("A", 1), world.rec("A", 2)]
    first = body["recordings"][0]
    assert first["audio_url"] == world.audio("A") and first["duration_ms"] == 3000
    assert "path" not in first  # where the archive keeps files is not the client's business
    assert [e["kind"] for e in body["events"]] == [
        "call.started", "consent.played", "recording.started", "transfer.blind",
    ]  # fmt: skip
    assert [(t["kind"], t["detail"]) for t in body["transfers"]] == [
        ("transfer.blind", {"to": "202"})
    ]
    assert body["tags"] == ["matter:2026-0113"]
    c = await (await world.get(f"/api/calls/{world.calls['C']}", "admin")).json()
    assert c["recordings"][0]["status"] == "failed" and "audio_url" not in c["recordings"][0]


@pytest.fixture
async def schema_pool(world: World) -> AsyncIterator[object]:
    """A pool whose current schema is a private one, in front of public's tables."""
    await world.pool.execute("DROP SCHEMA IF EXISTS consent_test CASCADE")
    await world.pool.execute("CREATE SCHEMA consent_test")
    pool = await asyncpg.create_pool(
        world.config.database.dsn.reveal(), min_size=1, max_size=1,
        init=Repository.init_connection,
        server_settings={"search_path": "consent_test, public"},
    )  # fmt: skip
    try:
        yield pool
    finally:
        await pool.close()
        await world.pool.execute("DROP SCHEMA consent_test CASCADE")


async def test_consent_rows_when_the_table_exists(world: World, schema_pool: object) -> None:
    origin = Origin("127.0.0.1", None)
    service = CallService(schema_pool, world.archive, AccessLog(schema_pool))
    assert (await service.detail(ADMIN, world.calls["A"], origin))["consent"] is None
    await world.pool.execute(
        "CREATE TABLE consent_test.consent_audit (id int, call_id text, party text, "
        "recorded boolean)"
    )
    await world.pool.execute(
        "INSERT INTO consent_test.consent_audit VALUES (2, $1, 'callee', true), "
        "(1, $1, 'caller', true), (3, 'other', 'caller', false)",
        world.calls["A"],
    )
    fresh = CallService(schema_pool, world.archive, AccessLog(schema_pool))
    consent = (await fresh.detail(ADMIN, world.calls["A"], origin))["consent"]
    assert [(r["id"], r["party"]) for r in consent] == [(1, "caller"), (2, "callee")]
