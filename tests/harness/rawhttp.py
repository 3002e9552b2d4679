"""Requests as raw bytes, for input aiohttp's own client would refuse or re-encode (non-UTF-8
header values, bodies in a bogus charset). One request per connection (Connection: close)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from typing import Any

Headers = list[tuple[bytes, bytes]]


def request_bytes(
    method: str, target: bytes, headers: Headers | None = None, body: bytes = b""
) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers or []]
    if body or method == "POST":
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    """The status code of a raw response; 0 when the server sent none (closed or reset)."""
    head = response.split(b"\r\n", 1)[0].split(b" ")
    return int(head[1]) if len(head) > 1 and head[0].startswith(b"HTTP/") else 0


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


async def send(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(10):
            writer.write(data)
            await writer.drain()
            return await reader.read()
    finally:
        writer.close()


def send_sync(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass  # what was read so far is the answer (often none: status_of gives 0)
        return b"".join(chunks)


def cursor(*values: Any) -> str:
    """A hand-made cursor: what the API hands out is base64url of a JSON list, unpadded."""
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
