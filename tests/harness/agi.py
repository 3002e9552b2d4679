"""Both sides of FastAGI, faked: `FakeAsterisk` speaks to the daemon's AGI server as Asterisk's
AGI() would; `FakeAgi` is a tiny AGI server the simulator's dialplan calls
(asyncio.start_server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from arisim.server import Simulator

UNIQUEID = "1700000000.12"


def env_lines(
    script: str = "record", uniqueid: str = UNIQUEID, args: tuple[str, ...] = ("inbound", "201")
) -> list[str]:
    return [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        "agi_channel: PJSIP/201-00000001",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.9.0",
        "agi_callerid: +14155550100",
        "agi_calleridname: Alice Private",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 201",
        "agi_rdnis: unknown",
        "agi_context: from-trunk",
        "agi_extension: 201",
        "agi_priority: 3",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140245163063872",
        *(f"agi_arg_{n}: {arg}" for n, arg in enumerate(args, start=1)),
    ]


class FakeAsterisk:
    """One FastAGI connection, as res_agi.c makes it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(line + "\n" for line in lines).encode())
        await self.writer.drain()

    async def send_env(self, script: str = "record", uniqueid: str = UNIQUEID) -> None:
        await self.send(*env_lines(script, uniqueid), "")

    async def read_line(self) -> str | None:
        """The next line the server sent, or None when it closed the connection."""
        try:
            async with asyncio.timeout(2):
                line = await self.reader.readline()
        except ConnectionError:
            return None
        return line.decode().removesuffix("\n") if line else None

    async def expect(self, command: str, *reply: str) -> None:
        assert await self.read_line() == command
        if reply:
            await self.send(*reply)

    async def expect_closed(self) -> None:
        assert await self.read_line() is None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


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


def only_channel(sim: Any, prefix: str, suffix: str = "") -> Any:
    """The one channel whose name starts with `prefix` (and ends with `suffix`)."""
    (ch,) = [c for c in sim.channels.values()
             if c.name.startswith(prefix) and c.name.endswith(suffix)]
    return ch
