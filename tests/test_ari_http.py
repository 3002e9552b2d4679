"""recorder.ari.http, through AriClient, against a real HTTP server on loopback whose answers
each test scripts byte by byte: keep-alive, the server's closes, timeouts, refusals, bodies."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from recorder.ari.client import AriClient, AriError
from recorder.ari.http import HttpClient
from recorder.devtools.pgcluster import free_port

NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
# what the server does with one request: (connection number, request number on it, the request)
Answer = Callable[[int, int, bytes], Awaitable[bytes | None]]  # None: close without answering


@dataclass
class Server:
    """A loopback HTTP server: each request read whole, answered as `answer` says."""

    answer: Answer
    port: int = 0
    connections: int = 0  # accepted so far
    requests: list[bytes] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0
    then_close: bool = False  # close each connection after its answer, without a word

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, served = self.connections, 0
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                served += 1
                reply = await self.answer(number, served, request)
                if reply is None:
                    return
                for i in range(0, len(reply), 7):  # in pieces: the client must reassemble
                    writer.write(reply[i:i + 7])
                    await writer.drain()
                if b"Connection: close" in reply or reply.startswith(b"HTTP/1.0") \
                        or self.then_close:
                    return
        finally:
            self.open_now -= 1
            writer.close()


@contextlib.asynccontextmanager
async def serving(answer: Answer) -> AsyncIterator[Server]:
    server = Server(answer, free_port())
    listener = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
    async with listener:
        yield server


@contextlib.asynccontextmanager
async def client_of(server: Server, timeout_s: float = 5.0) -> AsyncIterator[AriClient]:
    async with aiohttp.ClientSession() as session:
        client = AriClient(session, f"http://127.0.0.1:{server.port}", "verbatim", "secret",
                           "verbatim", timeout_s)
        try:
            yield client
        finally:
            await client.close()


async def no_content(_conn: int, _n: int, _request: bytes) -> bytes:
    return NO_CONTENT


async def test_requests_share_one_kept_alive_connection() -> None:
    async with serving(no_content) as server, client_of(server) as ari:
        for _ in range(20):
            await ari.answer("1700000000.1")
        await ari.hangup("1700000000.1", "busy")
    assert server.connections == 1 and len(server.requests) == 21
    assert server.requests[0] == (
        b"POST /ari/channels/1700000000.1/answer HTTP/1.1\r\n"
        b"Host: 127.0.0.1:" + str(server.port).encode() + b"\r\nUser-Agent: verbatim\r\n"
        b"Authorization: Basic dmVyYmF0aW06c2VjcmV0\r\nContent-Length: 0\r\n\r\n")
    assert server.requests[-1].startswith(
        b"DELETE /ari/channels/1700000000.1?reason=busy HTTP/1.1\r\n")


async def test_ids_and_values_are_percent_encoded_where_they_must_be() -> None:
    """Ids go as they are; a media URI, a number, a space or a slash in an id is encoded (each
    time the same: the encodings of recurring values are kept)."""
    async with serving(no_content) as server, client_of(server) as ari:
        for _ in range(2):
            await ari.play("1700000000.1", "pb-1", "sound:verbatim/consent-one-party")
        await ari.play("a b/c", "+1 555", "tone:ring;tonezone=us")
    first, second, third = (r.split(b" HTTP/1.1")[0] for r in server.requests)
    assert first == second == (b"POST /ari/channels/1700000000.1/play/pb-1"
                               b"?media=sound%3Averbatim%2Fconsent-one-party")
    assert third == (b"POST /ari/channels/a%20b%2Fc/play/%2B1%20555"
                     b"?media=tone%3Aring%3Btonezone%3Dus")


async def test_a_json_body_goes_with_its_type_and_length() -> None:
    async with serving(no_content) as server, client_of(server) as ari:
        await ari.filter_events(["ChannelVarset"])
    (request,) = server.requests
    assert request.startswith(b"PUT /ari/applications/verbatim/eventFilter HTTP/1.1\r\n")
    body = b'{"disallowed": [{"type": "ChannelVarset"}]}'
    assert b"Content-Type: application/json\r\n" in request
    assert request.endswith(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def test_concurrent_requests_use_at_most_the_limit_of_connections() -> None:
    async def slow(_conn: int, _n: int, _request: bytes) -> bytes:
        await asyncio.sleep(0.05)
        return NO_CONTENT

    async with serving(slow) as server:
        http = HttpClient(f"http://127.0.0.1:{server.port}", limit=3)
        try:
            answers = await asyncio.gather(*(http.request("POST", "/x") for _ in range(10)))
        finally:
            await http.close()
    assert [a.status for a in answers] == [204] * 10
    assert server.most_open == 3 and server.connections == 3


@pytest.mark.parametrize(
    ("reply", "status", "content_type", "body"),
    [
        (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n'
         b'{"id": "b"}', 200, "application/json", b'{"id": "b"}'),
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n5;x=y\r\n: 1}\n\r\n0\r\n\r\n",
         200, "application/json", b'{"a": 1}\n'),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
         200, "", b"abc"),
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the close",
         200, "text/plain", b"until the close"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + NO_CONTENT, 204, "", b""),
    ],
    ids=["length", "chunked", "trailer", "until close", "interim"],
)
async def test_bodies_are_read_however_they_are_framed(
    reply: bytes, status: int, content_type: str, body: bytes
) -> None:
    async def scripted(_conn: int, _n: int, _request: bytes) -> bytes | None:
        return reply

    async with serving(scripted) as server:
        http = HttpClient(f"http://127.0.0.1:{server.port}")
        try:
            answer = await http.request("GET", "/ari/asterisk/info")
            if b"HTTP/1.0" in reply:  # its answer ends with the connection: not reused
                await http.request("GET", "/ari/asterisk/info")
                assert server.connections == 2
        finally:
            await http.close()
    assert (answer.status, answer.content_type, answer.body) == (status, content_type, body)


async def test_a_connection_the_server_closes_is_not_reused() -> None:
    async def closing(conn: int, _n: int, _request: bytes) -> bytes | None:
        return b"HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" \
            if conn == 1 else NO_CONTENT

    async with serving(closing) as server, client_of(server) as ari:
        await ari.answer("c1")  # Asterisk says it will close: a new connection next
        server.then_close = True  # ... or closes one when idle, without a word (its limit)
        await ari.answer("c1")
        server.then_close = False
        await asyncio.sleep(0.05)  # the client hears that close while the connection is idle
        await ari.answer("c1")  # a POST: it must not meet the closed connection
        await ari.answer("c1")
    assert server.connections == 3 and len(server.requests) == 4


@pytest.mark.parametrize(("method", "retried"), [("DELETE", True), ("POST", False)])
async def test_a_reused_connection_closed_under_a_request_is_retried_only_if_idempotent(
    method: str, retried: bool
) -> None:
    """The server reads the request on a kept-alive connection and closes it unanswered (an
    idle limit racing the request): sent once more on a new connection when the method is
    idempotent (RFC 9112 9.3.1); a POST may have been done, so it fails, named."""
    async def racing(conn: int, n: int, _request: bytes) -> bytes | None:
        return None if (conn, n) == (1, 2) else NO_CONTENT

    async with serving(racing) as server, client_of(server) as ari:
        await ari.answer("c1")
        if retried:
            await ari.hangup("c1")
        else:
            with pytest.raises(AriError) as caught:
                await ari.answer("c1")
            assert caught.value.status == 0
            assert caught.value.message.startswith("Disconnected: ")
        await ari.answer("c1")  # and the client goes on, on a new connection
    assert len(server.requests) == (4 if retried else 3) and server.connections == 2


async def test_a_silent_server_times_out_and_the_next_request_goes_on_a_new_connection() -> None:
    async def silent_once(conn: int, _n: int, _request: bytes) -> bytes:
        if conn == 1:
            await asyncio.sleep(5)
        return NO_CONTENT

    async with serving(silent_once) as server, client_of(server, timeout_s=0.2) as ari:
        started = time.monotonic()
        with pytest.raises(AriError) as caught:
            await ari.answer("c1")
        assert time.monotonic() - started < 1.0
        assert str(caught.value) == \
            "POST /channels/c1/answer: 0 TimeoutError: no answer within 0.2 s"
        await ari.answer("c1")
    assert server.connections == 2


async def test_nobody_listening_is_status_0_named() -> None:
    async with aiohttp.ClientSession() as session:
        ari = AriClient(session, f"http://127.0.0.1:{free_port()}", "verbatim", "s", "verbatim")
        with pytest.raises(AriError) as caught:
            await ari.info()
        await ari.close()
    assert caught.value.status == 0
    assert caught.value.message.startswith("ConnectionRefusedError: ")


@pytest.mark.parametrize(("status", "body", "message"), [
    (b"404 Not Found", b'{"message": "Channel not found"}', "Channel not found"),
    # res_ari.c's oom_json: what create and originate answer when ast_request fails
    (b"500 Internal Server Error", b'{"error": "Allocation failed"}', "Allocation failed"),
])
async def test_asterisks_refusal_carries_its_status_and_message(
    status: bytes, body: bytes, message: str
) -> None:
    async def refused(_conn: int, _n: int, _request: bytes) -> bytes:
        return (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (status, len(body), body))

    async with serving(refused) as server, client_of(server) as ari:
        with pytest.raises(AriError) as caught:
            await ari.hangup("gone")
        with pytest.raises(AriError):
            await ari.hangup("gone")
    assert (caught.value.status, caught.value.message) == (int(status[:3]), message)
    assert server.connections == 1  # an error answer keeps the connection


async def test_an_unreadable_answer_is_named_and_its_connection_dropped() -> None:
    async def garbage(conn: int, _n: int, _request: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH\r\n\r\n" if conn == 1 else NO_CONTENT

    async with serving(garbage) as server, client_of(server) as ari:
        with pytest.raises(AriError) as caught:
            await ari.answer("c1")
        await ari.answer("c1")
    assert caught.value.status == 0
    assert caught.value.message.startswith("BadResponse: HttpParserError")
    assert server.connections == 2


async def test_an_idle_connection_is_closed_before_the_servers_own_limit() -> None:
    async with serving(no_content) as server:
        http = HttpClient(f"http://127.0.0.1:{server.port}", idle_s=0.05)
        try:
            await http.request("DELETE", "/x")
            await asyncio.sleep(0.1)
            await http.request("DELETE", "/x")
        finally:
            await http.close()
        await asyncio.sleep(0.05)
        assert (server.connections, server.open_now) == (2, 0)


async def test_requests_beyond_the_limit_wait_their_turn_within_their_timeout() -> None:
    async def slow_first(conn: int, n: int, _request: bytes) -> bytes:
        if (conn, n) == (1, 1):
            await asyncio.sleep(0.5)
        return NO_CONTENT

    async with serving(slow_first) as server:
        http = HttpClient(f"http://127.0.0.1:{server.port}", limit=1)
        try:
            first = asyncio.create_task(http.request("POST", "/slow"))
            await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError, match=r"no connection free within 0\.1 s"):
                await http.request("POST", "/waits", timeout=0.1)
            cancelled = asyncio.create_task(http.request("POST", "/cancelled"))
            await asyncio.sleep(0.05)
            cancelled.cancel()
            assert (await first).status == 204
            # neither the one that gave up nor the one cancelled kept the slot
            assert (await http.request("POST", "/next", timeout=1.0)).status == 204
        finally:
            await http.close()
    assert [r.split(b" ")[1] for r in server.requests] == [b"/slow", b"/next"]
