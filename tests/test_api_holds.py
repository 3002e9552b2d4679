"""Legal holds through the API and the web page: admins only, every action in the access log,
bad input a 400 naming the field, the two-admin release."""

from __future__ import annotations

import re
from typing import Any

from recorder.api.routes import DEPS
from tests.harness.api_world import (  # noqa: F401 (fixture)
    World,
    login,
    web_fixture,
    world_fixture,
)

HOLD = {"name": "Smith v. Jones", "reason": "preserve for discovery",
        "department": "Intake", "from": "2026-03-01", "to": "2026-03-31"}  # fmt: skip


async def post(world: World, path: str, body: Any, user: str = "admin") -> Any:
    return await world.client.post(path, json=body, headers=world.auth(user))


async def test_place_list_read_release(world: World) -> None:
    resp = await post(world, "/api/holds", HOLD)
    assert resp.status == 201
    hold = await resp.json()
    assert resp.headers["Location"] == hold["url"] == f"/api/holds/{hold['id']}"
    assert (hold["status"], hold["department"], hold["created_by"]) == ("active", "Intake",
                                                                       "admin")  # fmt: skip
    assert (hold["from"], hold["to"]) == ("2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00")
    # The seeded Intake calls of March are held now.
    held = await world.pool.fetch("SELECT call_id FROM calls c WHERE call_held(c) ORDER BY 1")
    assert [r["call_id"] for r in held] == sorted(world.calls[x] for x in "ACE")

    listing = await (await world.get("/api/holds?state=active", "admin")).json()
    assert [h["id"] for h in listing["holds"]] == [hold["id"]]
    assert (await world.get(hold["url"], "admin")).status == 200

    resp = await post(world, f"{hold['url']}/release", {"reason": "settled"})
    released = await resp.json()
    assert resp.status == 200 and released["status"] == "released"
    assert released["release_reason"] == "settled"
    assert await world.pool.fetchval("SELECT count(*) FROM calls c WHERE call_held(c)") == 0
    again = await post(world, f"{hold['url']}/release", {"reason": "settled"})
    assert again.status == 409 and (await again.json())["error_id"] == "hold_released"

    log = [(r["action"], r["via"], r["detail"]["hold"]) for r in await world.access_rows()]
    assert log == [("hold", "token", "place"), ("hold", "token", "list"),
                   ("hold", "token", "read"), ("hold", "token", "release"),
                   ("hold", "token", "release")]  # fmt: skip


async def test_two_admins(world: World) -> None:
    world.client.app[DEPS].holds.release_needs_two = True  # the policy's retention setting
    hold = await (await post(world, "/api/holds", {**HOLD, "extension": "201"})).json()
    asked = await (await post(world, f"{hold['url']}/release", {"reason": "closed"})).json()
    assert asked["status"] == "release_pending"
    same = await post(world, f"{hold['url']}/release", {"reason": "closed"})
    assert same.status == 409 and (await same.json())["error_id"] == "release_needs_second_admin"
    await world.client.app[DEPS].users.add("admin2", "admin", [], None)
    world.tokens["admin2"] = await world.client.app[DEPS].users.issue_token("admin2")
    done = await post(world, f"{hold['url']}/release", {"reason": "agreed"}, "admin2")
    body = await done.json()
    assert done.status == 200 and (body["status"], body["released_by"]) == ("released", "admin2")


async def test_only_admins(world: World) -> None:
    for user in ("intake", "auditor", "staff201"):
        assert (await post(world, "/api/holds", HOLD, user)).status == 403
        assert (await world.get("/api/holds", user)).status == 403
    assert (await world.client.get("/api/holds")).status == 401
    assert await world.pool.fetchval("SELECT count(*) FROM holds") == 0


async def test_refused_hold_actions_are_audited_too(world: World) -> None:
    """An attempt refused before it reaches a hold (no permission, a bad body, a release with
    no reason) is a row of the access log, as docs/keeping.md says (before: none)."""
    assert (await post(world, "/api/holds", HOLD, "intake")).status == 403
    assert (await post(world, "/api/holds", {**HOLD, "colour": "red"})).status == 400
    hold = await (await post(world, "/api/holds", HOLD)).json()
    assert (await post(world, f"{hold['url']}/release", {}, "auditor")).status == 403
    assert (await post(world, f"{hold['url']}/release", {})).status == 400
    assert (await world.client.post("/api/holds", json=HOLD)).status == 401  # nobody to name
    log = [(r["user_name"], r["detail"]["hold"], r["detail"].get("denied"),
            r["detail"].get("hold_id")) for r in await world.access_rows()]
    assert log == [("intake", "place", "permission_denied", None),
                   ("admin", "place", "invalid_parameter", None),
                   ("admin", "place", None, hold["id"]),
                   ("auditor", "release", "permission_denied", hold["id"]),
                   ("admin", "release", "invalid_parameter", hold["id"])]  # fmt: skip


async def test_bad_requests_name_the_field(world: World) -> None:
    cases = [
        ({"name": "X", "reason": "r"}, "tag"),
        ({**HOLD, "colour": "red"}, "colour"),
        ({**HOLD, "number": "call me"}, "number"),
        ({**HOLD, "from": "yesterday"}, "from"),
        ([HOLD], "body"),
        # a lone surrogate, which PostgreSQL cannot store (500 before)
        ({**HOLD, "name": "a\ud800b"}, "name"),
        ({**HOLD, "reason": "\udfff"}, "reason"),
        ({**HOLD, "department": "x\ud800"}, "department"),
    ]
    for body, field in cases:
        resp = await post(world, "/api/holds", body)
        assert resp.status == 400, body
        assert (await resp.json())["details"]["parameter"] == field
    resp = await world.client.post("/api/holds", data="name=x", headers=world.auth("admin"))
    assert resp.status == 415
    assert (await world.get("/api/holds?state=open", "admin")).status == 400
    assert (await world.get("/api/holds/abc", "admin")).status == 404
    assert (await world.get("/api/holds/12345", "admin")).status == 404
    assert (await post(world, "/api/holds/1/release", {})).status == 400


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_web_page_for_admins(web: World) -> None:
    await login(web, "admin")
    page = await web.client.get("/holds")
    html = await page.text()
    assert page.status == 200 and 'href="/holds"' in html and "No holds." in html
    form = {"csrf": _csrf(html), "name": "Matter 7", "reason": "court order", "tag": "matter:7",
            "number": "", "from": ""}  # fmt: skip
    placed = await web.client.post("/holds", data=form)
    html = await placed.text()
    assert placed.status == 200 and "Hold 1 (Matter 7) placed." in html
    assert "Matter or tag: matter:7" in html and "Holding" in html
    bad = await web.client.post("/holds", data={**form, "tag": "", "name": "Nothing"})
    assert bad.status == 400 and "give at least one of" in await bad.text()
    no_csrf = await web.client.post("/holds/1/release", data={"reason": "x"})
    assert no_csrf.status == 400
    # a digit that is no ASCII digit ("²": str.isdigit, not int) is no hold (500 before)
    odd = await web.client.post("/holds/%C2%B2/release", data={"csrf": form["csrf"],
                                                              "reason": "x"})
    assert odd.status == 404
    released = await web.client.post("/holds/1/release", data={"csrf": form["csrf"],
                                                               "reason": "order lifted"})
    assert released.status == 200 and "Hold 1 (Matter 7): released." in await released.text()
    actions = [(r["action"], r["via"]) for r in await web.access_rows()]
    assert ("hold", "session") in actions
    refused = [r["detail"] for r in await web.access_rows() if r["detail"].get("denied")]
    assert {"hold": "place", "denied": "invalid_parameter"} in refused  # the bad form too


async def test_web_page_refuses_others(web: World) -> None:
    await login(web, "intake")
    html = await (await web.client.get("/calls")).text()
    assert 'href="/holds"' not in html
    assert (await web.client.get("/holds")).status == 403
