"""Helpers for tests that drive the simulator in-process."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from .server import Simulator


@contextlib.asynccontextmanager
async def running_simulator(spool_dir: Path, **options: Any) -> AsyncIterator[Simulator]:
    """A started simulator (manual clock unless told otherwise), stopped afterwards."""
    sim = Simulator(spool_dir=spool_dir, **options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class AriClient:
    """A minimal ARI client for tests: REST calls and the events WebSocket, recording events."""

    def __init__(self, sim: Simulator, app: str = "verbatim", *,
                 subscribe_all: bool = False) -> None:
        self.sim = sim
        self.app = app
        self.subscribe_all = subscribe_all
        token = base64.b64encode(f"{sim.username}:{sim.password}".encode()).decode()
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.events: list[dict[str, Any]] = []
        self._reader: Any = None

    async def connect(self) -> None:
        import asyncio

        query = f"app={self.app}" + ("&subscribeAll=true" if self.subscribe_all else "")
        self.ws = await self.http.ws_connect(f"{self.sim.base_url}/ari/events?{query}")
        ws = self.ws

        async def read() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.events.append(json.loads(msg.data))

        self._reader = asyncio.create_task(read())
        await self.sim.settle()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader
        await self.http.close()

    async def call(self, method: str, path: str, json_body: Any = None,
                   **params: Any) -> tuple[int, Any]:
        query = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                 for k, v in params.items()}
        async with self.http.request(method, f"{self.sim.base_url}/ari{path}", params=query,
                                     json=json_body) as resp:
            raw = await resp.read()
            body: Any
            if resp.content_type == "application/json" and raw:
                body = json.loads(raw)
            elif resp.content_type.startswith("audio/"):
                body = raw
            else:
                body = raw.decode()
            await self.sim.settle()
            return resp.status, body

    def of_type(self, etype: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == etype]

    def types(self, channel_id: str | None = None) -> list[str]:
        out = []
        for e in self.events:
            ch = e.get("channel") or e.get("peer")
            if channel_id is None or (ch is not None and ch["id"] == channel_id):
                out.append(e["type"])
        return out
