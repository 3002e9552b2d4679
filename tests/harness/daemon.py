"""The daemon as a real process (`verbatim run`), as in production, for the crash and outage
tests: its config, start/kill -9/stop, and waiting (real time) for another process's writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from arisim.server import Simulator

from recorder.db.repository import Repository
from recorder.devtools.config import config_text
from tests.harness.calls import dialled
from tests.harness.stack import PASSWORD


class Proc:
    def __init__(self, config: Path, dsn: str, log: Path) -> None:
        self.config, self.dsn, self.log = config, dsn, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "VERBATIM_ARI_PASSWORD": PASSWORD, "VERBATIM_DATABASE_DSN": self.dsn}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "recorder.cli", "run", "--config", str(self.config)],
                stdout=out,
                stderr=out,
                env=env,
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    async def stop(self) -> int:
        """SIGTERM, waiting without blocking the loop: the in-process simulator must answer
        the daemon's WebSocket close meanwhile."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for _ in range(200):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.proc.kill()
                return self.proc.wait(5)
        return self.proc.returncode


async def until(
    cond: Callable[[], Awaitable[bool]], sim: Simulator | None = None, limit: float = 10.0
) -> None:
    """Wait (real time, at most `limit` s) for `cond`; with `sim`, advance its clock 0.1 s
    between looks once the daemon in the other process has gone quiet (no event out, no
    request in, for 0.1 s of real time): it reacts late under load, and virtual time that went
    on meanwhile would be time it never had against a real Asterisk."""
    loop = asyncio.get_running_loop()
    seen, still_since = -1, loop.time()
    async with asyncio.timeout(limit):
        while not await cond():  # polls another process's database writes
            if sim is not None:
                activity = len(sim.hub.log) + len(sim.requests)
                if activity != seen:
                    seen, still_since = activity, loop.time()
                elif loop.time() - still_since >= 0.1:
                    await sim.advance(0.1)
            await asyncio.sleep(0.02)


async def both_bridged(sim: Simulator) -> None:
    """Until the caller and the answered callee are both in the bridge, and recorded."""

    async def done() -> bool:
        return len(sim.events("ChannelEnteredBridge")) >= 2 and bool(sim.recordings)

    await until(done, sim)  # consent, ringing, answer, recording, bridged


async def connected(sim: Simulator) -> None:
    """Until the daemon just started has connected and reconciled: its hooks answer only from
    then on (`hook.not_ready` before), and under load that can be well after its WebSocket is
    up. Its snapshot's GET /bridges is the last request of that work; it comes after this is
    called (a new process takes longer than this to start making requests)."""
    since = len(sim.requests)

    async def up() -> bool:
        return sim.hub.active("verbatim") and any(
            r.method == "GET" and r.path == "/bridges" for r in sim.requests[since:])

    await until(up)
    await sim.settle()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def journalled_daemon(tmp_path: Path, dsn: str) -> AsyncIterator[tuple[Simulator, Proc]]:
    """The simulator and a daemon (not yet started) whose journal is in tmp_path/journal."""
    spool, archive, journal = tmp_path / "spool", tmp_path / "archive", tmp_path / "journal"
    sim = Simulator(spool_dir=spool, password=PASSWORD, sounds={"verbatim/consent": 3.0})
    url = await sim.start()
    config = tmp_path / "verbatim.yaml"
    config.write_text(config_text(url=url, spool=spool, archive=archive, fast_reconnect=True,
                                  pool_max=2, journal_dir=journal))  # fmt: skip
    proc = Proc(config, dsn, tmp_path / "daemon.log")
    try:
        yield sim, proc
    finally:
        if proc.proc is not None:
            await proc.stop()
        await sim.stop()
        if os.environ.get("KEEP_LOG"):
            worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # one file per xdist worker
            shutil.copy(proc.log, f"/tmp/outage{'-' + worker if worker else ''}.log")


async def assert_each_row_once(repo: Repository, sim: Simulator, callers: list[str]) -> None:
    """Each caller has one call (answered, ended) with its two legs; no event kind twice in a
    call; each recording Asterisk made is one filed row under the call whose bridge it recorded;
    the daemon hung up no one before their caller had."""
    calls = await repo.recent_calls(2 * len(callers))
    by_caller: dict[str, str] = {}
    for row in calls:
        assert (row.status, row.outcome) == ("ended", "answered"), row
        legs = await repo.legs(row.call_id)
        assert sorted(leg.role for leg in legs) == ["callee", "caller"], legs
        by_caller |= {leg.channel_id: row.call_id for leg in legs if leg.role == "caller"}
        twice = [k for k, n in Counter((e.kind, e.channel_id, e.recording_name)
                                       for e in await repo.events(row.call_id)).items() if n > 1]
        assert not twice, (row.call_id, twice)
    assert sorted(by_caller) == sorted(callers)  # one call per caller, no adopted second
    bridge_call = {e["bridge"]["id"]: by_caller[e["channel"]["id"]]
                   for e in sim.events("ChannelEnteredBridge") if e["channel"]["id"] in by_caller}
    made = [*sim.finished_recordings, *sim.recordings.values()]
    assert len(made) == len(callers)
    for rec in made:
        filed = await repo.recording(sim.asterisk_id, rec.name)
        assert filed is not None and filed.status == "filed", (rec.name, filed)
        assert filed.call_id == bridge_call[rec.target_id], rec.name
        assert Path(filed.path or "").is_file()
    for caller in callers:
        call_id = by_caller[caller]
        hung = next(r.at for r in sim.event_log if r.event["type"] == "ChannelHangupRequest"
                    and r.event["channel"]["id"] == caller)  # the clock requests are logged on
        early = [r for r in sim.requests if r.method == "DELETE" and r.at < hung
                 and r.path in (f"/channels/{caller}", f"/channels/{dialled(sim, call_id)}")]
        assert not early, early
