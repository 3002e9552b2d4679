"""Bad requests get 400/401/404 with a clear body; the database down is a 503, never a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from recorder.api.server import build_deps, create_pool, make_app
from recorder.devtools.pgcluster import free_port
from tests.harness.api_world import World, config_for, world_fixture  # noqa: F401 (fixture)


def _error(body: dict[str, Any], status: int, error_id: str) -> None:
    assert body["status"] == status
    assert body["error_id"] == error_id
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("from=yesterday", "from"),
        ("from=2026-13-01", "from"),
        ("from=2026-02-30", "from"),
        ("to=0001-01-01T00:00:00%2B05:00", "to"),
        ("from=2026-03-02&to=2026-03-01", "to"),
        ("limit=100000000", "limit"),
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("min_duration=1e3", "min_duration"),
        ("min_duration=50&max_duration=10", "max_duration"),
        ("number=1'%20OR%20'1'='1", "number"),
        ("number=555;DROP%20TABLE%20calls", "number"),
        ("number=%25", "number"),
        ("number=5_5", "number"),
        ("number=12", "number"),  # too few digits to search on
        ("number=" + "1" * 41, "number"),
        ("extension=201'--", "extension"),
        ("department=", "department"),
        ("department=a%00b", "department"),
        ("direction=sideways", "direction"),
        ("outcome=maybe", "outcome"),
        ("order=random", "order"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WyJ4IiwgMV0", "cursor"),  # base64 of ["x", 1]: wrong types
        ("extention=201", "extention"),  # misspelt filters are not ignored
        ("extension=201&extension=202", "extension"),
    ],
)
async def test_bad_search_parameters(world: World, query: str, parameter: str) -> None:
    resp = await world.get(f"/api/calls?{query}", "admin")
    body = await resp.json()
    _error(body, 400, "invalid_parameter")
    assert body["details"]["parameter"] == parameter
    assert parameter in body["message"]


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "..",
        "x'%20OR%201=1--",
        "%00",
    ],
)
async def test_recording_names_are_looked_up_never_used_as_paths(world: World, name: str) -> None:
    for kind in ("audio", "download"):
        resp = await world.get(f"/api/calls/{world.calls['A']}/recordings/{name}/{kind}", "admin")
        if name == ".." and kind == "audio":  # the client made it the whole call's own URL
            assert resp.url.path == f"/api/calls/{world.calls['A']}/audio"
            continue
        assert resp.status == 404, name
        assert (await resp.json())["error_id"] in ("recording_not_found", "not_found")


async def test_dot_segments_do_not_escape_the_route(world: World) -> None:
    for path in (
        f"/api/calls/{world.calls['A']}/recordings/../../../../etc/passwd",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    ):
        resp = await world.client.get(URL(path, encoded=True), headers=world.auth("admin"))
        assert resp.status in (403, 404), path
        assert "root:" not in await resp.text()


async def test_a_path_outside_the_archive_is_never_served(world: World) -> None:
    resp = await world.get(world.audio("E"), "admin")
    _error(await resp.json(), 404, "recording_file_missing")
    # A relative path climbing out of the archive is refused the same way.
    await world.pool.execute(
        "UPDATE recordings SET path = '../../../etc/hostname' WHERE name = $1", world.rec("A")
    )
    resp = await world.get(world.audio("A"), "admin")
    _error(await resp.json(), 404, "recording_file_missing")


async def test_a_recording_without_file(world: World) -> None:
    resp = await world.get(world.audio("C"), "admin")
    body = await resp.json()
    _error(body, 404, "recording_not_filed")
    assert body["details"]["status"] == "failed"


async def test_unknown_call_id_with_meta_characters(world: World) -> None:
    for call_id in ("x'%20OR%20'1'='1", "%25", "a;b", "*"):
        resp = await world.get(f"/api/calls/{call_id}", "admin")
        _error(await resp.json(), 404, "call_not_found")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "log in or send a bearer token"),
        ({"Authorization": "Bearer vbt_nope"}, "unknown, revoked or disabled token"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "Bearer <token>"),
        ({"Authorization": "Bearer " + "x" * 500}, "Bearer <token>"),
        ({"Cookie": "vb_session=forged"}, "log in or send a bearer token"),
    ],
)
async def test_unauthenticated(world: World, headers: dict[str, str], message: str) -> None:
    resp = await world.get("/api/calls", headers=headers)
    body = await resp.json()
    _error(body, 401, "unauthenticated")
    assert message in body["message"]


async def test_unknown_route_and_method(world: World) -> None:
    resp = await world.get("/api/nothing", "admin")
    _error(await resp.json(), 404, "not_found")
    resp = await world.client.post("/api/calls", headers=world.auth("admin"))
    _error(await resp.json(), 405, "method_not_allowed")


async def test_openapi_is_public_and_names_every_route(world: World) -> None:
    resp = await world.get("/api/openapi.json")
    doc = await resp.json()
    assert resp.status == 200 and doc["openapi"].startswith("3.")
    routes = {
        r.resource.canonical
        for r in world.client.app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/")
    }
    assert routes == set(doc["paths"])


async def test_database_down_is_503(tmp_path: Path) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/verbatim"
    pool = await create_pool(dead)  # min_size 0: starting needs no database
    config = config_for(dead, tmp_path)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(build_deps(config, pool))))
    await client.start_server()
    try:
        resp = await client.get("/api/calls", headers={"Authorization": "Bearer vbt_x"})
        _error(await resp.json(), 503, "database_unavailable")
        page = await client.get("/calls", headers={"Cookie": "vb_session=x"})
        assert page.status == 503 and "not reachable" in await page.text()
        assert (await client.get("/api/openapi.json")).status == 200  # needs no database
    finally:
        await client.close()
        await pool.close()
