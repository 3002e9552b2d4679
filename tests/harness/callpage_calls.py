"""Real calls on the simulator for the call page's tests (no tests here): the daemon records
them into PostgreSQL and the archive exactly as in production, then the web app serves them.

One stack (Stasis and hook mode, the controls' DTMF codes, a policy) places, in turn:
  transferred  inbound +1 415 555 0100 -> 201, blind-transferred by 201 to 300
  restarted    -> 201; the recording fails mid-call ("disk full"), a second segment follows
  paused       -> 201; the attorney pauses (*1) for 3 s, then resumes (*2)
  hook         hook mode (the dialplan's Dial()), 201 blind-transfers to 300
  opted_out    -> 201; the caller presses 9 during the announcement
  policy       -> 205, which policy never records (rule 'Managing partner')
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from recorder.api.server import build_deps, create_pool, make_app
from recorder.api.users import UserStore
from recorder.db.repository import Repository
from tests.harness.api_world import World, add_users, config_for
from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    bridged_call,
    control_by_dtmf,
    dialled,
    recordings,
)
from tests.harness.hooked import channel, hooked_dialplan, start_hooked
from tests.harness.stack import Stack, running_stack

TARGET_HZ = 1900
POLICY = """\
rules:
  - name: Managing partner
    match:
      extension: ["205"]
    action: never
"""
SCENARIOS = ("transferred", "restarted", "paused", "hook", "opted_out", "policy")


async def _hang_up(st: Stack, caller_id: str) -> None:
    """The caller hangs up; the daemon reacts at once, as against a real Asterisk, then time
    goes on for the recordings to close."""
    st.sim.hangup(caller_id)
    await st.settle()
    await st.advance(0.5)


async def _transferred(st: Stack) -> None:
    caller_id, call_id = await bridged_call(st)
    await st.advance(3.0)
    st.sim.blind_transfer(dialled(st.sim, call_id), "300")
    await st.settle()
    await st.advance(5.0)
    await _hang_up(st, caller_id)


async def _restarted(st: Stack) -> None:
    caller_id, _ = await bridged_call(st)
    await st.advance(2.0)
    st.sim.fail_recording(recordings(st.sim)[-1], cause="disk full")  # this call's, the latest
    await st.settle()
    await st.advance(3.0)
    await _hang_up(st, caller_id)


async def _paused(st: Stack) -> None:
    caller_id, call_id = await bridged_call(st)
    await st.advance(2.0)
    await control_by_dtmf(st, dialled(st.sim, call_id), "*1")
    await st.advance(3.0)
    await control_by_dtmf(st, dialled(st.sim, call_id), "*2")
    await st.advance(2.0)
    await _hang_up(st, caller_id)


async def _hook(st: Stack) -> None:
    hooked_dialplan(st)
    caller, call_id = await start_hooked(st)
    await st.advance(1.0)
    callee = channel(st, "PJSIP/201")
    await st.advance(3.0)
    st.sim.blind_transfer(callee.id, "300", context="hook-xfer")
    await st.settle()
    await st.advance(4.0)
    await st.hang_up(caller.id, call_id)
    await st.advance(0.5)


async def _opted_out(st: Stack) -> None:
    caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                               tone_hz=CALLER_HZ)  # fmt: skip
    await st.settle()
    await st.advance(1.0)
    st.sim.send_dtmf(caller.id, "9")
    await st.settle()
    await st.advance(6.0)
    st.sim.hangup(caller.id)
    await st.advance(0.5)


async def _policy(st: Stack) -> None:
    st.sim.set_endpoint("PJSIP/205", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
    caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "205"],
                               tone_hz=CALLER_HZ)  # fmt: skip
    await st.settle()
    await st.advance(6.0)
    st.sim.hangup(caller.id)
    await st.advance(0.5)


PLACERS = {
    "transferred": _transferred, "restarted": _restarted, "paused": _paused, "hook": _hook,
    "opted_out": _opted_out, "policy": _policy,
}  # fmt: skip


async def place_calls(tmp_path: Path, dsn: str, which: tuple[str, ...] = SCENARIOS) -> tuple[
    dict[str, str], Path
]:
    """Place the scenarios' calls; (scenario -> call id, the archive)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    ids: dict[str, str] = {}
    async with running_stack(tmp_path, dsn, hooks=True, policy_file=policy,
                             controls={"pause": "*1", "resume": "*2"},
                             departments={"Intake": ("201", "202", "205")}) as st:  # fmt: skip
        st.sim.set_endpoint("PJSIP/300", result="answer", answer_after=1.0, tone_hz=TARGET_HZ)
        for name in which:
            before = {c.call_id for c in await st.repo.recent_calls(50)}
            await PLACERS[name](st)
            await st.settle()
            new = [c.call_id for c in await st.repo.recent_calls(50) if c.call_id not in before]
            assert len(new) == 1, (name, new)
            ids[name] = new[0]
            await st.advance(1.0)
        return ids, st.archive


@asynccontextmanager
async def call_world(tmp_path: Path, dsn: str,
                     which: tuple[str, ...] = SCENARIOS) -> AsyncIterator[World]:  # fmt: skip
    """The scenarios' calls, then the web app on their database and archive, with the users
    of tests.harness.api_world (passwords set)."""
    ids, archive = await place_calls(tmp_path, dsn, which)
    pool = await create_pool(dsn, 1, 4)
    config = config_for(dsn, archive)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(build_deps(config, pool))))
    await client.start_server()
    world = World(client, Repository(pool), pool, archive, config)
    world.calls = ids
    world.tokens = await add_users(UserStore(pool), passwords=True)
    try:
        yield world
    finally:
        await client.close()
        await pool.close()
