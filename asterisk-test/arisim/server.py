"""The simulator's HTTP face: ARI under /ari (REST + events WebSocket) and /_sim/ control.

Requests are answered as res/res_ari.c does: Basic auth or `api_key=user:pass` (401 "Authentication
required" otherwise), a trailing slash gets 404 "ARI URLs do not end with a slash. Try /ari/...",
routing and 404/405 per the spec (spec.py), form bodies merged into the query, a JSON body that
does not parse → 400 "Error parsing request body". Work a reply announces (StasisStart of a
created channel, Dial events, RecordingStarted) runs after the reply is written.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import rest_bridges, rest_channels, rest_misc  # noqa: F401 - they register handlers
from .agi import Agi
from .appdial import DialApp
from .attended import AttendedTransfers
from .bridges import Bridging
from .bus import Render
from .channels import ChannelLife
from .core import RequestRecord
from .dialing import Dialling
from .engine import Engine
from .events import EventRecord
from .media import Media
from .mixmonitor import Monitor
from .pbx import Pbx
from .playbacks import Player
from .recordings import Recorder
from .rest import HANDLERS, ApiResponse, Args, error
from .spec import ast_true
from .transfers import Transfers
from .wiring import Wiring

log = logging.getLogger("arisim")
_REALM = "Asterisk REST Interface"


class Simulator(Engine):
    """A simulated Asterisk 22 speaking ARI; the constructor options are Core's.

    The parts (media, recorder, ...) are built here, each on the world and the parts it
    needs; the order they are built in is the order they hear the bus."""

    _runner: web.AppRunner | None = None
    base_url: str = ""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Parts that call each other both ways get `wiring` (wiring.py), set as the rest is built.
        wiring = Wiring()
        self.media = Media(self)
        self.bridging = Bridging(self)
        self.life = ChannelLife(self, self.bridging, wiring, wiring)
        self.pbx = Pbx(self, self.life, wiring, wiring)
        self.agi = wiring.agi = Agi(self, self.life, self.pbx, self.agi_patience_s)
        self.dialling = wiring.dialling = Dialling(self, self.life, self.pbx, wiring,
                                                   self.create_stasis_delay)
        self.dial_app = wiring.dial_app = DialApp(self, self.life, self.bridging, self.dialling,
                                                  self.pbx, self.agi)
        self.recorder = Recorder(self, self.media, self.life)
        self.monitor = wiring.monitor = Monitor(self, self.media, self.recorder, self.pbx)
        self.player = Player(self, self.recorder)
        self.transfers = Transfers(self, self.life, self.bridging, self.pbx)
        self.attended = AttendedTransfers(self, self.life, self.bridging, self.transfers,
                                          self.dialling)

    def make_app(self) -> web.Application:
        """The aiohttp application: /ari (REST, events WebSocket) and /_sim/ control."""
        from .control import add_control_routes

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("GET", "/ari/events", self._events)
        app.router.add_route("*", "/ari/{tail:.*}", self._ari)
        add_control_routes(self, app)
        return app

    # ------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the base URL (http://host:port)."""
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        self.base_url = f"http://{host}:{sock.getsockname()[1]}"
        self.clock.start()
        return self.base_url

    async def stop(self) -> None:
        await self.agi.stop_agi()
        await self.clock.stop()
        with self.action():
            for rec in list(self.recordings.values()):
                if rec.writer is not None:
                    rec.writer.close()
        await self.hub.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------- clock
    async def advance(self, seconds: float) -> float:
        """Move virtual time (manual clock); timers fire in order, the client reacts after each."""
        return await self.clock.advance(seconds)

    async def drop_websockets(self) -> None:
        """Close every events WebSocket; channels stay in their apps (events meanwhile lost)."""
        await self.hub.drop_all()

    async def restart(self) -> None:
        """Asterisk dies and comes back: the events WebSocket drops, every channel, bridge,
        playback and live recording is gone without an event (nothing is left to send one),
        and what the recordings had written stays in the spool as stored recordings."""
        with self.action():
            self.bus.publish(Render(self.clock.now()))
            self.clock.cancel_all()
            for rec in list(self.recordings.values()):
                if rec.writer is not None:
                    rec.writer.close()
                    rec.writer = None
                rec.state = "failed"
                self.finished_recordings.append(rec)
            for mix in self.mixmonitors:
                mix.writer.close()
            self.finished_mixmonitors += self.mixmonitors
            for ch in self.channels.values():
                ch.destroyed = True
            for bridge in self.bridges.values():
                bridge.destroyed = True
            self.recordings.clear()
            self.mixmonitors.clear()
            self.playbacks.clear()
            self.channels.clear()
            self.bridges.clear()
        await self.hub.drop_all()

    def request_problems(self) -> list[str]:
        """check_request over every REST request received: calls the spec does not allow."""
        problems = (self.spec.check_request(r.method, r.path, r.params) for r in self.requests)
        return [p for p in problems if p is not None]

    async def wait_for(
        self,
        cond: str | Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline, as tests expect
        *,
        since: int = 0,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any] | None:
        """Wait (real time) until `cond()` is true, or until an event of type `cond` matching
        `match` was sent (looking from index `since` of the event log); returns that event."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if isinstance(cond, str):
                for rec in self.hub.log[since:]:
                    if rec.delivered and rec.event["type"] == cond and (
                            match is None or match(rec.event)):
                        return rec.event
            elif cond():
                return None
            if loop.time() > deadline:
                raise TimeoutError(f"wait_for({cond!r}) timed out after {timeout}s")
            await asyncio.sleep(0.005)

    async def wait_for_request(
        self, method: str, path_regex: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - polling deadline
        since: int = 0,
    ) -> dict[str, Any]:
        """Wait until the client made a matching REST request; returns its log record."""
        pattern = re.compile(path_regex)
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            for r in self.requests[since:]:
                if r.method == method and pattern.search(r.path):
                    found.append(r.json())
                    return True
            return False

        await self.wait_for(seen, timeout)
        return found[0]

    @property
    def event_log(self) -> list[EventRecord]:
        return self.hub.log

    # ----------------------------------------------------------------- auth
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return (user, password) == (self.username, self.password)
        api_key = request.query.get("api_key")
        if api_key is not None:
            user, _, password = api_key.partition(":")
            return (user, password) == (self.username, self.password)
        return False

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.json_response({"message": "Authentication required"}, status=401,
                                 headers={"WWW-Authenticate": f'Basic realm="{_REALM}"'})

    # -------------------------------------------------------------- events
    async def _events(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._unauthorized()
        apps = [a for a in ",".join(request.query.getall("app", [])).split(",") if a]
        if not apps:
            return web.json_response({"message": "HTTP request is missing param: [app]"},
                                     status=400)
        if self.allowed_apps is not None and any(a not in self.allowed_apps for a in apps):
            return web.json_response({"message": "Stasis app registration failed"}, status=500)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=426, text="Upgrade Required")
        subscribe_all = ast_true(request.query.get("subscribeAll"))
        result: web.StreamResponse = await self.hub.handle(request, apps, subscribe_all)
        return result

    # ----------------------------------------------------------------- REST
    def stall(self, method: str, path: str, *, unsent_if_client_gone: bool = False
              ) -> asyncio.Event:
        """Hold every `method` request to the ARI `path` (e.g. "/channels/X/answer") until the
        returned event is set: an Asterisk slow to answer one request. A held request does not
        count as in flight, so the rest of the simulator goes on and settles meanwhile.
        Asterisk carries out a request it has read even if its client then goes; with
        `unsent_if_client_gone` a held request whose client is gone by its release is dropped
        instead: one the client never sent (a daemon killed before the request left it)."""
        release = asyncio.Event()
        self._stalls.append((method, path, release, unsent_if_client_gone))
        return release

    def unstall(self, release: asyncio.Event) -> None:
        """Requests from now on go through, and those `release` held are carried out."""
        self._stalls = [stall for stall in self._stalls if stall[2] is not release]
        release.set()

    def sever(self, method: str, path: str, *, carried_out: bool) -> None:
        """Cut the connection of the next `method` request to the ARI `path` before any of its
        answer is sent, as a network fault or a proxy's timeout does: the client cannot know
        whether Asterisk carried it out. `carried_out`: Asterisk did (the answer was lost),
        or it never heard the request."""
        self._severs.append((method, path, carried_out))

    async def _ari(self, request: web.Request) -> web.StreamResponse:
        for sever in self._severs:
            method, path, carried_out = sever
            if request.method == method and request.rel_url.raw_path[4:] == path:
                self._severs.remove(sever)
                if carried_out:
                    await self._ari_inner(request, answer=False)
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=499)  # written to a closed connection: never read
        for method, path, release, unsent_if_client_gone in self._stalls:
            if request.method == method and request.rel_url.raw_path[4:] == path:
                self.stalled += 1
                try:
                    await release.wait()
                finally:
                    self.stalled -= 1
                gone = request.transport is None or request.transport.is_closing()
                if unsent_if_client_gone and gone:
                    return web.Response(status=499)  # never sent: never carried out
        self.inflight += 1
        self._bump()
        try:
            return await self._ari_inner(request)
        finally:
            self.inflight -= 1
            self._bump()

    async def _ari_inner(self, request: web.Request, answer: bool = True
                         ) -> web.StreamResponse:
        """The request carried out, and answered (`answer`: else only carried out, its
        answer's events included, and the answer left for the caller to drop)."""
        raw_path = request.rel_url.raw_path
        ari_path = raw_path[4:] or "/"
        query = [(k, v) for k, v in request.query.items() if k != "api_key"]
        if not self._authorized(request):
            self._log(request.method, ari_path, dict(query), 401)
            return self._unauthorized()
        body: Any = None
        if request.body_exists:
            text = await request.text()
            ctype = request.content_type
            if ctype == "application/x-www-form-urlencoded":
                form = await request.post()
                query.extend((k, str(v)) for k, v in form.items())
            elif text.strip():
                try:
                    body = json.loads(text)
                except ValueError:
                    return self._reply(request.method, ari_path, dict(query),
                                       error(400, "Error parsing request body"))
        if len(ari_path) > 1 and ari_path.endswith("/"):
            slashless = ari_path.strip("/")
            return self._reply(request.method, ari_path, dict(query), error(
                404, f"ARI URLs do not end with a slash. Try /ari/{slashless}"))
        found = self.spec.route(request.method, ari_path)
        if found.operation is None or found.operation.websocket:
            resp = error(found.status or 405, found.message or "Invalid method")
            if found.status == 405 or (found.operation and found.operation.websocket):
                resp.headers["Allow"] = ", ".join(found.allowed or ("GET",))
            return self._reply(request.method, ari_path, dict(query), resp)
        args = Args(found.operation, found.path_vars, query, body)
        handler = HANDLERS.get(found.operation.key)
        if handler is None:
            return self._reply(request.method, ari_path, args.logged(),
                               error(501, "Method not implemented"))
        self._deferred = []
        try:
            with self.action():
                result = handler(self, args)
        except Exception as exc:
            log.exception("handler %s failed", found.operation.key)
            self.errors.append(f"{found.operation.key}: {exc!r}")
            result = error(500, "Internal Server Error")
        finally:
            hooks, self._deferred = self._deferred, None
        response = self._reply(request.method, ari_path, args.logged(), result)
        if hooks:
            if answer:
                await response.prepare(request)
                await response.write_eof()
            with self.action():
                for hook in hooks:
                    hook()
        return response

    def _log(self, method: str, path: str, params: dict[str, Any], status: int,
             body: Any = None) -> None:
        self.requests.append(RequestRecord(method, path.split("?")[0], params, status,
                                           self.clock.now(), body))

    def _reply(self, method: str, path: str, params: dict[str, Any],
               result: ApiResponse) -> web.Response:
        self._log(method, path, params, result.status, result.body)
        headers = dict(result.headers)
        if "Location" in headers:
            headers["Location"] = "/ari" + headers["Location"]
        if result.raw is not None:
            return web.Response(status=result.status, body=result.raw,
                                content_type=result.content_type, headers=headers)
        if result.body is None:
            return web.Response(status=result.status, headers=headers)
        return web.Response(status=result.status, text=json.dumps(result.body),
                            content_type="application/json", headers=headers)
