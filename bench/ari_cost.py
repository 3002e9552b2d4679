"""The daemon's CPU per ARI event decoded and per ARI request sent (issue 15). Prints figures.

Run: PYTHONPATH=.:asterisk-test .venv/bin/python -m bench.ari_cost [--requests 2000]
Events: every event of the captured traces (asterisk-test/traces), as text, through
`decode_event` (the daemon's path) and, for comparison, `json.loads` alone; best of 5.
Requests: AriClient against a trivial aiohttp server in a process of its own (204 or a small
JSON body), so the figure is the client's own: user and system CPU per request; and, interleaved
with it in rounds, the same requests through aiohttp's ClientSession as AriClient made them up to
session 6 (URL prebuilt and encoded, auth header prebuilt, a 204 not read), for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from arisim.replay import TRACE_DIR
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from recorder.ari.client import AriClient
from recorder.ari.events import decode_event
from recorder.devtools.pgcluster import free_port

CHANNEL, BRIDGE = "1796580092.1", "20261206T180132-ad0b2cd7-b1"


def captured_texts() -> list[str]:
    texts = []
    for path in sorted(TRACE_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            item = json.loads(line)
            if item["kind"] == "event":
                texts.append(json.dumps(item["event"]))
    return texts


def per_item_us(fn: Callable[[str], object], items: list[str], rounds: int = 20) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            for item in items:
                fn(item)
        best = min(best, (time.process_time() - start) / (rounds * len(items)))
    return best * 1e6


def serve(port: int) -> None:
    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def bridge(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"], "bridge_type": "mixing"})

    app = web.Application()
    app.router.add_post("/ari/channels/{id}/answer", no_content)
    app.router.add_post("/ari/bridges/{id}/addChannel", no_content)
    app.router.add_post("/ari/bridges/{id}", bridge)
    app.router.add_delete("/ari/channels/{id}", no_content)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


Round = Callable[[], Awaitable[None]]  # the four requests, once


def aiohttp_round(session: aiohttp.ClientSession, base: str) -> Round:
    """The four requests through aiohttp's ClientSession, as AriClient sent them until session
    7 (recorder.ari.http since)."""
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Basic dmVyYmF0aW06c2VjcmV0"}))
    timeout = aiohttp.ClientTimeout(total=10.0)

    async def one(method: str, url: str) -> None:
        async with session.request(method, URL(base + url, encoded=True), headers=headers,
                                   timeout=timeout) as resp:
            if resp.status != 204:
                json.loads(await resp.read())

    async def round_() -> None:
        await one("POST", f"/ari/channels/{CHANNEL}/answer")
        await one("POST", f"/ari/bridges/{BRIDGE}/addChannel?channel={CHANNEL}")
        await one("POST", f"/ari/bridges/{BRIDGE}?type=mixing&name=call")
        await one("DELETE", f"/ari/channels/{CHANNEL}?reason=normal")

    return round_


def client_round(client: AriClient) -> Round:
    async def round_() -> None:
        await client.answer(CHANNEL)
        await client.add_channel(BRIDGE, CHANNEL)
        await client.create_bridge(BRIDGE, "call")
        await client.hangup(CHANNEL)

    return round_


async def requests(port: int, n: int, rounds: int = 5) -> dict[str, tuple[float, float]]:
    """(user, system) µs per request for each way, `rounds` interleaved runs of n/rounds."""
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = AriClient(session, base, "verbatim", "secret", "verbatim")
        ways = {"AriClient": client_round(client), "aiohttp": aiohttp_round(session, base)}
        used = {name: [0.0, 0.0] for name in ways}
        for way in ways.values():  # connections open, code warm
            for _ in range(50):
                await way()
        for _ in range(rounds):
            for name, way in ways.items():
                before = os.times()
                for _ in range(n // rounds):
                    await way()
                after = os.times()
                used[name][0] += after.user - before.user
                used[name][1] += after.system - before.system
        await client.close()
    count = 4 * (n // rounds) * rounds
    return {name: (u / count * 1e6, s / count * 1e6) for name, (u, s) in used.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000, help="rounds of 4 requests")
    args = p.parse_args()
    texts = captured_texts()
    size = sum(map(len, texts)) / len(texts)
    print(f"events: {len(texts)} captured, {size:.0f} B on average")
    print(f"  decode_event     {per_item_us(decode_event, texts):6.2f} µs per event")
    print(f"  json.loads alone {per_item_us(json.loads, texts):6.2f} µs per event")
    port = free_port()
    server = multiprocessing.Process(target=serve, args=(port,), daemon=True)
    server.start()
    try:
        time.sleep(1.5)
        figures = asyncio.run(requests(port, args.requests))
    finally:
        server.terminate()
    print("requests, client side, CPU per request (5 interleaved rounds):")
    for name, (user, system) in figures.items():
        print(f"  {name:10} {user:5.0f} µs user + {system:4.0f} µs system")


if __name__ == "__main__":
    main()
