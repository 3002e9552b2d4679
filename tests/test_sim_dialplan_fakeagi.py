"""A tiny FastAGI server for the hook-mode simulator tests (asyncio.start_server), and a check
of the line protocol it speaks with the simulator's AGI client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from arisim.server import Simulator

SCRIPT = Callable[["AgiCall"], Awaitable[None]]


@dataclass
class AgiCall:
    """One connection from Asterisk: the environment it sent, then commands and replies."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    network: list[str] = field(default_factory=list)  # every line before the blank line
    env: dict[str, str] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def read_env(self) -> None:
        while True:
            line = (await self.reader.readline()).decode()
            if line in ("\n", ""):
                return
            text = line.rstrip("\n")
            self.network.append(text)
            key, _, value = text.partition(": ")
            self.env[key] = value

    async def send(self, command: str) -> str:
        """Send a command, return its reply line."""
        self.writer.write(f"{command}\n".encode())
        await self.writer.drain()
        return await self.read_line()

    async def read_line(self) -> str:
        reply = (await self.reader.readline()).decode().rstrip("\n")
        self.replies.append(reply)
        return reply


class FakeAgi:
    """A FastAGI server on 127.0.0.1; each connection runs `script(call)` then is closed."""

    def __init__(self, script: SCRIPT | None = None) -> None:
        self.script = script
        self.calls: list[AgiCall] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    def url(self, script: str = "") -> str:
        return f"agi://127.0.0.1:{self.port}/{script}"

    async def __aenter__(self) -> FakeAgi:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for call in self.calls:
            call.writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        call = AgiCall(reader, writer)
        self.calls.append(call)
        try:
            await call.read_env()
            if self.script is not None:
                await self.script(call)
        except asyncio.CancelledError:
            pass  # the test ended first (a failure): end quietly
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            call.done.set()


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def logged(sim: Simulator, etype: str | None = None) -> list[dict[str, Any]]:
    """Every event the simulator produced (with no app connected: all of them, unrouted)."""
    return [r.event for r in sim.event_log if etype is None or r.event["type"] == etype]


def flow(events: list[dict[str, Any]], channel_id: str,
         skip: tuple[str, ...] = ("ChannelVarset",)) -> list[tuple[Any, ...]]:
    """Per channel (as `channel` or Dial `peer`): type, state, and the telling fields."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        ch = e.get("channel") or e.get("peer")
        if ch is None or ch["id"] != channel_id or e["type"] in skip:
            continue
        extra = tuple(e[k] for k in ("dialplan_app", "dialstatus", "cause", "result")
                      if k in e)
        out.append((e["type"], ch["state"], *extra))
    return out


async def test_fake_agi_speaks_fastagi(sim: Simulator, tmp_path: Path) -> None:
    """The env block ends with a blank line; each command gets one reply line; the simulator
    sends HANGUP when the session ends and then closes."""
    seen: list[str] = []

    async def script(call: AgiCall) -> None:
        seen.append(await call.send("NOOP"))
        seen.append(await call.send('VERBOSE "hello there" 1'))
        call.writer.write_eof()  # half-close: the client ends the session, says HANGUP
        seen.append(await call.read_line())
        seen.append(await call.read_line())

    async with FakeAgi(script) as agi:
        sim.add_extension("fake", "s", [("AGI", agi.url("x")), ("Hangup", "")])
        ch = sim.start_dialplan_call("s", context="fake")
        s = await sim.wait_agi(ch.id)
        await asyncio.wait_for(agi.calls[0].done.wait(), 5)
    assert seen == ["200 result=0", "200 result=1", "HANGUP", ""]
    assert s.status == "SUCCESS" and s.commands == ["NOOP", 'VERBOSE "hello there" 1']
    assert agi.calls[0].network[:2] == ["agi_network: yes", "agi_network_script: x"]


def only_channel(sim: Any, prefix: str, suffix: str = "") -> Any:
    """The one channel whose name starts with `prefix` (and ends with `suffix`)."""
    (ch,) = [c for c in sim.channels.values()
             if c.name.startswith(prefix) and c.name.endswith(suffix)]
    return ch
