"""A tiny FastAGI server for the hook-mode simulator tests (asyncio.start_server), and a check
of the line protocol it speaks with the simulator's AGI client."""

from __future__ import annotations

import asyncio
from pathlib import Path

from arisim.server import Simulator

from tests.harness.agi import AgiCall, FakeAgi


async def test_fake_agi_speaks_fastagi(sim: Simulator, tmp_path: Path) -> None:
    """The env block ends with a blank line; each command gets one reply line; the simulator
    sends HANGUP when the session ends and then closes."""
    seen: list[str] = []

    async def script(call: AgiCall) -> None:
        seen.append(await call.send("NOOP"))
        seen.append(await call.send('VERBOSE "hello there" 1'))
        call.writer.write_eof()  # half-close: the client ends the session, says HANGUP
        seen.append(await call.read_line())
        seen.append(await call.read_line())

    async with FakeAgi(script) as agi:
        sim.add_extension("fake", "s", [("AGI", agi.url("x")), ("Hangup", "")])
        ch = sim.start_dialplan_call("s", context="fake")
        s = await sim.wait_agi(ch.id)
        await asyncio.wait_for(agi.calls[0].done.wait(), 5)
    assert seen == ["200 result=0", "200 result=1", "HANGUP", ""]
    assert s.status == "SUCCESS" and s.commands == ["NOOP", 'VERBOSE "hello there" 1']
    assert agi.calls[0].network[:2] == ["agi_network: yes", "agi_network_script: x"]


