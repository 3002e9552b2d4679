"""kill -9 the daemon mid-call, start it again: nothing is orphaned, the recording is filed.

The daemon runs as a real process (`verbatim run`), as in production; the simulator and
PostgreSQL stay up, as Asterisk and the database would.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

from arisim.server import Simulator

from recorder.common.loop import DEFAULT, ENV
from recorder.db.repository import Repository
from recorder.devtools.config import config_text
from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    assert_both_tones,
    dialled,
    event_time,
)
from tests.harness.daemon import (
    Proc,
    both_bridged,
    connected,
    free_port,
    journalled_daemon,
    until,
)
from tests.harness.stack import PASSWORD


@contextlib.asynccontextmanager
async def crash_setup(
    tmp_path: Path, dsn: str
) -> AsyncIterator[tuple[Simulator, Proc, Repository]]:
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    sim = Simulator(spool_dir=spool, password=PASSWORD, sounds={"verbatim/consent": 3.0})
    url = await sim.start()
    config = tmp_path / "verbatim.yaml"
    config.write_text(config_text(url=url, spool=spool, archive=archive, fast_reconnect=True,
                                  pool_max=2))  # fmt: skip
    proc = Proc(config, dsn, tmp_path / "daemon.log")
    repo = await Repository.connect(dsn, max_size=2)
    try:
        yield sim, proc, repo
    finally:
        code = await proc.stop() if proc.proc else 0
        await repo.close()
        await sim.stop()
        assert not sim.request_problems(), sim.request_problems()
        assert not sim.validation_errors, sim.validation_errors
        log = proc.log.read_text() if proc.log.exists() else ""
        assert code in (0, -9), f"daemon exited {code}:\n{log[-3000:]}"
        assert "Traceback" not in log, log[-3000:]
        # `verbatim run` (this subprocess) runs on uvloop unless told otherwise
        chosen = os.environ.get(ENV, DEFAULT)
        started = [json.loads(x) for x in log.splitlines() if '"verbatim.started"' in x]
        assert started and all(x["event_loop"] == chosen for x in started), started


async def crash_then_hang_up(
    sim: Simulator, proc: Proc, repo: Repository, caller_id: str, call_id: str
) -> None:
    """kill -9; the conversation goes on 4 s while no daemon runs; start it again; 2 s later
    the caller hangs up; until the call's row is closed."""
    proc.kill9()
    await sim.advance(4.0)
    proc.start()
    await connected(sim)
    await sim.advance(2.0)
    sim.hangup(caller_id)
    await sim.advance(0.02)  # a snoop ends on its next tick after its channel hung up
    await sim.settle()

    async def closed() -> bool:
        row = await repo.call(call_id)
        return row is not None and row.status == "ended"

    await until(closed)


async def test_kill_9_mid_call_then_restart_adopts_the_call(tmp_path: Path, pg_dsn: str) -> None:
    async with crash_setup(tmp_path, pg_dsn) as (sim, proc, repo):
        proc.start()
        await connected(sim)
        sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = sim.start_call(
            caller_number="4155550100", args=["inbound", "201"], tone_hz=CALLER_HZ
        )
        await sim.settle()
        await both_bridged(sim)
        (call,) = await repo.recent_calls(5)
        await sim.advance(3.0)
        await crash_then_hang_up(sim, proc, repo, caller.id, call.call_id)
        row, recs = await repo.call(call.call_id), await repo.recordings(call.call_id)
        assert row is not None and row.outcome == "answered" and row.status == "ended"
        assert isinstance(row.state, dict) and row.state["dtmf"] == {}  # its page's, never adopted
        assert [r.status for r in recs] == ["filed"]
        assert not list((tmp_path / "spool").iterdir())
        assert await repo.open_calls(sim.asterisk_id) == []
        assert await repo.unfiled_recordings(sim.asterisk_id) == []
        joined = event_time(sim, "ChannelEnteredBridge", channel__id=dialled(sim, call.call_id))
        left = event_time(sim, "ChannelHangupRequest", channel__id=caller.id)
        assert_both_tones(Path(recs[0].path or ""), left - joined)


async def test_kill_9_then_call_ends_while_down_is_closed_at_start(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with crash_setup(tmp_path, pg_dsn) as (sim, proc, repo):
        proc.start()
        await connected(sim)
        sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = sim.start_call(
            caller_number="4155550100", args=["inbound", "201"], tone_hz=CALLER_HZ
        )
        await sim.settle()
        await both_bridged(sim)
        await sim.advance(1.0)
        (call,) = await repo.recent_calls(5)
        proc.kill9()
        sim.hangup(caller.id)  # the call ends while no daemon runs
        await sim.advance(6.0)
        proc.start()
        await connected(sim)

        async def closed() -> bool:
            row = await repo.call(call.call_id)
            return row is not None and row.status == "ended"

        await until(closed)
        recs = await repo.recordings(call.call_id)
        assert recs and all(r.status == "filed" for r in recs)
        assert not list((tmp_path / "spool").iterdir())
        assert not [c.name for c in sim.channels.values() if not c.destroyed]


async def test_kill_9_mid_hooked_call_then_restart_files_every_leg(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Hook mode: the snoops go on recording in Asterisk while no daemon runs; the restarted
    daemon adopts the call, follows it to its end and files each leg's recording."""
    async with crash_setup(tmp_path, pg_dsn) as (sim, proc, repo):
        port = free_port()
        with proc.config.open("a") as conf:
            conf.write(f"hooks:\n  enabled: true\n  port: {port}\n")
        sim.add_extension("hook-in", "_X.", [
            ("AGI", f"agi://127.0.0.1:{port}/record,inbound,${{EXTEN}}"),
            ("Dial", "PJSIP/${EXTEN},30"),
        ])
        sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        proc.start()
        await connected(sim)
        caller = sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER_HZ,
                                         caller_number="+12125550100")

        async def both_snooped() -> bool:
            return len([r for r in sim.recordings.values() if r.kind == "channel"]) >= 2

        await until(both_snooped, sim)  # announcement, record hook, Dial(), answer, snoops
        (call,) = await repo.recent_calls(5)
        await sim.advance(2.0)
        await crash_then_hang_up(sim, proc, repo, caller.id, call.call_id)  # snoops go on
        row, recs = await repo.call(call.call_id), await repo.recordings(call.call_id)
        assert row is not None and row.outcome == "answered"
        assert sorted(r.target.split(":")[0] for r in recs) == ["snoop", "snoop"]
        assert all(r.status == "filed" for r in recs), [(r.name, r.status) for r in recs]
        assert await repo.gaps(row.started_at, call.call_id) == []
        legs = await repo.legs(call.call_id)
        assert all((leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250 for leg in legs)
        assert sum(leg.talked_ms or 0 for leg in legs) >= 2 * 7000
        assert not list((tmp_path / "spool").iterdir())


async def test_kill_9_before_an_ending_call_was_carried_out_asks_it_again(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The caller hangs up; the daemon asks for the recording's stop, which Asterisk is slow to
    take, and is killed before it (or the callee's hang-up, queued behind it) reached Asterisk.
    Restarted, it asks for both again, the stop first: the recording does not go on with the
    callee alone, nor the callee with no one; the call closes, its recording filed."""
    async with journalled_daemon(tmp_path, pg_dsn) as (sim, proc):
        repo = await Repository.connect(pg_dsn, max_size=2)
        try:
            proc.start()
            await connected(sim)
            sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
            caller = sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                                    tone_hz=CALLER_HZ)  # fmt: skip
            await sim.settle()
            await both_bridged(sim)
            (call,) = await repo.recent_calls(5)
            (name,) = sim.recordings
            callee = dialled(sim, call.call_id)
            stop = f"/recordings/live/{name}/stop"
            held = sim.stall("POST", stop, unsent_if_client_gone=True)  # the kill comes first
            await sim.advance(2.0)
            sim.hangup(caller.id)

            async def stop_held() -> bool:
                return sim.stalled == 1

            await until(stop_held)
            proc.kill9()
            await sim.advance(2.0)  # the callee alone with the recording, no daemon
            sim.unstall(held)  # what the dead daemon sent is never heard
            asked_before = len(sim.requests)
            proc.start()
            await connected(sim)

            async def closed() -> bool:
                row = await repo.call(call.call_id)
                return row is not None and row.status == "ended"

            await until(closed, sim)
            asked = [(r.method, r.path) for r in sim.requests[asked_before:]]
            assert [(r.method, r.path) for r in sim.requests].count(("POST", stop)) == 1
            assert asked.count(("POST", stop)) == 1  # asked by the restarted daemon
            assert asked.index(("POST", stop)) < asked.index(("DELETE", f"/channels/{callee}"))
            recs = await repo.recordings(call.call_id)
            assert [r.status for r in recs] == ["filed"]
            assert not [b.id for b in sim.bridges.values() if not b.destroyed]
            assert not sim.request_problems(), sim.request_problems()
        finally:
            await repo.close()
