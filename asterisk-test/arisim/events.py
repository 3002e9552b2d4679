"""Stasis applications and their event WebSockets (res/ari/ari_websockets.c, res/stasis/app.c).

An application is active while a WebSocket holds it. Events for an inactive application are
dropped, as Asterisk does: channels stay in the application when the socket drops, and a reconnect
with the same name resumes. A second socket for the same name takes the application over; the first
gets ApplicationReplaced. Every event is checked against events.json before it is queued.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .clock import VirtualClock
from .spec import Spec


@dataclass
class EventRecord:
    """One event the simulator produced for an application, sent or dropped."""

    at: float  # virtual seconds since the simulator started
    app: str
    event: dict[str, Any]
    delivered: bool

    def json(self) -> dict[str, Any]:
        return {"at": self.at, "app": self.app, "event": self.event, "delivered": self.delivered}


@dataclass(eq=False)
class Session:
    ws: web.WebSocketResponse
    apps: list[str]
    subscribe_all: bool
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    closed: bool = False


@dataclass
class AppState:
    """A registered Stasis app (res/res_stasis.c apps_registry). `subscribe_all`: it holds the
    all-channels/all-bridges subscriptions — made at creation when the WebSocket asked for
    subscribeAll (app_create with STASIS_APP_SUBSCRIBE_ALL), or later by
    POST /applications/{app}/subscription with an empty id; dropped when its WebSocket closes
    (stasis_app_unregister). A registration of an app that still exists (channels still
    subscribed) is only an app_update: its subscribeAll flag is ignored."""

    name: str
    session: Session | None = None
    subscribe_all: bool = False
    created_all: bool = False  # created with subscribeAll: holds no per-channel subscriptions
    # PUT /applications/{app}/eventFilter (res/stasis/app.c events_allowed/_disallowed): lists
    # of {"type": ...}; None or empty: no filter of that kind. Kept while the app exists.
    events_allowed: list[dict[str, Any]] | None = None
    events_disallowed: list[dict[str, Any]] | None = None

    def allows(self, event: dict[str, Any]) -> bool:
        """stasis_app_event_allowed, asked for every message its WebSocket would send
        (res/ari/ari_websockets.c): not disallowed, and allowed when there is an allowed list."""
        def listed(filters: list[dict[str, Any]] | None, empty: bool) -> bool:
            if not filters:
                return empty
            return any(f.get("type") == event.get("type") for f in filters)

        return not listed(self.events_disallowed, False) and listed(self.events_allowed, True)


class EventHub:
    def __init__(
        self,
        clock: VirtualClock,
        asterisk_id: str,
        spec: Spec,
        on_activity: Callable[[], None],
        allowed_apps: set[str] | None = None,
        app_in_use: Callable[[str], bool] = lambda _name: False,
        checks: bool = True,
    ) -> None:
        self.checks = checks  # validate every event against the spec (off: bench/load.py)
        self.app_in_use = app_in_use  # whether channels/bridges still hold a subscription
        self.clock = clock
        self.asterisk_id = asterisk_id
        self.spec = spec
        self.on_activity = on_activity
        self.allowed_apps = allowed_apps
        self.apps: dict[str, AppState] = {}
        self.sessions: set[Session] = set()
        self.log: list[EventRecord] = []
        self.errors: list[str] = []

    # ------------------------------------------------------------------ state
    def active(self, app: str) -> bool:
        state = self.apps.get(app)
        return state is not None and state.session is not None

    def subscribe_all_apps(self) -> set[str]:
        return {a.name for a in self.apps.values() if a.session is not None and a.subscribe_all}

    def pending(self) -> int:
        return sum(s.queue.qsize() for s in self.sessions)

    # --------------------------------------------------------------- sending
    def unrouted(self, event: dict[str, Any]) -> None:
        """Log an event no application is subscribed to (app ""), for tests to see."""
        out = {**event, "asterisk_id": self.asterisk_id, "application": ""}
        self.errors.extend(f"event {out.get('type')}: {p}" for p in self.spec.check_event(out))
        self.log.append(EventRecord(self.clock.now(), "", out, False))

    def send(self, app: str, event: dict[str, Any]) -> None:
        """Stamp, validate and queue one event for `app` (dropped if the app has no socket)."""
        out = dict(event)
        out.setdefault("timestamp", self.clock.timestamp())
        out.setdefault("asterisk_id", self.asterisk_id)
        out["application"] = app
        problems = self.spec.check_event(out) if self.checks else []
        if problems:
            self.errors.extend(f"event {out.get('type')}: {p}" for p in problems)
        state = self.apps.get(app)
        delivered = (state is not None and state.session is not None
                     and not state.session.closed and state.allows(out))
        self.log.append(EventRecord(self.clock.now(), app, out, delivered))
        if delivered and state is not None and state.session is not None:
            state.session.queue.put_nowait(json.dumps(out))
            self.on_activity()

    # ------------------------------------------------------------- websocket
    async def handle(self, request: web.Request, apps: list[str], subscribe_all: bool) -> Any:
        ws = web.WebSocketResponse(protocols=("ari",), heartbeat=None)
        await ws.prepare(request)
        session = Session(ws=ws, apps=list(apps), subscribe_all=subscribe_all)
        self.sessions.add(session)
        for name in apps:
            fresh = name not in self.apps
            state = self.apps.setdefault(name, AppState(name))
            old = state.session
            if old is not None and old is not session and not old.closed:
                # res/stasis/app.c app_update: the previous owner learns it was replaced.
                replaced = {"type": "ApplicationReplaced", "timestamp": self.clock.timestamp(),
                            "application": name}
                if state.allows(replaced):
                    old.queue.put_nowait(json.dumps(replaced))
                if name in old.apps:
                    old.apps.remove(name)
            state.session = session
            if fresh:  # __stasis_app_register: only a new app takes the flag
                state.subscribe_all = state.created_all = subscribe_all
        self.on_activity()
        sender = asyncio.create_task(self._sender(session))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # Asterisk answers anything sent on the socket with an InvalidMessage error;
                    # clients do not send, so it is ignored here.
                    continue
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._detach(session)
            session.queue.put_nowait(None)
            try:
                await asyncio.wait_for(sender, timeout=1.0)
            except (TimeoutError, asyncio.CancelledError):
                sender.cancel()
            if not ws.closed:
                await ws.close()
        return ws

    def _detach(self, session: Session) -> None:
        if session.closed:
            return
        session.closed = True
        self.sessions.discard(session)
        for name, state in list(self.apps.items()):
            if state.session is session:
                # stasis_app_unregister: the all-events subscriptions go; the app is shut down
                # once nothing holds a subscription (app_is_finished), else it stays, inactive
                state.session = None
                state.subscribe_all = False
                if state.created_all or not self.app_in_use(name):
                    del self.apps[name]
        self.on_activity()

    def subscribe_everything(self, app: str) -> bool:
        """POST /applications/{app}/subscription with channel: or bridge: (no id)."""
        state = self.apps.get(app)
        if state is None:
            return False
        state.subscribe_all = True
        return True

    async def _sender(self, session: Session) -> None:
        while True:
            text = await session.queue.get()
            if text is None:
                return
            try:
                await session.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                self._detach(session)
                return
            self.on_activity()

    async def drop_all(self) -> None:
        """Close every event socket abruptly (the daemon sees its connection drop)."""
        for session in list(self.sessions):
            self._detach(session)
            session.queue.put_nowait(None)
            await session.ws.close(code=1001, message=b"dropped by simulator")
