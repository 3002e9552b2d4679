"""`verbatim purge`: the keeping commands for scripts and cron.

Exit status: 0 done, 1 a check failed or the database is away, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg

from recorder.config import Config
from recorder.policy import load_policy, numbering_from
from recorder.policy.model import Policy
from recorder.storage.store import LocalStore

COMMANDS = ("purge",)


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def add_parsers(sub: Any, default_config: str) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", default=default_config, help="YAML configuration file")
    common.add_argument("--office", help="the Asterisk server (entity id) whose archive this is "
                        "(needed only when several share the database)")  # fmt: skip
    purge = sub.add_parser("purge", parents=[common],
                           help="delete recordings (and metadata) past their retention class")
    purge.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    purge.add_argument("--batch", type=int, default=1000, help="recordings per transaction")
    purge.add_argument("--json", action="store_true")


def policy_of(config: Config) -> Policy:
    return load_policy(config.calls.policy_file, numbering_from(config.calls))


async def resolve_office(pool: Any, store: LocalStore, given: str | None) -> str:
    """The server whose archive this is: --office, or the only one the database knows."""
    if given:
        return given
    rows = await pool.fetch(
        "SELECT DISTINCT asterisk_id FROM recordings WHERE starts_with(path, $1) "
        "UNION SELECT DISTINCT asterisk_id FROM calls ORDER BY 1 LIMIT 20", store.prefix)
    found = [r["asterisk_id"] for r in rows]
    if len(found) > 1:
        raise UsageError(f"several Asterisk servers share this database ({', '.join(found)}): "
                         "name this archive's with --office")  # fmt: skip
    if not found:
        raise UsageError("the database has no calls yet: nothing to do")
    return str(found[0])


async def run(config: Config, args: argparse.Namespace) -> int:
    from recorder.api.server import create_pool

    try:
        pool = await create_pool(config.database.dsn.reveal(), 1, 2)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"verbatim: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    try:
        return await _run(config, args, pool)
    except UsageError as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        return 2
    finally:
        await pool.close()


async def _run(config: Config, args: argparse.Namespace, pool: Any) -> int:
    from recorder.keeping.purge import Purger

    store = LocalStore(config.storage.archive_dir)
    if args.command == "purge":
        if args.batch < 1:
            raise UsageError("--batch must be at least 1")
        office = await resolve_office(pool, store, args.office)
        purger = Purger(pool, store, policy_of(config), office, batch=args.batch)
        report = await purger.run(datetime.now(UTC), kind="cli", dry_run=args.dry_run)
        if args.json:
            print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            print(_purge_text(report.as_dict(), office))
        return 0
    raise UsageError(f"unknown command {args.command}")


def _purge_text(r: dict[str, Any], office: str) -> str:
    verb = "would purge" if r["dry_run"] else "purged"
    lines = [f"{r['job']} ({office}): {verb} {r['audio']} recordings ({r['bytes']} bytes) and "
             f"the metadata of {r['metadata']} calls"]  # fmt: skip
    for cls, counts in sorted(r["by_class"].items()):
        parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
        lines.append(f"  class {cls}: {parts}")
    if r["finished"]:
        lines.append(f"  finished {r['finished']} left by an interrupted run "
                     f"({r['missing_files']} files were already gone)")  # fmt: skip
    if r["kept"]:
        lines.append(f"  kept {r['kept']}: a legal hold arrived while they were being purged")
    for cls, n in sorted(r["unknown_classes"].items()):
        lines.append(f"  warning: {n} calls of class '{cls}', which the policy does not define, "
                     "never expire")  # fmt: skip
    return "\n".join(lines)
