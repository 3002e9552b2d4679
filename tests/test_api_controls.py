"""In-call controls through the API: POST /api/calls/{id}/controls and GET /api/controls/{id}.

The seeded world's calls have all ended; live calls are added here:
  F  Intake, ext 201    G  Family Law, ext 301    H  Intake, ext 202
A fake daemon (a task using ControlQueue as `verbatim run` does) carries requests out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from recorder.api.routes import DEPS
from recorder.api.users import UserStore
from recorder.common.background import beside
from recorder.db.controls import ControlQueue
from recorder.db.rows import CallRow
from tests.harness.api_world import AST, T0, World, world_fixture  # noqa: F401 (fixture)

LIVE = {"F": ("Intake", "201"), "G": ("Family Law", "301"), "H": ("Intake", "202")}
Decide = Callable[[str, str | None], tuple[str, str]]


@pytest.fixture
async def live(world: World) -> World:
    for letter, (department, extension) in LIVE.items():
        call_id = f"live-{letter.lower()}"
        call = CallRow(
            call_id=call_id, asterisk_id=AST, direction="inbound", caller_number="4155550100",
            caller_e164="+14155550100", callee_number=extension, callee_e164=None,
            extension=extension, department=department, started_at=T0 + timedelta(days=5),
            answered_at=None, ended_at=None, outcome=None, status="active",
        )  # fmt: skip
        await world.repo.save_call(call, [], [])
        world.calls[letter] = call_id
    world.client.app[DEPS].controls.wait_s = 0.3  # the 202 tests need not wait 3 s
    return world


def _default_decision(action: str, tag: str | None) -> tuple[str, str]:
    if action == "start":
        return "rejected", "the policy says never record this number"
    return "done", f"{action} {tag}" if tag else f"{action}d"


@contextlib.asynccontextmanager
async def daemon(w: World, decide: Decide = _default_decision) -> AsyncIterator[None]:
    """What the recording daemon does: wake on NOTIFY (and poll), take, carry out, complete."""
    queue = ControlQueue(w.pool)
    woken = asyncio.Event()
    listener = await queue.listen(AST, woken.set)

    async def run() -> None:
        while True:
            for request in await queue.pending(AST):
                status, detail = decide(request.action, request.tag)
                await queue.complete(request.id, status, detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), 2)
            woken.clear()

    try:
        async with beside(run(), "controls daemon"):
            yield
    finally:
        await queue.unlisten(listener)


async def post(w: World, letter_or_id: str, body: Any, user: str | None = "admin",
               **kw: Any) -> Any:  # fmt: skip
    call_id = w.calls.get(letter_or_id, letter_or_id)
    headers = {**(w.auth(user) if user else {}), **kw.pop("headers", {})}
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    return await w.client.post(f"/api/calls/{call_id}/controls", data=body, headers=headers,
                               allow_redirects=False, **kw)  # fmt: skip


async def control_rows(w: World) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in await w.pool.fetch(
        "SELECT * FROM control_requests ORDER BY id")]  # fmt: skip


def _error(body: dict[str, Any], status: int, error_id: str) -> None:
    assert (body["status"], body["error_id"]) == (status, error_id), body
    assert body["message"] and isinstance(body["details"], dict)


# -- carried out ------------------------------------------------------------------------------


async def test_done_is_200_and_logged(live: World) -> None:
    live.client.app[DEPS].controls.wait_s = 5.0
    async with daemon(live):
        resp = await post(live, "F", {"action": "pause"}, "intake",
                          headers={"User-Agent": "crm/1.0"})  # fmt: skip
        body = await resp.json()
    assert resp.status == 200, body
    [row] = await control_rows(live)
    assert body == {"id": row["id"], "status": "done", "detail": "paused",
                    "url": f"/api/controls/{row['id']}"}  # fmt: skip
    assert (row["call_id"], row["asterisk_id"], row["action"], row["requested_by"]) == (
        live.calls["F"], AST, "pause", "intake",
    )  # fmt: skip
    assert row["status"] == "done" and row["handled_at"] is not None
    [log] = await live.access_rows()
    assert (log["user_name"], log["action"], log["call_id"], log["asterisk_id"]) == (
        "intake", "control", live.calls["F"], AST,
    )  # fmt: skip
    assert log["detail"] == {"control_id": row["id"], "control": "pause"}
    assert log["via"] == "token" and log["user_agent"] == "crm/1.0"
    entries = (await (await live.get("/api/access-log", "auditor")).json())["entries"]
    assert [(e["action"], e["call_id"]) for e in entries][-1] == ("control", live.calls["F"])


async def test_tag_request_carries_its_tag(live: World) -> None:
    live.client.app[DEPS].controls.wait_s = 5.0
    async with daemon(live):
        resp = await post(live, "F", {"action": "tag", "tag": "matter:2026-0113"}, "staff201")
        body = await resp.json()
    assert resp.status == 200 and body["detail"] == "tag matter:2026-0113"
    [row] = await control_rows(live)
    assert (row["action"], row["tag"]) == ("tag", "matter:2026-0113")
    [log] = await live.access_rows()
    assert log["detail"] == {"control_id": row["id"], "control": "tag", "tag": "matter:2026-0113"}


async def test_rejected_is_409_with_the_reason(live: World) -> None:
    live.client.app[DEPS].controls.wait_s = 5.0
    async with daemon(live):
        resp = await post(live, "G", {"action": "start"}, "family")
        body = await resp.json()
    _error(body, 409, "control_rejected")
    assert "never record this number" in body["message"]
    [row] = await control_rows(live)
    assert body["details"] == {"id": row["id"], "status": "rejected",
                               "detail": "the policy says never record this number",
                               "url": f"/api/controls/{row['id']}"}  # fmt: skip


async def test_failed_is_502(live: World) -> None:
    live.client.app[DEPS].controls.wait_s = 5.0
    async with daemon(live, lambda action, tag: ("failed", "Asterisk answered 500")):
        resp = await post(live, "F", {"action": "stop"})
        body = await resp.json()
    _error(body, 502, "control_failed")
    assert body["details"]["status"] == "failed" and "Asterisk answered 500" in body["message"]


async def test_nobody_answering_is_202_pending_then_readable(live: World) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    resp = await post(live, "F", {"action": "resume"}, "intake")
    body = await resp.json()
    assert resp.status == 202, body
    assert 0.25 < loop.time() - start < 3  # waited the configured while
    [row] = await control_rows(live)
    url = f"/api/controls/{row['id']}"
    assert body == {"id": row["id"], "status": "pending", "detail": None, "url": url}
    assert resp.headers["Location"] == url
    got = await live.get(url, "intake")
    state = await got.json()
    assert got.status == 200, state
    assert state["status"] == "pending" and state["handled_at"] is None
    # The daemon comes back and carries it out: the same URL then says so.
    async with daemon(live):
        for _ in range(50):
            state = await (await live.get(url, "staff201")).json()
            if state["status"] == "done":
                break
            await asyncio.sleep(0.1)
    assert state["status"] == "done" and state["detail"] == "resumed"
    assert state["handled_at"] is not None and state["taken_at"] is not None
    assert (state["call_id"], state["action"], state["tag"], state["requested_by"]) == (
        live.calls["F"], "resume", None, "intake",
    )  # fmt: skip
    assert state["call_url"] == f"/api/calls/{live.calls['F']}"
    reads = [r for r in await live.access_rows() if r["detail"].get("read")]
    assert reads and all(r["action"] == "control" and r["call_id"] == live.calls["F"]
                         for r in reads)  # fmt: skip


async def test_the_default_wait_is_about_three_seconds(live: World) -> None:
    from recorder.api.controls import WAIT_S

    assert WAIT_S == 3.0
    live.client.app[DEPS].controls.wait_s = WAIT_S
    loop = asyncio.get_running_loop()
    start = loop.time()
    resp = await post(live, "H", {"action": "pause"}, "intake")
    assert resp.status == 202
    assert 2.9 < loop.time() - start < 5


# -- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "allowed", "hidden"),
    [
        ("admin", "FGH", ""),
        ("intake", "FH", "G"),
        ("family", "G", "FH"),
        ("staff201", "F", "GH"),
    ],
)
async def test_scope_per_role(live: World, user: str, allowed: str, hidden: str) -> None:
    live.client.app[DEPS].controls.wait_s = 5.0
    async with daemon(live):
        for letter in allowed:
            resp = await post(live, letter, {"action": "pause"}, user)
            assert resp.status == 200, (letter, await resp.text())
    for letter in hidden:
        resp = await post(live, letter, {"action": "pause"}, user)
        body = await resp.json()
        _error(body, 404, "call_not_found")
        # The same answer as for a call that does not exist: nothing leaks.
        missing = await post(live, "20990101T000000-ffffffff", {"action": "pause"}, user)
        assert (missing.status, (await missing.json())["error_id"]) == (404, "call_not_found")
    rows = await control_rows(live)
    assert sorted(r["call_id"] for r in rows) == sorted(live.calls[x] for x in allowed)
    denied = [r for r in await live.access_rows() if r["detail"].get("denied")]
    assert sorted(r["call_id"] for r in denied if r["call_id"].startswith("live")) == sorted(
        live.calls[x] for x in hidden
    )
    assert all(r["action"] == "control" and r["detail"]["denied"] == "not_found" for r in denied)


async def test_auditor_and_anonymous(live: World) -> None:
    resp = await post(live, "F", {"action": "pause"}, "auditor")
    body = await resp.json()
    _error(body, 403, "permission_denied")
    assert body["details"] == {"permission": "calls.control"}
    resp = await post(live, "F", {"action": "pause"}, None)
    _error(await resp.json(), 401, "unauthenticated")
    assert await control_rows(live) == []
    # Reading a request needs the permission too.
    queue = ControlQueue(live.pool)
    request_id = await queue.submit(live.calls["F"], "pause", None, "admin")
    _error(await (await live.get(f"/api/controls/{request_id}", "auditor")).json(), 403,
           "permission_denied")  # fmt: skip
    _error(await (await live.get(f"/api/controls/{request_id}")).json(), 401, "unauthenticated")


async def test_me_lists_the_control_permission(live: World) -> None:
    for user, expected in (("admin", True), ("intake", True), ("staff201", True),
                           ("auditor", False)):  # fmt: skip
        me = await (await live.get("/api/me", user)).json()
        assert ("calls.control" in me["permissions"]) is expected, user


async def test_reading_a_request_is_scoped(live: World) -> None:
    queue = ControlQueue(live.pool)
    on_g = await queue.submit(live.calls["G"], "pause", None, "family")
    assert (await live.get(f"/api/controls/{on_g}", "family")).status == 200
    assert (await live.get(f"/api/controls/{on_g}", "admin")).status == 200
    for user in ("intake", "staff201"):
        resp = await live.get(f"/api/controls/{on_g}", user)
        _error(await resp.json(), 404, "control_not_found")
    for bad in ("999999", "0", "-1", "abc", "1e3", "9" * 30):
        resp = await live.get(f"/api/controls/{bad}", "admin")
        _error(await resp.json(), 404, "control_not_found")
    denied = [r for r in await live.access_rows() if r["detail"].get("denied")]
    assert {(r["user_name"], r["detail"]["control_id"]) for r in denied} >= {
        ("intake", on_g), ("staff201", on_g), ("admin", 999999),
    }  # fmt: skip


# -- refused ----------------------------------------------------------------------------------


async def test_an_ended_call_is_409(live: World) -> None:
    resp = await post(live, "A", {"action": "pause"}, "admin")
    body = await resp.json()
    _error(body, 409, "call_ended")
    assert body["details"] == {"call_id": live.calls["A"]}
    # Out of scope comes first: the family-law manager learns nothing about call A.
    resp = await post(live, "A", {"action": "pause"}, "family")
    _error(await resp.json(), 404, "call_not_found")
    assert await control_rows(live) == []
    logged = [(r["user_name"], r["detail"]) for r in await live.access_rows()]
    assert logged == [
        ("admin", {"control": "pause", "denied": "call_ended"}),
        ("family", {"control": "pause", "denied": "not_found"}),
    ]


@pytest.mark.parametrize(
    ("body", "parameter"),
    [
        ({"action": "explode"}, "action"),
        ({"action": "PAUSE"}, "action"),
        ({"action": 5}, "action"),
        ({"action": None}, "action"),
        ({}, "action"),
        ({"tag": "matter:1"}, "action"),
        ({"action": "tag"}, "tag"),
        ({"action": "tag", "tag": None}, "tag"),
        ({"action": "tag", "tag": ""}, "tag"),
        ({"action": "tag", "tag": "x" * 101}, "tag"),
        ({"action": "tag", "tag": "matter\u0000"}, "tag"),
        ({"action": "tag", "tag": "a\u0007b"}, "tag"),
        ({"action": "tag", "tag": "line\nbreak"}, "tag"),
        ({"action": "tag", "tag": "a\u009bb"}, "tag"),
        ({"action": "tag", "tag": "a\u200bb"}, "tag"),
        ({"action": "tag", "tag": 7}, "tag"),
        ({"action": "tag", "tag": ["a"]}, "tag"),
        ({"action": "pause", "tag": "matter:1"}, "tag"),
        ({"action": "pause", "reason": "card number"}, "reason"),
        ('{"action": "pause", "action": "stop"}', "action"),
        ('{"action": "tag", "tag": "\\ud800"}', "tag"),  # a lone surrogate
        ("pause", "body"),
        ("", "body"),
        ("[]", "body"),
        ('"pause"', "body"),
        ("null", "body"),
        ('{"action": "pause"', "body"),
        (b"\xff\xfe{}", "body"),
        ("[" * 5000 + "]" * 5000, "body"),  # too deep (and too large: 413 comes first)
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    live: World, body: Any, parameter: str
) -> None:
    headers = {"Content-Type": "application/json"}
    resp = await post(live, "F", body, headers=headers)
    answer = await resp.json()
    if parameter == "body" and isinstance(body, str) and len(body) > 4096:
        _error(answer, 413, "request_too_large")
    else:
        _error(answer, 400, "invalid_parameter")
        assert answer["details"]["parameter"] == parameter
        assert answer["message"].startswith(f"{parameter}:")
    assert await control_rows(live) == []


async def test_deep_json_within_the_size_limit(live: World) -> None:
    resp = await post(live, "F", "[" * 2000 + "]" * 2000,
                      headers={"Content-Type": "application/json"})  # fmt: skip
    _error(await resp.json(), 400, "invalid_parameter")


async def test_oversized_and_wrong_media_type(live: World) -> None:
    padded = json.dumps({"action": "tag", "tag": "x" * 5000})
    _error(await (await post(live, "F", padded,
                             headers={"Content-Type": "application/json"})).json(),
           413, "request_too_large")  # fmt: skip
    huge = "x" * 100_000  # beyond the application's own limit
    resp = await post(live, "F", huge, headers={"Content-Type": "application/json"})
    _error(await resp.json(), 413, "request_too_large")
    resp = await post(live, "F", "action=pause",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    body = await resp.json()
    _error(body, 415, "unsupported_media_type")
    assert body["details"] == {"content_type": "application/x-www-form-urlencoded"}
    resp = await post(live, "F", b'{"action": "pause"}')  # no Content-Type at all
    _error(await resp.json(), 415, "unsupported_media_type")
    # The JSON media type with a charset parameter is fine.
    live.client.app[DEPS].controls.wait_s = 0
    resp = await post(live, "F", '{"action": "pause"}',
                      headers={"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert resp.status == 202
    assert len(await control_rows(live)) == 1


async def test_wrong_method_and_bad_call_ids(live: World) -> None:
    resp = await live.get(f"/api/calls/{live.calls['F']}/controls", "admin")
    _error(await resp.json(), 405, "method_not_allowed")
    for call_id in ("x'%20OR%20'1'='1", "%25", "a;b"):
        resp = await post(live, call_id, {"action": "pause"})
        _error(await resp.json(), 404, "call_not_found")


async def test_sessions_refuse_other_sites(live: World) -> None:
    store = UserStore(live.pool)
    user = await store.get("intake")
    assert user is not None
    session, _csrf = await store.open_session(user, "127.0.0.1", 3600)
    cookie = {"Cookie": f"vb_session={session}"}
    resp = await post(live, "F", {"action": "pause"}, None,
                      headers={**cookie, "Origin": "https://evil.example"})  # fmt: skip
    body = await resp.json()
    _error(body, 403, "cross_origin")
    assert await control_rows(live) == []
    # From the site itself (or a client sending no Origin) it is a request like any other.
    own = f"http://{live.client.host}:{live.client.port}"
    resp = await post(live, "F", {"action": "pause"}, None, headers={**cookie, "Origin": own})
    assert resp.status == 202, await resp.text()
    [log] = await live.access_rows()
    assert (log["user_name"], log["via"], log["action"]) == ("intake", "session", "control")
    # A bearer token is not a browser's ambient credential: Origin does not matter there.
    resp = await post(live, "F", {"action": "resume"}, "intake",
                      headers={"Origin": "https://crm.example"})  # fmt: skip
    assert resp.status == 202


async def test_a_call_that_ends_while_asking(live: World) -> None:
    """The call ends between the scoped look-up and the insert: still a 409, nothing stored."""
    from recorder.api.controls import ControlService

    service: ControlService = live.client.app[DEPS].controls
    original = service.queue.submit

    async def end_then_submit(*args: Any, **kwargs: Any) -> int:
        await live.pool.execute(
            "UPDATE calls SET status = 'ended', ended_at = now() WHERE call_id = $1",
            live.calls["F"],
        )
        return await original(*args, **kwargs)

    object.__setattr__(service.queue, "submit", end_then_submit)
    resp = await post(live, "F", {"action": "pause"})
    _error(await resp.json(), 409, "call_ended")
    assert await control_rows(live) == []
