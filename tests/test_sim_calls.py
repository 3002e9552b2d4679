"""Call state machines: inbound calls, dialled legs, originate, Local dialplans, WebSockets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from arisim.server import Simulator
from arisim.testing import AriClient, running_simulator


def _summary(ari: AriClient, channel_id: str) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in ari.events:
        ch = e.get("channel") or e.get("peer")
        if ch is None or ch["id"] != channel_id or e["type"] in ("ChannelVarset",):
            continue
        extra = tuple(e[k] for k in ("args", "dialstatus", "cause", "soft") if k in e)
        out.append((e["type"], ch["state"], *extra))
    return out


async def _inbound(sim: Simulator, ari: AriClient) -> str:
    ch = sim.start_call(caller_number="+14155550100", caller_name="Client",
                        args=["inbound", "201"])
    await sim.settle()
    await ari.call("POST", f"/channels/{ch.id}/answer")
    await ari.call("POST", "/bridges", bridgeId="b")
    await ari.call("POST", "/bridges/b/addChannel", channel=ch.id)
    return ch.id


async def _create_and_dial(ari: AriClient, endpoint: str, caller: str,
                           dial_timeout: int = 0) -> str:
    status, created = await ari.call("POST", "/channels/create", endpoint=endpoint,
                                     app="verbatim", appArgs="dialed")
    assert status == 200 and created["state"] == "Down"
    assert (await ari.call("POST", f"/channels/{created['id']}/dial", caller=caller,
                           timeout=dial_timeout))[0] == 204
    return str(created["id"])


async def test_inbound_call_and_far_end_bye(sim: Simulator, ari: AriClient) -> None:
    caller = await _inbound(sim, ari)
    start = ari.of_type("StasisStart")[0]
    assert start["args"] == ["inbound", "201"]
    assert start["channel"]["state"] == "Ring"
    assert start["channel"]["caller"] == {"name": "Client", "number": "+14155550100"}
    assert start["channel"]["dialplan"]["app_data"] == "verbatim,inbound,201"
    assert start["asterisk_id"] == sim.asterisk_id and start["application"] == "verbatim"
    sim.hangup(caller)
    await sim.settle()
    # dialplan-entered channel: no ChannelDestroyed reaches the app (sip_caller_slow_answer)
    assert _summary(ari, caller) == [
        ("StasisStart", "Ring", ["inbound", "201"]), ("ChannelStateChange", "Up"),
        ("ChannelEnteredBridge", "Up"), ("ChannelHangupRequest", "Up"),
        ("ChannelLeftBridge", "Up"), ("StasisEnd", "Up")]


async def test_sip_callee_answers(sim: Simulator, ari: AriClient) -> None:
    caller = await _inbound(sim, ari)
    callee = await _create_and_dial(ari, "PJSIP/201", caller)
    await sim.advance(1.0)
    await ari.call("POST", "/bridges/b/addChannel", channel=callee)
    await ari.call("DELETE", f"/channels/{callee}")
    assert _summary(ari, callee) == [
        ("ChannelDialplan", "Down"), ("StasisStart", "Down", ["dialed"]),
        ("Dial", "Down", ""), ("Dial", "Down", "RINGING"), ("ChannelStateChange", "Ringing"),
        ("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER"), ("ChannelEnteredBridge", "Up"),
        ("ChannelHangupRequest", "Up", 32, True), ("ChannelLeftBridge", "Up"),
        ("StasisEnd", "Up"), ("ChannelDestroyed", "Up", 16)]
    dial = ari.of_type("Dial")[0]
    assert dial["dialstring"] == "201" and "caller" not in dial
    assert dial["peer"]["connected"] == {"name": "Client", "number": "+14155550100"}
    answered = [r for r in sim.hub.log if r.event["type"] == "Dial"
                and r.event["dialstatus"] == "ANSWER"]
    assert answered[0].at == pytest.approx(1.0)


async def test_dial_failures(sim: Simulator, ari: AriClient) -> None:
    caller = await _inbound(sim, ari)
    sim.set_endpoint("PJSIP/301", result="busy", answer_after=0.5)
    sim.set_endpoint("PJSIP/302", result="noanswer")
    sim.set_endpoint("PJSIP/303", result="unavailable")
    sim.set_endpoint("PJSIP/304", result="manual")
    busy = await _create_and_dial(ari, "PJSIP/301", caller)
    noanswer = await _create_and_dial(ari, "PJSIP/302", caller, dial_timeout=5)
    unavailable = await _create_and_dial(ari, "PJSIP/303", caller)
    manual = await _create_and_dial(ari, "PJSIP/304", caller)
    await sim.advance(5.0)
    assert _summary(ari, busy)[-4:] == [
        ("Dial", "Ringing", "BUSY"), ("ChannelHangupRequest", "Ringing", 17),
        ("StasisEnd", "Ringing"), ("ChannelDestroyed", "Ringing", 17)]
    # /dial timeout: control.c hangs up with cause 19 (no NOANSWER Dial event for ARI dial)
    assert _summary(ari, noanswer)[-3:] == [
        ("ChannelHangupRequest", "Ringing", 32, True), ("StasisEnd", "Ringing"),
        ("ChannelDestroyed", "Ringing", 19)]
    assert _summary(ari, unavailable)[-3:] == [
        ("ChannelHangupRequest", "Down", 20), ("StasisEnd", "Down"),
        ("ChannelDestroyed", "Down", 20)]
    destroyed = [e for e in ari.of_type("ChannelDestroyed") if e["channel"]["id"] == busy]
    assert destroyed[0]["cause_txt"] == "User busy" and destroyed[0]["tech_cause"] == 486
    assert _summary(ari, manual)[-1] == ("ChannelStateChange", "Ringing")
    sim.answer(manual)
    await sim.settle()
    assert _summary(ari, manual)[-2:] == [("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER")]
    sim.set_endpoint("PJSIP/305", result="manual")
    rejected = await _create_and_dial(ari, "PJSIP/305", caller)
    sim.reject(rejected)
    await sim.settle()
    assert _summary(ari, rejected)[-1] == ("ChannelDestroyed", "Ringing", 21)


async def test_local_targets_from_the_dialplan(sim: Simulator, ari: AriClient) -> None:
    """extensions.conf of the traces: targets answer after 1 s and hang up 30 s later; busy is
    Busy(5); noanswer rings and its ;2 gives up after Wait(60)."""
    caller = await _inbound(sim, ari)
    target = await _create_and_dial(ari, "Local/200@targets", caller)
    busy = await _create_and_dial(ari, "Local/busy@targets", caller)
    ringing = await _create_and_dial(ari, "Local/noanswer@targets", caller)
    await sim.advance(1.0)
    assert _summary(ari, target)[-2:] == [("ChannelStateChange", "Up"),
                                          ("Dial", "Up", "ANSWER")]
    assert _summary(ari, busy)[-1] == ("Dial", "Down", "BUSY")
    assert _summary(ari, ringing)[-2:] == [("ChannelStateChange", "Ringing"),
                                           ("Dial", "Ringing", "RINGING")]
    await sim.advance(4.01)  # the queued hangup is read ~2 ms later (LOCAL_HANGUP_DELAY)
    assert _summary(ari, busy)[-3:] == [("ChannelHangupRequest", "Down", 17),
                                        ("StasisEnd", "Down"), ("ChannelDestroyed", "Down", 17)]
    await sim.advance(26.0)
    assert _summary(ari, target)[-3:] == [("ChannelHangupRequest", "Up", 16),
                                          ("StasisEnd", "Up"), ("ChannelDestroyed", "Up", 16)]
    await sim.advance(29.0)
    assert _summary(ari, ringing)[-1] == ("ChannelDestroyed", "Ringing", 16)
    assert [c.name.split("-")[0] for c in sim.live_channels()] == ["PJSIP/trunk"]


async def test_local_caller_hangs_up_after_caller_context(sim: Simulator,
                                                          ari: AriClient) -> None:
    """Originate Local/100@inbound-test into [caller]: ;2 enters Stasis(verbatim,inbound,100)
    in state Ring; once answered, ;1 runs Answer, Playback, Wait(30), Hangup."""
    status, ch1 = await ari.call("POST", "/channels", endpoint="Local/100@inbound-test",
                                 context="caller", extension="s", priority=1,
                                 callerId='"Client" <+14155550100>')
    assert status == 200 and ch1["name"].endswith(";1")
    start = ari.of_type("StasisStart")[0]
    ch2 = start["channel"]["id"]
    assert start["args"] == ["inbound", "100"] and start["channel"]["name"].endswith(";2")
    await ari.call("POST", f"/channels/{ch2}/answer")
    status, channels = await ari.call("GET", "/channels")
    rows = {(c["name"][-2:], c["state"], c["dialplan"]["app_name"]) for c in channels}
    assert rows == {(";1", "Up", "Wait"), (";2", "Up", "Stasis")}
    await sim.advance(30.01)
    assert _summary(ari, ch2)[-2:] == [("ChannelHangupRequest", "Up", 16), ("StasisEnd", "Up")]


async def test_originate_with_app(sim: Simulator, ari: AriClient) -> None:
    status, out = await ari.call("POST", "/channels", endpoint="PJSIP/400", app="verbatim",
                                 appArgs="outbound,400", callerId='"Firm" <+12125550199>')
    assert status == 200 and out["dialplan"]["app_name"] == "AppDial2"
    await sim.advance(1.0)
    assert _summary(ari, out["id"]) == [
        ("Dial", "Down", ""), ("Dial", "Down", "RINGING"), ("ChannelStateChange", "Ringing"),
        ("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER"), ("ChannelDialplan", "Up"),
        ("StasisStart", "Up", ["outbound", "400"])]
    sim.set_endpoint("PJSIP/401", result="noanswer")
    _, slow = await ari.call("POST", "/channels", endpoint="PJSIP/401", app="verbatim",
                                  timeout=5)
    await sim.advance(5.0)
    assert _summary(ari, slow["id"])[-2:] == [("Dial", "Ringing", "NOANSWER"),
                                              ("ChannelDestroyed", "Ringing", 0)]
    status, local = await ari.call("POST", "/channels", endpoint="Local/200@targets",
                                   app="verbatim", appArgs="x")
    await sim.advance(1.0)
    assert _summary(ari, local["id"])[-1] == ("StasisStart", "Up", ["x"])


async def test_websocket_drop_and_resume(sim: Simulator, ari: AriClient) -> None:
    caller = await _inbound(sim, ari)
    await sim.drop_websockets()
    await asyncio.sleep(0.05)
    assert ari.ws is not None and ari.ws.closed
    _, bridge = await ari.call("GET", "/bridges/b")
    assert bridge["channels"] == [caller]
    # while no socket holds the app, new calls cannot enter it and events are lost
    lost = sim.start_call(args=["inbound", "202"])
    assert lost.destroyed and sim.warnings
    await ari.call("POST", f"/channels/{caller}/variable", variable="X", value="1")
    assert sim.hub.log[-1].delivered is False
    again = AriClient(sim)
    await again.connect()
    await again.call("POST", f"/channels/{caller}/variable", variable="X", value="2")
    assert [e["value"] for e in again.of_type("ChannelVarset")] == ["2"]
    # a second socket for the same app takes it over; the first learns it was replaced
    third = AriClient(sim)
    await third.connect()
    assert [e["type"] for e in again.events][-1] == "ApplicationReplaced"
    sim.hangup(caller)
    await sim.settle()
    assert "StasisEnd" in third.types(caller) and "StasisEnd" not in again.types(caller)
    await again.close()
    await third.close()


async def test_subscribe_all_and_waits(sim: Simulator) -> None:
    watcher = AriClient(sim, app="watcher")
    watcher.app = "watcher&subscribeAll=true"
    await watcher.connect()
    ch = sim.start_call(app="watcher", args=[])
    await sim.settle()
    assert watcher.types(ch.id) == ["ChannelCreated", "ChannelDialplan", "StasisStart"]
    event = await sim.wait_for("StasisStart", match=lambda e: e["channel"]["id"] == ch.id)
    assert event is not None and event["args"] == []
    waiter = asyncio.create_task(sim.wait_for_request("DELETE", r"^/channels/"))
    await watcher.call("DELETE", f"/channels/{ch.id}")
    assert (await waiter)["status"] == 204
    with pytest.raises(TimeoutError):
        await sim.wait_for(lambda: False, timeout=0.05)
    await watcher.close()


async def test_auto_clock(tmp_path: Path) -> None:
    async with running_simulator(tmp_path, clock_mode="auto", speed=50.0) as sim:
        ari = AriClient(sim)
        await ari.connect()
        caller = await _inbound(sim, ari)
        callee = await _create_and_dial(ari, "PJSIP/201", caller)
        await sim.wait_for("Dial", timeout=2.0, match=lambda e: e["dialstatus"] == "ANSWER")
        assert sim.clock.now() >= 1.0
        await ari.call("DELETE", f"/channels/{callee}")
        await ari.close()
