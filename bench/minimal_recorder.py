"""The least an ARI recorder must do, for bench/load.py to compare the daemon against.

Answer, bridge, record the bridge, dial the target, bridge it on answer, hang up the other party
and destroy the bridge at the end. No database, no prompt, no filing, no logging.
Run: python -m bench.minimal_recorder --url http://127.0.0.1:8088 --password SECRET
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from typing import Any

import aiohttp

from recorder.common import loop


async def run(url: str, user: str, password: str, app: str) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    async with aiohttp.ClientSession(headers=auth) as http:
        peer: dict[str, str] = {}  # channel -> the other party's channel
        bridge_of: dict[str, str] = {}  # channel -> its call's bridge

        async def ari(method: str, path: str, **params: str) -> Any:
            async with http.request(method, f"{url}/ari{path}", params=params) as r:
                return await r.json() if r.content_type == "application/json" else None

        async def on(e: dict[str, Any]) -> None:
            kind, ch = e["type"], e.get("channel", {}).get("id", "")
            if kind == "StasisStart" and e["args"] and e["args"][0] in ("inbound", "transfer"):
                await ari("POST", f"/channels/{ch}/answer")
                bridge = (await ari("POST", "/bridges", type="mixing"))["id"]
                bridge_of[ch] = bridge
                await ari("POST", f"/bridges/{bridge}/addChannel", channel=ch)
                await ari("POST", f"/bridges/{bridge}/record", name=f"min-{bridge}", format="wav")
                callee = await ari("POST", "/channels/create", endpoint=f"PJSIP/{e['args'][1]}",
                                   app=app, appArgs=f"dialed,{bridge}")
                peer[ch], peer[callee["id"]] = callee["id"], ch
            elif kind == "StasisStart" and e["args"] and e["args"][0] == "dialed":
                bridge_of[ch] = e["args"][1]
                await ari("POST", f"/channels/{ch}/dial", timeout="30")
            elif kind == "Dial" and e.get("dialstatus") == "ANSWER" and e["peer"]["id"] in peer:
                callee = e["peer"]["id"]
                await ari("POST", f"/bridges/{bridge_of[callee]}/addChannel", channel=callee)
            elif kind == "StasisEnd" and ch in bridge_of:
                bridge, other = bridge_of.pop(ch), peer.pop(ch, None)
                if other is not None and peer.pop(other, None) is not None:
                    bridge_of.pop(other, None)
                    await ari("DELETE", f"/channels/{other}")
                    await ari("DELETE", f"/bridges/{bridge}")

        events = f"{url.replace('http', 'ws', 1)}/ari/events?app={app}"
        tasks: set[asyncio.Task[None]] = set()
        async with http.ws_connect(events) as ws:
            async for msg in ws:  # one task per event: requests overlap as in the daemon
                task = asyncio.get_running_loop().create_task(on(json.loads(msg.data)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8088")
    p.add_argument("--user", default="verbatim")
    p.add_argument("--password", default="verbatim-secret")
    p.add_argument("--app", default="verbatim")
    args = p.parse_args()
    # The daemon's loop (uvloop, or VERBATIM_EVENT_LOOP's): the ratio compares work, not loops
    loop.run(run(args.url, args.user, args.password, args.app))


if __name__ == "__main__":
    main()
