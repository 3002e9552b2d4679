"""Hook mode, Dial(): what a subscribeAll application sees of a call the dialplan bridges.

apps/app_dial.c (Dial events with `caller` and `peer`, DIALSTATUS, U() on the called channel),
main/features.c ast_bridge_call (answer the caller, a new basic bridge) and main/bridge_basic.c
(the bridge dissolves when a party leaves; the other is hung up / its Dial returns)."""

from __future__ import annotations

import pytest
from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.agi import AgiCall, FakeAgi, flow, only_channel

CHECK_REQUESTS = True



def _bridge_events(ari: AriClient) -> list[tuple[str, str | None, list[str]]]:
    return [(e["type"], (e.get("channel") or {}).get("id"), e["bridge"]["channels"])
            for e in ari.events if "bridge" in e]


async def test_dial_bridges_caller_and_callee(sim: Simulator, watcher: AriClient) -> None:
    sim.set_endpoint("PJSIP/201", tone_hz=700, answer_after=2.0)
    sim.add_extension("hook-in", "_X.", [("NoOp", "hook"), ("Dial", "PJSIP/${EXTEN},30")])
    caller = sim.start_dialplan_call("201", context="hook-in", caller_number="+14155550100",
                                     caller_name="Client", tone_hz=440)
    await sim.advance(2.0)
    callee = only_channel(sim, "PJSIP/201")
    assert flow(watcher.events, caller.id) == [
        ("ChannelCreated", "Ring"), ("ChannelDialplan", "Ring", "NoOp"),
        ("ChannelDialplan", "Ring", "Dial"), ("ChannelStateChange", "Up"),
        ("ChannelEnteredBridge", "Up")]
    assert flow(watcher.events, callee.id) == [
        ("ChannelCreated", "Down"), ("ChannelDialplan", "Down", "AppDial"),
        ("Dial", "Down", ""), ("Dial", "Down", "RINGING"), ("ChannelStateChange", "Ringing"),
        ("ChannelStateChange", "Up"), ("Dial", "Up", "ANSWER"), ("ChannelEnteredBridge", "Up")]
    dials = [e for e in watcher.events if e["type"] == "Dial"]
    assert all(e["caller"]["id"] == caller.id and e["peer"]["id"] == callee.id for e in dials)
    assert [e["dialstring"] for e in dials] == ["201", "", ""]
    created = next(e for e in watcher.events if e["type"] == "ChannelCreated"
                   and e["channel"]["id"] == callee.id)["channel"]
    assert created["dialplan"]["context"] == "from-internal"
    inbound = watcher.events[0]["channel"]
    assert inbound["caller"] == {"name": "Client", "number": "+14155550100"}
    assert inbound["dialplan"] == {"context": "hook-in", "exten": "201", "priority": 1,
                                   "app_name": "", "app_data": ""}
    entered = [e for e in watcher.events if e["type"] == "ChannelEnteredBridge"]
    bridge = entered[-1]["bridge"]
    assert {k: bridge[k] for k in ("technology", "bridge_type", "bridge_class", "creator",
                                   "name", "video_mode")} == {
        "technology": "simple_bridge", "bridge_type": "mixing", "bridge_class": "basic",
        "creator": "", "name": "", "video_mode": "none"}
    assert _bridge_events(watcher) == [
        ("BridgeCreated", None, []), ("ChannelEnteredBridge", callee.id, [callee.id]),
        ("ChannelEnteredBridge", caller.id, [callee.id, caller.id])]
    callee_json = entered[0]["channel"]
    assert callee_json["caller"] == {"name": "", "number": "201"}
    assert callee_json["connected"] == {"name": "Client", "number": "+14155550100"}
    assert caller.variables["DIALSTATUS"] == "ANSWER"
    assert caller.variables["DIALEDPEERNAME"] == callee.name
    # the answered callee's order: the caller's state goes Up only after Dial ANSWER
    order = [(e["type"], (e.get("channel") or e.get("peer") or {}).get("id"))
             for e in watcher.events if e["type"] in ("Dial", "ChannelStateChange")]
    assert order[-2:] == [("Dial", callee.id), ("ChannelStateChange", caller.id)]

    # the callee hangs up (BYE): the bridge dissolves, the caller's Dial returns, its PBX ends
    start = len(watcher.events)
    sim.hangup(callee.id)
    await sim.settle()
    tail = [(e["type"], (e.get("channel") or {}).get("id"), e.get("variable"))
            for e in watcher.events[start:]]
    assert tail == [
        ("ChannelHangupRequest", callee.id, None), ("ChannelLeftBridge", callee.id, None),
        ("ChannelLeftBridge", caller.id, None), ("BridgeDestroyed", None, None),
        ("ChannelDestroyed", callee.id, None), ("ChannelVarset", caller.id, "DIALSTATUS"),
        ("ChannelDestroyed", caller.id, None)]
    assert watcher.events[-1]["cause"] == 16
    assert sim.live_channels() == [] and not any(not b.destroyed for b in sim.bridges.values())


async def test_caller_hangs_up_in_bridge(sim: Simulator, watcher: AriClient) -> None:
    sim.set_endpoint("PJSIP/201", answer_after=0.5)
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    start = len(watcher.events)
    sim.hangup(caller.id)
    await sim.settle()
    assert [(e["type"], (e.get("channel") or {}).get("id")) for e in watcher.events[start:]] == [
        ("ChannelHangupRequest", caller.id), ("ChannelLeftBridge", caller.id),
        ("ChannelLeftBridge", callee.id), ("BridgeDestroyed", None),
        ("ChannelDestroyed", caller.id), ("ChannelDestroyed", callee.id)]


@pytest.mark.parametrize(("result", "status", "state"), [
    ("busy", "BUSY", "Busy"), ("congestion", "CONGESTION", "Busy"),
    ("unavailable", "CHANUNAVAIL", "Busy"), ("noanswer", "NOANSWER", "Ring")])
async def test_dial_failures(sim: Simulator, watcher: AriClient, result: str, status: str,
                             state: str) -> None:
    """The dialplan goes on after a failed Dial(); at its end an unanswered caller is told busy
    or congestion (auto-fallthrough) and hung up."""
    sim.set_endpoint("PJSIP/201", result=result, answer_after=1.0)  # type: ignore[arg-type]
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},5"),
                                         ("NoOp", "after ${DIALSTATUS}")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(6.0)
    callee = only_channel(sim, "PJSIP/201")
    assert caller.destroyed and callee.destroyed
    assert caller.variables["DIALSTATUS"] == status
    noop = [e for e in watcher.events if e["type"] == "ChannelDialplan"
            and e["channel"]["id"] == caller.id][-1]
    assert noop["dialplan_app_data"] == f"after {status}"
    dial_statuses = [e["dialstatus"] for e in watcher.events if e["type"] == "Dial"]
    expected = {"busy": ["", "RINGING", "BUSY"], "congestion": ["", "RINGING", "CONGESTION"],
                "unavailable": ["", "CHANUNAVAIL"], "noanswer": ["", "RINGING", "NOANSWER"]}[result]
    assert dial_statuses == expected
    last = flow(watcher.events, caller.id)[-2:]
    assert last[-1][0] == "ChannelDestroyed" and last[-1][1] == state


@pytest.mark.parametrize("others", [(), ("PJSIP/202",)])
async def test_a_line_with_no_endpoint_is_not_called(
    sim: Simulator, watcher: AriClient, others: tuple[str, ...]
) -> None:
    """ast_request fails for an endpoint that is not configured: Dial() makes no channel for
    it, calls the other lines, and alone it is CHANUNAVAIL with no Dial event at all."""
    sim.set_endpoint("PJSIP/299", result="nonexistent")
    sim.set_endpoint("PJSIP/202", result="answer", answer_after=1.0)
    lines = "&".join(("PJSIP/299", *others))
    sim.add_extension("hook-in", "_X.", [("Dial", f"{lines},5"), ("NoOp", "${DIALSTATUS}")])
    caller = sim.start_dialplan_call("299", context="hook-in")
    await sim.advance(2.0)
    names = {c.name.split("-")[0] for c in sim.channels.values() if c.id != caller.id}
    assert names == set(others)
    if others:
        assert caller.variables["DIALSTATUS"] == "ANSWER"
    else:
        assert caller.variables["DIALSTATUS"] == "CHANUNAVAIL"
        assert not [e for e in watcher.events if e["type"] == "Dial"]


async def test_caller_gives_up_while_ringing(sim: Simulator, watcher: AriClient) -> None:
    sim.set_endpoint("PJSIP/201", result="noanswer")
    sim.set_endpoint("PJSIP/202", result="noanswer")
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/201&PJSIP/202,30")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(2.0)
    a, b = only_channel(sim, "PJSIP/201"), only_channel(sim, "PJSIP/202")
    sim.hangup(caller.id)
    await sim.settle()
    assert caller.variables["DIALSTATUS"] == "CANCEL"
    for line in (a, b):
        assert flow(watcher.events, line.id)[-2:] == [("Dial", "Ringing", "CANCEL"),
                                                      ("ChannelDestroyed", "Ringing", 16)]


async def test_ring_group_first_answer_wins(sim: Simulator, watcher: AriClient) -> None:
    sim.set_endpoint("PJSIP/201", answer_after=3.0)
    sim.set_endpoint("PJSIP/202", answer_after=1.0)
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/201&PJSIP/202,30")])
    caller = sim.start_dialplan_call("200", context="hook-in")
    await sim.advance(1.0)
    a, b = only_channel(sim, "PJSIP/201"), only_channel(sim, "PJSIP/202")
    assert flow(watcher.events, a.id)[-2:] == [("Dial", "Ringing", "CANCEL"),
                                               ("ChannelDestroyed", "Ringing", 26)]
    assert b.bridge_id == caller.bridge_id and b.bridge_id is not None
    assert caller.variables["DIALEDPEERNUMBER"] == "202"


async def test_dial_local_channel(sim: Simulator, watcher: AriClient) -> None:
    """Dial(Local/...): ";1" is the called channel; ";2" runs the targets dialplan."""
    sim.add_extension("hook-in", "_X.", [("Dial", "Local/${EXTEN}@targets,30")])
    caller = sim.start_dialplan_call("200", context="hook-in")
    await sim.advance(1.0)
    one = only_channel(sim, "Local/200@targets-", ";1")
    assert one.name.endswith(";1") and one.bridge_id == caller.bridge_id
    dials = [e for e in watcher.events if e["type"] == "Dial"]
    assert [e["dialstatus"] for e in dials] == ["", "ANSWER"]  # [targets] has no Ringing()
    assert dials[0]["dialstring"] == "200@targets"


async def test_u_option_runs_agi_on_callee_before_bridging(sim: Simulator,
                                                           watcher: AriClient) -> None:
    """Dial(...,U(hook-callee)): on answer the called channel runs the routine — here an AGI
    that plays a 2-s announcement — and only then Dial ANSWER, the caller's answer, the bridge."""
    sim.dialplan.sounds["verbatim/consent"] = 2.0
    sim.set_endpoint("PJSIP/201", tone_hz=700, answer_after=1.0)
    envs: list[dict[str, str]] = []

    async def script(call: AgiCall) -> None:
        envs.append(dict(call.env))
        await call.send('STREAM FILE verbatim/consent ""')

    async with FakeAgi(script) as agi:
        sim.add_extension("hook-callee", "s", [("AGI", f"{agi.url('callee')},${{ARG1}}"),
                                               ("Return", "")])
        sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30,U(hook-callee^x1)")])
        caller = sim.start_dialplan_call("201", context="hook-in")
        await sim.advance(1.0)
        callee = only_channel(sim, "PJSIP/201")
        session = await sim.wait_agi(callee.id, "playing")
        assert session.kind == "gosub"
        assert caller.state == "Ring" and callee.bridge_id is None
        assert [e["dialstatus"] for e in watcher.events if e["type"] == "Dial"] == [
            "", "RINGING"]
        await sim.advance(2.0)
        await sim.wait_agi(callee.id, "done")
        await sim.settle()
    assert envs[0]["agi_channel"] == callee.name
    assert (envs[0]["agi_context"], envs[0]["agi_extension"], envs[0]["agi_priority"]) == (
        "hook-callee", "s", "1")
    assert envs[0]["agi_arg_1"] == "x1"
    assert [e["dialstatus"] for e in watcher.events if e["type"] == "Dial"] == [
        "", "RINGING", "ANSWER"]
    assert caller.state == "Up" and callee.bridge_id == caller.bridge_id
    callee_plan = [e["dialplan_app"] for e in watcher.events
                   if e["type"] == "ChannelDialplan" and e["channel"]["id"] == callee.id]
    assert callee_plan == ["AppDial", "AGI", "Return"]
    assert callee.dialplan.app_name == "AppDial"  # the routine returned


@pytest.mark.parametrize(
    ("options", "line_rings", "hears"),
    [
        ("r", False, "ringing"),  # r: ringing whatever the called line signals
        ("r", True, "ringing"),
        ("m", True, "moh"),  # m: music on hold, the line's ringing not passed on
        ("", True, "ringing"),  # the line's ringing, passed on
        ("", False, None),  # a line that answers without ringing: silence
    ],
)
async def test_what_the_caller_hears_while_the_u_routine_runs(
    sim: Simulator, watcher: AriClient, options: str, line_rings: bool, hears: str | None
) -> None:
    """apps/app_dial.c: the caller's MOH (m) or ringing (r, or passed on from the called line)
    goes on while the called channel runs its U() routine (a 3-s announcement here), and
    stops only just before the bridge."""
    sim.set_endpoint("PJSIP/201", answer_after=1.0, ringing=line_rings)
    sim.add_extension("callee-prompt", "s", [("Wait", "3"), ("Return", "")])
    sim.add_extension("hook-in", "_X.", [
        ("Dial", f"PJSIP/${{EXTEN}},30,{options}U(callee-prompt)")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(0.5)  # ringing
    assert caller.waiting_hears == hears
    await sim.advance(1.5)  # answered, in its routine
    callee = only_channel(sim, "PJSIP/201")
    assert callee.state == "Up" and callee.bridge_id is None
    assert caller.waiting_hears == hears
    await sim.advance(3.0)
    assert callee.bridge_id is not None and callee.bridge_id == caller.bridge_id
    assert caller.waiting_hears is None


async def test_g_option_continues_after_the_bridge(sim: Simulator, watcher: AriClient) -> None:
    sim.set_endpoint("PJSIP/201", answer_after=0.5, hangup_after=1.0)
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30,g"),
                                         ("Set", "AFTER=${DIALSTATUS}"), ("Wait", "1")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(1.6)
    assert not caller.hungup and caller.variables["AFTER"] == "ANSWER"
    assert caller.dialplan.app_name == "Wait"
    await sim.advance(1.0)
    assert caller.destroyed


async def test_ari_and_basic_bridges(sim: Simulator, watcher: AriClient) -> None:
    """GET /bridges lists a Dial() bridge and GET /bridges/{id} shows it; operations on it
    answer 409 (resource_bridges.c find_bridge); its channels are not in Stasis (409)."""
    sim.set_endpoint("PJSIP/201", answer_after=0.5)
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(1.0)
    bid = caller.bridge_id
    status, bridges = await watcher.call("GET", "/bridges")
    assert status == 200 and [b["id"] for b in bridges] == [bid]
    status, bridge = await watcher.call("GET", f"/bridges/{bid}")
    assert status == 200 and bridge["bridge_class"] == "basic"
    assert await watcher.call("DELETE", f"/bridges/{bid}") == (
        409, {"message": "Bridge not in Stasis application"})
    status, _ = await watcher.call("POST", f"/channels/{caller.id}/answer")
    assert status == 409
    status, value = await watcher.call("GET", f"/channels/{caller.id}/variable",
                                       variable="DIALSTATUS")
    assert (status, value) == (200, {"value": "ANSWER"})


@pytest.mark.parametrize("who", ["callee", "caller"])
async def test_hangup_during_u_routine(sim: Simulator, watcher: AriClient, who: str) -> None:
    """A party hangs up while the U() routine's AGI runs on the called channel: no bridge is
    made. The callee: its AGI gets HANGUP and it is destroyed when that ends; Dial ANSWER is
    still published (app_dial's res stays 0) and the caller's PBX ends. The caller: the routine
    runs to its end, then app_dial hangs up the called channel."""
    sim.set_endpoint("PJSIP/201", answer_after=1.0)
    lines: list[str] = []

    async def script(call: AgiCall) -> None:
        lines.append(await call.send("EXEC Wait 3"))
        lines.append(await call.read_line() if who == "callee" else "")

    async with FakeAgi(script) as agi:
        sim.add_extension("sub", "s", [("AGI", agi.url("callee")), ("Return", "")])
        sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30,U(sub)")])
        caller = sim.start_dialplan_call("201", context="hook-in")
        await sim.advance(1.0)
        callee = only_channel(sim, "PJSIP/201")
        await sim.wait_agi(callee.id, "playing")
        await sim.advance(1.0)
        sim.hangup(callee.id if who == "callee" else caller.id)
        await sim.settle()
        if who == "callee":
            session = await sim.wait_agi(callee.id, "done")
            assert lines == ["200 result=-1", "HANGUP"] and session.status == "HANGUP"
        else:
            assert not callee.hungup
            await sim.advance(2.0)
            session = await sim.wait_agi(callee.id, "done")
            assert session.status == "SUCCESS"
        await sim.settle()
    assert caller.destroyed and callee.destroyed
    assert not any(e["type"] == "BridgeCreated" for e in watcher.events)
    statuses = [e["dialstatus"] for e in watcher.events if e["type"] == "Dial"]
    assert statuses == (["", "RINGING", "ANSWER"] if who == "callee" else ["", "RINGING"])


async def test_gosub_hook_before_dial(sim: Simulator, watcher: AriClient) -> None:
    """Gosub(context,s,1(args)) runs the routine (ARGn), Return() comes back to the next step;
    the way dialplan/verbatim-hooks.conf calls its record hook."""
    sim.set_endpoint("PJSIP/201", answer_after=1.0)
    envs: list[dict[str, str]] = []

    async def script(call: AgiCall) -> None:
        envs.append(dict(call.env))
        await call.send("SET VARIABLE __VERBATIM_CALL_ID c-1")

    async with FakeAgi(script) as agi:
        sim.add_extension("rec", "s", [("AGI", f"{agi.url('record')},${{ARG1}},${{ARG2}}"),
                                       ("Return", "")])
        sim.add_extension("hook-in", "_X.", [("Gosub", "rec,s,1(inbound,${EXTEN})"),
                                             ("Dial", "PJSIP/${EXTEN},30")])
        caller = sim.start_dialplan_call("201", context="hook-in")
        await sim.wait_agi(caller.id)
        await sim.advance(1.0)
    assert (envs[0]["agi_context"], envs[0]["agi_arg_1"], envs[0]["agi_arg_2"]) == (
        "rec", "inbound", "201")
    steps = [(e["dialplan_app"], e["channel"]["dialplan"]["context"]) for e in watcher.events
             if e["type"] == "ChannelDialplan" and e["channel"]["id"] == caller.id]
    assert steps == [("Gosub", "hook-in"), ("AGI", "rec"), ("Return", "rec"),
                     ("Dial", "hook-in")]
    callee = only_channel(sim, "PJSIP/201")
    assert callee.variables["VERBATIM_CALL_ID"] == "c-1"  # inherited through Dial()
    assert callee.bridge_id == caller.bridge_id is not None


async def test_u_routine_gosub_result_abort(sim: Simulator, watcher: AriClient) -> None:
    """Set(GOSUB_RESULT=ABORT) in the U() routine: Dial publishes ABORT, the called channel is
    hung up, no bridge, the caller's PBX ends (verbatim-answered's refusal)."""
    sim.set_endpoint("PJSIP/201", answer_after=1.0)
    sim.add_extension("answered", "s", [("NoOp", ""), ("Set", "GOSUB_RESULT=ABORT"),
                                        ("Return", "")])
    sim.add_extension("hook-in", "_X.", [("Dial", "PJSIP/${EXTEN},30,U(answered)"),
                                         ("NoOp", "not reached")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(1.0)
    callee = only_channel(sim, "PJSIP/201")
    assert [e["dialstatus"] for e in watcher.events if e["type"] == "Dial"] == [
        "", "RINGING", "ABORT"]
    assert caller.destroyed and callee.destroyed
    assert not any(e["type"] == "BridgeCreated" for e in watcher.events)
    assert [e["dialplan_app"] for e in watcher.events if e["type"] == "ChannelDialplan"
            and e["channel"]["id"] == caller.id] == ["Dial"]


@pytest.mark.parametrize("ignore", [False, True])
async def test_dial_follows_a_302(sim: Simulator, watcher: AriClient, ignore: bool) -> None:
    """201 answers 302 → 300 (app_dial.c do_forward): Dial CANCEL with `forward` and
    `forwarded` (Local/300@from-internal;1), Dial "" for it, the original hung up (cause 23,
    tech_cause 302); the new line rings through the dialplan and is bridged. With `i`: Dial
    CANCEL with `forward` only, then BUSY, and DIALSTATUS BUSY."""
    sim.set_endpoint("PJSIP/201", result="forward", forward_to="300", answer_after=1.0)
    sim.set_endpoint("PJSIP/300", tone_hz=1000, answer_after=1.0)
    sim.add_extension("from-internal", "300", [("Dial", "PJSIP/300,20")])
    sim.add_extension("hook-in", "_X.", [("Dial", f"PJSIP/${{EXTEN}},30{',i' if ignore else ''}")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    await sim.advance(1.0)
    original = only_channel(sim, "PJSIP/201")
    assert original.destroyed
    dials = [e for e in watcher.events if e["type"] == "Dial" and e["caller"]["id"] == caller.id]
    hangup = next(e for e in watcher.events if e["type"] == "ChannelHangupRequest")
    assert (hangup["channel"]["id"], hangup["cause"], hangup["tech_cause"]) == (
        original.id, 23, 302)
    if ignore:
        assert [(e["peer"]["id"], e["dialstatus"], e["forward"], "forwarded" in e)
                for e in dials] == [(original.id, "", "", False),
                                    (original.id, "RINGING", "", False),
                                    (original.id, "CANCEL", "300", False),
                                    (original.id, "BUSY", "", False)]
        await sim.settle()
        assert caller.variables["DIALSTATUS"] == "BUSY" and caller.destroyed
        return
    one = only_channel(sim, "Local/300@from-internal-", ";1")
    assert [(e["peer"]["id"], e["dialstatus"], e["forward"]) for e in dials] == [
        (original.id, "", ""), (original.id, "RINGING", ""), (original.id, "CANCEL", "300"),
        (one.id, "", "")]
    assert dials[2]["forwarded"]["id"] == one.id and dials[3]["dialstring"] == "300@from-internal"
    destroyed = next(e for e in watcher.events if e["type"] == "ChannelDestroyed"
                     and e["channel"]["id"] == original.id)
    assert (destroyed["cause"], destroyed["tech_cause"]) == (23, 302)
    assert one.variables["FORWARDERNAME"] == original.name
    await sim.advance(1.0)
    target = only_channel(sim, "PJSIP/300")
    assert target.state == "Up" and one.bridge_id == caller.bridge_id is not None
    assert target.bridge_id is not None and target.bridge_id != caller.bridge_id
