"""The web page's handlers, on the same services, permissions and access log as the API.

Sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure, and __Host- prefixed,
when served over TLS), stored hashed server-side with its expiry and a CSRF token. Forms that
change state (log in, log out) carry a CSRF token: a double-submit cookie before login, the
session's token after; a cross-site Origin header is refused as well.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
import subprocess
import time
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web
from multidict import MultiDict

from recorder.api.access_log import ACCESS_ACTIONS, parse_access_query
from recorder.api.auth import (
    Permission,
    Principal,
    new_secret,
    principal_of,
    require,
    same_secret,
    secure_cookies,
    session_cookie_name,
)
from recorder.api.errors import ApiError
from recorder.api.params import printable
from recorder.api.routes import deps, origin, path_id, range_start
from recorder.api.search import COUNT_CAP, parse_search
from recorder.common.direction import DIRECTIONS
from recorder.db.rows import OUTCOMES
from recorder.storage.audio import AudioError
from recorder.web import callpage, callview, playback, render
from recorder.web.forms import read_form, signed_in
from recorder.web.holds import add_hold_pages

log = structlog.get_logger(__name__)
STATIC: Final = Path(__file__).parent / "static"
LOGIN_CSRF_COOKIE: Final = "vb_login_csrf"


class LoginThrottle:
    """At most `attempts` failed logins per user name in `window_s`: slows password guessing
    (argon2 already makes each guess cost the server, not just the guesser). Names are the
    guesser's to choose, so the table is bounded (`max_names`), but never by forgetting a
    name that is locked out: before, past 10,000 names the whole table was cleared, and a
    flood of junk names unlocked the name being guessed."""

    def __init__(self, attempts: int = 5, window_s: float = 900.0,
                 max_names: int = 10_000) -> None:
        self.attempts, self.window_s, self.max_names = attempts, window_s, max_names
        self._failures: dict[str, list[float]] = {}

    def blocked(self, name: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(name.lower(), []) if now - t < self.window_s]
        if recent:
            self._failures[name.lower()] = recent
        else:
            self._failures.pop(name.lower(), None)
        return len(recent) >= self.attempts

    def failed(self, name: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._failures.setdefault(name.lower(), []).append(now)
        if len(self._failures) > self.max_names:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Down to three quarters of the bound (so not at every failure of a flood): failures
        past the window first, then the names not locked out, the longest idle first."""
        live = {k: kept for k, v in self._failures.items()
                if (kept := [t for t in v if now - t < self.window_s])}
        keep = self.max_names * 3 // 4
        if len(live) > keep:
            locked = {k: v for k, v in live.items() if len(v) >= self.attempts}
            others = sorted((k for k in live if k not in locked), key=lambda k: live[k][-1],
                            reverse=True)[:max(keep - len(locked), 0)]
            live = {**locked, **{k: live[k] for k in others}}
        self._failures = live

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.lower(), None)


THROTTLE: Final = web.AppKey("verbatim_login_throttle", LoginThrottle)


# A path on this site as request.path_qs gives it (percent-encoded, so printable ASCII): no
# scheme, no host, no //evil.example, nothing a Location header cannot carry (CR, LF, NUL).
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")


def _safe_next(value: str | None) -> str:
    return value if value and _LOCAL_PATH.fullmatch(value) else "/calls"


def _same_origin(request: web.Request) -> None:
    found = request.headers.get("Origin")
    if found is not None and found != f"{request.scheme}://{request.host}":
        raise ApiError(403, "cross_origin", "form posted from another site", {"origin": found})


def _login_page(request: web.Request, status: int = 200, name: str = "",
                error: str | None = None, next_url: str = "/calls") -> web.Response:  # fmt: skip
    csrf = new_secret()
    response = web.Response(text=render.login_form(csrf, next_url, name, error), status=status,
                            content_type="text/html")  # fmt: skip
    response.set_cookie(
        LOGIN_CSRF_COOKIE, csrf, path="/login", httponly=True, samesite="Strict",
        secure=secure_cookies(deps(request).http), max_age=3600,
    )  # fmt: skip
    return response


def _redirect(location: str) -> web.Response:
    # A response rather than a raised HTTPSeeOther, so cookies can be set on it.
    return web.Response(status=303, headers={"Location": location})


def _html(title: str, body: str, principal: Principal | None, status: int = 200) -> web.Response:
    return web.Response(text=render.page(title, body, principal), status=status,
                        content_type="text/html")  # fmt: skip


async def index(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    if principal is not None and not principal.may(Permission.CALLS_SEARCH):
        raise web.HTTPSeeOther("/access-log")
    raise web.HTTPSeeOther("/calls")


async def login_form(request: web.Request) -> web.StreamResponse:
    if principal_of(request) is not None:
        raise web.HTTPSeeOther("/calls")
    return _login_page(request, next_url=_safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    form = await read_form(request)
    name, password = form.get("name", ""), form.get("password", "")
    next_url = _safe_next(form.get("next"))
    if not printable(name):  # a NUL PostgreSQL cannot take; no user name has one
        return _login_page(request, 400, "", "A user name is letters, digits and . _ @ -",
                           next_url)  # fmt: skip
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not same_secret(cookie, form.get("csrf", "")):
        return _login_page(request, 400, name, "The form expired; please try again.", next_url)
    d, throttle = deps(request), request.app[THROTTLE]
    if throttle.blocked(name):
        return _login_page(request, 429, name, "Too many failed attempts; wait 15 minutes.",
                           next_url)  # fmt: skip
    user = await d.users.by_password(name, password) if name and password else None
    if user is None:
        throttle.failed(name)
        return _login_page(request, 401, name, "Wrong user name or password.", next_url)
    throttle.succeeded(name)
    previous = request.cookies.get(session_cookie_name(d.http))
    if previous:  # a fresh session id at every login (no fixation); the old one ends
        await d.users.close_session(previous)
    session, _ = await d.users.open_session(user, request.remote, d.http.session_max_s)
    response = _redirect(next_url)
    response.set_cookie(
        session_cookie_name(d.http), session, path="/", httponly=True, samesite="Strict",
        secure=secure_cookies(d.http), max_age=d.http.session_max_s,
    )  # fmt: skip
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    form = await read_form(request)
    principal = principal_of(request)
    session = request.cookies.get(session_cookie_name(deps(request).http))
    if principal is None or session is None or principal.csrf_token is None:
        raise web.HTTPSeeOther("/login")
    if not same_secret(form.get("csrf", ""), principal.csrf_token):
        raise ApiError(400, "csrf_mismatch", "the form expired; reload the page and try again")
    await deps(request).users.close_session(session)
    response = _redirect("/login")
    response.del_cookie(session_cookie_name(deps(request).http), path="/")
    return response


def _search_values(request: web.Request) -> dict[str, str]:
    # An empty form field means "any": drop it instead of rejecting it like the API does.
    return {k: v for k, v in request.query.items() if v.strip() and k not in ("cursor",)}


async def calls(request: web.Request) -> web.StreamResponse:
    principal = signed_in(request, Permission.CALLS_SEARCH)
    d = deps(request)
    values = _search_values(request)
    form = render.search_form(values, d.departments, DIRECTIONS, OUTCOMES)
    query_values = dict(values)
    if "cursor" in request.query:
        query_values["cursor"] = request.query["cursor"]
    try:
        query = parse_search(MultiDict(query_values), d.region)
    except ApiError as err:
        return _html("Calls", form + render.alert(err.message), principal, err.status)
    found = await d.calls.search(principal, query, origin(request), count=True)
    more = render.next_link("/calls", values, found.next_cursor)
    return _html("Calls", form + render.results(found.calls, more, values, found.total,
                                                COUNT_CAP), principal)  # fmt: skip


CSV_ROWS: Final = 10_000  # one export; narrow the search for more
CSV_COLUMNS: Final = (
    "call_id", "started_at", "answered_at", "ended_at", "duration_s", "direction",
    "caller_number", "caller_e164", "callee_number", "callee_e164", "extension", "department",
    "outcome", "recordings", "recorded_ms", "tags",
)  # fmt: skip


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    out = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A spreadsheet runs a cell starting with = + - @ as a formula: keep it text.
    return "'" + out if out[:1] in ("=", "+", "-", "@", "\t", "\r") else out


async def calls_csv(request: web.Request) -> web.StreamResponse:
    """The search's matches as CSV (at most CSV_ROWS), logged as a search like any other."""
    principal = signed_in(request, Permission.CALLS_SEARCH)
    d = deps(request)
    values = {k: v for k, v in _search_values(request).items() if k != "limit"}
    query = parse_search(MultiDict(values), d.region)
    rows: list[dict[str, object]] = []
    page = dataclasses.replace(query, limit=min(CSV_ROWS, 1000))
    found = await d.calls.search(principal, page, origin(request), export="csv")
    rows += found.calls
    while found.next_cursor and len(rows) < CSV_ROWS:  # the rest, page by page (one log row)
        after = parse_search(MultiDict({**values, "cursor": found.next_cursor}), d.region).after
        found = await d.calls.search_more(principal, dataclasses.replace(page, after=after))
        rows += found.calls
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows[:CSV_ROWS]:
        writer.writerow([_cell(row.get(col)) for col in CSV_COLUMNS])
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="calls.csv"'})  # fmt: skip


async def call_page(request: web.Request) -> web.StreamResponse:
    principal = signed_in(request, Permission.CALLS_READ)
    call_id = path_id(request, "call_id")
    d = deps(request)
    view = await callview.load(d.calls, principal, call_id, origin(request), "view")
    await d.access_log.record(principal, "view", origin(request), call_id=call_id)
    waves = await callview.waveforms(view, d.calls.derived_root)
    back = request.query.get("back", "")
    back_link = ""
    if back.startswith("/calls") and _safe_next(back) == back and "/calls/" not in back:
        back_link = f'<p><a href="{render.e(back)}">Back to the calls found</a></p>'
    body = back_link + callpage.call_page(
        view, can_play=principal.may(Permission.RECORDINGS_PLAY),
        can_download=principal.may(Permission.RECORDINGS_DOWNLOAD),
        admin=principal.role == "admin", waves=waves,
    )  # fmt: skip
    html = render.page(f"Call of {render.when(view.parts['call']['started_at'])}", body,
                       principal, scripts=("/static/call.js",))  # fmt: skip
    return web.Response(text=html, content_type="text/html")


async def whole_call_audio(request: web.Request) -> web.StreamResponse:
    """The whole call as one WAV (recorder.web.playback), with HTTP Range; one access-log
    row per playback, as for a recording."""
    principal = require(request, Permission.RECORDINGS_PLAY)
    call_id = path_id(request, "call_id")
    d = deps(request)
    view = await callview.load(d.calls, principal, call_id, origin(request), "play")
    if not view.pieces:
        raise ApiError(404, "nothing_recorded", f"call {call_id} has no recorded audio",
                       {"call_id": call_id})  # fmt: skip
    try:
        path = await asyncio.to_thread(playback.whole_call, d.calls.derived_root, call_id,
                                       view.pieces)  # fmt: skip
    except (AudioError, OSError, subprocess.SubprocessError) as exc:
        log.error("recording.whole_call_failed", call_id=call_id, error=str(exc))
        raise ApiError(503, "whole_call_unavailable", "the whole call could not be assembled; "
                       "play its recordings one by one", {"call_id": call_id}) from None
    usable, start = range_start(request)
    call = view.parts["call"]
    key = (call["asterisk_id"], f"{call_id}:whole-call")
    if request.method == "GET" and usable and d.playback.starts_playback(
        principal, "play", key, start
    ):
        used = sorted({name for name, p in view.files.items()
                       if str(p) in {x.path for x in view.pieces}})  # fmt: skip
        await d.access_log.record(
            principal, "play", origin(request), call_id=call_id,
            asterisk_id=call["asterisk_id"],
            detail={"whole_call": True, "recordings": used,
                    "range": request.headers.get("Range")},
        )  # fmt: skip
        d.playback.logged(principal, "play", key)
    filename = re.sub(r"[^A-Za-z0-9._+-]", "_", call_id)
    return web.FileResponse(path, headers={
        "Content-Type": "audio/wav", "Content-Disposition": f'inline; filename="{filename}.wav"',
    })  # fmt: skip


async def access_log_page(request: web.Request) -> web.StreamResponse:
    principal = signed_in(request, Permission.ACCESS_LOG_READ)
    d = deps(request)
    values = {k: v for k, v in request.query.items() if v.strip() and k != "cursor"}
    query_values = dict(values)
    if "cursor" in request.query:
        query_values["cursor"] = request.query["cursor"]
    form = render.access_form(values, ACCESS_ACTIONS)
    try:
        query = parse_access_query(MultiDict(query_values))
    except ApiError as err:
        return _html("Access log", form + render.alert(err.message), principal, err.status)
    entries, cursor = await d.access_log.read(principal, query, origin(request))
    more = render.next_link("/access-log", values, cursor)
    return _html("Access log", form + render.access_entries(entries, more), principal)


def add_routes(app: web.Application) -> None:
    app[THROTTLE] = LoginThrottle()
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/calls", calls)
    app.router.add_get("/calls.csv", calls_csv)
    app.router.add_get("/calls/{call_id}", call_page)
    app.router.add_get("/api/calls/{call_id}/audio", whole_call_audio)
    app.router.add_get("/access-log", access_log_page)

    add_hold_pages(app)  # /holds, for admins
    app.router.add_static("/static/", STATIC, follow_symlinks=False, append_version=False)
