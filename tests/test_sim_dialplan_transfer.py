"""Hook mode: recording each party with a snoop channel, and blind transfers out of a basic
(Dial) bridge — main/bridge.c ast_bridge_transfer_blind's two-party path: the transferee itself
runs exten@context (ast_async_goto), no Local channel; the transferer is hung up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arisim.audio import tones_per_second
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.agi import AgiCall, FakeAgi, only_channel

CALLER, CALLEE, TARGET = 440, 700, 1000
FREQS = [CALLER, CALLEE, TARGET]

CHECK_REQUESTS = True



async def _call(sim: Simulator) -> tuple[Any, Any]:
    """A caller (440 Hz) whose dialplan dials 201 (700 Hz, answers after 1 s); transfers go to
    [xfer], which dials the new target (300: 1000 Hz, answers after 1 s)."""
    sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)
    sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    sim.add_extension("xfer", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    caller = sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER)
    await sim.settle()
    return caller, None


async def _snoop(ari: AriClient, channel_id: str, name: str) -> str:
    """What the daemon does per party: a spy=both snoop into the app, recorded."""
    status, snoop = await ari.call("POST", f"/channels/{channel_id}/snoop", spy="both",
                                   app="verbatim", appArgs="snoop", snoopId=f"snoop-{name}")
    assert status == 200
    status, _ = await ari.call("POST", f"/channels/snoop-{name}/record", name=name,
                               format="wav")
    assert status == 201
    return str(snoop["id"])


def _tones(sim: Simulator, name: str) -> list[set[int]]:
    return tones_per_second(Path(sim.spool_dir) / f"{name}.wav", FREQS)


def _finished(ari: AriClient, name: str) -> list[dict[str, Any]]:
    return [e["recording"] for e in ari.events
            if e["type"] == "RecordingFinished" and e["recording"]["name"] == name]


async def test_snoop_records_what_the_party_says_and_hears(sim: Simulator,
                                                           watcher: AriClient) -> None:
    """Snoops on channels outside Stasis: the caller's (from t=0) holds the caller alone while
    201 rings, then both; each snoop ends with its channel (StasisEnd, ChannelDestroyed,
    RecordingFinished)."""
    caller, _ = await _call(sim)
    snoop_a = await _snoop(watcher, caller.id, "caller")
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    snoop_b = await _snoop(watcher, callee.id, "callee")
    await sim.advance(3.0)
    sim.hangup(callee.id)
    await sim.settle()
    assert _finished(watcher, "callee") == []  # not before the snoop's next tick
    await sim.advance(0.01)
    assert _tones(sim, "caller") == [{CALLER}, {CALLER, CALLEE}, {CALLER, CALLEE},
                                     {CALLER, CALLEE}]
    assert _tones(sim, "callee") == [{CALLER, CALLEE}] * 3
    assert [r["duration"] for r in _finished(watcher, "caller")] == [4]
    assert [r["duration"] for r in _finished(watcher, "callee")] == [3]
    for spied, snoop, name in ((caller.id, snoop_a, "caller"), (callee.id, snoop_b, "callee")):
        types = [e["type"] for e in watcher.events if e.get("channel", {}).get("id") == snoop]
        assert types[0] == "ChannelCreated" and types[-2:] == ["StasisEnd", "ChannelDestroyed"]
        # the snoop's recording and the snoop end before its spied channel is destroyed
        # (res_stasis_snoop.c; observed/hook_mode_basic), with no ChannelHangupRequest
        ends = [(e["type"], (e.get("channel") or e.get("recording") or {}).get("id")
                 or e["recording"]["name"]) for e in watcher.events
                if e["type"] in ("RecordingFinished", "StasisEnd", "ChannelDestroyed",
                                 "ChannelHangupRequest")
                and (e.get("channel", {}).get("id") in (spied, snoop)
                     or e.get("recording", {}).get("name") == name)]
        assert ends[-4:] == [("RecordingFinished", name), ("StasisEnd", snoop),
                             ("ChannelDestroyed", spied), ("ChannelDestroyed", snoop)], ends
    assert sim.live_channels() == []


async def test_callee_blind_transfers_the_caller(sim: Simulator, watcher: AriClient) -> None:
    """201 REFERs the caller to 300: events in order, the caller runs [xfer] on its own
    channel (no Local pair), 201 is hung up; the caller's snoop holds the caller and, once
    bridged again, the new target."""
    caller, _ = await _call(sim)
    await _snoop(watcher, caller.id, "caller")
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    await _snoop(watcher, callee.id, "callee")
    await sim.advance(2.0)
    first_bridge = caller.bridge_id
    start = len(watcher.events)
    outcome = sim.blind_transfer(callee.id, "300", context="xfer")
    await sim.advance(0.01)  # the snoop's next tick: it ends, then 201 is destroyed
    assert outcome.result == "Success" and outcome.local_one is None
    steps = [(e["type"], (e.get("channel") or e.get("peer") or {}).get("id"),
              e.get("variable") or e.get("dialplan_app") or e.get("dialstatus"))
             for e in watcher.events[start:] if e["type"] != "RecordingFinished"]
    target = only_channel(sim, "PJSIP/300")
    snoop_b = next(c for c in sim.channels.values() if c.snoop_of == callee.id)
    assert steps == [
        ("ChannelUnhold", callee.id, None),
        ("ChannelVarset", callee.id, "BLINDTRANSFER"),
        ("ChannelVarset", caller.id, "BLINDTRANSFER"),
        ("ChannelVarset", caller.id, "SIPTRANSFER"),
        ("ChannelVarset", caller.id, "SIPREFERRINGCONTEXT"),
        ("BridgeBlindTransfer", callee.id, None),
        ("ChannelLeftBridge", caller.id, None),
        ("ChannelLeftBridge", callee.id, None),
        ("BridgeDestroyed", None, None),
        ("ChannelVarset", caller.id, "DIALSTATUS"),
        ("ChannelDialplan", caller.id, "Dial"),
        ("ChannelVarset", caller.id, "DIALSTATUS"),
        ("ChannelCreated", target.id, None),
        ("ChannelVarset", target.id, "DIALEDPEERNUMBER"),
        ("ChannelDialplan", target.id, "AppDial"),
        ("Dial", target.id, ""),
        ("Dial", target.id, "RINGING"),
        ("ChannelStateChange", target.id, None),
        # 201's snoop notices on its next tick that 201 hung up: it ends, then 201 is
        # destroyed (the snoop held it), then the snoop (observed/hook_mode_blind_transfer)
        ("StasisEnd", snoop_b.id, None),
        ("ChannelDestroyed", callee.id, None),
        ("ChannelDestroyed", snoop_b.id, None),
    ]
    xfer = next(e for e in watcher.events if e["type"] == "BridgeBlindTransfer")
    assert xfer["result"] == "Success" and xfer["is_external"] is True
    assert xfer["exten"] == "300" and xfer["context"] == "xfer"
    assert xfer["transferee"]["id"] == caller.id and "replace_channel" not in xfer
    assert xfer["bridge"]["id"] == first_bridge
    assert xfer["bridge"]["channels"] == [callee.id, caller.id]
    assert caller.dialplan.context == "xfer" and caller.dialplan.exten == "300"
    await sim.advance(1.0)
    assert target.bridge_id == caller.bridge_id and caller.bridge_id != first_bridge
    await sim.advance(1.99)
    sim.hangup(caller.id)
    await sim.advance(0.01)
    assert _tones(sim, "caller") == [{CALLER}, {CALLER, CALLEE}, {CALLER, CALLEE}, {CALLER},
                                     {CALLER, TARGET}, {CALLER, TARGET}]
    assert _tones(sim, "callee") == [{CALLER, CALLEE}] * 2
    assert sim.live_channels() == []


async def test_caller_blind_transfers_the_callee(sim: Simulator, watcher: AriClient) -> None:
    """The caller transfers: 201 (an imparted channel with no PBX) runs [xfer] — here an AGI,
    then Dial(300) — and its snoop holds 201 and the new target; the caller's Dial() returns
    and its PBX hangs it up."""
    envs: list[dict[str, str]] = []

    async def script(call: AgiCall) -> None:
        envs.append(dict(call.env))
        await call.send("SET VARIABLE TRANSFERRED yes")

    async with FakeAgi(script) as agi:
        caller, _ = await _call(sim)
        sim.add_extension("xfer", "_X.", [("AGI", agi.url("transfer")),
                                          ("Dial", "PJSIP/${EXTEN},30")])
        await sim.advance(1.0)
        callee = only_channel(sim, "PJSIP/201")
        await _snoop(watcher, callee.id, "callee")
        await sim.advance(2.0)
        start = len(watcher.events)
        sim.blind_transfer(caller.id, "300", context="xfer")
        await sim.wait_agi(callee.id, "done")
        await sim.settle()
        caller_tail = [e["type"] for e in watcher.events[start:]
                       if e.get("channel", {}).get("id") == caller.id]
        assert caller_tail == ["ChannelUnhold", "ChannelVarset", "BridgeBlindTransfer",
                               "ChannelLeftBridge", "ChannelVarset", "ChannelDestroyed"]
        assert caller.destroyed and not callee.hungup
        assert envs[0]["agi_channel"] == callee.name
        assert (envs[0]["agi_context"], envs[0]["agi_extension"]) == ("xfer", "300")
        assert callee.variables["TRANSFERRED"] == "yes"
        await sim.advance(1.0)
        target = only_channel(sim, "PJSIP/300")
        assert target.bridge_id == callee.bridge_id is not None
        await sim.advance(2.0)
        sim.hangup(target.id)
        await sim.advance(0.01)  # the snoop on 201 ends on its next tick
    assert _tones(sim, "callee") == [{CALLER, CALLEE}, {CALLER, CALLEE}, {CALLEE},
                                     {CALLEE, TARGET}, {CALLEE, TARGET}]
    xfer = next(e for e in watcher.events if e["type"] == "BridgeBlindTransfer")
    assert xfer["channel"]["id"] == caller.id and xfer["transferee"]["id"] == callee.id
    assert sim.live_channels() == []


async def test_refer_to_missing_extension_is_refused(sim: Simulator,
                                                     watcher: AriClient) -> None:
    """res_pjsip_refer answers 404 before any transfer: nothing happens, the call goes on."""
    caller, _ = await _call(sim)
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    start = len(watcher.events)
    outcome = sim.blind_transfer(callee.id, "999", context="nowhere")
    await sim.settle()
    assert outcome.result == "Fail" and watcher.events[start:] == []
    assert callee.bridge_id == caller.bridge_id is not None


async def test_attended_transfer_between_dial_bridges_swaps_the_transferee(
    sim: Simulator, watcher: AriClient
) -> None:
    """201 talks with the caller, places a consultation call to 300 (its own Dial()), then
    REFERs with Replaces: the two basic bridges swap (destination_type "bridge"): the caller
    takes the consultation leg's place beside 300, both of 201's legs are hung up, and the
    caller's snoop follows it (observed/hook_mode_attended_transfer_refer)."""
    caller, _ = await _call(sim)
    await _snoop(watcher, caller.id, "caller")
    await sim.advance(1.0)
    first = only_channel(sim, "PJSIP/201")
    b1 = caller.bridge_id
    second = sim.start_dialplan_call("300", context="xfer", endpoint="PJSIP/201",
                                     tone_hz=CALLEE, caller_number="201")
    await sim.advance(1.0)
    target = only_channel(sim, "PJSIP/300")
    b2 = second.bridge_id
    assert b1 and b2 and target.bridge_id == b2 != b1
    for leg, name in ((first, "first"), (second, "second"), (target, "target")):
        await _snoop(watcher, leg.id, name)
    start = len(watcher.events)
    outcome = sim.attended_transfer(first.id, second.id)
    await sim.advance(0.01)
    assert outcome.result == "Success"
    steps = [(e["type"], (e.get("channel") or {}).get("id"),
              (e.get("bridge") or {}).get("id") or e.get("cause"))
             for e in watcher.events[start:]
             if e["type"] in ("ChannelUnhold", "ChannelLeftBridge", "ChannelEnteredBridge",
                              "ChannelHangupRequest", "BridgeAttendedTransfer",
                              "BridgeDestroyed", "ChannelDestroyed")]
    assert steps == [
        ("ChannelUnhold", first.id, None),
        ("ChannelUnhold", second.id, None),
        ("ChannelLeftBridge", caller.id, b1),
        ("ChannelLeftBridge", second.id, b2),
        ("ChannelEnteredBridge", caller.id, b2),
        ("ChannelHangupRequest", second.id, 1),
        ("BridgeAttendedTransfer", None, None),
        ("ChannelHangupRequest", second.id, 16),
        ("ChannelLeftBridge", first.id, b1),
        ("BridgeDestroyed", None, b1),
        # each snoop ends on its next tick, then the leg it held
        ("ChannelDestroyed", second.id, 16),
        ("ChannelDestroyed", "snoop-second", 0),
        ("ChannelDestroyed", first.id, 16),
        ("ChannelDestroyed", "snoop-first", 0),
    ]
    (xfer,) = [e for e in watcher.events if e["type"] == "BridgeAttendedTransfer"]
    assert (xfer["destination_type"], xfer["destination_bridge"]) == ("bridge", b2)
    assert xfer["transferee"]["id"] == caller.id and xfer["transfer_target"]["id"] == target.id
    assert caller.bridge_id == target.bridge_id == b2
    await sim.advance(1.99)
    sim.hangup(caller.id)  # the bridge dissolves: 300, imparted by 201's Dial(), is hung up
    await sim.advance(0.01)
    assert target.destroyed and sim.live_channels() == []
    # the caller's snoop followed it: alone, with 201, then with 300
    assert _tones(sim, "caller") == [{CALLER}, {CALLER, CALLEE}, {CALLER, TARGET},
                                     {CALLER, TARGET}]
