"""Wiring and serving: the aiohttp application (API + web page), its middlewares, TLS.

`make_app` takes its collaborators (Deps) ready-made, so tests build it on the test database;
`serve` builds them from the configuration. Middlewares, outermost first: errors (renders every
failure), then authentication (bearer token or session cookie → request["principal"], or
anonymous; each handler asks for the permission it needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from recorder.api.access_log import AccessLog, PlaybackTracker
from recorder.api.auth import PRINCIPAL, session_cookie_name, well_formed_secret
from recorder.api.controls import ControlService
from recorder.api.errors import Handler, error_middleware, unauthenticated
from recorder.api.routes import DEPS, Deps, add_routes
from recorder.api.service import CallService
from recorder.api.users import UserStore
from recorder.config import Config, HttpConfig
from recorder.db.repository import Repository
from recorder.storage.objects import S3Store, s3_store

log = structlog.get_logger("verbatim.http")

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; media-src 'self'; "
    "img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/static/"):
        return await handler(request)  # public files: no session lookup per stylesheet
    d = request.app[DEPS]
    principal = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not well_formed_secret(token):
            raise unauthenticated("the Authorization header must be 'Bearer <token>'")
        principal = await d.users.by_token(token)
        if principal is None:
            raise unauthenticated("unknown, revoked or disabled token")
    else:
        session = request.cookies.get(session_cookie_name(d.http))
        if session and well_formed_secret(session):
            principal = await d.users.by_session(session, d.http.session_idle_s)
    if principal is not None:
        request[PRINCIPAL] = principal
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    # Search URLs hold phone numbers: never sent to another site. (Not "no-referrer": with it
    # browsers send "Origin: null" on the page's own form posts, defeating the Origin check.)
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Content-Security-Policy", _CSP)
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")  # call data stays out of shared caches
    if request.secure:
        h.setdefault("Strict-Transport-Security", "max-age=31536000")


def make_app(deps: Deps) -> web.Application:
    from recorder.api.holds import add_hold_routes
    from recorder.web.pages import add_routes as add_page_routes

    # Requests are small (query strings, a login form, a control's JSON): refuse large bodies
    # early.
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=65536)
    app[DEPS] = deps
    add_routes(app)
    add_hold_routes(app)
    add_page_routes(app)
    app.on_response_prepare.append(_security_headers)
    return app


async def create_pool(dsn: str, min_size: int = 0, max_size: int = 5) -> Any:
    """A pool for the API. min_size 0: the server starts and answers 503 while PostgreSQL is
    down. Custom plans always: search parameters are skewed (a small department, a rare
    number), and a cached generic plan picked for one would be slow for another. No JIT: every
    API query is short, and a plan whose estimate crosses jit_above_cost (the partial-number
    week walk's, costed as if every week were walked) would pay ~100 ms compiling. No parallel
    workers: their start-up cost more than a page's walk saves (10 M calls, 4 digits: p50 3.5
    -> 31 ms when the planner chose them), and the partial-number page takes the first rows of
    a UNION ALL (the window's, then the weeks' batches in order), an order only a serial
    Append keeps."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=Repository.init_connection,
        server_settings={"plan_cache_mode": "force_custom_plan", "jit": "off",
                         "max_parallel_workers_per_gather": "0"},
    )


def build_deps(config: Config, pool: Any, objects: S3Store | None = None) -> Deps:
    """`objects`: the bucket of storage.s3 (s3_store with no office), for recordings moved
    there."""
    from recorder.keeping.holds import Holds
    from recorder.policy import load_policy, numbering_from
    from recorder.storage.keys import RecordingKeys, open_keyring

    access = AccessLog(pool)
    policy = load_policy(config.calls.policy_file, numbering_from(config.calls))
    keyring = open_keyring(config)
    keys = None if keyring is None else RecordingKeys(pool, keyring)
    return Deps(
        users=UserStore(pool),
        calls=CallService(pool, config.storage.archive_dir, access, objects, keys),
        controls=ControlService(pool, access),
        access_log=access,
        playback=PlaybackTracker(),
        http=config.http,
        region=config.calls.default_region,
        departments=tuple(config.calls.departments),
        holds=Holds(pool, policy.retention_policy.release_needs_two),
        zone=policy.time_zone,
    )


def ssl_context(http: HttpConfig) -> ssl.SSLContext | None:
    if not http.tls:
        return None
    assert http.tls_cert is not None and http.tls_key is not None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(http.tls_cert, http.tls_key)
    return ctx


@contextlib.asynccontextmanager
async def serving(config: Config, pool: Any) -> AsyncIterator[web.AppRunner]:
    """The API and page listening on http.host:http.port until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        objects = None
        if config.storage.s3 is not None:  # also after a switch back to local: moved ones play
            objects = await stack.enter_async_context(s3_store(config.storage.s3))
        async with _listening(config, build_deps(config, pool, objects)) as runner:
            yield runner


@contextlib.asynccontextmanager
async def _listening(config: Config, deps: Deps) -> AsyncIterator[web.AppRunner]:
    runner = web.AppRunner(make_app(deps), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, config.http.host, config.http.port, ssl_context=ssl_context(config.http)
        )
        await site.start()
        scheme = "https" if config.http.tls else "http"
        log.info("http.listening", url=f"{scheme}://{config.http.host}:{config.http.port}/")
        yield runner
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def http_if_enabled(config: Config) -> AsyncIterator[None]:
    """For `verbatim run`: serve the API and page beside the daemon when http.enabled."""
    if not config.http.enabled:
        yield
        return
    pool = await create_pool(
        config.database.dsn.reveal(), 0, max(1, config.database.pool_max // 2)
    )
    try:
        async with serving(config, pool):
            yield
    finally:
        await pool.close()


async def serve(config: Config) -> None:
    """`verbatim serve`: the API and page alone (no ARI), until SIGTERM/SIGINT."""
    from recorder.db.connect import connect_database
    from recorder.db.migrate import pending_migrations

    repo = await connect_database(config)  # waits, logging why, while PostgreSQL is down
    try:
        missing = await pending_migrations(repo.pool)
    finally:
        await repo.close()
    if missing:
        raise SystemExit(f"database schema is not up to date (missing {', '.join(missing)}): "
                         "run `verbatim migrate` first")  # fmt: skip
    pool = await create_pool(
        config.database.dsn.reveal(), config.database.pool_min, config.database.pool_max
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serving(config, pool):
            await stop.wait()
    finally:
        await pool.close()
