"""The events WebSocket, kept open for the daemon's whole life.

Asterisk restarts, networks drop: the connection retries with capped exponential backoff (and
jitter, so several daemons do not stampede one Asterisk), logs why it dropped and when it will
retry, and tells the daemon each time it is connected again so it can reconcile: ARI does not
replay the events sent while nobody listened.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from recorder.ari.client import AriClient
from recorder.ari.events import Event, EventError, decode_event

log = structlog.get_logger("verbatim.ari")


class EventStream:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        client: AriClient,
        on_connected: Callable[[], Awaitable[None]],
        on_event: Callable[[Event], Awaitable[None]],
        initial_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
    ) -> None:
        self._session = session
        self._client = client
        self._on_connected = on_connected
        self._on_event = on_event
        self._initial = initial_delay_s
        self._max = max_delay_s
        self.connected = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False

    async def run(self) -> None:
        delay = self._initial
        while not self._stopping:
            reason = await self._session_once()
            if self._stopping:
                return
            wait = min(delay, self._max) * (0.8 + 0.4 * random.random())  # noqa: S311 - jitter
            log.warning("ari.disconnected", reason=reason, retry_in_s=round(wait, 2))
            await asyncio.sleep(wait)
            # A connection that stayed up resets the backoff; one that failed at once doubles it.
            delay = self._initial if reason.startswith("closed") else min(delay * 2, self._max)

    async def _session_once(self) -> str:
        try:
            async with self._session.ws_connect(
                self._client.events_url(), headers=self._client.headers, heartbeat=20
            ) as ws:
                self._ws = ws
                self.connected.set()
                log.info("ari.connected", url=self._client.events_url())
                await self._on_connected()
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._dispatch(msg.data)
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
                return f"closed (code {ws.close_code})"
        except aiohttp.WSServerHandshakeError as exc:
            return f"handshake refused: {exc.status} {exc.message}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            self._ws = None
            self.connected.clear()

    async def _dispatch(self, text: str) -> None:
        try:
            event = decode_event(text)  # the text straight to a typed event, checked
        except EventError as exc:
            log.error("ari.bad_event", error=str(exc), event_type=exc.event_type, raw=text[:500])
            return
        if event is not None:
            await self._on_event(event)

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()


# How the daemon gets its stream: given its two callbacks (connected, event), an EventStream
# (the app builds the real one; tests may build one on another session).
StreamFactory = Callable[
    [Callable[[], Awaitable[None]], Callable[[Event], Awaitable[None]]], EventStream
]
