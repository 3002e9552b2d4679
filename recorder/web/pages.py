"""The web page's handlers, on the same services, permissions and access log as the API.

Sessions: a random id in an HttpOnly, SameSite=Strict cookie (Secure, and __Host- prefixed,
when served over TLS), stored hashed server-side with its expiry and a CSRF token. Forms that
change state (log in, log out) carry a CSRF token: a double-submit cookie before login, the
session's token after; a cross-site Origin header is refused as well.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Final
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from recorder.api.audit import ACTIONS, parse_access_query
from recorder.api.auth import Permission, Principal, new_secret, principal_of
from recorder.api.errors import ApiError, forbidden
from recorder.api.routes import deps, origin, path_id
from recorder.api.search import DIRECTIONS, parse_search
from recorder.api.server import secure_cookies, session_cookie_name
from recorder.db.rows import OUTCOMES
from recorder.web import render

STATIC: Final = Path(__file__).parent / "static"
LOGIN_CSRF_COOKIE: Final = "vb_login_csrf"


class LoginThrottle:
    """At most `attempts` failed logins per user name in `window_s`: slows password guessing
    (argon2 already makes each guess cost the server, not just the guesser)."""

    def __init__(self, attempts: int = 5, window_s: float = 900.0) -> None:
        self.attempts, self.window_s = attempts, window_s
        self._failures: dict[str, list[float]] = {}

    def blocked(self, name: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(name.lower(), []) if now - t < self.window_s]
        self._failures[name.lower()] = recent
        return len(recent) >= self.attempts

    def failed(self, name: str, now: float | None = None) -> None:
        self._failures.setdefault(name.lower(), []).append(
            time.monotonic() if now is None else now
        )
        if len(self._failures) > 10_000:  # names are attacker-chosen: bound the memory
            self._failures.clear()

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.lower(), None)


THROTTLE: Final = web.AppKey("verbatim_login_throttle", LoginThrottle)


def _safe_next(value: str | None) -> str:
    """Only a path on this site: no scheme, no host, no //evil.example."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/calls"
    return value


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


def _signed_in(request: web.Request, permission: Permission) -> Principal:
    principal = principal_of(request)
    if principal is None:
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    if not principal.may(permission):
        raise forbidden(permission.value)
    return principal


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
    form = await request.post()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    next_url = _safe_next(str(form.get("next", "")))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, str(form.get("csrf", ""))):
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
    form = await request.post()
    principal = principal_of(request)
    session = request.cookies.get(session_cookie_name(deps(request).http))
    if principal is None or session is None or principal.csrf_token is None:
        raise web.HTTPSeeOther("/login")
    if not hmac.compare_digest(principal.csrf_token, str(form.get("csrf", ""))):
        raise ApiError(400, "csrf_mismatch", "the form expired; reload the page and try again")
    await deps(request).users.close_session(session)
    response = _redirect("/login")
    response.del_cookie(session_cookie_name(deps(request).http), path="/")
    return response


async def calls(request: web.Request) -> web.StreamResponse:
    principal = _signed_in(request, Permission.CALLS_SEARCH)
    d = deps(request)
    # An empty form field means "any": drop it instead of rejecting it like the API does.
    values = {k: v for k, v in request.query.items() if v.strip() and k != "cursor"}
    form = render.search_form(values, d.departments, DIRECTIONS, OUTCOMES)
    query_values = dict(values)
    if "cursor" in request.query:
        query_values["cursor"] = request.query["cursor"]
    try:
        query = parse_search(MultiDict(query_values), d.region)
    except ApiError as err:
        return _html("Calls", form + render.alert(err.message), principal, err.status)
    found = await d.calls.search(principal, query, origin(request))
    more = render.next_link("/calls", values, found.next_cursor)
    return _html("Calls", form + render.results(found.calls, more), principal)


async def call_page(request: web.Request) -> web.StreamResponse:
    principal = _signed_in(request, Permission.CALLS_READ)
    call_id = path_id(request, "call_id")
    detail = await deps(request).calls.detail(principal, call_id, origin(request))
    body = render.call_detail(detail, principal.may(Permission.RECORDINGS_DOWNLOAD))
    return _html(f"Call of {render.when(detail['call']['started_at'])}", body, principal)


async def access_log_page(request: web.Request) -> web.StreamResponse:
    principal = _signed_in(request, Permission.ACCESS_LOG_READ)
    d = deps(request)
    values = {k: v for k, v in request.query.items() if v.strip() and k != "cursor"}
    query_values = dict(values)
    if "cursor" in request.query:
        query_values["cursor"] = request.query["cursor"]
    form = render.access_form(values, ACTIONS)
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
    app.router.add_get("/calls/{call_id}", call_page)
    app.router.add_get("/access-log", access_log_page)
    from recorder.web.holds import add_hold_pages

    add_hold_pages(app)  # /holds, for admins
    app.router.add_static("/static/", STATIC, follow_symlinks=False, append_version=False)
