"""FastAGI server: Asterisk's `AGI(agi://127.0.0.1:4573/<hook>,args...)` runs a named hook.

Each connection: read the environment (bounded in lines, line length and time), find the hook by
agi_network_script, run it with an AgiSession, close. A connection that cannot be served is told
so through channel variables (VERBATIM_STATUS=ERROR, VERBATIM_ERROR=why) whenever the channel can
still hear it, so the dialplan can fail closed; nothing one connection does stops the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

import structlog

from .protocol import (
    AgiCommandError,
    AgiError,
    AgiHangup,
    AgiProtocolError,
    AgiRequest,
    AgiResponse,
    parse_env,
    parse_multiline_response,
    parse_response,
    quote,
    starts_multiline,
)

__all__ = ["DEFAULT_LIMITS", "AgiLimits", "AgiServer", "AgiSession", "Handler"]

log = structlog.get_logger("verbatim.agi")


class _Probed(AgiProtocolError):
    """The connection closed without a byte: no AGI client (Asterisk always sends its
    environment first), a TCP check of the port."""


_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[0-9*#A-D]*\Z")  # DTMF keys
# Commands that play or wait for the caller: they may legitimately take minutes to answer.
_MEDIA: Final = (
    "STREAM FILE ",
    "CONTROL STREAM FILE ",
    "GET OPTION ",
    "GET DATA ",
    "EXEC ",
    "RECORD FILE ",
    "WAIT FOR DIGIT ",
    "SAY ",
)
# A flood of connections past the busy ones is said at most this often (agi.overloaded)
OVERLOAD_SAID_EVERY_S: Final = 10.0
_MAX_BODY_LINES: Final = 200  # a 520 usage text is a few dozen lines
_HOOK_SHOWN: Final = 64


@dataclass(frozen=True)
class AgiLimits:
    """What one connection may cost: bytes per line, header lines, seconds to wait, sessions."""

    max_line_bytes: int = 4096
    max_headers: int = 128
    header_timeout_s: float = 5.0
    command_timeout_s: float = 10.0
    stream_timeout_s: float = 600.0  # the longest announcement plus the caller's answer
    max_sessions: int = 256

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"AgiLimits.{name} must be positive, got {value!r}")


DEFAULT_LIMITS: Final = AgiLimits()


async def _read_line(reader: asyncio.StreamReader, limit: int) -> str | None:
    """One line without its end, or None at end of stream. The reader's own limit (set when the
    server starts) bounds the line, so a peer that never sends a newline cannot fill memory."""
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise AgiProtocolError(
                f"connection closed inside a line ({len(exc.partial)} bytes)"
            ) from None
        return None
    except asyncio.LimitOverrunError:
        raise AgiProtocolError(f"line longer than {limit} bytes") from None
    line = raw[:-1].removesuffix(b"\r")
    # Caller names arrive in whatever encoding the trunk used: never a reason to drop the call.
    return line.decode("utf-8", "replace")


def _check_name(name: str) -> None:
    if not _VARIABLE.match(name):
        raise ValueError(f"not a channel variable name: {name!r}")


def _require_ok(response: AgiResponse, what: str) -> AgiResponse:
    if response.code != 200:
        raise AgiCommandError(f"{what}: {response.code} {response.data or ''}".rstrip(), response)
    return response


class AgiSession:
    """The commands of one AGI connection, one at a time: each command line gets the next
    response, so two overlapping commands would read each other's answers."""

    def __init__(
        self,
        request: AgiRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: AgiLimits = DEFAULT_LIMITS,
        peer: str = "",
    ) -> None:
        self.request = request
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._limits = limits
        self._lock = asyncio.Lock()
        self._hungup = False
        self._broken: str | None = None  # why no further command can be trusted

    @property
    def hungup(self) -> bool:
        """The channel hung up: only dead-channel commands (SET/GET VARIABLE, VERBOSE) work."""
        return self._hungup

    @property
    def usable(self) -> bool:
        """False after a timeout, garbage or a closed connection: the stream is out of step."""
        return self._broken is None

    async def command(self, text: str, *, timeout_s: float | None = None) -> AgiResponse:
        """Send one command line and return its response (also 510 and 520: the caller decides).

        Raises AgiHangup when the channel hung up while it ran (a `HANGUP` line or a 511; the
        response is then consumed and attached) or the connection closed, and AgiProtocolError on
        garbage, an oversized line or no response within the timeout (the session is then
        unusable)."""
        if not text.strip() or any(c in text for c in "\r\n\0"):
            raise ValueError(f"not a single AGI command line: {text[:40]!r}")
        if self._broken is not None:
            raise AgiProtocolError(f"session unusable: {self._broken}")
        verb = " ".join(text.split()[:2]).upper()  # for messages: the arguments may be private
        if timeout_s is None:
            media = (text.upper() + " ").startswith(_MEDIA)
            timeout_s = self._limits.stream_timeout_s if media else self._limits.command_timeout_s
        async with self._lock:
            was_hungup = self._hungup
            try:
                async with asyncio.timeout(timeout_s):
                    self._writer.write(text.encode() + b"\n")
                    await self._writer.drain()
                    response = await self._read_response()
            except TimeoutError:
                self._broken = f"no response to {verb} within {timeout_s:g} s"
                raise AgiProtocolError(self._broken) from None
            except AgiProtocolError as exc:
                self._broken = str(exc)
                raise
            except AgiHangup as exc:  # the connection closed
                self._hungup = True
                self._broken = str(exc)
                raise
            except ConnectionError as exc:
                self._hungup = True
                self._broken = f"connection lost: {exc}"
                raise AgiHangup(self._broken) from exc
        if response.code == 511:
            self._hungup = True
            raise AgiHangup(f"{verb}: channel is dead", response)
        if self._hungup and not was_hungup:
            raise AgiHangup(f"{verb}: channel hung up", response)
        return response

    async def _read_response(self) -> AgiResponse:
        limit = self._limits.max_line_bytes
        while True:
            line = await _read_line(self._reader, limit)
            if line is None:
                raise AgiHangup("Asterisk closed the connection")
            if line == "HANGUP":  # a notice, not the answer: that still follows
                self._hungup = True
                continue
            if not starts_multiline(line):
                return parse_response(line)
            lines = [line]
            end = line[:3] + " "
            while not lines[-1].startswith(end):
                if len(lines) > _MAX_BODY_LINES:
                    raise AgiProtocolError(f"multi-line response longer than {_MAX_BODY_LINES}")
                more = await _read_line(self._reader, limit)
                if more is None:
                    raise AgiHangup("Asterisk closed the connection inside a response")
                lines.append(more)
            return parse_multiline_response(lines)

    async def set_variable(self, name: str, value: str) -> None:
        _check_name(name)
        _require_ok(await self.command(f"SET VARIABLE {name} {quote(value)}"), "SET VARIABLE")

    async def get_variable(self, name: str) -> str | None:
        """The value, or None when unset (result=0); "" when set to the empty string."""
        _check_name(name)
        response = _require_ok(await self.command(f"GET VARIABLE {name}"), "GET VARIABLE")
        if response.result_int != 1:
            return None
        return response.data or ""

    async def stream_file(self, name: str, escape_digits: str = "") -> str | None:
        """Play a sound file (name without extension); the escape digit pressed, or None."""
        if not name or not _DIGITS.match(escape_digits):
            raise ValueError(f"bad STREAM FILE arguments: {name!r}, {escape_digits!r}")
        command = f"STREAM FILE {quote(name)} {quote(escape_digits)}"
        response = _require_ok(await self.command(command), "STREAM FILE")
        code = response.result_int
        if code == 0:
            return None
        if code > 0:
            return chr(code)  # Asterisk answers the digit's character code
        # -1: the file could not be opened, or the channel hung up. res_agi.c answers before it
        # notices the hangup (run_agi reads the dead channel and sends `HANGUP` next), so ask
        # once more: after a hangup CHANNEL STATUS follows that HANGUP line, or answers 511.
        hung_up = self._hungup
        if not hung_up:
            try:
                await self.command("CHANNEL STATUS")
            except AgiHangup:
                hung_up = True
        if hung_up:
            raise AgiHangup("STREAM FILE: channel hung up", response)
        raise AgiCommandError(f"STREAM FILE {name!r} failed (the sound file is missing)",
                              response)

    async def verbose(self, message: str, level: int = 1) -> None:
        _require_ok(await self.command(f"VERBOSE {quote(message)} {int(level)}"), "VERBOSE")


Handler: TypeAlias = Callable[[AgiSession], Awaitable[None]]


def _peer(writer: asyncio.StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _printable(text: str) -> str:
    shown = "".join(c if c.isprintable() else "?" for c in text[:_HOOK_SHOWN])
    return shown + ("..." if len(text) > _HOOK_SHOWN else "")


def _uniqueid(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("agi_uniqueid: "):
            return _printable(line.removeprefix("agi_uniqueid: "))
    return None


class AgiServer:
    """Serves hooks by name; `start()` returns the bound address (port 0 picks a free one)."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        host: str = "127.0.0.1",
        port: int = 4573,
        limits: AgiLimits = DEFAULT_LIMITS,
    ) -> None:
        self._handlers = dict(handlers)
        self._host = host
        self._port = port
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._refusing: set[asyncio.Task[None]] = set()  # over max_sessions, being told "busy"
        self._shed = 0  # connections closed unread since `agi.overloaded` last said so
        self._shed_said = -math.inf  # when (monotonic)
        self._shed_later: asyncio.TimerHandle | None = None  # says the rest of a burst

    @property
    def sessions(self) -> int:
        """Connections being served (headers being read or a hook running)."""
        return len(self._sessions)

    async def start(self) -> tuple[str, int]:
        if self._server is not None:
            raise RuntimeError("AgiServer already started")
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, limit=self._limits.max_line_bytes
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("agi.listening", host=host, port=port, hooks=sorted(self._handlers))
        return host, port

    async def stop(self) -> None:
        """Stop listening, cancel the running sessions and wait for them to close."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._shed_later is not None:  # what a burst's end has not said yet
            self._shed_later.cancel()
            self._say_shed()
        tasks = self._sessions | self._refusing
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_server runs each connection in its own task
        busy = len(self._sessions) >= self._limits.max_sessions
        if busy and len(self._refusing) >= self._limits.max_sessions:
            self._shed_one(writer)
            return
        group = self._refusing if busy else self._sessions
        group.add(task)
        peer = _peer(writer)
        try:
            await self._serve(reader, writer, peer, busy)
        except Exception as exc:  # the server outlives any one connection
            log.exception("agi.session_crashed", peer=peer, error=f"{type(exc).__name__}: {exc}")
        finally:
            group.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _shed_one(self, writer: asyncio.StreamWriter) -> None:
        """As many connections as sessions are being told "busy" already: a flood (a dialplan
        loop, a scanner) is closed unread, so it costs no reading and no log line each. The
        dialplan finds VERBATIM_STATUS empty and takes its fallback. Said at once, then at
        most every OVERLOAD_SAID_EVERY_S with how many more (the end of a burst too)."""
        writer.close()
        self._shed += 1
        wait = self._shed_said + OVERLOAD_SAID_EVERY_S - time.monotonic()
        if wait <= 0:
            self._say_shed()
        elif self._shed_later is None:
            self._shed_later = asyncio.get_running_loop().call_later(wait, self._say_shed)

    def _say_shed(self) -> None:
        self._shed_later = None
        if self._shed:
            log.warning("agi.overloaded", closed_unread=self._shed,
                        max_sessions=self._limits.max_sessions,
                        action="the dialplan takes its fallback for these calls")
            self._shed, self._shed_said = 0, time.monotonic()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, busy: bool
    ) -> None:
        lines: list[str] = []
        timeout = self._limits.header_timeout_s
        try:
            async with asyncio.timeout(timeout):
                await self._read_headers(reader, lines)
            request = parse_env(lines, max_headers=self._limits.max_headers)
        except TimeoutError:
            error = f"headers not complete within {timeout:g} s ({len(lines)} lines)"
            log.warning("agi.bad_request", peer=peer, error=error, channel_id=_uniqueid(lines))
            return
        except _Probed:  # a port check (a health probe, a scanner): Asterisk always talks
            log.debug("agi.probed", peer=peer)
            return
        except (AgiProtocolError, ConnectionError) as exc:
            log.warning("agi.bad_request", peer=peer, error=str(exc), channel_id=_uniqueid(lines))
            return

        session = AgiSession(request, reader, writer, self._limits, peer)
        script, channel_id = _printable(request.script), request.uniqueid
        fields = {"peer": peer, "script": script, "channel_id": channel_id}
        with structlog.contextvars.bound_contextvars(channel_id=channel_id):
            if busy:
                log.warning("agi.busy", **fields, max_sessions=self._limits.max_sessions)
                await self._refuse(session, "busy")
                return
            handler = self._handlers.get(request.script)
            if handler is None:
                log.warning("agi.unknown_hook", **fields)
                await self._refuse(session, f"unknown hook '{script}'")
                return
            log.debug("agi.request", **fields, channel=request.channel)
            try:
                await handler(session)
            except AgiHangup as exc:  # the caller hanging up is how many calls end
                log.info("agi.hangup", **fields, detail=str(exc))
            except Exception as exc:
                log.exception("agi.hook_failed", **fields, error=f"{type(exc).__name__}: {exc}")
                if session.usable and not session.hungup:
                    await self._refuse(session, f"hook '{script}' failed")

    async def _read_headers(self, reader: asyncio.StreamReader, lines: list[str]) -> None:
        """Fills `lines` (so a timeout still shows how far it got) up to the empty line; stops
        one past max_headers and leaves the complaint to parse_env."""
        while len(lines) <= self._limits.max_headers:
            line = await _read_line(reader, self._limits.max_line_bytes)
            if line is None:
                if not lines:
                    raise _Probed("connection closed before a byte was sent")
                raise AgiProtocolError(f"connection closed after {len(lines)} header lines")
            if line == "":
                return
            lines.append(line)

    async def _refuse(self, session: AgiSession, reason: str) -> None:
        """Tell the dialplan why (it reads the variables after AGI() returns) and wait for the
        answers, so the variables are set before the connection closes."""
        try:
            await session.set_variable("VERBATIM_STATUS", "ERROR")
            await session.set_variable("VERBATIM_ERROR", reason)
        except AgiError as exc:
            log.info("agi.status_not_set", peer=session.peer, reason=reason, error=str(exc))
