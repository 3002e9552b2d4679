"""Hook mode, FastAGI: AGI() in the dialplan of a call that never enters Stasis.

res/res_agi.c as the simulator plays it: the environment of setup_env, one reply per command,
STREAM FILE on the virtual clock (DTMF escape digits), the dialplan waiting for the session,
AGISTATUS, and what a hangup mid-session does."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from arisim.server import Simulator
from arisim.testing import AriClient

from tests.harness.agi import AgiCall, FakeAgi, closed_port, logged

CHECK_REQUESTS = True


def _callee(sim: Simulator, prefix: str) -> list[Any]:
    return [c for c in sim.channels.values() if c.name.startswith(prefix)]


async def test_env_commands_and_dial_waits(sim: Simulator) -> None:
    """The env lines (agi_network first, agi_arg_N last), SET VARIABLE sets the channel
    variable, STREAM FILE lasts the sound's length on the virtual clock, and Dial() starts only
    once the session ended."""
    sim.dialplan.sounds["verbatim/consent"] = 3.0
    sim.set_endpoint("PJSIP/201", tone_hz=700, answer_after=1.0)
    replies: dict[str, str] = {}
    answered_at: list[float] = []

    async def script(call: AgiCall) -> None:
        replies["answer"] = await call.send("ANSWER")
        replies["num"] = await call.send("GET VARIABLE CALLERID(num)")
        replies["missing"] = await call.send("GET VARIABLE NOPE")
        replies["set"] = await call.send("SET VARIABLE VERBATIM_CALL abc-123")
        replies["get"] = await call.send("GET VARIABLE VERBATIM_CALL")
        replies["stream"] = await call.send('STREAM FILE verbatim/consent ""')
        answered_at.append(sim.clock.now())
        replies["bogus"] = await call.send("FROBNICATE now")
        replies["usage"] = await call.send("SET VARIABLE ONLYNAME")

    async with FakeAgi(script) as agi:
        sim.add_extension("hook-in", "_X.", [
            ("AGI", f"{agi.url('incoming')},${{EXTEN}},inbound"),
            ("Dial", "PJSIP/${EXTEN},30"),
        ])
        caller = sim.start_dialplan_call("201", context="hook-in", caller_number="+14155550100",
                                         caller_name="Client", tone_hz=440)
        session = await sim.wait_agi(caller.id, "playing")
        assert session.kind == "dialplan" and session.script == "incoming"
        await sim.advance(2.9)
        assert session.state == "playing" and "stream" not in replies
        assert _callee(sim, "PJSIP/201") == []
        await sim.advance(0.1)
        session = await sim.wait_agi(caller.id, "done")
        env = agi.calls[0].network
    assert env == [
        "agi_network: yes",
        "agi_network_script: incoming",
        f"agi_request: {agi.url('incoming')}",
        f"agi_channel: {caller.name}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: {caller.id}",
        "agi_version: 22.10.1",
        "agi_callerid: +14155550100",
        "agi_calleridname: Client",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 201",
        "agi_rdnis: unknown",
        "agi_context: hook-in",
        "agi_extension: 201",
        "agi_priority: 1",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        env[21],
        "agi_arg_1: 201",
        "agi_arg_2: inbound",
    ]
    assert env[21].startswith("agi_threadid: ") and env[21][14:].isdigit()
    assert replies == {
        "answer": "200 result=0", "num": "200 result=1 (+14155550100)",
        "missing": "200 result=0", "set": "200 result=1", "get": "200 result=1 (abc-123)",
        "stream": "200 result=0 endpos=24000", "bogus": "510 Invalid or unknown command",
        "usage": "520 Invalid command syntax.  Proper usage not available."}
    assert answered_at == [3.0]
    assert session.status == "SUCCESS" and session.ended_at == 3.0
    assert caller.variables["VERBATIM_CALL"] == "abc-123"
    assert caller.variables["AGISTATUS"] == "SUCCESS"
    assert caller.state == "Up"  # ANSWER
    # Dial() ran after the session: its channel was created at t=3
    (callee,) = _callee(sim, "PJSIP/201")
    assert callee.creationtime == sim.clock.start_epoch + 3.0
    await sim.advance(1.0)
    assert callee.bridge_id is not None and callee.bridge_id == caller.bridge_id
    varsets = [(e["variable"], e["value"]) for e in logged(sim, "ChannelVarset")
               if e["channel"]["id"] == caller.id]
    assert varsets[:3] == [("VERBATIM_CALL", "abc-123"), ("PLAYBACKSTATUS", "SUCCESS"),
                           ("AGISTATUS", "SUCCESS")]


async def test_stream_file_escape_digit(sim: Simulator) -> None:
    """A DTMF escape digit ends STREAM FILE: result is its ASCII code, endpos the samples
    played; other digits do not; PLAYBACKSTATUS is FAILED then (res != 0)."""
    sim.dialplan.sounds["menu"] = 4.0
    got: list[str] = []

    async def script(call: AgiCall) -> None:
        got.append(await call.send("STREAM FILE menu #1"))
        got.append(await call.send("STREAM FILE menu 5 16000"))

    async with FakeAgi(script) as agi:
        sim.add_extension("menu", "s", [("Answer", ""), ("AGI", agi.url("menu")),
                                        ("Wait", "10")])
        ch = sim.start_dialplan_call("s", context="menu")
        await sim.wait_agi(ch.id, "playing")
        await sim.advance(1.0)
        sim.send_dtmf(ch.id, "2")  # not an escape digit
        await sim.advance(0.5)
        sim.send_dtmf(ch.id, "1")
        await sim.settle()
        await asyncio.sleep(0.05)
        await sim.settle()
        assert got == ["200 result=49 endpos=12000"]
        assert ch.variables["PLAYBACKSTATUS"] == "FAILED"
        # the second one starts at sample 16000 (2 s): 2 s left
        await sim.advance(1.9)
        assert len(got) == 1
        await sim.advance(0.1)
        session = await sim.wait_agi(ch.id, "done")
    assert got[1] == "200 result=0 endpos=32000"
    assert session.status == "SUCCESS"
    assert sim.events("ChannelDtmfReceived") == []  # no app sees it
    assert [e["digit"] for e in logged(sim, "ChannelDtmfReceived")] == ["2", "1"]


async def test_stream_file_of_a_sound_asterisk_lacks(sim: Simulator) -> None:
    """res_agi.c handle_streamfile: ast_openstream fails, "200 result=-1 endpos=<offset>" at
    once, PLAYBACKSTATUS left as it was; the session goes on, and ends with AGISTATUS
    FAILURE (a failure while the channel is up)."""
    sim.dialplan.default_sound_seconds = None
    got: list[str] = []

    async def script(call: AgiCall) -> None:
        got.append(await call.send('STREAM FILE verbatim/nowhere "" 800'))
        got.append(await call.send("SET VARIABLE AFTER yes"))

    async with FakeAgi(script) as agi:
        sim.add_extension("hook-in", "s", [("Answer", ""), ("AGI", agi.url("in")),
                                           ("Wait", "1")])
        ch = sim.start_dialplan_call("s", context="hook-in")
        session = await sim.wait_agi(ch.id, "done")
        await sim.settle()
    assert got == ["200 result=-1 endpos=800", "200 result=1"]
    assert "PLAYBACKSTATUS" not in ch.variables and ch.variables["AFTER"] == "yes"
    assert session.status == "FAILURE" and ch.variables["AGISTATUS"] == "FAILURE"


async def test_unreachable_server_agistatus_failure(sim: Simulator, ari: AriClient) -> None:
    """Nothing listens: AGISTATUS=FAILURE and the dialplan goes on (here to Dial())."""
    port = closed_port()
    sim.set_endpoint("PJSIP/201", answer_after=1.0)
    sim.add_extension("hook-in", "_X.", [("AGI", f"agi://127.0.0.1:{port}/incoming"),
                                         ("Dial", "PJSIP/${EXTEN},30")])
    caller = sim.start_dialplan_call("201", context="hook-in")
    session = await sim.wait_agi(caller.id, "done")
    assert session.status == "FAILURE" and session.error and session.commands == []
    await sim.settle()
    assert caller.variables["AGISTATUS"] == "FAILURE"
    assert caller.dialplan.app_name == "Dial"
    await sim.advance(1.0)
    (callee,) = _callee(sim, "PJSIP/201")
    assert callee.state == "Up" and callee.bridge_id == caller.bridge_id
    assert any("FastAGI connection" in w for w in sim.warnings)


async def test_not_an_agi_url_is_notfound(sim: Simulator) -> None:
    sim.add_extension("local", "s", [("AGI", "/var/lib/asterisk/agi-bin/x.agi"), ("Wait", "1")])
    ch = sim.start_dialplan_call("s", context="local")
    session = await sim.wait_agi(ch.id, "done")
    await sim.settle()
    assert session.status == "NOTFOUND" and ch.variables["AGISTATUS"] == "NOTFOUND"
    assert ch.dialplan.app_name == "Wait"


async def test_hangup_mid_session(sim: Simulator) -> None:
    """The caller hangs up during STREAM FILE: its reply (result=-1, endpos so far), then
    HANGUP; afterwards only dead-safe commands run (511 for the others); the channel is
    destroyed only when the server closes; AGISTATUS=HANGUP and the dialplan stops."""
    sim.dialplan.sounds["long"] = 10.0
    lines: list[str] = []
    release = asyncio.Event()

    async def script(call: AgiCall) -> None:
        lines.append(await call.send('STREAM FILE long ""'))
        lines.append(await call.read_line())  # HANGUP
        lines.append(await call.send("ANSWER"))
        lines.append(await call.send("GET VARIABLE CALLERID(num)"))
        lines.append(await call.send("SET VARIABLE DONE yes"))
        lines.append(await call.send('EXEC Playback "long"'))
        await release.wait()

    async with FakeAgi(script) as agi:
        sim.add_extension("hook-in", "_X.", [("Answer", ""), ("AGI", agi.url("in")),
                                             ("Dial", "PJSIP/${EXTEN}")])
        ch = sim.start_dialplan_call("201", context="hook-in", caller_number="555")
        await sim.wait_agi(ch.id, "playing")
        await sim.advance(2.5)
        sim.hangup(ch.id)
        session = await sim.wait_agi(ch.id, "waiting")
        for _ in range(50):
            if len(lines) == 6:
                break
            await asyncio.sleep(0.01)
        assert lines == ["200 result=-1 endpos=20000", "HANGUP",
                         "511 Command Not Permitted on a dead channel or intercept routine",
                         "200 result=1 (555)", "200 result=1", "200 result=-1"]
        assert session.dead and not ch.destroyed and ch.hungup
        assert [(e["type"], e.get("variable")) for e in logged(sim)
                if e.get("channel", {}).get("id") == ch.id][-2:] == [
            ("ChannelHangupRequest", None), ("ChannelVarset", "DONE")]
        release.set()
        session = await sim.wait_agi(ch.id, "done")
        await sim.settle()
    assert session.status == "HANGUP"
    assert ch.destroyed and ch.variables["AGISTATUS"] == "HANGUP"
    assert _callee(sim, "PJSIP/201") == []  # the dialplan stopped
    types = [e["type"] for e in logged(sim) if e.get("channel", {}).get("id") == ch.id]
    assert types[-3:] == ["ChannelVarset", "ChannelVarset", "ChannelDestroyed"]


async def test_exec_and_hangup_commands(sim: Simulator) -> None:
    """EXEC Playback/Wait run on the virtual clock; an unknown application gives -2; HANGUP
    hangs the channel up (soft) and the server then gets HANGUP."""
    sim.dialplan.sounds["beep"] = 0.5
    got: list[str] = []

    async def script(call: AgiCall) -> None:
        got.append(await call.send("EXEC Playback beep"))
        got.append(await call.send("EXEC Wait 2"))
        got.append(await call.send("EXEC Frobnicate x"))
        got.append(await call.send("CHANNEL STATUS"))
        got.append(await call.send("HANGUP"))
        got.append(await call.read_line())

    async with FakeAgi(script) as agi:
        sim.add_extension("x", "s", [("AGI", agi.url()), ("Wait", "5")])
        ch = sim.start_dialplan_call("s", context="x")
        await sim.wait_agi(ch.id, "playing")
        assert ch.state == "Up"  # Playback answers
        await sim.advance(0.5)
        assert got == ["200 result=0"]
        await sim.advance(2.0)
        session = await sim.wait_agi(ch.id, "done")
    assert got == ["200 result=0", "200 result=0", "200 result=-2", "200 result=6",
                   "200 result=1", "HANGUP"]
    assert session.status == "HANGUP" and ch.destroyed
    (hangup,) = logged(sim, "ChannelHangupRequest")
    assert hangup["soft"] is True and hangup["cause"] == 32


async def test_subscribe_all_sees_hook_calls(sim: Simulator) -> None:
    """Without subscribeAll the app sees nothing of a call outside Stasis; with it, every event
    (and each validates against events.json)."""
    plain = AriClient(sim)
    await plain.connect()
    watcher = AriClient(sim, "watcher", subscribe_all=True)
    await watcher.connect()
    try:
        sim.add_extension("quiet", "s", [("Answer", ""), ("Wait", "1")])
        ch = sim.start_dialplan_call("s", context="quiet")
        await sim.advance(1.0)
        await sim.settle()
        assert plain.events == []
        assert [e["type"] for e in watcher.events] == [
            "ChannelCreated", "ChannelDialplan", "ChannelStateChange", "ChannelDialplan",
            "ChannelDestroyed"]
        assert watcher.events[-1]["channel"]["id"] == ch.id
        assert watcher.events[-1]["cause"] == 16
    finally:
        await watcher.close()
        await plain.close()


async def test_control_api_for_hook_mode(sim: Simulator) -> None:
    """/_sim/dialplan_calls, /_sim/applicationmap and /_sim/agi through SimControl."""
    from arisim.control import SimControl

    async def script(call: AgiCall) -> None:
        await call.send("SET VARIABLE __DYNAMIC_FEATURES pause")

    async with FakeAgi(script) as agi, SimControl(sim.base_url) as ctl:
        await ctl.set_applicationmap({"pause": ("*1", "self", f"AGI({agi.url('pause')})")})
        assert sim.dialplan.applicationmap["pause"].app_data == agi.url("pause")
        await ctl.set_endpoint("PJSIP/201", answer_after=0.5)
        await ctl.add_extension("hook-in", "_X.", [("AGI", agi.url("in")),
                                                   ("Dial", "PJSIP/${EXTEN},30")])
        cid = await ctl.start_dialplan_call("201", context="hook-in", tone_hz=440)
        first = await ctl.wait_agi(cid, "done")
        assert first["status"] == "SUCCESS" and first["script"] == "in"
        assert first["commands"] == ["SET VARIABLE __DYNAMIC_FEATURES pause"]
        await ctl.advance(1.0)
        await ctl.send_dtmf(cid, "*")
        await ctl.send_dtmf(cid, "1")
        await sim.wait_agi(lambda s: s.kind == "feature", "done")
        sessions = await ctl.agi_sessions()
        assert [(s["kind"], s["script"], s["channel_id"]) for s in sessions] == [
            ("dialplan", "in", cid), ("feature", "pause", cid)]
        assert (await ctl.agi_sessions(since=1))[0]["kind"] == "feature"


async def test_agi_on_the_auto_clock(tmp_path: Path) -> None:
    """The demo's clock: STREAM FILE ends when virtual time (50× real) reaches its length."""
    from arisim.testing import running_simulator

    got: list[str] = []

    async def script(call: AgiCall) -> None:
        got.append(await call.send('STREAM FILE verbatim/consent ""'))

    async with running_simulator(tmp_path, clock_mode="auto", speed=50.0,
                                 sounds={"verbatim/consent": 5.0}) as auto, \
            FakeAgi(script) as agi:
        auto.add_extension("x", "s", [("AGI", agi.url()), ("Hangup", "")])
        ch = auto.start_dialplan_call("s", context="x")
        session = await auto.wait_agi(ch.id, "done", timeout=5.0)
        assert got == ["200 result=0 endpos=40000"]
        assert session.ended_at is not None and 5.0 <= session.ended_at < 6.0
        assert auto.validation_errors == []


async def test_stopping_the_simulator_closes_sessions(tmp_path: Path) -> None:
    """A session still open when the simulator stops is closed (the server sees EOF) and
    nothing of the dialplan runs afterwards."""
    from arisim.testing import running_simulator

    seen: list[bytes] = []
    hold = asyncio.Event()

    async def script(call: AgiCall) -> None:
        hold.set()
        seen.append(await call.reader.read())

    async with FakeAgi(script) as agi:
        async with running_simulator(tmp_path) as sim:
            sim.add_extension("x", "s", [("AGI", agi.url()), ("Wait", "1")])
            ch = sim.start_dialplan_call("s", context="x")
            await asyncio.wait_for(hold.wait(), 5)
            session = await sim.wait_agi(ch.id, "waiting")
        await asyncio.wait_for(agi.calls[0].done.wait(), 5)
    assert seen == [b"HANGUP\n"]
    assert session.state == "waiting" and ch.dialplan.app_name == "AGI"
