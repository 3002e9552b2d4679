"""ARI's REST requests over plain HTTP/1.1 keep-alive connections (issue 15).

aiohttp's client machinery (request and response objects, tracing, per-request timers, header
multidicts, the connector's bookkeeping) was most of an ARI request's CPU in the daemon. What
ARI needs is small: a request line and a few fixed headers out; a status, a Content-Type and a
body in. The answer is parsed by httptools (llhttp, a maintained C parser); the connections
are ours. Asterisk answers every request with Content-Length (main/http.c `ast_http_send`) and
says `Connection: close` when it will close; chunked bodies and bodies up to the close are read
too, for whatever a site puts in front of Asterisk.

Connections are kept alive and reused most recent first; one idle for `idle_s` is closed by us
before Asterisk's own idle limit (http.conf session_keep_alive, 15 s by default) can close it
under a request. A request that finds its reused connection closed before any of the answer
came is sent again on a new one when its method is idempotent (RFC 9112 §9.3.1, as aiohttp
does); a POST is not, and fails as "Disconnected". At most `limit` connections are open at once
(32; more requests wait their turn): Asterisk's http.conf session_limit (100 by default) counts
every HTTP session of the server — the events WebSocket, recording downloads, other ARI apps,
WebRTC phones — and past it Asterisk closes new ones unanswered, while ours idle up to `idle_s`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class Disconnected(ConnectionError):
    """The server closed the connection before its answer was complete."""


class BadResponse(ConnectionError):
    """What came back is not an HTTP/1.x response this client can read."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str  # without parameters, lower case; "" when absent
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one exchange at a time. The answer is parsed by httptools
    (llhttp: Content-Length, chunked bodies and trailers, interim answers); this class keeps
    what the daemon reads of it."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.lost = False  # closed by either side, or failed: never reused
        self.received = False  # a byte of the current answer arrived
        self.keep = True  # the server keeps the connection open after this answer
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._type = ""
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the parser finds the body's end

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a TCP connection's transport; uvloop's are no subclass of asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing was asked: the connection cannot be trusted
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"{type(exc).__name__}: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self.lost = True
        if self.waiter is not None and self._headers_done and not self._framed:
            # neither length nor chunks: the body was what came until the close
            self._done(Response(self._parser.get_status_code(), self._type,
                                b"".join(self._body)))
        self._fail(Disconnected("the server closed the connection"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(Disconnected(f"connection lost: {exc}") if exc
                   else Disconnected("the server closed the connection"))
        self._pool.forget(self)

    # --- httptools' callbacks ---
    def on_message_begin(self) -> None:
        if self.waiter is None:  # more than was asked for: a confused server
            self.lost = True
        self._body, self._type, self._headers_done, self._framed = [], "", False, False

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            self._type = value.split(b";", 1)[0].strip().lower().decode("latin-1")
        elif key in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # an interim answer (Asterisk sends none): the real one follows
            return
        self.keep = self._parser.should_keep_alive()
        self._done(Response(status, self._type, b"".join(self._body)))

    # --- one exchange ---
    def send(self, request: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self.received = False
        self.transport.write(request)
        return waiter

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def expire(self, timeout: float) -> None:
        """The exchange's deadline passed: it fails, and the connection is not reused."""
        self._fail(TimeoutError(f"no answer within {timeout:g} s"))
        self.close()

    def _done(self, response: Response) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Pool:
    """Connections to one server: the idle ones (most recent last), and a slot per request
    in flight (at most `limit`: one connection each); beyond that, requests wait in turn."""

    def __init__(self, limit: int) -> None:
        self.idle: list[_Connection] = []
        self.free = limit
        self.waiting: deque[asyncio.Future[None]] = deque()

    def forget(self, conn: _Connection) -> None:
        if conn in self.idle:  # closed while idle (Asterisk's keep-alive limit): not reused
            self.idle.remove(conn)

    async def acquire(self, deadline: float, seconds: float) -> None:
        """A slot, waiting in turn until `deadline` (TimeoutError: `seconds` were given)."""
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self.waiting.append(turn)
        timer = loop.call_at(deadline, _expire_turn, turn, seconds)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.release()  # handed a slot as it was cancelled: pass it on
            elif turn in self.waiting:
                self.waiting.remove(turn)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """A slot is free: to the first request still waiting, or kept."""
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


def _expire_turn(turn: asyncio.Future[None], seconds: float) -> None:
    if not turn.done():
        turn.set_exception(TimeoutError(f"no connection free within {seconds:g} s"))


class HttpClient:
    """HTTP/1.1 requests to one server (`base_url`: scheme, host, port, path prefix)."""

    def __init__(self, base_url: str, *, limit: int = 32, idle_s: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._tls = parts.scheme == "https"
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        authority = host if default_port else f"{host}:{self._port}"
        self._fixed = f"Host: {authority}\r\nUser-Agent: verbatim\r\n".encode()
        self._idle_s = idle_s
        self._pool = _Pool(limit)
        self._closed = False

    async def request(self, method: str, target: str, headers: bytes = b"",
                      body: bytes | None = None,
                      timeout: float = 10.0) -> Response:  # noqa: ASYNC109 - see below
        """`target`: the path and query, already encoded; `headers`: whole header lines
        (b"Name: value\\r\\n" each); `timeout`: seconds for the whole exchange (a free slot,
        connecting, the answer), TimeoutError after. One timer per request on the loop, no
        timeout context: its task bookkeeping was a quarter of this path's CPU."""
        if self._closed:
            raise Disconnected("the client is closed")
        length = b"" if body is None and method in ("GET", "HEAD") else (
            b"Content-Length: %d\r\n" % (len(body) if body else 0))
        message = b"".join((f"{method} {self.prefix}{target} HTTP/1.1\r\n".encode(),
                            self._fixed, headers, length, b"\r\n", body or b""))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pool = self._pool
        await pool.acquire(deadline, timeout)
        try:
            for retry in (method in IDEMPOTENT, False):
                conn, reused = await self._connection(loop, deadline)
                timer = loop.call_at(deadline, conn.expire, timeout)
                try:
                    response = await conn.send(message)
                except Disconnected:
                    conn.close()
                    if retry and reused and not conn.received:
                        continue  # the server had closed it as we sent: once more, anew
                    raise
                except BaseException:  # timed out, cancelled, malformed: the state is unknown
                    conn.close()
                    raise
                finally:
                    timer.cancel()
                if conn.keep and not conn.lost and not self._closed:
                    conn.idle_since = loop.time()
                    pool.idle.append(conn)
                else:
                    conn.close()
                return response
        finally:
            pool.release()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _connection(self, loop: asyncio.AbstractEventLoop,
                          deadline: float) -> tuple[_Connection, bool]:
        """An idle connection still usable (True), or a new one (False)."""
        idle = self._pool.idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.lost and now - conn.idle_since < self._idle_s:
                return conn, True
            conn.close()
        async with asyncio.timeout_at(deadline):
            _transport, conn = await loop.create_connection(
                lambda: _Connection(self._pool), self._host, self._port, ssl=self._ssl)
        return conn, False

    async def close(self) -> None:
        """Close every idle connection; one in use closes when its request is over."""
        self._closed = True
        idle, self._pool.idle = self._pool.idle, []
        for conn in idle:
            conn.close()
        await asyncio.sleep(0)  # the transports' close callbacks run
