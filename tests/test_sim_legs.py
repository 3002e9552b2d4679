"""Outgoing legs that do not simply answer: 302 forwards (create+dial and originate), ring groups
whose losers the app cancels, and parties putting the call on hold."""

from __future__ import annotations

import pytest
from arisim.audio import tones_per_second, wav_duration
from arisim.engine import ControlError
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.sim_calls import CALLEE, CALLER, TARGET, call_with_callee, flow

FREQS = [CALLER, CALLEE, TARGET]

CHECK_REQUESTS = True  # every request these tests make is one the spec allows


async def inbound(sim: Simulator, ari: AriClient) -> str:
    caller = sim.start_call(tone_hz=CALLER, args=["inbound", "400"])
    await sim.settle()
    await ari.call("POST", f"/channels/{caller.id}/answer")
    return caller.id


# ------------------------------------------------------------------ forwards
async def test_created_leg_does_not_follow_a_302(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_forward_302_create_dial: Dial CANCEL with `forward` three times, cause 23."""
    sim.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=0.001,
                     ringing=False)
    caller = await inbound(sim, ari)
    _, leg = await ari.call("POST", "/channels/create", endpoint="PJSIP/400", app="verbatim",
                            appArgs="dialed")
    await ari.call("POST", f"/channels/{leg['id']}/dial", caller=caller, timeout=20)
    await sim.advance(0.1)
    assert flow(ari, leg["id"]) == [
        ("ChannelDialplan", "Down"), ("StasisStart", "Down", ["dialed"]), ("Dial", "Down", ""),
        ("ChannelHangupRequest", "Down", 23), ("Dial", "Down", "CANCEL"),
        ("Dial", "Down", "CANCEL"), ("Dial", "Down", "CANCEL"), ("StasisEnd", "Down"),
        ("ChannelDestroyed", "Down", 23)]
    cancels = [e for e in ari.of_type("Dial") if e["dialstatus"] == "CANCEL"]
    assert {e["forward"] for e in cancels} == {"300"} and "forwarded" not in cancels[0]
    assert cancels[0]["peer"]["caller_rdnis"] == "400"  # no caller id: the 302's To
    destroyed = ari.of_type("ChannelDestroyed")[-1]
    assert (destroyed["tech_cause"], destroyed["cause_txt"]) == (
        302, "Redirected to new destination")
    await sim.advance(30.0)  # the dial timeout never fires on the dead leg
    assert flow(ari, leg["id"])[-1] == ("ChannelDestroyed", "Down", 23)


async def test_originated_leg_follows_a_302(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_forward_302_originate, then what dial.c does once the new leg answers."""
    sim.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=0.001,
                     ringing=False)
    _, leg = await ari.call("POST", "/channels", endpoint="PJSIP/400", app="verbatim",
                            appArgs="dialed", callerId='"Firm" <+12125550199>')
    await sim.advance(0.1)
    dials = [e for e in ari.of_type("Dial") if e["peer"]["id"] == leg["id"]]
    assert [(d["dialstatus"], d["forward"], d["dialstring"]) for d in dials] == [
        ("", "", "400"), ("CANCEL", "300", "")]
    forwarded = dials[1]["forwarded"]
    assert forwarded["name"].startswith("Local/300@from-internal-")
    assert forwarded["dialplan"]["app_name"] == "AppDial2"
    assert dials[1]["peer"]["caller_rdnis"] == "+12125550199"
    assert flow(ari, leg["id"])[-1] == ("ChannelDestroyed", "Down", 0)
    start = ari.of_type("StasisStart")[-1]
    assert start["args"] == ["outbound", "300"] and start["channel"]["name"].endswith(";2")
    two = start["channel"]["id"]
    # the app answers ";2" (as it would any new call): ";1" is the originate's answered leg
    await ari.call("POST", f"/channels/{two}/answer")
    assert flow(ari, forwarded["id"]) == [
        ("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER"), ("ChannelDialplan", "Up"),
        ("StasisStart", "Up", ["dialed"])]
    answer = next(e for e in ari.of_type("Dial") if e["peer"]["id"] == forwarded["id"])
    assert answer["dialstring"] == "300@from-internal"  # dial.c: the device


async def test_forward_on_no_answer_to_a_phone_and_to_nowhere(
        sim: Simulator, ari: AriClient) -> None:
    """Ringing 5 s, then 302 to "PJSIP/300" (followed, that phone rings and answers); a forward
    to an extension the context lacks kills the originate."""
    sim.set_endpoint("PJSIP/401", result="forward", forward_to="PJSIP/300", answer_after=5.0)
    sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
    _, _leg = await ari.call("POST", "/channels", endpoint="PJSIP/401", app="verbatim",
                            appArgs="dialed", timeout=30)
    await sim.advance(5.0)
    cancel = next(e for e in ari.of_type("Dial") if e["dialstatus"] == "CANCEL")
    new = cancel["forwarded"]
    assert new["name"].startswith("PJSIP/300-")
    await sim.advance(1.0)
    assert [t[0] for t in flow(ari, new["id"])] == [
        "Dial", "ChannelStateChange", "ChannelStateChange", "Dial", "ChannelDialplan",
        "StasisStart"]
    sim.set_endpoint("PJSIP/402", result="forward", forward_to="+15551234567",
                     answer_after=0.5)
    _, lost = await ari.call("POST", "/channels", endpoint="PJSIP/402", app="verbatim")
    await sim.advance(1.0)
    last = [e for e in ari.of_type("Dial") if e["peer"]["id"] == lost["id"]][-1]
    assert last["dialstatus"] == "CANCEL" and "forwarded" not in last
    assert flow(ari, lost["id"])[-1] == ("ChannelDestroyed", "Ringing", 0)
    with pytest.raises(ControlError):
        sim.set_endpoint("PJSIP/403", result="forward")


async def test_forwarded_call_recorded_through_the_local_pair(
        sim: Simulator, ari: AriClient) -> None:
    """The originate's ";1" joins the call bridge; ";2" (in the app) is bridged with 300: the
    call bridge's recording holds 300 through the pair."""
    sim.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=0.001,
                     ringing=False)
    sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
    caller = await inbound(sim, ari)
    await ari.call("POST", "/bridges", bridgeId="a")
    await ari.call("POST", "/bridges/a/addChannel", channel=caller)
    _, _leg = await ari.call("POST", "/channels", endpoint="PJSIP/400", app="verbatim",
                            appArgs="dialed")
    await sim.advance(0.1)
    two = ari.of_type("StasisStart")[-1]["channel"]["id"]
    await ari.call("POST", f"/channels/{two}/answer")
    one = ari.of_type("StasisStart")[-1]["channel"]["id"]
    await ari.call("POST", "/bridges/a/record", name="rec-a", format="wav")
    await ari.call("POST", "/bridges/a/addChannel", channel=one)
    await ari.call("POST", "/bridges", bridgeId="b")
    await ari.call("POST", "/bridges/b/addChannel", channel=two)
    _, target = await ari.call("POST", "/channels/create", endpoint="PJSIP/300",
                               app="verbatim", appArgs="dialed")
    await ari.call("POST", f"/channels/{target['id']}/dial", caller=two)
    await sim.advance(1.0)
    await ari.call("POST", "/bridges/b/addChannel", channel=target["id"])
    await sim.advance(2.0)
    sim.hangup(caller)
    await sim.settle()
    assert tones_per_second(sim.spool_dir / "rec-a.wav", FREQS) == [
        {CALLER}, {CALLER, TARGET}, {CALLER, TARGET}]


# ---------------------------------------------------------------- ring groups
async def test_ring_group_losers_cancelled_as_answered_elsewhere(
        sim: Simulator, ari: AriClient) -> None:
    """Three dialled legs, one answers; the app hangs up the others with
    reason=answered_elsewhere: soft hangup request, StasisEnd, ChannelDestroyed cause 26, and no
    Dial (ARI's dial bridge publishes only what the callee sends)."""
    caller = await inbound(sim, ari)
    sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=2.0)
    for ext in ("202", "203"):
        sim.set_endpoint(f"PJSIP/{ext}", result="noanswer")
    legs = {}
    for ext in ("201", "202", "203"):
        _, leg = await ari.call("POST", "/channels/create", endpoint=f"PJSIP/{ext}",
                                app="verbatim", appArgs="dialed")
        await ari.call("POST", f"/channels/{leg['id']}/dial", caller=caller, timeout=30)
        legs[ext] = leg["id"]
    await sim.advance(2.0)
    assert flow(ari, legs["201"])[-1] == ("Dial", "Up", "ANSWER")
    for ext in ("202", "203"):
        assert (await ari.call("DELETE", f"/channels/{legs[ext]}",
                               reason="answered_elsewhere"))[0] == 204
        assert flow(ari, legs[ext])[-4:] == [
            ("ChannelStateChange", "Ringing"), ("ChannelHangupRequest", "Ringing", 32),
            ("StasisEnd", "Ringing"), ("ChannelDestroyed", "Ringing", 26)]
    assert ari.of_type("ChannelDestroyed")[-1]["cause_txt"] == "Answered elsewhere"
    await sim.advance(40.0)  # their timers are gone
    assert all(sim.find_channel(legs[e]) is None for e in ("202", "203"))


async def test_originated_ring_group_loser_gets_a_dial_status(
        sim: Simulator, ari: AriClient) -> None:
    """main/dial.c monitor_dial: an originated leg hung up by the app publishes Dial with
    ast_hangup_cause_to_dial_status (26 → NOANSWER) and its device before it is destroyed."""
    sim.set_endpoint("PJSIP/202", result="noanswer")
    _, leg = await ari.call("POST", "/channels", endpoint="PJSIP/202", app="verbatim")
    await sim.advance(1.0)
    await ari.call("DELETE", f"/channels/{leg['id']}", reason="answered_elsewhere")
    assert flow(ari, leg["id"])[-3:] == [("ChannelHangupRequest", "Ringing", 32),
                                         ("Dial", "Ringing", "NOANSWER"),
                                         ("ChannelDestroyed", "Ringing", 26)]
    assert ari.of_type("Dial")[-1]["dialstring"] == "202"


# ----------------------------------------------------------------------- hold
async def test_hold_events_and_recording(sim: Simulator, ari: AriClient) -> None:
    """ChannelHold/ChannelUnhold; the held phone is silent, the recording goes on."""
    caller, callee = await call_with_callee(sim, ari)  # t=1, "rec-a" from t=0
    sim.hold(callee, musicclass="default")
    await sim.advance(2.0)
    sim.unhold(callee)
    await sim.advance(1.0)
    sim.hold(caller)
    await sim.advance(1.0)
    sim.hangup(caller)
    await sim.settle()
    held = ari.of_type("ChannelHold")
    assert [(e["channel"]["id"], e.get("musicclass")) for e in held] == [
        (callee, "default"), (caller, None)]
    assert [e["channel"]["id"] for e in ari.of_type("ChannelUnhold")] == [callee]
    assert tones_per_second(sim.spool_dir / "rec-a.wav", FREQS) == [
        {CALLER}, {CALLER}, {CALLER}, {CALLER, CALLEE}, {CALLEE}]


async def test_two_silent_parties_keep_the_recording_going(
        sim: Simulator, ari: AriClient) -> None:
    """Trace silent_parties: with two parties bridged softmix mixes silence; no early finish."""
    caller, callee = await call_with_callee(sim, ari)
    sim.hold(caller)
    sim.hold(callee)
    await sim.advance(10.0)
    assert ari.of_type("RecordingFinished") == []
    sim.hangup(caller)
    await sim.settle()
    assert wav_duration(sim.spool_dir / "rec-a.wav") == pytest.approx(11.0)
    assert tones_per_second(sim.spool_dir / "rec-a.wav", FREQS)[1:] == [set()] * 10


async def test_rest_hold_only_indicates(sim: Simulator, ari: AriClient) -> None:
    """POST /channels/{id}/hold is ast_indicate(AST_CONTROL_HOLD): no event, audio goes on."""
    _caller, callee = await call_with_callee(sim, ari)
    assert (await ari.call("POST", f"/channels/{callee}/hold"))[0] == 204
    assert (await ari.call("DELETE", f"/channels/{callee}/hold"))[0] == 204
    assert ari.of_type("ChannelHold") == [] and ari.of_type("ChannelUnhold") == []
