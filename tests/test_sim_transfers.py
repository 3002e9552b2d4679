"""Blind transfers: events in Asterisk's order and shape, subscriptions, and Local pass-through
media (a bridge recording holds the party a Local pair links to it, second by second)."""

from __future__ import annotations

from arisim.audio import tone_map, tones_per_second
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.sim_calls import CALLEE, CALLER, TARGET, call_with_callee, flow

FREQS = [CALLER, CALLEE, TARGET, 1300]

CHECK_REQUESTS = True  # every request these tests make is one the spec allows


async def connect_transfer_leg(sim: Simulator, ari: AriClient, leg: str) -> str:
    """What the daemon does with the transfer's ";2": answer it, bridge it in "b" (recorded as
    "rec-b"), dial 300 (1000 Hz, answers after 1 s) and bridge it there. Returns 300's id."""
    sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
    await ari.call("POST", f"/channels/{leg}/answer")
    await ari.call("POST", "/bridges", bridgeId="b", type="mixing")
    await ari.call("POST", "/bridges/b/addChannel", channel=leg)
    await ari.call("POST", "/bridges/b/record", name="rec-b", format="wav")
    _, target = await ari.call("POST", "/channels/create", endpoint="PJSIP/300",
                               app="verbatim", appArgs="dialed")
    await ari.call("POST", f"/channels/{target['id']}/dial", caller=leg)
    await sim.advance(1.0)
    await ari.call("POST", "/bridges/b/addChannel", channel=target["id"])
    return str(target["id"])


async def test_refer_blind_transfer_events(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_blind_transfer_refer: ChannelUnhold, ";2" into the app as a new call, ";1"
    replacing the transferer, BridgeBlindTransfer without transferee, then the phone's BYE."""
    caller, callee = await call_with_callee(sim, ari)
    await sim.advance(2.0)
    start = len(ari.events)
    outcome = sim.blind_transfer(callee, "300")
    await sim.settle()
    assert outcome.result == "Success" and outcome.local_one and outcome.local_two
    one, two = outcome.local_one, outcome.local_two
    types = [e["type"] for e in ari.events[start:]
             if e["type"] not in ("ChannelVarset", "ChannelConnectedLine")]
    assert types == ["ChannelUnhold", "StasisStart", "StasisStart", "ChannelLeftBridge",
                     "ChannelEnteredBridge", "BridgeBlindTransfer"]
    starts = [e for e in ari.events[start:] if e["type"] == "StasisStart"]
    assert starts[0]["channel"]["id"] == two and starts[0]["args"] == ["transfer", "300"]
    assert starts[0]["channel"]["state"] == "Ring" and "replace_channel" not in starts[0]
    assert starts[0]["channel"]["dialplan"] == {
        "context": "transfer-target", "exten": "300", "priority": 2, "app_name": "Stasis",
        "app_data": "verbatim,transfer,300"}
    assert starts[1]["channel"]["id"] == one and starts[1]["args"] == []
    assert starts[1]["channel"]["name"].endswith(";1")
    assert starts[1]["channel"]["name"].startswith("Local/300@transfer-target-")
    assert starts[1]["replace_channel"]["id"] == callee
    xfer = ari.of_type("BridgeBlindTransfer")[0]
    assert xfer["channel"]["id"] == callee and xfer["result"] == "Success"
    assert xfer["is_external"] is True and (xfer["exten"], xfer["context"]) == (
        "300", "transfer-target")
    assert xfer["replace_channel"]["id"] == one
    assert xfer["replace_channel"]["dialplan"]["app_name"] == ""
    assert xfer["bridge"]["channels"] == [caller, callee]  # snapshot from before the swap
    assert "transferee" not in xfer  # the Recorder makes three channels
    _, bridge = await ari.call("GET", "/bridges/a")
    assert bridge["channels"] == [caller, one]
    # the phone hangs up 0.208 s later: the created leg lost a subscription reference, so its
    # hangup events arrive but no ChannelDestroyed
    await sim.advance(0.3)
    assert flow(ari, callee)[-3:] == [
        ("BridgeBlindTransfer", "Up", "Success", one), ("ChannelHangupRequest", "Up", 16),
        ("StasisEnd", "Up")]
    # answering ";2" answers ";1": it is in a bridge, so it publishes the Dial ANSWER
    await ari.call("POST", f"/channels/{two}/answer")
    assert flow(ari, one) == [("StasisStart", "Down", [], callee),
                              ("ChannelEnteredBridge", "Down"),
                              ("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER")]


async def test_ami_blind_transfer_order_and_recording(sim: Simulator, ari: AriClient) -> None:
    """Trace blind_transfer: ";1"'s swap and BridgeBlindTransfer before ";2"'s StasisStart; the
    transferer stays in Stasis out of the bridge; the recording goes on."""
    _caller, callee = await call_with_callee(sim, ari)
    start = len(ari.events)
    outcome = sim.blind_transfer(callee, "300", via="ami")
    await sim.settle()
    types = [(e["type"], (e.get("channel") or {}).get("id")) for e in ari.events[start:]
             if e["type"] not in ("ChannelVarset",)]
    assert types == [("ChannelUnhold", callee), ("StasisStart", outcome.local_one),
                     ("ChannelLeftBridge", callee),
                     ("ChannelEnteredBridge", outcome.local_one),
                     ("BridgeBlindTransfer", callee), ("StasisStart", outcome.local_two)]
    await sim.advance(5.0)
    assert flow(ari, callee)[-1] == ("BridgeBlindTransfer", "Up", "Success", outcome.local_one)
    state = sim.state()
    assert [r["name"] for r in state["live_recordings"]] == ["rec-a"]
    assert any(c["id"] == callee and c["stasis_app"] == "verbatim" and c["bridge_id"] is None
               for c in state["channels"])


async def test_transfer_media_passes_through_the_local_pair(
        sim: Simulator, ari: AriClient) -> None:
    """Each bridge recording holds, second by second, the party the Local pair links to it."""
    caller, callee = await call_with_callee(sim, ari)
    await sim.advance(2.0)  # t=3: the callee transfers the caller to 300
    outcome = sim.blind_transfer(callee, "300")
    await sim.settle()
    assert outcome.local_two is not None
    target = await connect_transfer_leg(sim, ari, outcome.local_two)  # 300 joins at t=4
    await sim.advance(3.0)  # t=7: the caller hangs up; ";1" keeps "a" recording 300
    sim.hangup(caller)
    await sim.advance(2.0)  # t=9: 300 hangs up; the app hangs up the Local pair
    sim.hangup(target)
    for leg in (outcome.local_one, outcome.local_two):
        await ari.call("DELETE", f"/channels/{leg}")
    await sim.advance(1.0)
    a = tones_per_second(sim.spool_dir / "rec-a.wav", FREQS)
    assert a == [{CALLER}, {CALLER, CALLEE}, {CALLER, CALLEE}, {CALLER},
                 {CALLER, TARGET}, {CALLER, TARGET}, {CALLER, TARGET}, {TARGET}, {TARGET}]
    b = tones_per_second(sim.spool_dir / "rec-b.wav", FREQS)
    # ";2" passes the caller into "b" (alone there, through the mixing bridge "a"), then 300
    # joins; after the caller left, "b" holds 300 only
    assert b == [{CALLER}, {CALLER, TARGET}, {CALLER, TARGET}, {CALLER, TARGET},
                 {TARGET}, {TARGET}]
    # to the window: the callee's tone stops at the transfer (t=3.0)
    windows = tone_map(sim.spool_dir / "rec-a.wav", FREQS)
    assert CALLEE in windows[29] and CALLEE not in windows[30]
    assert TARGET not in windows[39] and TARGET in windows[40]


async def test_lone_local_half_feeds_the_recording_only_through_a_mixing_bridge(
        sim: Simulator, ari: AriClient) -> None:
    """Trace blind_transfer: ";1" alone in the call bridge while ";2" sits in Stasis unbridged
    sends nothing (the recording starves after 4 s); bridged with a party it keeps it alive."""
    caller, callee = await call_with_callee(sim, ari)
    outcome = sim.blind_transfer(callee, "300", via="ami")
    await sim.settle()
    await ari.call("DELETE", f"/channels/{caller}")
    await sim.advance(4.5)
    finished = ari.of_type("RecordingFinished")
    assert [r["recording"]["name"] for r in finished] == ["rec-a"]
    assert finished[0]["recording"]["duration"] == 1  # the caller's first second only
    assert outcome.local_one in sim.bridges["a"].channels


async def test_blind_transfer_to_a_two_channel_bridge_names_the_transferee(
        sim: Simulator, ari: AriClient) -> None:
    """No recording: ast_bridge_peer finds the single other channel (`transferee`); Stasis
    bridges still use the Local replacement (AST_BRIDGE_FLAG_TRANSFER_BRIDGE_ONLY)."""
    caller, callee = await call_with_callee(sim, ari, record=False)
    outcome = sim.blind_transfer(caller, "300", via="ami", hangup_after=None)
    await sim.settle()
    xfer = ari.of_type("BridgeBlindTransfer")[0]
    assert xfer["transferee"]["id"] == callee and xfer["channel"]["id"] == caller
    assert sim.bridges["a"].channels == [callee, outcome.local_one]


async def test_blind_transfer_failures(sim: Simulator, ari: AriClient) -> None:
    """No bridge → Invalid (no `bridge`); an extension the transfer context lacks → Fail, the
    Local pair never seen, the transferer still bridged."""
    caller, callee = await call_with_callee(sim, ari)
    lone = sim.start_call(args=["inbound", "202"])
    await sim.settle()
    assert sim.blind_transfer(lone.id, "300").result == "Invalid"
    sim.add_extension("nowhere", "1", [("Hangup", "")])
    failed = sim.blind_transfer(callee, "300", context="nowhere")
    await sim.settle()
    assert failed.result == "Fail" and failed.local_one is None
    results = [(e["result"], "bridge" in e, "replace_channel" in e)
               for e in ari.of_type("BridgeBlindTransfer")]
    assert results == [("Invalid", False, False), ("Fail", True, True)]
    assert sim.bridges["a"].channels == [caller, callee]
    local = ari.of_type("BridgeBlindTransfer")[1]["replace_channel"]["id"]
    assert flow(ari, callee)[-2:] == [("ChannelUnhold", "Up"),
                                      ("BridgeBlindTransfer", "Up", "Fail", local)]
    assert not [c for c in sim.live_channels() if c.name.startswith("Local/300@nowhere")]


async def test_transfer_context_is_configurable(sim: Simulator, ari: AriClient) -> None:
    """A deployment whose transfer context fails closed when the app is gone: ";2" hangs up,
    taking ";1" out of the bridge."""
    sim.add_extension("xfer", "_X.", [("Stasis", "other-app,transfer,${EXTEN}"),
                                      ("Hangup", "")])
    caller, callee = await call_with_callee(sim, ari)
    outcome = sim.blind_transfer(callee, "300", context="xfer", via="ami")
    await sim.advance(0.1)
    assert outcome.result == "Success"
    assert any("other-app" in w for w in sim.warnings)
    assert flow(ari, outcome.local_one or "")[-3:] == [
        ("ChannelHangupRequest", "Down", 16), ("ChannelLeftBridge", "Down"), ("StasisEnd", "Down")]
    assert sim.bridges["a"].channels == [caller]
