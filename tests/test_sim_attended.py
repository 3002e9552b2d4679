"""Attended transfers (REFER with Replaces): link, application, fail, abandoned — events, and
the tones each bridge recording holds second by second once the Local pair links the calls."""

from __future__ import annotations

from arisim.audio import tone_map, tones_per_second
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.sim_calls import CALLEE, CALLER, TARGET, call_with_callee, flow

CONSULT = 1300  # the transferer's second call
FREQS = [CALLER, CALLEE, TARGET, CONSULT]

CHECK_REQUESTS = True  # every request these tests make is one the spec allows


async def consultation(sim: Simulator, ari: AriClient, *, bridge_it: bool = True) -> str:
    """Phone 201 places a second call to 300 through from-internal (Stasis outbound,300); the
    app answers it and, when `bridge_it`, bridges it in "c" (recorded "rec-c") with 300."""
    leg = sim.start_call("PJSIP/201", caller_number="201", caller_name="",
                         args=["outbound", "300"], tone_hz=CONSULT)
    await sim.settle()
    await ari.call("POST", f"/channels/{leg.id}/answer")
    if bridge_it:
        sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
        await ari.call("POST", "/bridges", bridgeId="c", type="mixing")
        await ari.call("POST", "/bridges/c/addChannel", channel=leg.id)
        _, target = await ari.call("POST", "/channels/create", endpoint="PJSIP/300",
                                   app="verbatim", appArgs="dialed")
        await ari.call("POST", f"/channels/{target['id']}/dial", caller=leg.id)
        await sim.advance(1.0)
        await ari.call("POST", "/bridges/c/record", name="rec-c", format="wav")
        await ari.call("POST", "/bridges/c/addChannel", channel=target["id"])
    return leg.id


def types_since(ari: AriClient, start: int) -> list[tuple[str, str]]:
    out = []
    for e in ari.events[start:]:
        if e["type"] in ("ChannelVarset", "ChannelConnectedLine"):
            continue
        ch = e.get("channel") or e.get("peer") or e.get("transferer_first_leg") or {}
        out.append((e["type"], ch.get("name", "").split("-")[0]))
    return out


async def test_link_transfer_events_and_media(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_attended_transfer_refer, then both recordings hold caller and 300."""
    caller, first = await call_with_callee(sim, ari)  # t=1
    second = await consultation(sim, ari)  # t=2: 300 in "c"
    await sim.advance(1.0)  # t=3
    start = len(ari.events)
    outcome = sim.attended_transfer(first, second)
    await sim.settle()
    assert outcome.result == "Success"
    assert types_since(ari, start) == [("ChannelUnhold", "PJSIP/201"),
                                       ("ChannelUnhold", "PJSIP/201")]
    await sim.advance(0.502)
    one, two = outcome.local_one, outcome.local_two
    assert types_since(ari, start)[2:] == [
        ("StasisStart", "Local/_attended@transfer"), ("ChannelLeftBridge", "PJSIP/201"),
        ("ChannelEnteredBridge", "Local/_attended@transfer"),
        ("StasisStart", "Local/_attended@transfer"), ("ChannelLeftBridge", "PJSIP/201"),
        ("ChannelEnteredBridge", "Local/_attended@transfer"),
        ("ChannelStateChange", "Local/_attended@transfer"), ("Dial", "Local/_attended@transfer"),
        ("StasisEnd", "PJSIP/201"), ("BridgeAttendedTransfer", "PJSIP/201")]
    xfer = ari.of_type("BridgeAttendedTransfer")[0]
    assert (xfer["result"], xfer["is_external"], xfer["destination_type"]) == (
        "Success", False, "link")
    assert xfer["transferer_first_leg"]["id"] == first
    assert xfer["transferer_second_leg"]["id"] == second
    assert xfer["destination_link_first_leg"]["id"] == one
    assert xfer["destination_link_second_leg"]["id"] == two
    assert xfer["transferer_first_leg_bridge"]["channels"] == [caller, first]
    assert "transferee" not in xfer and "transfer_target" not in xfer
    starts = {e["channel"]["id"]: e for e in ari.of_type("StasisStart")}
    assert starts[two]["replace_channel"]["id"] == second and starts[two]["args"] == []
    assert starts[two]["channel"]["state"] == "Up"
    assert starts[one]["replace_channel"]["id"] == first
    assert starts[one]["channel"]["dialplan"]["app_data"] == "verbatim"
    # the consultation leg entered from the dialplan: its StasisEnd only
    assert flow(ari, second)[-2:] == [("ChannelLeftBridge", "Up"), ("StasisEnd", "Up")]
    await sim.advance(0.01)  # the phone's BYE on the first leg
    assert flow(ari, first)[-2:] == [("ChannelHangupRequest", "Up", 16), ("StasisEnd", "Up")]
    assert sim.bridges["a"].channels == [caller, one]
    assert len(sim.bridges["c"].channels) == 2 and two in sim.bridges["c"].channels
    await sim.advance(2.488)  # t=6
    sim.hangup(caller)
    await sim.advance(1.0)
    a = tones_per_second(sim.spool_dir / "rec-a.wav", FREQS)
    c = tones_per_second(sim.spool_dir / "rec-c.wav", FREQS)
    # "a": caller alone 0-1, with 201 until the link at 3.5, then with 300 through ";1" until
    # the caller leaves at 6; then ";1" alone still brings 300 (bridge "c" mixes)
    assert a[:3] == [{CALLER}, {CALLER, CALLEE}, {CALLER, CALLEE}]
    assert a[3] == {CALLER, CALLEE, TARGET}
    windows = tone_map(sim.spool_dir / "rec-a.wav", FREQS)
    assert windows[34] == {CALLER, CALLEE} and windows[36] == {CALLER, TARGET}
    assert a[4:6] == [{CALLER, TARGET}, {CALLER, TARGET}]
    assert a[6:] == [{TARGET}]
    # "c" (from t=2): 201's consultation with 300, then caller and 300 once linked
    assert c[0] == {CONSULT, TARGET}
    assert c[2:4] == [{CALLER, TARGET}, {CALLER, TARGET}]
    assert c[4:] == [{TARGET}]


async def test_application_transfer(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_attended_transfer_unbridged: ";2" takes the unbridged consultation leg's
    place in the app; the app then connects it to 300."""
    caller, first = await call_with_callee(sim, ari)
    second = await consultation(sim, ari, bridge_it=False)
    start = len(ari.events)
    outcome = sim.attended_transfer(first, second)
    await sim.advance(0.6)
    one, two = outcome.local_one, outcome.local_two
    assert types_since(ari, start) == [
        ("ChannelUnhold", "PJSIP/201"), ("StasisStart", "Local/_attended@transfer"),
        ("StasisEnd", "PJSIP/201"), ("ChannelDialplan", "Local/_attended@transfer"),
        ("StasisStart", "Local/_attended@transfer"), ("ChannelLeftBridge", "PJSIP/201"),
        ("ChannelEnteredBridge", "Local/_attended@transfer"),
        ("BridgeAttendedTransfer", "PJSIP/201"),
        ("ChannelStateChange", "Local/_attended@transfer"), ("Dial", "Local/_attended@transfer"),
        ("ChannelHangupRequest", "PJSIP/201"), ("StasisEnd", "PJSIP/201")]
    xfer = ari.of_type("BridgeAttendedTransfer")[0]
    assert (xfer["destination_type"], xfer["destination_application"]) == (
        "application", "Stasis")
    assert xfer["replace_channel"]["id"] == one
    assert "transferer_second_leg_bridge" not in xfer
    start2 = next(e for e in ari.of_type("StasisStart") if e["channel"]["id"] == two)
    assert start2["channel"]["dialplan"]["app_name"] == ""  # snapshot before the masquerade
    _, listed = await ari.call("GET", f"/channels/{two}")
    assert listed["dialplan"]["app_data"] == "verbatim,outbound,300"
    assert listed["creationtime"] == start2["replace_channel"]["creationtime"]
    assert second not in {c.id for c in sim.live_channels()}
    # the app finishes the call to 300 for ";2": the call bridge hears 300 through ";1"
    sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
    await ari.call("POST", "/bridges", bridgeId="c", type="mixing")
    await ari.call("POST", "/bridges/c/addChannel", channel=two)
    _, target = await ari.call("POST", "/channels/create", endpoint="PJSIP/300",
                               app="verbatim", appArgs="dialed")
    await ari.call("POST", f"/channels/{target['id']}/dial", caller=two)
    await sim.advance(1.0)
    await ari.call("POST", "/bridges/c/addChannel", channel=target["id"])
    await sim.advance(2.0)
    sim.hangup(caller)
    await sim.settle()
    a = tones_per_second(sim.spool_dir / "rec-a.wav", FREQS)
    assert a[-2:] == [{CALLER, TARGET}, {CALLER, TARGET}]


async def test_failed_transfer(sim: Simulator, ari: AriClient) -> None:
    """main/bridge.c ast_bridge_transfer_attended `end:`: on failure the consultation leg is
    soft-hung-up (AST_SOFTHANGUP_DEV) and "Fail" / destination_type "fail" is published."""
    caller, first = await call_with_callee(sim, ari)
    second = await consultation(sim, ari)
    outcome = sim.attended_transfer(first, second, result="fail")
    await sim.settle()
    assert outcome.result == "Fail"
    xfer = ari.of_type("BridgeAttendedTransfer")[0]
    assert (xfer["result"], xfer["destination_type"]) == ("Fail", "fail")
    assert "destination_link_first_leg" not in xfer
    assert flow(ari, second)[-3:] == [("ChannelHangupRequest", "Up", 1),
                                      ("ChannelLeftBridge", "Up"), ("StasisEnd", "Up")]
    assert sim.bridges["a"].channels == [caller, first]


async def test_transfer_fails_when_a_leg_hangs_up_meanwhile(
        sim: Simulator, ari: AriClient) -> None:
    _caller, first = await call_with_callee(sim, ari)
    second = await consultation(sim, ari)
    sim.attended_transfer(first, second)
    sim.hangup(first)
    await sim.advance(0.6)
    xfer = ari.of_type("BridgeAttendedTransfer")[0]
    assert xfer["result"] == "Fail"
    assert not [c for c in sim.live_channels() if c.name.startswith("Local/_attended")]


async def test_abandoned_transfer_publishes_no_transfer(sim: Simulator, ari: AriClient) -> None:
    """The staff member holds the caller, consults, hangs up the consultation and resumes."""
    _caller, first = await call_with_callee(sim, ari)
    sim.hold(first)
    second = await consultation(sim, ari)
    await sim.advance(1.0)
    sim.abandon_transfer(first, second)
    await sim.advance(1.0)
    assert ari.of_type("BridgeAttendedTransfer") == []
    assert [e["type"] for e in ari.events
            if (e.get("channel") or {}).get("id") == first][-2:] == ["ChannelHold",
                                                                    "ChannelUnhold"]
    assert flow(ari, second)[-3:] == [("ChannelHangupRequest", "Up", 16),
                                      ("ChannelLeftBridge", "Up"), ("StasisEnd", "Up")]
    a = tones_per_second(sim.spool_dir / "rec-a.wav", FREQS)
    # on hold from t=1 to t=3: 201 silent, the caller still recorded
    assert a[1:3] == [{CALLER}, {CALLER}] and a[3] == {CALLER, CALLEE}


async def test_invalid_when_neither_leg_is_bridged(sim: Simulator, ari: AriClient) -> None:
    one = sim.start_call("PJSIP/201", args=["outbound", "300"])
    two = sim.start_call("PJSIP/201", args=["outbound", "301"])
    await sim.settle()
    assert sim.attended_transfer(one.id, two.id).result == "Invalid"
    await sim.settle()
    xfer = ari.of_type("BridgeAttendedTransfer")[0]
    assert (xfer["result"], xfer["destination_type"]) == ("Invalid", "fail")
    assert ari.of_type("ChannelUnhold") == []
