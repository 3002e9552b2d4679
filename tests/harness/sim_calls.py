"""Simulator-level calls for the transfer tests, driven over ARI as the daemon would: a caller
bridged with a dialled callee, and a channel's flow of events."""

from __future__ import annotations

from typing import Any

from arisim.server import Simulator
from arisim.testing import AriClient

CALLER, CALLEE, TARGET = 440, 700, 1000


def flow(ari: AriClient, channel_id: str) -> list[tuple[Any, ...]]:
    """Per channel: event type, state and the fields a transfer is about."""
    out: list[tuple[Any, ...]] = []
    for e in ari.events:
        ch = e.get("channel") or e.get("peer")
        if ch is None or ch["id"] != channel_id or e["type"] in ("ChannelVarset",
                                                                  "ChannelConnectedLine"):
            continue
        extra = tuple(e[k] for k in ("args", "dialstatus", "cause", "result") if k in e)
        replace = e.get("replace_channel")
        out.append((e["type"], ch["state"], *extra) + ((replace["id"],) if replace else ()))
    return out


async def call_with_callee(sim: Simulator, ari: AriClient, *, record: bool = True,
                           callee_endpoint: str = "PJSIP/201") -> tuple[str, str]:
    """A SIP caller (440 Hz) bridged in "a" with a dialled SIP callee (700 Hz), answered at 1 s;
    the bridge is recorded ("rec-a") from t=0 unless `record` is false."""
    sim.set_endpoint(callee_endpoint, tone_hz=CALLEE, answer_after=1.0)
    caller = sim.start_call(tone_hz=CALLER, args=["inbound", "201"])
    await sim.settle()
    await ari.call("POST", f"/channels/{caller.id}/answer")
    await ari.call("POST", "/bridges", bridgeId="a", type="mixing")
    await ari.call("POST", "/bridges/a/addChannel", channel=caller.id)
    if record:
        await ari.call("POST", "/bridges/a/record", name="rec-a", format="wav")
    _, callee = await ari.call("POST", "/channels/create", endpoint=callee_endpoint,
                               app="verbatim", appArgs="dialed")
    await ari.call("POST", f"/channels/{callee['id']}/dial", caller=caller.id)
    await sim.advance(1.0)
    await ari.call("POST", "/bridges/a/addChannel", channel=callee["id"])
    return caller.id, str(callee["id"])
