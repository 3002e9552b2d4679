"""`verbatim demo`: the whole product on one machine, with nothing to install beyond setup.

A private PostgreSQL (initdb + pg_ctl in a folder of its own, loopback only), the ARI simulator
`arisim` (asterisk-test/arisim, shipped in the wheel: Asterisk 22's behaviour, each party sending
its own tone), and the daemon as `verbatim run` builds it. A script places a handful of calls;
the demo then prints the calls table, where each recording is, and what each recording holds
second by second.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from recorder.cli.report import format_calls, format_story
from recorder.config import (
    AriConfig,
    CallsConfig,
    Config,
    DatabaseConfig,
    DialStrings,
    HooksConfig,
    MetricsConfig,
    Secret,
    StorageConfig,
)
from recorder.db.migrate import migrate
from recorder.db.rows import EventRow
from recorder.devtools.config import config_text
from recorder.devtools.pgcluster import PrivateCluster
from recorder.policy.model import Announcements
from recorder.policy.prompts import DEFAULT_DIRECTORY, read_manifest, sound_lengths
from recorder.service.app import build

PASSWORD = "demo-only-secret"  # noqa: S105 - the simulator's, on loopback, for this run only
CALLER_HZ, CALLEE_HZ = 440, 1300


@dataclass(frozen=True)
class Scripted:
    title: str
    args: tuple[str, str]
    caller_number: str
    endpoint: str
    result: Literal["answer", "busy", "noanswer"]
    ring_s: float
    talk_s: float  # conversation; for 'abandon' the caller waits this long, then hangs up
    abandon: bool = False
    hooked: bool = False  # hook mode: the dialplan keeps the call (AGI hook, then Dial())


SCRIPT = (
    Scripted("client calls the intake line", ("inbound", "201"), "(415) 555-0100",
             "PJSIP/201", "answer", 2.0, 12.0),
    Scripted("attorney calls a court clerk", ("outbound", "912125550123"), "305",
             "PJSIP/912125550123@trunk", "answer", 3.0, 8.0),
    Scripted("caller reaches a busy line", ("inbound", "202"), "+1 312 555 0142",
             "PJSIP/202", "busy", 1.0, 0.0),
    Scripted("nobody answers", ("inbound", "203"), "2065550177", "PJSIP/203", "noanswer",
             0.0, 0.0),
    Scripted("caller gives up while it rings", ("inbound", "204"), "6175550133", "PJSIP/204",
             "noanswer", 0.0, 5.0, abandon=True),
    Scripted("hook mode: the dialplan keeps the call (AGI hook, Dial()); the attorney pauses "
             "the recording while a card number is read (*1 … *2)", ("inbound", "305"),
             "+1 212 555 0188", "PJSIP/305", "answer", 2.0, 9.0, hooked=True),
)
PAUSED_S = 3.0
SETTLE_S = 10.0  # how long a step waits for the daemon to finish what it is doing


async def run_demo(directory: Path | None, *, keep: bool) -> int:
    # the simulator ships in the wheel as its own package (asterisk-test/arisim in a checkout)
    from arisim.audio import tones_per_second
    from arisim.server import Simulator

    root = directory or Path(tempfile.mkdtemp(prefix="verbatim-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # noqa: S103 - the postgres user must reach its data folder
    print(f"demo folder: {root}")
    cluster = PrivateCluster(root / "pg", fsync=False)
    await asyncio.to_thread(cluster.start)
    try:
        dsn = cluster.dsn()
        await migrate(dsn)
        spool, archive = root / "spool", root / "archive"
        # the prompts last as long as the shipped files do
        sounds = sound_lengths(read_manifest(DEFAULT_DIRECTORY), Announcements().language)
        sim = Simulator(spool_dir=spool, password=PASSWORD, sounds=sounds)
        url = await sim.start()
        print(f"PostgreSQL: {dsn}\nARI simulator: {url}")
        config = Config(
            ari=AriConfig(url=url, username="verbatim", password=Secret(PASSWORD)),
            database=DatabaseConfig(dsn=Secret(dsn)),
            storage=StorageConfig(archive_dir=archive, spool_dir=spool),
            calls=CallsConfig(
                dial_timeout_s=20,
                dial_strings=DialStrings(outbound="PJSIP/{number}@trunk"),
                departments={"Intake": ("201", "202"), "Litigation": ("305",)},
            ),
            hooks=HooksConfig(enabled=True, port=0),  # FastAGI on a free loopback port
            metrics=MetricsConfig(port=0),  # and /metrics too
        )
        try:
            async with build(config) as running:
                task = asyncio.create_task(running.daemon.run())
                await asyncio.wait_for(running.daemon.ready.wait(), 10)
                assert running.agi_address is not None
                hook_dialplan(sim, f"agi://127.0.0.1:{running.agi_address[1]}")

                async def settle() -> None:
                    # Bounded by time, not by rounds: on a loaded host the daemon may need more
                    # than a second to finish a step (or to answer a hook's AGI exchange), and
                    # moving the clock before it has would shift the demo's figures.
                    deadline = asyncio.get_running_loop().time() + SETTLE_S
                    while True:
                        await sim.settle()
                        done = running.daemon.quiet and not sim.agi.waiting_on_agi()
                        if done or asyncio.get_running_loop().time() > deadline:
                            return
                        await asyncio.sleep(0.01)

                async def advance(seconds: float) -> None:
                    steps = max(1, round(seconds / 0.5))
                    for _ in range(steps):
                        await sim.advance(seconds / steps)
                        await settle()

                for item in SCRIPT:
                    print(f"- {item.title}")
                    await place(sim, item, settle, advance)
                calls = await running.repo.recent_calls(len(SCRIPT))
                rows = [
                    (c, await running.repo.legs(c.call_id),
                     await running.repo.recordings(c.call_id))
                    for c in reversed(calls)
                ]
                first, legs, recordings = rows[0]
                story = format_story(first, await running.repo.events(first.call_id), legs,
                                     recordings)
                waits = [
                    (c.call_id, talk_after(await running.repo.events(c.call_id)))
                    for c, _, _ in rows
                ]
                await running.daemon.stop()
                await task
        finally:
            await sim.stop()
        print()
        print(format_calls(rows))
        print("\nWhat the recordings hold (per second: C caller's tone, A callee's tone):")
        for call, _legs, recs in rows:
            for rec in recs:
                if rec.path:
                    seconds = tones_per_second(rec.path, [CALLER_HZ, CALLEE_HZ])
                    marks = "".join(
                        ("C" if CALLER_HZ in s else "-") + ("A" if CALLEE_HZ in s else "-") + " "
                        for s in seconds
                    )
                    print(f"  {call.call_id} {rec.name}: {marks}")
        print("\nTime before the parties could talk (from the call's start to its bridge):")
        for call_id, wait in waits:
            print(f"  {call_id}  " + ("never connected" if wait is None else f"{wait:.1f} s"))
        print(f"\nThe first call's story:\n{story}")
        print(f"\nArchive: {archive}")
        if keep:
            conf = root / "verbatim.yaml"
            # for the command line against the kept database (no daemon runs with it)
            conf.write_text(config_text(url="http://127.0.0.1:8088", spool=spool,
                                        archive=archive))  # fmt: skip
            print(f"PostgreSQL keeps running. Try:\n  VERBATIM_DATABASE_DSN={dsn} "
                  f"VERBATIM_ARI_PASSWORD=x .venv/bin/verbatim calls -c {conf}\n"
                  f"Stop it with: pg_ctl stop -D {root / 'pg'} (as the postgres user when root)")
        return 0
    finally:
        if not keep:
            await asyncio.to_thread(cluster.stop)


def talk_after(events: Sequence[EventRow]) -> float | None:
    """Seconds from the call's start (the caller's StasisStart, or its record hook: the caller
    is answered) until the parties were first bridged; None if they never were."""
    def first(kind: str) -> datetime | None:
        return next((e.at for e in events if e.kind == kind), None)

    started, bridged = first("call.started"), first("call.bridged")
    if started is None or bridged is None:
        return None
    return round((bridged - started).total_seconds(), 3)


def hook_dialplan(sim: object, agi: str) -> None:
    """[demo-hooked] as dialplan/verbatim-hooks.conf shows it (without its fallback)."""
    from arisim.server import Simulator

    assert isinstance(sim, Simulator)
    sim.set_applicationmap({"verbatim-pause": ("*1", "self", f"AGI({agi}/pause)"),
                            "verbatim-resume": ("*2", "self", f"AGI({agi}/resume)")})
    sim.add_extension("demo-hooked", "_X.", [
        ("Set", "__DYNAMIC_FEATURES=verbatim-pause#verbatim-resume"),
        ("AGI", f"{agi}/record,inbound,${{EXTEN}}"),
        ("Dial", "PJSIP/${EXTEN},30,r"),  # the caller hears ringing until it is connected
    ])


async def place(
    sim: object,
    item: Scripted,
    settle: Callable[[], Awaitable[None]],
    advance: Callable[[float], Awaitable[None]],
) -> None:
    from arisim.server import Simulator

    assert isinstance(sim, Simulator)
    sim.set_endpoint(item.endpoint, result=item.result, answer_after=item.ring_s,
                     tone_hz=CALLEE_HZ)
    if item.hooked:
        caller = sim.start_dialplan_call(item.args[1], context="demo-hooked",
                                         caller_number=item.caller_number, tone_hz=CALLER_HZ)
    else:
        caller = sim.start_call(caller_number=item.caller_number, args=list(item.args),
                                tone_hz=CALLER_HZ)
    await settle()

    def dialled() -> bool:
        return any(c.name.startswith(item.endpoint) for c in sim.channels.values())

    def connected() -> bool:
        ch = sim.channels[caller.id]
        bridge = sim.bridges.get(ch.bridge_id or "")
        return ch.hungup or (bridge is not None and len(bridge.channels) >= 2)

    await until(dialled, advance)  # the caller's announcement, then the dial
    if item.hooked:
        await advance(item.ring_s)
        await until(connected, advance)  # the callee's announcement, if one is due
        await advance(2.0)
        callee = next(c for c in sim.channels.values()
                      if c.name.startswith(item.endpoint) and not c.destroyed)
        for code in ("*1", "*2"):  # the applicationmap runs the pause, then the resume hook
            for digit in code:
                sim.send_dtmf(callee.id, digit)
            await settle()
            await advance(PAUSED_S if code == "*1" else item.talk_s - 2.0 - PAUSED_S)
        sim.hangup(caller.id)
    elif item.result == "answer":
        await advance(item.ring_s)
        await until(connected, advance)
        await advance(item.talk_s)
        sim.hangup(caller.id)
    elif item.abandon:
        await advance(item.talk_s)
        sim.hangup(caller.id)
    else:
        await advance(22.0 if item.result == "noanswer" else 2.0)
    await advance(0.5)  # Asterisk ends a hung-up channel's snoops a moment before the channel


async def until(
    done: Callable[[], bool], advance: Callable[[float], Awaitable[None]], limit_s: float = 30.0
) -> None:
    """Advance virtual time in small steps until `done()` (or `limit_s` has passed)."""
    waited = 0.0
    while not done() and waited < limit_s:
        await advance(0.1)
        waited += 0.1
