"""The web page without a browser: login with CSRF, session cookies, search, a call's page,
roles, logout, expiry and the security headers."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from recorder.api.auth import digest
from recorder.config import HttpConfig
from tests.harness.api_world import (  # noqa: F401 (web_fixture: the `web` fixture)
    PASSWORD,
    World,
    _csrf,
    login,
    password_hash,
    start_world,
    web_fixture,
)


def _set_cookie(resp: Any, name: str) -> Any:
    for header in resp.headers.getall("Set-Cookie", []):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar[name]
    raise AssertionError(f"no Set-Cookie {name}: {resp.headers}")


async def test_login_search_open_a_call(web: World) -> None:
    first = await web.client.get("/calls?number=555-0100", allow_redirects=False)
    assert first.status == 303
    location = urlsplit(first.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"next": ["/calls?number=555-0100"]}

    resp = await login(web, "intake", next_url="%2Fcalls%3Fnumber%3D555-0100")
    assert resp.status == 303 and resp.headers["Location"] == "/calls?number=555-0100"
    cookie = _set_cookie(resp, "vb_session")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain HTTP on loopback
    stored = await web.pool.fetchval("SELECT id_sha256 FROM web_sessions")
    assert stored == digest(cookie.value) != cookie.value  # only a hash is kept

    page = await web.client.get("/calls?number=555-0100")
    html = await page.text()
    assert page.status == 200
    assert f'href="/calls/{web.calls["A"]}?back=%2Fcalls%3Fnumber%3D555-0100"' in html
    assert web.calls["C"] not in html  # filtered out by number
    assert '<label for="f-number">' in html and "<caption>" in html

    call = await web.client.get(f"/calls/{web.calls['A']}")
    html = await call.text()
    assert call.status == 200
    assert html.count('<audio controls preload="none"') == 2
    assert f'src="/api/calls/{web.calls["A"]}/recordings/{web.rec("A")}/audio"' in html
    assert "Download Segment 1" in html  # managers may download
    assert "Transferred by 201 to 202" in html and "matter:2026-0113" in html
    actions = [(r["action"], r["via"]) for r in await web.access_rows()]
    assert actions == [("search", "session"), ("view", "session")]


async def test_staff_page_has_no_download_and_auditor_no_calls(web: World) -> None:
    await login(web, "staff201")
    html = await (await web.client.get(f"/calls/{web.calls['A']}")).text()
    assert "<audio" in html and "Download" not in html
    assert (await web.client.get(f"/calls/{web.calls['B']}")).status == 404
    web.client.session.cookie_jar.clear()
    await login(web, "auditor")
    resp = await web.client.get("/calls")
    assert resp.status == 403 and "calls.search" in await resp.text()
    log = await web.client.get("/access-log")
    assert log.status == 200 and "staff201" in await log.text()
    views = await (await web.client.get("/access-log?user=staff201&action=view&from=")).text()
    assert views.count("<td>staff201</td>") == 2  # A, and the denied attempt on B
    assert '<label for="f-user">' in views
    bad = await web.client.get("/access-log?action=delete")
    assert bad.status == 400 and "action: must be one of" in await bad.text()
    index = await web.client.get("/", allow_redirects=False)
    assert index.headers["Location"] == "/access-log"


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"csrf": "forged"}, 400, "The form expired"),
        ({"password": "wrong password!"}, 401, "Wrong user name or password"),
        ({"name": "nobody"}, 401, "Wrong user name or password"),
    ],
)
async def test_login_refusals(web: World, fields: dict[str, str], status: int,
                              message: str) -> None:  # fmt: skip
    form = await web.client.get("/login")
    data = {"name": "intake", "password": PASSWORD, "csrf": _csrf(await form.text()), **fields}
    resp = await web.client.post("/login", data=data, allow_redirects=False)
    assert resp.status == status and message in await resp.text()
    assert await web.pool.fetchval("SELECT count(*) FROM web_sessions") == 0


async def test_cross_site_post_and_open_redirect_refused(web: World) -> None:
    form = await web.client.get("/login")
    data = {"name": "intake", "password": PASSWORD, "csrf": _csrf(await form.text())}
    resp = await web.client.post("/login", data=data, headers={"Origin": "http://evil.example"})
    assert resp.status == 403
    resp = await login(web, "intake", next_url="//evil.example/x")
    assert resp.headers["Location"] == "/calls"


async def test_throttle_after_repeated_failures(web: World) -> None:
    for _ in range(5):
        assert (await login(web, "intake", "not the password")).status == 401
    resp = await login(web, "intake")
    assert resp.status == 429 and "Too many failed attempts" in await resp.text()


async def test_logout_needs_the_csrf_token_and_ends_the_session(web: World) -> None:
    await login(web, "intake")
    cookie = web.client.session.cookie_jar.filter_cookies(web.client.make_url("/"))["vb_session"]
    bad = await web.client.post("/logout", data={"csrf": "x"}, allow_redirects=False)
    assert bad.status == 400
    html = await (await web.client.get("/calls")).text()
    resp = await web.client.post("/logout", data={"csrf": _csrf(html)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    assert await web.pool.fetchval("SELECT count(*) FROM web_sessions") == 0
    replay = await web.client.get(
        "/api/calls", headers={"Cookie": f"vb_session={cookie.value}"}
    )
    assert replay.status == 401


async def test_idle_and_expired_sessions_end(web: World) -> None:
    await login(web, "intake")
    assert (await web.client.get("/calls", allow_redirects=False)).status == 200
    await web.pool.execute("UPDATE web_sessions SET last_seen_at = now() - interval '31 min'")
    assert (await web.client.get("/calls", allow_redirects=False)).status == 303
    await login(web, "intake")
    await web.pool.execute("UPDATE web_sessions SET expires_at = now() - interval '1 s'")
    assert (await web.client.get("/calls", allow_redirects=False)).status == 303


async def test_bad_search_shows_the_form_with_the_problem(web: World) -> None:
    await login(web, "admin")
    resp = await web.client.get("/calls?from=yesterday&number=")
    html = await resp.text()
    assert resp.status == 400
    assert 'role="alert"' in html and "from: must be a date" in html
    assert 'value="yesterday"' in html  # the form keeps what was typed


async def test_security_headers(web: World) -> None:
    resp = await web.client.get("/login")
    h = resp.headers
    assert "default-src 'none'" in h["Content-Security-Policy"]
    assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "same-origin"
    assert h["Cache-Control"] == "no-store" and h["X-Content-Type-Options"] == "nosniff"
    css = await web.client.get("/static/style.css")
    assert css.status == 200 and "Cache-Control" not in css.headers


async def test_secure_cookies_behind_tls(pg_dsn: str, tmp_path: Path) -> None:
    w = await start_world(pg_dsn, tmp_path, HttpConfig(secure_cookies=True), passwords=False)
    try:
        await w.pool.execute("UPDATE users SET password_hash = $1", password_hash())
        form = await w.client.get("/login")
        assert _set_cookie(form, "vb_login_csrf")["secure"]
        # The browser would not send a Secure cookie over plain HTTP: pass it by hand.
        csrf = _csrf(await form.text())
        resp = await w.client.post(
            "/login", data={"name": "admin", "password": PASSWORD, "csrf": csrf},
            headers={"Cookie": f"vb_login_csrf={csrf}"}, allow_redirects=False,
        )  # fmt: skip
        cookie = _set_cookie(resp, "__Host-vb_session")
        assert cookie["secure"] and cookie["httponly"] and cookie["path"] == "/"
    finally:
        await w.client.close()
        await w.pool.close()


async def test_results_count_sort_export_and_keep_the_filters(web: World) -> None:
    await login(web, "intake")
    html = await (await web.client.get("/calls?direction=inbound")).text()
    assert "2 calls match." in html  # A and E: Intake's inbound calls
    # sorted by length, longest first, the filters kept in every link
    assert 'href="/calls?direction=inbound&amp;sort=length&amp;order=desc"' in html
    longest = await (await web.client.get("/calls?direction=inbound&sort=length")).text()
    assert longest.index(web.calls["A"]) < longest.index(web.calls["E"])  # 95 s, 15 s
    shortest = await (await web.client.get(
        "/calls?direction=inbound&sort=length&order=asc")).text()
    assert shortest.index(web.calls["E"]) < shortest.index(web.calls["A"])
    assert 'aria-sort="ascending"' in shortest
    paged = await (await web.client.get("/calls?sort=length&limit=1")).text()
    more = re.search(r'href="([^"]+)" rel="next"', paged)
    assert more and "sort=length" in more.group(1)
    second = await (await web.client.get(more.group(1).replace("&amp;", "&"))).text()
    assert web.calls["A"] not in second and "More calls" in second  # C (40 s) after A (95 s)
    # the call's page links back to the results it was opened from
    link = re.search(r'href="(/calls/[^"]+)"', longest)
    assert link
    page = await (await web.client.get(link.group(1).replace("&amp;", "&"))).text()
    assert 'href="/calls?direction=inbound&amp;sort=length">Back to the calls found' in page
    # CSV export of the result, logged like any search
    resp = await web.client.get("/calls.csv?direction=inbound&sort=length")
    body = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    lines = body.splitlines()
    assert lines[0].startswith("call_id,started_at") and len(lines) == 3
    assert lines[1].startswith(web.calls["A"]) and ",'+14155550100," in lines[1]
    exports = [r for r in await web.access_rows() if r["detail"].get("export") == "csv"]
    assert len(exports) == 1 and exports[0]["detail"]["results"] == 2
    assert exports[0]["detail"]["filters"] == {"direction": "inbound"}


def test_a_flood_of_names_does_not_unlock_a_locked_name() -> None:
    """Names are the guesser's: the table is bounded, but a name locked out stays locked
    however many junk names follow (before: past 10,000 names the table was cleared)."""
    from recorder.web.pages import LoginThrottle

    throttle = LoginThrottle(attempts=5, window_s=900, max_names=100)
    for i in range(5):
        throttle.failed("admin", now=i)
    assert throttle.blocked("admin", now=10)
    for i in range(1000):  # junk names, one failure each
        throttle.failed(f"junk{i}", now=10 + i / 100)
    assert throttle.blocked("admin", now=30)
    assert len(throttle._failures) <= 100  # bounded all the same
    assert not throttle.blocked("admin", now=1000)  # the window passed: unlocked
    throttle.failed("bob", now=1000)
    assert not throttle.blocked("bob", now=1001)
