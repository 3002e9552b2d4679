"""The whole product in one process for integration tests: simulator + daemon + real PostgreSQL.

The daemon is built by `recorder.service.app.build` from a real Config, exactly as `verbatim run`
builds it; only the Asterisk is simulated. `settle()` waits until the simulator, the daemon's
event queue and its filing tasks are all quiet, so a test can advance the virtual clock step by
step.
Every REST request the daemon made is checked against Asterisk 22's spec when the stack closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arisim.server import Simulator
from arisim.world import DEFAULT_ASTERISK_ID

from recorder.ari.events import parse_timestamp
from recorder.config import (
    AriConfig,
    CallsConfig,
    Config,
    DatabaseConfig,
    DialStrings,
    HooksConfig,
    LoggingConfig,
    MetricsConfig,
    Secret,
    StorageConfig,
)
from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, LegRow, RecordingRow
from recorder.devtools.config import FAST_RECONNECT
from recorder.policy.model import Announcements
from recorder.policy.prompts import DEFAULT_DIRECTORY, read_manifest, sound_lengths
from recorder.service.app import Running, build
from recorder.service.daemon import AsteriskClock

PASSWORD = "test-ari-secret"


def make_config(base_url: str, dsn: str, spool: Path | None, archive: Path,
                hooks: bool = False, storage: dict[str, Any] | None = None,
                metrics: dict[str, Any] | None = None, **calls: Any) -> Config:
    return Config(
        ari=AriConfig(
            url=base_url,
            username="verbatim",
            password=Secret(PASSWORD),
            # as the tests' daemon processes (recorder.devtools.config)
            reconnect_initial_s=FAST_RECONNECT["reconnect_initial_s"],
            reconnect_max_s=FAST_RECONNECT["reconnect_max_s"],
        ),
        database=DatabaseConfig(dsn=Secret(dsn)),
        storage=StorageConfig(archive_dir=archive, spool_dir=spool, **(storage or {})),
        calls=CallsConfig(
            dial_strings=DialStrings(
                inbound="PJSIP/{target}",
                outbound="PJSIP/{number}@trunk",
                internal="PJSIP/{target}",
            ),
            **calls,
        ),
        logging=LoggingConfig(level="info", format="json"),
        # hook mode: the FastAGI server on a port of its own choosing (Running.agi_address)
        hooks=HooksConfig(enabled=hooks, port=0, reply_timeout_s=5.0),
        # a free port (Running.metrics_address)
        metrics=MetricsConfig(**({"port": 0} | (metrics or {}))),
    )


def spec_violations(sim: Simulator) -> list[str]:
    bad = []
    for r in sim.requests:
        problem = sim.spec.check_request(r.method, r.path, r.params)
        if problem:
            bad.append(f"{r.method} {r.path} {r.params}: {problem}")
    return bad


@dataclass
class Stack:
    sim: Simulator
    running: Running
    repo: Repository
    spool: Path
    archive: Path
    task: asyncio.Task[None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    config: Config | None = None  # what the daemon was built from

    @property
    def daemon(self) -> Any:
        return self.running.daemon

    async def settle(self) -> None:
        """Until the simulator, the daemon's queue and its filing tasks are all quiet (a
        daemon not started yet is quiet)."""
        if self.task is None:
            await self.sim.settle()
            return
        for _ in range(200):
            await self.sim.settle()
            d = self.daemon
            if d.quiet:  # tests read PostgreSQL: what waits for a milestone is written too
                await d.writer.flush()
            if d.quiet and not d.writer.pending[0]:
                await asyncio.sleep(0.005)
                if d.quiet:
                    return
            await asyncio.sleep(0.005)
        raise TimeoutError("stack did not settle")

    async def advance(self, seconds: float, step: float = 0.5) -> None:
        """Advance virtual time in steps, letting the daemon react after each."""
        left = seconds
        while left > 1e-9:
            chunk = min(step, left)
            await self.sim.advance(chunk)
            await self.settle()
            left -= chunk

    async def until_bridged(self, limit_s: float = 30.0) -> str:
        """Advance until the (only) call has two parties bridged and recorded — past the
        announcements policy requires; returns its call id."""
        waited = 0.0
        while waited < limit_s:
            calls = list(self.daemon.state.calls.values())
            if calls and calls[0].phase == "bridged":
                return str(calls[0].call_id)
            await self.advance(0.1, step=0.1)
            waited += 0.1
        raise TimeoutError("the call was not bridged")

    async def until_bridged_call(self, caller_channel: str, limit_s: float = 30.0) -> str:
        """Advance until the call of `caller_channel` has its parties bridged; its call id."""
        waited = 0.0
        while waited < limit_s:
            for call in self.daemon.state.calls.values():
                if call.caller_channel == caller_channel and call.phase == "bridged":
                    return str(call.call_id)
            await self.advance(0.1, step=0.1)
            waited += 0.1
        raise TimeoutError(f"the call of {caller_channel} was not bridged")

    async def connected(self) -> None:
        await asyncio.wait_for(self.daemon.stream.connected.wait(), 5)
        await self.settle()

    async def call_rows(
        self, call_id: str
    ) -> tuple[CallRow, list[LegRow], list[RecordingRow], list[EventRow]]:
        call = await self.repo.call(call_id)
        assert call is not None, f"no call row {call_id}"
        return (
            call,
            await self.repo.legs(call_id),
            await self.repo.recordings(call_id),
            await self.repo.events(call_id),
        )

    async def hang_up(
        self, channel_id: str, call_id: str
    ) -> tuple[CallRow, list[LegRow], list[RecordingRow], list[EventRow]]:
        """A party hangs up; once all is quiet, the call's rows. (Virtual time passes for a
        snoop's next tick: only then do the snoops on the channels going away end.)"""
        self.sim.hangup(channel_id)
        await self.advance(0.02)
        return await self.call_rows(call_id)

    async def only_call_id(self) -> str:
        calls = await self.repo.recent_calls(10)
        assert len(calls) == 1, [c.call_id for c in calls]
        return calls[0].call_id


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path, dsn: str, *, spool_shared: bool = True, start: bool = True,
    hooks: bool = False, start_epoch: float | None = None, shipped_prompts: bool = False,
    storage: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
    asterisk_id: str | None = None, **calls: Any
) -> AsyncIterator[Stack]:
    """`start_epoch`: the simulated Asterisk's clock at the start (default: now), for a test
    that depends on the time of day (policy's time windows); `shipped_prompts`: each verbatim/
    prompt lasts as long as the shipped file (consent_prompts/manifest.json), not 3 s;
    `storage`, `metrics`: StorageConfig, MetricsConfig fields; `calls`: CallsConfig fields."""
    spool = tmp_path / "spool"
    archive = tmp_path / "archive"
    sounds = {"verbatim/consent": 3.0}  # and every other sound: 3 s
    if shipped_prompts:
        sounds = sound_lengths(read_manifest(DEFAULT_DIRECTORY), Announcements().language)
    sim = Simulator(spool_dir=spool, password=PASSWORD, sounds=sounds, start_epoch=start_epoch,
                    asterisk_id=asterisk_id or DEFAULT_ASTERISK_ID)
    base_url = await sim.start()
    config = make_config(base_url, dsn, spool if spool_shared else None, archive, hooks,
                         storage, metrics, **calls)
    try:
        async with build(config) as running:
            # What the daemon observes itself (an API control, a hook) is stamped with the
            # simulated Asterisk's time, as a real one's would be with its wall clock.
            running.daemon.clock = AsteriskClock(lambda: parse_timestamp(sim.clock.timestamp()))
            stack = Stack(sim, running, running.repo, spool, archive, config=config)
            if start:
                stack.task = asyncio.create_task(running.daemon.run())
                await stack.connected()
            try:
                yield stack
            finally:
                if stack.task is not None:
                    await running.daemon.stop()
                    await asyncio.wait_for(stack.task, 5)
        assert not sim.validation_errors, sim.validation_errors
        violations = spec_violations(sim)
        assert not violations, "requests the ARI spec does not allow:\n" + "\n".join(violations)
    finally:
        await sim.stop()


def extensions_announced(tmp_path: Path) -> Path:
    """A policy file: the built-in policy, but the firm's extensions hear their prompts too
    (announcements.to_extensions: true), for tests about an extension's announcement."""
    path = tmp_path / "policy-extensions-announced.yaml"
    path.write_text("announcements:\n  to_extensions: true\n", encoding="utf-8")
    return path
