"""`verbatim` command line: run, migrate, check-config, calls, health, doctor, demo, explain,
prompts, users, purge, holds, verify.

Exit status: 0 success, 1 a check failed (health, doctor) or a runtime error, 2 bad usage or bad
config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from recorder.common import loop
from recorder.common.logs import configure_logging
from recorder.config import Config, ConfigError, load_config
from recorder.config.model import default_config_path

DEFAULT_CONFIG = default_config_path()
T = TypeVar("T")


def _long_running(main: Coroutine[Any, Any, T]) -> T:
    """A long-running command's coroutine, on the chosen event loop (recorder.common.loop)."""
    try:
        return loop.run(main)
    except loop.LoopChoiceError as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _load(path: str) -> Config:
    try:
        return load_config(Path(path))
    except ConfigError as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verbatim", description="Call recording beside Asterisk.")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="YAML configuration file")
        return sp

    with_config("run", "run the daemon (connects to ARI and PostgreSQL)")
    with_config("migrate", "apply database migrations")
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    calls = with_config("calls", "list recent calls with their legs and recordings")
    calls.add_argument("--limit", type=int, default=20)
    calls.add_argument("--id", dest="call_id", help="show one call's story")
    calls.add_argument("--json", action="store_true")
    cov = with_config("coverage", "per leg: seconds talked vs recorded, and every gap")
    cov.add_argument("--since", default="24h", help="24h, 7d, 90m or an ISO date")
    with_config("health", "check ARI, PostgreSQL, spool and archive")
    doctor = with_config("doctor", "everything wrong with this installation, each with a fix")
    doctor.add_argument("--json", action="store_true")
    with_config("serve", "serve the call-search API and web page (see http: in the config)")
    from recorder.cli.users import add_users_parser

    add_users_parser(sub, DEFAULT_CONFIG)
    from recorder.cli.policy import add_parsers as add_policy_parsers

    add_policy_parsers(sub)  # explain, prompts build|install
    from recorder.cli.keeping import add_parsers as add_keeping_parsers

    add_keeping_parsers(sub, DEFAULT_CONFIG)  # purge
    demo = sub.add_parser("demo", help="simulator + private PostgreSQL + daemon + scripted calls")
    demo.add_argument("--dir", help="keep everything in this folder (default: a temp folder)")
    demo.add_argument("--keep", action="store_true", help="leave PostgreSQL running at the end")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        config = _load(args.file)
        from recorder.cli.policy import check_config_policy

        try:
            policy = check_config_policy(config)  # calls.policy_file, validated too
        except ConfigError as exc:
            print(f"verbatim: {exc}", file=sys.stderr)
            return 2
        print(
            f"{args.file}: ok ({config.asterisk.label}, ARI {config.ari.url}, app {config.ari.app})"
        )
        print(f"{args.file}: {policy}")
        return 0
    if args.command in ("explain", "prompts"):
        from recorder.cli.policy import run as run_policy_command

        return run_policy_command(args)
    if args.command == "demo":
        from recorder.devtools.demo import run_demo

        configure_logging("warning", "console")
        return _long_running(run_demo(Path(args.dir) if args.dir else None, keep=args.keep))
    if args.command == "keys" and args.keys_command == "new":
        from recorder.storage.crypt import new_master_key

        print(new_master_key())
        return 0
    config = _load(args.config)
    configure_logging(config.logging.level, config.logging.format)
    if args.command == "run":
        from recorder.service.app import run

        _long_running(run(config))
        return 0
    if args.command == "migrate":
        from recorder.db.migrate import migrate

        applied = asyncio.run(migrate(config.database.dsn.reveal()))
        print(f"applied: {', '.join(applied)}" if applied else "schema up to date")
        return 0
    if args.command == "calls":
        from recorder.cli.report import print_calls

        return asyncio.run(print_calls(config, args.limit, args.call_id, args.json))
    if args.command == "coverage":
        from recorder.cli.report import print_coverage

        return asyncio.run(print_coverage(config, args.since))
    if args.command == "serve":
        from recorder.api.server import serve

        _long_running(serve(config))
        return 0
    if args.command == "users":
        from recorder.cli.users import run_users

        return asyncio.run(run_users(config, args))
    if args.command == "doctor":
        from recorder.cli.doctor import diagnose, render, summary

        checks = asyncio.run(diagnose(config))
        found = summary(checks)
        print(json.dumps(found, indent=2) if args.json else render(checks), end="\n" * args.json)
        return 0 if found["ok"] else 1

    from recorder.cli.keeping import COMMANDS as KEEPING_COMMANDS

    if args.command in KEEPING_COMMANDS:
        from recorder.cli.keeping import run as run_keeping

        return asyncio.run(run_keeping(config, args))
    if args.command == "health":
        from recorder.cli.health import check_health

        report = asyncio.run(check_health(config))
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
