"""Roles and scoping: what each role finds, opens, hears and downloads; out of scope is 404."""

from __future__ import annotations

import pytest

from recorder.api.auth import Principal
from recorder.api.scope import Params, call_scope
from recorder.api.search import SearchQuery, search_sql
from tests.harness.api_world import World, world_fixture  # noqa: F401 (fixture)


async def _search(w: World, user: str, query: str = "") -> list[str]:
    resp = await w.get(f"/api/calls?{query}", user)
    assert resp.status == 200, await resp.text()
    letters = {v: k for k, v in w.calls.items()}
    return [letters[c["call_id"]] for c in (await resp.json())["calls"]]


@pytest.mark.parametrize(
    ("user", "visible"),
    [("admin", "EDCBA"), ("intake", "ECA"), ("family", "B"), ("staff201", "DA")],
)
async def test_search_sees_only_the_scope(world: World, user: str, visible: str) -> None:
    assert "".join(await _search(world, user)) == visible
    # Filters narrow the scope, never widen it.
    assert "".join(await _search(world, user, "department=Family%20Law")) == (
        "B" if user in ("admin", "family") else ""
    )
    assert "".join(await _search(world, user, "number=7946")) == (
        "B" if user in ("admin", "family") else ""
    )


async def test_manager_of_intake_cannot_reach_family_law(world: World) -> None:
    b, rec = world.calls["B"], world.rec("B")
    for path in (
        f"/api/calls/{b}",
        f"/api/calls/{b}/recordings/{rec}/audio",
        f"/api/calls/{b}/recordings/{rec}/download",
    ):
        resp = await world.get(path, "intake")
        body = await resp.json()
        assert resp.status == 404, path
        assert body["error_id"] in ("call_not_found", "recording_not_found")
        # Same answer as for something that does not exist: nothing leaks.
        missing = await world.get(path.replace(b, "20990101T000000-ffffffff"), "intake")
        assert missing.status == 404
        assert (await missing.json())["error_id"] == body["error_id"]
    # The family-law manager reaches all three.
    assert (await world.get(f"/api/calls/{b}", "family")).status == 200
    assert (await world.get(world.audio("B"), "family")).status == 200
    assert (await world.get(world.audio("B", kind="download"), "family")).status == 200


async def test_staff_see_their_extension_only(world: World) -> None:
    assert (await world.get(f"/api/calls/{world.calls['A']}", "staff201")).status == 200
    assert (await world.get(world.audio("A"), "staff201")).status == 200
    for letter in "BCE":
        assert (await world.get(f"/api/calls/{world.calls[letter]}", "staff201")).status == 404
    # Staff may listen, not take copies away: a permission (403), not a scope question.
    resp = await world.get(world.audio("A", kind="download"), "staff201")
    assert resp.status == 403
    assert (await resp.json())["details"] == {"permission": "recordings.download"}


async def test_auditor_reads_the_access_log_not_the_calls(world: World) -> None:
    await world.get("/api/calls", "intake")
    assert (await world.get("/api/calls", "auditor")).status == 403
    assert (await world.get(f"/api/calls/{world.calls['A']}", "auditor")).status == 403
    resp = await world.get("/api/access-log", "auditor")
    assert resp.status == 200
    entries = (await resp.json())["entries"]
    assert [(e["user_name"], e["action"]) for e in entries] == [("intake", "search")]
    for user in ("intake", "family", "staff201"):
        assert (await world.get("/api/access-log", user)).status == 403
    assert (await world.get("/api/access-log", "admin")).status == 200


async def test_me_lists_permissions(world: World) -> None:
    body = await (await world.get("/api/me", "intake")).json()
    assert body["role"] == "manager" and body["departments"] == ["Intake"]
    assert body["permissions"] == [
        "calls.control", "calls.read", "calls.search", "recordings.download",
        "recordings.play",
    ]  # fmt: skip


async def test_role_change_and_disable_apply_at_once(world: World) -> None:
    from recorder.api.users import UserStore

    store = UserStore(world.pool)
    await store.set_role("intake", "manager", ["Family Law"], None)
    assert "".join(await _search(world, "intake")) == "B"
    await store.disable("intake")
    resp = await world.get("/api/calls", "intake")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def _principal(role: str, departments: tuple[str, ...] = (), ext: str | None = None) -> Principal:
    return Principal(1, "u", role, departments, ext, "token")


@pytest.mark.parametrize(
    ("principal", "sql", "values"),
    [
        (_principal("admin"), "true", []),
        (_principal("manager", ("Intake", "Tax")), "c.department = ANY($1::text[])",
         [["Intake", "Tax"]]),
        (_principal("staff", ext="201"), "c.extension = $1", ["201"]),
        (_principal("auditor"), "false", []),
        (_principal("manager"), "false", []),  # no departments: nothing
        (_principal("staff"), "false", []),  # no extension: nothing
        (_principal("root"), "false", []),  # unknown role: nothing
    ],
)  # fmt: skip
def test_scope_is_a_sql_condition(principal: Principal, sql: str, values: list[object]) -> None:
    params = Params()
    assert call_scope(principal, params) == sql
    assert params.values == values


def test_search_sql_always_carries_the_scope() -> None:
    sql, args = search_sql(_principal("staff", ext="201"), SearchQuery(department="Intake"))
    where = sql.split("WHERE", 1)[1]
    assert where.startswith(" c.extension = $1 AND c.department = $2")
    # and the page's linked calls are shown as far as the same scope reaches
    assert "o.extension = $3" in sql
    assert args == ["201", "Intake", "201"]


async def test_a_linked_call_out_of_scope_is_not_named(world: World) -> None:
    """An attended transfer linked call A (201, Intake) with call B (Family Law): a user who
    may see A but not B is not told B's id (it says that B exists, and when it began), in
    the call's detail or in search; one who may see both is."""
    a, b = world.calls["A"], world.calls["B"]  # (the tables are emptied for each test)
    await world.pool.execute(
        "UPDATE calls SET linked_calls = $2 WHERE call_id = $1", a, [b])
    await world.pool.execute(
        "INSERT INTO call_events (call_id, asterisk_id, at, kind, channel_id, detail) "
        "SELECT call_id, asterisk_id, started_at, 'transfer.attended', $2, "
        "jsonb_build_object('linked_call', $3::text, 'result', 'Success') FROM calls "
        "WHERE call_id = $1", a, f"{a}-l2", b)
    for user, named in (("staff201", []), ("intake", []), ("admin", [b])):
        detail = await (await world.get(f"/api/calls/{a}", user)).json()
        assert detail["call"]["linked_calls"] == named, user
        (told,) = [e for e in detail["events"] if e["kind"] == "transfer.attended"]
        assert told["detail"].get("linked_call") == (named[0] if named else None), user
        page = await (await world.get("/api/calls", user)).json()
        (row,) = [c for c in page["calls"] if c["call_id"] == a]
        assert row["linked_calls"] == named, user
    html = await (await world.get(f"/calls/{a}", "staff201")).text()
    assert "Attended transfer" in html and b not in html
    # a call with no links says so alike to everyone (null)
    for user in ("staff201", "admin"):
        detail = await (await world.get(f"/api/calls/{world.calls['D']}", user)).json()
        assert detail["call"]["linked_calls"] is None, user
