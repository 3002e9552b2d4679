"""`python -m arisim --port 8088 --spool DIR --speed 1.0`: a standalone simulator for the demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from .server import Simulator


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="arisim", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--spool", default=None, help="recordings directory (default: a temp dir)")
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    p.add_argument("--manual", action="store_true",
                   help="manual clock: time moves only with POST /_sim/advance")
    p.add_argument("--user", default="verbatim")
    p.add_argument("--password", default="verbatim-secret")
    p.add_argument("--app", action="append", help="allowed Stasis app (repeatable; default any)")
    p.add_argument("--asterisk-id", default="02:fc:00:00:00:01")
    p.add_argument("--bench", action="store_true",
                   help="for load benchmarks: no spec check of events, recordings written as "
                        "silence (no tone synthesis), media re-evaluated once per 20-ms step, "
                        "warnings only in the log")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.bench else logging.INFO)
    asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> None:
    sim = Simulator(username=args.user, password=args.password, apps=args.app,
                    spool_dir=args.spool, clock_mode="manual" if args.manual else "auto",
                    speed=args.speed, asterisk_id=args.asterisk_id,
                    checks=not args.bench, render_audio=not args.bench,
                    media_step=0.02 if args.bench else 0.0)
    url = await sim.start(args.host, args.port)
    logging.getLogger("arisim").info("ARI simulator at %s/ari (control at %s/_sim/)", url, url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


if __name__ == "__main__":
    main()
