"""Hook mode: DTMF features (features.conf applicationmap) in a Dial() bridge running an AGI.

main/features_config.c: a channel uses the applicationmap items its DYNAMIC_FEATURES names;
main/bridge_basic.c / bridge_channel.c: digits are collected (1 s apart at most), a full code runs
the item's application on the channel ("self") or the other party ("peer") with its bridge
channel suspended — it stays in the bridge but neither sends nor hears there meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arisim.audio import tones_per_second
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.agi import AgiCall, FakeAgi, only_channel

CALLER, CALLEE = 440, 700
FREQS = [CALLER, CALLEE]

CHECK_REQUESTS = True



def _keys(sim: Simulator, channel_id: str, digits: str) -> None:
    for d in digits:
        sim.send_dtmf(channel_id, d)


async def _bridged_call(sim: Simulator, ari: AriClient, agi: FakeAgi,
                        features: str = "verbatim-pause#verbatim-note") -> tuple[Any, Any]:
    sim.set_applicationmap({
        "verbatim-pause": ("*1", "self", f"AGI({agi.url('pause')},${{CHANNEL}})"),
        "verbatim-note": ("*3", "peer", f"AGI({agi.url('note')})"),
    })
    sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)
    steps = [("Dial", "PJSIP/${EXTEN},30")]
    if features:
        steps.insert(0, ("Set", f"__DYNAMIC_FEATURES={features}"))
    sim.add_extension("hook-in", "_X.", steps)
    caller = sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER)
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    for ch, name in ((caller, "caller"), (callee, "callee")):
        await ari.call("POST", f"/channels/{ch.id}/snoop/snoop-{name}", spy="both",
                       app="verbatim")
        await ari.call("POST", f"/channels/snoop-{name}/record", name=name, format="wav")
    return caller, callee


async def test_self_feature_runs_agi_on_the_presser(sim: Simulator, watcher: AriClient) -> None:
    envs: list[dict[str, str]] = []
    got: list[str] = []

    async def script(call: AgiCall) -> None:
        envs.append(dict(call.env))
        got.append(await call.send("GET VARIABLE DYNAMIC_FEATURENAME"))
        got.append(await call.send("GET VARIABLE DYNAMIC_WHO_ACTIVATED"))
        got.append(await call.send("EXEC Wait 1"))

    async with FakeAgi(script) as agi:
        caller, callee = await _bridged_call(sim, watcher, agi)
        assert callee.variables["DYNAMIC_FEATURES"] == "verbatim-pause#verbatim-note"
        await sim.advance(1.0)
        start = len(watcher.events)
        _keys(sim, caller.id, "*1")
        session = await sim.wait_agi(caller.id, "playing")
        assert session.kind == "feature" and session.script == "pause"
        assert caller.bridge_id == callee.bridge_id is not None and caller.suspended
        await sim.advance(1.0)
        await sim.wait_agi(caller.id, "done")
        await sim.settle()
        assert not caller.suspended
        await sim.advance(1.0)
        sim.hangup(caller.id)
        await sim.settle()
    assert envs[0]["agi_channel"] == caller.name
    assert envs[0]["agi_arg_1"] == caller.name  # ${CHANNEL} in the item's data
    assert envs[0]["agi_context"] == "hook-in"
    assert got == ["200 result=1 (verbatim-pause)", f"200 result=1 ({caller.name})",
                   "200 result=0"]
    types = [e["type"] for e in watcher.events[start:]
             if e.get("channel", {}).get("id") == caller.id]
    assert types[:6] == ["ChannelDtmfReceived", "ChannelDtmfReceived", "ChannelVarset",
                         "ChannelVarset", "ChannelVarset", "ChannelHangupRequest"]
    # the presser's bridge channel was suspended for the second the AGI ran
    assert tones_per_second(Path(sim.spool_dir) / "callee.wav", FREQS) == [
        {CALLER, CALLEE}, {CALLEE}, {CALLER, CALLEE}]
    assert tones_per_second(Path(sim.spool_dir) / "caller.wav", FREQS) == [
        {CALLER, CALLEE}, {CALLER}, {CALLER, CALLEE}]


async def test_peer_feature_runs_on_the_other_party(sim: Simulator,
                                                    watcher: AriClient) -> None:
    envs: list[dict[str, str]] = []

    async def script(call: AgiCall) -> None:
        envs.append(dict(call.env))
        await call.send("GET VARIABLE DYNAMIC_WHO_ACTIVATED")

    async with FakeAgi(script) as agi:
        caller, callee = await _bridged_call(sim, watcher, agi)
        _keys(sim, callee.id, "*3")
        session = await sim.wait_agi(None, "done")
        await sim.settle()
    assert session.channel_id == caller.id and session.script == "note"
    assert envs[0]["agi_channel"] == caller.name
    assert caller.variables["DYNAMIC_WHO_ACTIVATED"] == callee.name
    assert session.replies == [f"200 result=1 ({callee.name})"]


async def test_digits_that_do_not_complete_a_code(sim: Simulator, watcher: AriClient) -> None:
    """"*" then more than featuredigittimeout (1 s) before "1": no feature; a code no item
    has: nothing; ChannelDtmfReceived for each digit all the same."""
    async with FakeAgi() as agi:
        caller, _ = await _bridged_call(sim, watcher, agi)
        sim.send_dtmf(caller.id, "*")
        await sim.advance(1.1)
        sim.send_dtmf(caller.id, "1")
        _keys(sim, caller.id, "*9")
        await sim.settle()
        assert sim.agi_sessions == []
        _keys(sim, caller.id, "*1")
        await sim.wait_agi(caller.id, "done")
    assert len([e for e in watcher.events if e["type"] == "ChannelDtmfReceived"]) == 6


async def test_no_dynamic_features_no_hooks(sim: Simulator, watcher: AriClient) -> None:
    async with FakeAgi() as agi:
        caller, callee = await _bridged_call(sim, watcher, agi, features="")
        _keys(sim, caller.id, "*1")
        _keys(sim, callee.id, "*3")
        await sim.settle()
    assert sim.agi_sessions == []


async def test_bridge_ends_during_feature_agi(sim: Simulator, watcher: AriClient) -> None:
    """The other party hangs up while the feature's AGI runs: the presser is kicked out of the
    dissolving bridge but its AGI goes on (no HANGUP); then its Dial returns and it is hung
    up."""
    got: list[str] = []

    async def script(call: AgiCall) -> None:
        got.append(await call.send("EXEC Wait 2"))
        got.append(await call.send("NOOP"))

    async with FakeAgi(script) as agi:
        caller, callee = await _bridged_call(sim, watcher, agi)
        _keys(sim, caller.id, "*1")
        await sim.wait_agi(caller.id, "playing")
        await sim.advance(1.0)
        sim.hangup(callee.id)
        await sim.settle()
        assert caller.bridge_id is None and not caller.hungup
        await sim.advance(1.0)
        session = await sim.wait_agi(caller.id, "done")
        await sim.advance(0.01)  # its snoop's next tick: then it is destroyed
    assert got == ["200 result=0", "200 result=0"] and session.status == "SUCCESS"
    assert caller.destroyed
