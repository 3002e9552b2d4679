"""Input that used to get a 500 (issue 14): each answers a clear 4xx now, or 503 when the access
log cannot be written. Real server, real PostgreSQL; the bytes aiohttp's client will not send
(non-UTF-8 header values and bodies) go over a raw socket."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from recorder.web.pages import _safe_next
from tests.harness import rawhttp
from tests.harness.api_world import PASSWORD, World, web_fixture  # noqa: F401 (fixture)


async def _raw(w: World, method: str, target: str, headers: rawhttp.Headers,
               body: bytes = b"") -> tuple[int, bytes]:  # fmt: skip
    data = rawhttp.request_bytes(method, target.encode(), headers, body)
    assert w.client.port is not None
    response = await rawhttp.send(w.client.host, w.client.port, data)
    return rawhttp.status_of(response), rawhttp.body_of(response)


def _bearer(w: World, user: str = "admin") -> tuple[bytes, bytes]:
    return b"Authorization", f"Bearer {w.tokens[user]}".encode()


def _api_error(body: bytes, status: int, error_id: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(body)
    assert (found["status"], found["error_id"]) == (status, error_id), found
    return found


async def _login_form(w: World) -> str:
    """Fetch the login form (its CSRF cookie lands in the client's jar); its CSRF token."""
    html = await (await w.client.get("/login")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer vbt_\xc3\xa9t\xc3\xa9"])
async def test_authorization_not_utf8_or_not_ascii(web: World, value: bytes) -> None:
    _, body = await _raw(web, "GET", "/api/calls", [(b"Authorization", value)])
    assert "Bearer <token>" in _api_error(body, 401, "unauthenticated")["message"]


async def test_session_cookie_not_utf8(web: World) -> None:
    cookie = (b"Cookie", b"vb_session=\xff\xfeabc")
    status, body = await _raw(web, "GET", "/api/calls", [cookie])
    _api_error(body, 401, "unauthenticated")
    status, _ = await _raw(web, "GET", "/calls", [cookie])
    assert status == 303  # to the login form, like any unknown session


async def test_user_agent_not_utf8_is_refused_before_anything_is_logged(web: World) -> None:
    status, body = await _raw(
        web, "GET", "/api/calls", [_bearer(web), (b"User-Agent", b"curl/8 \xff\xfe")]
    )
    found = _api_error(body, 400, "invalid_header")
    assert found["details"] == {"header": "User-Agent"}
    status, _ = await _raw(
        web, "GET", f"/calls/{web.calls['A']}", [_bearer(web), (b"User-Agent", b"\xc0")]
    )
    assert status == 400
    assert await web.access_rows() == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (b"application/x-www-form-urlencoded", b"name=\xff\xfe&password=x&csrf=x"),
        (b"application/x-www-form-urlencoded; charset=no-such-charset", b"name=admin"),
        (b"multipart/form-data; boundary=XX",
         b'--XX\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--XX--\r\n'),
        (b"multipart/form-data; boundary=XX",  # a file where a text field belongs
         b'--XX\r\nContent-Disposition: form-data; name="name"; filename="a.txt"\r\n'
         b"Content-Type: text/plain\r\n\r\nadmin\r\n--XX--\r\n"),
    ],
)  # fmt: skip
async def test_form_bodies_not_utf8(web: World, content_type: bytes, body: bytes) -> None:
    for path in ("/login", "/logout"):
        status, page = await _raw(web, "POST", path, [(b"Content-Type", content_type)], body)
        assert status == 400, (path, page[-300:])
        assert b"form" in page


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "ad\x00min"},
        {"csrf": "caf\u00e9"},  # hmac.compare_digest refuses non-ASCII str
    ],
)
async def test_login_fields_a_database_or_compare_cannot_take(
    web: World, fields: dict[str, str]
) -> None:
    data = {"name": "admin", "password": PASSWORD, "csrf": await _login_form(web), **fields}
    resp = await web.client.post("/login", data=data, allow_redirects=False)
    assert resp.status == 400, await resp.text()
    assert await web.pool.fetchval("SELECT count(*) FROM web_sessions") == 0


@pytest.mark.parametrize("next_url", ["/calls\r\nSet-Cookie: x=1", "/calls\x00", "/c\u2028"])
async def test_login_next_with_control_characters_goes_to_calls(
    web: World, next_url: str
) -> None:
    data = {"name": "admin", "password": PASSWORD, "csrf": await _login_form(web),
            "next": next_url}  # fmt: skip
    resp = await web.client.post("/login", data=data, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/calls"


async def test_logout_csrf_not_ascii(web: World) -> None:
    resp = await web.client.post(
        "/login",
        data={"name": "admin", "password": PASSWORD, "csrf": await _login_form(web)},
        allow_redirects=False,
    )
    assert resp.status == 303
    resp = await web.client.post("/logout", data={"csrf": "\u00e9t\u00e9"},
                                   allow_redirects=False)  # fmt: skip
    assert resp.status == 400
    assert await web.pool.fetchval("SELECT count(*) FROM web_sessions") == 1


# Times Python takes but PostgreSQL's timestamptz (or asyncpg's encoder) does not; strings with
# a NUL; ids past bigint.
_BAD_SEARCH_CURSORS = [
    rawhttp.cursor("0001-01-01T00:00:00+05:00", "x"),
    rawhttp.cursor("9999-12-31T23:59:59-05:00", "x"),
    rawhttp.cursor("0001-01-01T00:00:00+00:00", "x"),
    rawhttp.cursor("2026-03-02T09:00:00+00:00", "a\u0000b"),
    rawhttp.cursor("2026-03-02T09:00:00+00:00", "\ud800"),
]
_BAD_ACCESS_CURSORS = [
    rawhttp.cursor("0001-01-01T00:00:00+05:00", 1),
    rawhttp.cursor("9999-12-31T23:59:59-05:00", 1),
    rawhttp.cursor("2026-03-02T09:00:00+00:00", 2**63),
    rawhttp.cursor("2026-03-02T09:00:00+00:00", -(2**70)),
]
# sort=length: a length is an integer column (-1: none); a bigint failed in the query (500)
_BAD_LENGTH_CURSORS = [rawhttp.cursor(2**31, "x"), rawhttp.cursor(2**40, "x"),
                       rawhttp.cursor(-(2**31) - 1, "x"), rawhttp.cursor(-2, "x")]


@pytest.mark.parametrize(
    ("api", "page", "user", "cursor"),
    [("/api/calls", "/calls", "admin", c) for c in _BAD_SEARCH_CURSORS]
    + [("/api/access-log", "/access-log", "auditor", c) for c in _BAD_ACCESS_CURSORS]
    + [("/api/calls?sort=length", "/calls?sort=length", who, c)
       for c in _BAD_LENGTH_CURSORS for who in ("admin", "staff201")],
)
async def test_hand_made_cursor_out_of_range(
    web: World, api: str, page: str, user: str, cursor: str
) -> None:
    join = "&" if "?" in api else "?"
    resp = await web.get(f"{api}{join}cursor={cursor}", user)
    body = await resp.json()
    assert (resp.status, body["details"]["parameter"]) == (400, "cursor")
    html = await web.get(f"{page}{join}cursor={cursor}", user)
    assert html.status == 400 and "cursor: is not a cursor" in await html.text()


_FAIL_ACCESS_LOG = """
CREATE FUNCTION test_refuse_access_log() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
CREATE TRIGGER test_refuse_access_log BEFORE INSERT ON access_log
FOR EACH ROW EXECUTE FUNCTION test_refuse_access_log();
"""


async def test_failed_access_log_write_is_503_and_sends_nothing(web: World) -> None:
    await web.pool.execute(_FAIL_ACCESS_LOG)
    try:
        resp = await web.get(f"/api/calls/{web.calls['A']}", "admin")
        body = await resp.json()
        assert (resp.status, body["error_id"]) == (503, "access_log_failed")
        assert "legs" not in body
        audio = await web.get(web.audio("A"), "admin")
        assert audio.status == 503 and audio.headers["Content-Type"].startswith("application/json")
        # the refused start is no playback to go on with: the rest of the file is refused
        # too (before: served from byte 1, unlogged, for ten minutes)
        rest = await web.get(web.audio("A"), "admin", headers={"Range": "bytes=1-"})
        assert rest.status == 503
        whole = f"/api/calls/{web.calls['A']}/audio"
        assert (await web.get(whole, "admin")).status == 503
        assert (await web.get(whole, "admin", headers={"Range": "bytes=44-"})).status == 503
        page = await web.get("/calls", "admin")
        assert page.status == 503 and web.calls["A"] not in await page.text()
    finally:
        await web.pool.execute(
            "DROP TRIGGER test_refuse_access_log ON access_log; "
            "DROP FUNCTION test_refuse_access_log()"
        )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/calls?number=555-0100", True),
        ("/calls/20260302T090000-aaaaaaaa", True),
        ("/access-log?from=2026-03-01&user=a%40b", True),
        ("/", True),
        ("", False),
        ("calls", False),
        ("//evil.example/x", False),
        ("/\\evil.example", False),
        ("/calls\\..", False),
        ("https://evil.example/", False),
        ("/calls\r\nSet-Cookie: x=1", False),
        ("/calls\x00", False),
        ("/calls\x7f", False),
        ("/caf\u00e9", False),  # path_qs is percent-encoded: never raw non-ASCII
        ("/calls ", False),
    ],
)
def test_safe_next_table(given: str, kept: bool) -> None:
    assert _safe_next(given) == (given if kept else "/calls")
