"""Arbitrary bytes where clients put text: header values (Authorization, Cookie, User-Agent,
Origin, Range, Content-Type), form and JSON bodies, and cursors and other query values, sent to
every route of the API and the web page. Whatever arrives, the answer is a response below 500.

Requests go over raw sockets (tests/rawhttp.py) to the server of the schemathesis test, so
bytes reach aiohttp exactly as generated. Bounded: derandomised, a fixed number of examples
(about four seconds here).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.api.server import build_deps, make_app
from recorder.api.users import UserStore
from tests.harness import rawhttp
from tests.harness.api_world import PASSWORD, ApiServer, config_for, password_hash

EXAMPLES = 300
FOCUSED = 100  # more on cursors (four routes take one) and bodies (three routes)
CSRF = "fuzz-login-csrf-0123456789"
SEARCH_KEYS = ("from", "to", "number", "extension", "department", "tag", "case", "user",
               "action", "limit", "order", "outcome", "direction", "min_duration")  # fmt: skip


@pytest.fixture(name="server")
def server_fixture(pg_dsn: str, tmp_path: Path) -> Iterator[ApiServer]:
    archive = tmp_path / "archive"
    archive.mkdir()
    with ApiServer(pg_dsn, archive) as running:
        yield running


def _routes(server: ApiServer) -> list[tuple[str, str]]:
    """Every route the app has, with its path parameters filled by real ids."""
    app = make_app(build_deps(config_for(server.dsn, server.archive), None))
    call = server.calls["A"]
    fill = {"{call_id}": call, "{name}": f"{call}-s1", "{control_id}": "1"}
    found = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        if path.startswith("/static"):
            path = "/static/style.css"
        for key, value in fill.items():
            path = path.replace(key, value)
        found.add((route.method, path))
    return sorted(found)


def _junk(max_size: int = 40) -> st.SearchStrategy[bytes]:
    """Any bytes but CR and LF, which would end the header line (framing, not content)."""
    return st.binary(max_size=max_size).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _times() -> st.SearchStrategy[str]:
    zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])
    # The ends of Python's range, where a time zone carries the UTC time past what PostgreSQL
    # and asyncpg's encoder take, are the interesting values: drawn often, not by luck.
    edges = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59)])
    found = st.one_of(
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31)),
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        edges,
    )
    return st.builds(lambda t, z: t.replace(tzinfo=z).isoformat(), found, zones)


def _texts(max_size: int = 20) -> st.SearchStrategy[str]:
    """Any text, and often one with a NUL (which PostgreSQL cannot store)."""
    return st.text(max_size=max_size) | st.text(max_size=max_size).map(lambda t: t + "\x00")


def _cursors(path: str) -> st.SearchStrategy[str]:
    values = st.one_of(_times(), _texts(), st.integers(), st.floats(), st.none())
    # Mostly the shape the route hands out, (time, call id) or (time, row id), so hand-made
    # values reach the database; any list, or any bytes, too.
    row_ids = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 10**30])  # past bigint
    key = row_ids if "access-log" in path else _texts()
    shaped = st.tuples(_times(), key).map(list)
    made = st.one_of(shaped, shaped, st.lists(values, max_size=3)).map(
        lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")
    )
    return st.one_of(made, made, st.binary(max_size=60).map(quote_from_bytes))


def _bodies(path: str) -> st.SearchStrategy[bytes]:
    """What a client posts to `path`, with arbitrary field values; or any bytes."""
    text = _texts(30)
    if path == "/login":
        # Past the CSRF check, the name reaches the database; the admin's logins succeed (and
        # never fail, so the throttle does not stop them) and redirect to `next`.
        fields = st.fixed_dictionaries(
            {"name": st.just("admin"), "password": st.just(PASSWORD), "csrf": st.just(CSRF),
             "next": text.map(lambda t: "/" + t)}
        ) | st.fixed_dictionaries(
            {"name": text, "password": text, "csrf": st.just(CSRF)}, optional={"next": text}
        ) | st.fixed_dictionaries(
            {}, optional={"name": text, "password": text, "csrf": text, "next": text}
        )  # fmt: skip
    elif path == "/logout":
        fields = st.fixed_dictionaries({"csrf": text})
    else:  # a control's JSON
        control = st.fixed_dictionaries(
            {"action": st.sampled_from(["tag", "pause"]) | text},
            optional={"tag": text | st.integers()},
        )
        return control.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200)
    return fields.map(lambda d: urlencode(d).encode()) | st.binary(max_size=200)


# Where the arbitrary input goes in one request; everything else in it is valid.
SLOTS = ("authorization", "cookie", "user-agent", "origin", "range", "content-type", "body",
         "query")  # fmt: skip
CURSOR_PATHS = ("/api/calls", "/calls", "/api/access-log", "/access-log")


def _fits(slot: str, route: tuple[str, str]) -> bool:
    if slot in ("body", "content-type"):
        return route[0] == "POST"
    return route[1] in CURSOR_PATHS if slot == "cursor" else True


@st.composite
def _requests(draw: st.DrawFn, server: ApiServer, routes: list[tuple[str, str]],
              sessions: dict[str, str], slots: tuple[str, ...] = SLOTS) -> bytes:  # fmt: skip
    slot = draw(st.sampled_from(slots))
    method, path = draw(st.sampled_from([r for r in routes if _fits(slot, r)]))
    junk = _junk()
    tokens = [f"Bearer {t}".encode() for t in server.tokens.values()]
    session_cookies = [f"vb_session={s}".encode() for s in sessions.values()]
    # Valid credentials, the admin's mostly (who may use every route), so that the arbitrary
    # part reaches the handlers: the login form with its CSRF cookie, the log-out a session.
    authorization, cookies = None, []
    if path == "/login":
        cookies.append(f"vb_login_csrf={CSRF}".encode())
    elif path == "/logout":
        cookies.append(draw(st.sampled_from(session_cookies)))
    else:
        admin = st.sampled_from([tokens[0], session_cookies[0]])
        who = draw(admin | st.sampled_from([*tokens, *session_cookies, None]))
        if who in session_cookies:
            cookies.append(who)
        else:
            authorization = who
    if slot == "authorization":
        authorization = draw(junk | junk.map(lambda b: b"Bearer " + b))
    elif slot == "cookie":
        cookies = [draw(st.sampled_from([b"vb_session=", b"vb_login_csrf=", b""])) + draw(junk)]
    headers: rawhttp.Headers = []
    if authorization is not None:
        headers.append((b"Authorization", authorization))
    if cookies:
        headers.append((b"Cookie", b"; ".join(cookies)))
    if slot in ("user-agent", "origin", "range"):
        headers.append((slot.title().encode(), draw(junk)))
    if slot == "content-type":
        kinds = [b"application/x-www-form-urlencoded; charset=", b"multipart/form-data; boundary=",
                 b""]  # fmt: skip
        headers.append((b"Content-Type", draw(st.sampled_from(kinds)) + draw(junk)))
    elif method == "POST":
        api = path.startswith("/api/")
        headers.append((b"Content-Type",
                        b"application/json" if api else b"application/x-www-form-urlencoded"))
    query = ""
    if slot == "cursor":
        query = "?cursor=" + draw(_cursors(path))
    elif slot == "query":
        key = draw(st.sampled_from(SEARCH_KEYS))
        query = f"?{key}=" + quote_from_bytes(draw(st.binary(max_size=30)))
    body = draw(_bodies(path)) if method == "POST" else b""
    return rawhttp.request_bytes(method, (path + query).encode(), headers, body)


def _open_sessions(server: ApiServer) -> dict[str, str]:
    async def work(pool: Any) -> dict[str, str]:
        store = UserStore(pool)
        await pool.execute("UPDATE users SET password_hash = $1", password_hash())
        found = {}
        for name in ("admin", "auditor"):
            user = await store.get(name)
            assert user is not None
            found[name], _ = await store.open_session(user, "127.0.0.1", 3600)
        return found

    return server.call(work)


def test_arbitrary_bytes_never_get_a_server_error(server: ApiServer) -> None:
    routes = _routes(server)
    sessions = _open_sessions(server)
    # The generator can reach the real paths: a well-formed request with each credential is
    # answered 200.
    for credential in ((b"Authorization", f"Bearer {server.tokens['admin']}".encode()),
                       (b"Cookie", f"vb_session={sessions['admin']}".encode())):  # fmt: skip
        ok = rawhttp.send_sync(server.port, rawhttp.request_bytes("GET", b"/api/calls",
                                                                  [credential]))  # fmt: skip
        assert rawhttp.status_of(ok) == 200, ok[-300:]

    for slots, examples in ((SLOTS, EXAMPLES), (("cursor",), FOCUSED), (("body",), FOCUSED)):

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(data=_requests(server, routes, sessions, slots))
        def check(data: bytes) -> None:
            response = rawhttp.send_sync(server.port, data)
            status = rawhttp.status_of(response)
            assert 0 < status < 500, (data, response[-400:])

        check()
