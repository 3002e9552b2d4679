"""The dialplan's fail-closed fallback, run from the shipped dialplan/*.conf on the simulator.

The app away (Stasis() fails) or the record hook unreachable: the fallback announces, records
with MixMonitor into the spool and dials; the daemon imports the file as a `fallback` call (at
start, on a sweep once the channel is gone, or in hook mode soon after ChannelDestroyed). With
the announcement missing the fallback refuses the call: nobody is recorded unannounced.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from arisim.audio import tones_per_second

from recorder.db.rows import CallRow, RecordingRow
from tests.harness.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parents[1]
CALLER, CALLEE = 440, 700
PROMPT_S = 3.0  # running_stack's length of verbatim/consent
FAST = {"spool_settle_s": 0.1, "spool_sweep_s": 3600.0}  # only start/ChannelDestroyed import


def closed_port() -> int:
    """A local port nothing listens on (the FastAGI server unreachable)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_stasis_dialplan(st: Stack) -> None:
    st.sim.load_dialplan((ROOT / "dialplan" / "verbatim.conf").read_text())
    st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)


def load_hook_dialplan(st: Stack, agi_port: int) -> None:
    """verbatim-hooks.conf as shipped (its FastAGI port replaced), called as its header shows."""
    st.sim.load_dialplan((ROOT / "dialplan" / "verbatim-hooks.conf").read_text(),
                         {"127.0.0.1:4573": f"127.0.0.1:{agi_port}"})
    st.sim.add_extension("hook-in", "_X.", [
        ("Gosub", "verbatim-record,s,1(inbound,${EXTEN})"),
        ("Dial", "PJSIP/${EXTEN},30,U(verbatim-answered^${VERBATIM_CALL_ID})"),
    ])
    st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)


def spool_fallbacks(st: Stack) -> list[Path]:
    return sorted(st.spool.glob("fallback-*"))


def log_lines(st: Stack, level: str) -> list[str]:
    return [message for _, lvl, message in st.sim.dialplan_log if lvl == level]


async def announced_and_recorded_call(st: Stack, context: str, talk_s: float = 4.0) -> Any:
    """A caller into `context` whose call the fallback announces, records and connects to 201;
    the caller hangs up after `talk_s` s of conversation. Returns the caller's channel."""
    caller = st.sim.start_dialplan_call("201", context=context, tone_hz=CALLER)
    await st.settle()
    assert caller.state == "Up"  # answered to announce: the prompt plays before any recording
    assert not spool_fallbacks(st)
    await st.advance(PROMPT_S)
    assert caller.variables["PLAYBACKSTATUS"] == "SUCCESS"
    (path,) = spool_fallbacks(st)
    assert path.name.startswith("fallback-") and f"-{caller.id}-inbound-+14155550100-201." \
        in path.name
    await st.advance(1.0 + PROMPT_S + talk_s)  # 201 rings 1 s, answers, hears it, they talk
    # the called party heard the announcement too, before it was connected: Dial's A() (Stasis
    # mode's fallback) or the answered hook's own fallback Playback (hook mode)
    callee = next(c for c in st.sim.channels.values() if c.name.startswith("PJSIP/201"))
    assert [(n, f) for n, f in st.sim.dial_announcements] == [(callee.name, "verbatim/consent")] \
        or callee.variables.get("PLAYBACKSTATUS") == "SUCCESS"
    st.sim.hangup(caller.id)
    await st.settle()
    assert caller.destroyed
    return caller


async def fallback_call(st: Stack) -> tuple[CallRow, RecordingRow]:
    (call,) = await st.repo.recent_calls(5)
    (rec,) = await st.repo.recordings(call.call_id)
    return call, rec


def assert_imported(call: CallRow, rec: RecordingRow, caller: Any) -> None:
    assert call.fallback and rec.fallback and rec.status == "filed"
    assert (call.direction, call.caller_number, call.callee_number) == (
        "inbound", "+14155550100", "201")
    assert rec.target == f"mixmonitor:{caller.id}"
    # what the file holds: the caller while 201 rang and heard its announcement, then both
    # parties every second
    seconds = tones_per_second(Path(rec.path or ""), [CALLER, CALLEE])
    assert seconds == [{CALLER}] * 4 + [{CALLER, CALLEE}] * 4, seconds


async def refused_call(st: Stack, context: str) -> Any:
    """The announcement is not installed: the fallback answers, fails to play it and hangs up
    without recording or dialling anyone. Returns the caller's channel."""
    del st.sim.dialplan.sounds["verbatim/consent"]
    caller = st.sim.start_dialplan_call("201", context=context, tone_hz=CALLER)
    await st.settle()
    await st.advance(1.0)
    assert caller.destroyed and caller.variables["PLAYBACKSTATUS"] == "FAILED"
    assert not spool_fallbacks(st) and not st.sim.finished_mixmonitors
    assert not [c for c in st.sim.channels.values() if c.name.startswith("PJSIP/201")]
    (error,) = log_lines(st, "ERROR")
    assert "verbatim/consent not played" in error and "call refused" in error
    return caller


async def test_stasis_mode_daemon_down_announces_records_and_imports_at_start(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, start=False, storage=FAST) as st:
        load_stasis_dialplan(st)
        caller = await announced_and_recorded_call(st, "verbatim-inbound")
        assert caller.variables["STASISSTATUS"] == "FAILED"
        (warning,) = log_lines(st, "WARNING")
        assert "STASISSTATUS=FAILED" in warning and caller.id in warning
        assert not st.sim.requests  # nothing asked Asterisk anything: the daemon was down
        await asyncio.sleep(0.2)  # the file settles (real time: its mtime)
        st.task = asyncio.create_task(st.daemon.run())
        await st.connected()
        call, rec = await fallback_call(st)
        assert_imported(call, rec, caller)
        assert not spool_fallbacks(st)


async def test_stasis_mode_fallback_without_its_announcement_refuses_the_call(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, start=False, storage=FAST) as st:
        load_stasis_dialplan(st)
        await refused_call(st, "verbatim-inbound")


async def test_a_call_still_up_is_imported_by_the_sweep_after_it_ends(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The daemon starts during a fallback call: the file waits while the channel is up (it is
    still being written), and a sweep imports it once the call is over."""
    storage = {"spool_settle_s": 0.1, "spool_sweep_s": 0.3}
    async with running_stack(tmp_path, pg_dsn, start=False, storage=storage) as st:
        load_stasis_dialplan(st)
        caller = st.sim.start_dialplan_call("201", context="verbatim-inbound", tone_hz=CALLER)
        await st.settle()
        await st.advance(PROMPT_S + 1.0 + PROMPT_S + 2.0)  # the callee hears it too
        await asyncio.sleep(0.2)
        st.task = asyncio.create_task(st.daemon.run())
        await st.connected()
        await asyncio.sleep(0.5)  # sweeps run: the channel is up, the file stays
        assert await st.repo.recent_calls(5) == [] and len(spool_fallbacks(st)) == 1
        assert any(r.path == f"/channels/{caller.id}" and r.status == 200
                   for r in st.sim.requests)
        await st.advance(2.0)
        st.sim.hangup(caller.id)
        await st.settle()
        for _ in range(50):  # the next sweeps (real time)
            if await st.repo.recent_calls(5):
                break
            await asyncio.sleep(0.05)
        call, rec = await fallback_call(st)
        assert_imported(call, rec, caller)


async def test_hook_mode_unreachable_hook_announces_records_and_imports_when_destroyed(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True, storage=FAST) as st:
        load_hook_dialplan(st, closed_port())
        caller = await announced_and_recorded_call(st, "hook-in")
        (session,) = [s for s in st.sim.agi_sessions if s.channel_id == caller.id]
        assert session.status == "FAILURE" and session.error  # could not connect
        (warning,) = log_lines(st, "WARNING")
        assert "AGISTATUS=FAILURE VERBATIM_STATUS=''" in warning and caller.id in warning
        # imported soon after the caller's ChannelDestroyed, not by a sweep (an hour away)
        call, rec = await fallback_call(st)
        assert_imported(call, rec, caller)
        assert not spool_fallbacks(st)
        assert [c.call_id for c in await st.repo.recent_calls(5)] == [call.call_id]


async def test_hook_mode_fallback_without_its_announcement_refuses_the_call(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True, storage=FAST) as st:
        load_hook_dialplan(st, closed_port())
        await refused_call(st, "hook-in")
        await st.settle()
        assert await st.repo.recent_calls(5) == []


def test_the_fallbacks_play_the_sound_health_checks() -> None:
    from recorder.cli.health import FALLBACK_SOUND

    for name in ("verbatim.conf", "verbatim-hooks.conf"):
        text = (ROOT / "dialplan" / name).read_text()
        assert f"Playback({FALLBACK_SOUND})" in text, name


async def test_health_fails_naming_a_missing_fallback_prompt(tmp_path: Path, pg_dsn: str) -> None:
    from arisim.testing import running_simulator

    from recorder.cli.health import check_health
    from tests.harness.stack import PASSWORD, make_config

    (tmp_path / "archive").mkdir()
    async with running_simulator(tmp_path / "spool", password=PASSWORD,
                                 sounds={"verbatim/consent": 3.0}) as sim:
        config = make_config(sim.base_url, pg_dsn, tmp_path / "spool", tmp_path / "archive",
                             storage={"min_free_mb": 0})
        report = await check_health(config)
        assert report["fallback_prompt"] == {"ok": True, "sound": "verbatim/consent",
                                             "languages": ["en"]}
        assert report["ok"] is True
        del sim.dialplan.sounds["verbatim/consent"]
        report = await check_health(config)
        assert report["ok"] is False and report["ari"]["ok"] is True
        assert report["fallback_prompt"]["ok"] is False
        assert report["fallback_prompt"]["error"].startswith(
            "Asterisk has no sound verbatim/consent")
        assert [(r.method, r.path, r.status) for r in sim.requests][-1] == (
            "GET", "/sounds/verbatim%2Fconsent", 404)
