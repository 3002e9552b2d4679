"""`verbatim demo`: the whole product on one machine, with nothing to install beyond setup.

A private PostgreSQL (initdb + pg_ctl in a folder of its own, loopback only), the ARI simulator
from asterisk-test/ (Asterisk 22's behaviour, each party sending its own tone), and the daemon as
`verbatim run` builds it. A script places a handful of calls; the demo then prints the calls
table, where each recording is, and what each recording holds second by second.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recorder.app import build
from recorder.config import (
    AriConfig,
    CallsConfig,
    Config,
    DatabaseConfig,
    DialStrings,
    HooksConfig,
    Secret,
    StorageConfig,
)
from recorder.db.migrate import migrate
from recorder.pgcluster import PrivateCluster
from recorder.report import format_calls, format_story

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "demo-only-secret"  # noqa: S105 - the simulator's, on loopback, for this run only
CALLER_HZ, CALLEE_HZ = 440, 1300
DEMO_CONFIG = """\
ari:
  url: "http://127.0.0.1:8088"
  username: "verbatim"
storage:
  spool_dir: "{spool}"
  archive_dir: "{archive}"
"""


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


async def run_demo(directory: Path | None, *, keep: bool) -> int:
    sys.path.insert(0, str(ROOT / "asterisk-test"))
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
        sim = Simulator(spool_dir=spool, password=PASSWORD, sounds={"verbatim/consent": 3.0})
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
        )
        try:
            async with build(config) as running:
                task = asyncio.create_task(running.daemon.run())
                await asyncio.wait_for(running.daemon.ready.wait(), 10)
                assert running.agi_address is not None
                hook_dialplan(sim, f"agi://127.0.0.1:{running.agi_address[1]}")

                async def settle() -> None:
                    for _ in range(100):
                        await sim.settle()
                        d = running.daemon
                        if d.quiet:
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
                story = format_story(rows[0][0], await running.repo.events(rows[0][0].call_id))
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
        print(f"\nThe first call's story:\n{story}")
        print(f"\nArchive: {archive}")
        if keep:
            conf = root / "verbatim.yaml"
            conf.write_text(DEMO_CONFIG.format(spool=spool, archive=archive))
            print(f"PostgreSQL keeps running. Try:\n  VERBATIM_DATABASE_DSN={dsn} "
                  f"VERBATIM_ARI_PASSWORD=x .venv/bin/verbatim calls -c {conf}\n"
                  f"Stop it with: pg_ctl stop -D {root / 'pg'} (as the postgres user when root)")
        return 0
    finally:
        if not keep:
            await asyncio.to_thread(cluster.stop)


def hook_dialplan(sim: object, agi: str) -> None:
    """[demo-hooked] as dialplan/verbatim-hooks.conf shows it (without its fallback)."""
    from arisim.server import Simulator

    assert isinstance(sim, Simulator)
    sim.set_applicationmap({"verbatim-pause": ("*1", "self", f"AGI({agi}/pause)"),
                            "verbatim-resume": ("*2", "self", f"AGI({agi}/resume)")})
    sim.add_extension("demo-hooked", "_X.", [
        ("Set", "__DYNAMIC_FEATURES=verbatim-pause#verbatim-resume"),
        ("AGI", f"{agi}/record,inbound,${{EXTEN}}"),
        ("Dial", "PJSIP/${EXTEN},30"),
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
    await advance(3.0)  # the consent announcement
    if item.hooked:
        await advance(item.ring_s + 2.0)
        callee = next(c for c in sim.channels.values()
                      if c.name.startswith(item.endpoint) and not c.destroyed)
        for code in ("*1", "*2"):  # the applicationmap runs the pause, then the resume hook
            for digit in code:
                sim.send_dtmf(callee.id, digit)
            await settle()
            await advance(PAUSED_S if code == "*1" else item.talk_s - 2.0 - PAUSED_S)
        sim.hangup(caller.id)
        await advance(0.05)  # each snoop ends on its next tick (20 ms), then its leg
    elif item.result == "answer":
        await advance(item.ring_s + item.talk_s)
        sim.hangup(caller.id)
    elif item.abandon:
        await advance(item.talk_s)
        sim.hangup(caller.id)
    else:
        await advance(22.0 if item.result == "noanswer" else 2.0)
    await settle()
