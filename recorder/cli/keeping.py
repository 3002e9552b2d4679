"""`verbatim purge`, `verbatim holds add|list|release`, `verbatim verify`, `verbatim keys
list|rotate` (`keys new` needs no configuration: recorder/cli.py): the keeping commands for
scripts and cron. A hold command acts for an admin named with --by (audited as via 'cli'):
whoever runs it holds the database's credentials already, the name says who answers for it.

Exit status: 0 done, 1 a check failed or the database is away, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from recorder.config import Config
from recorder.policy import load_policy, numbering_from
from recorder.policy.model import Policy
from recorder.storage.crypt import CryptError, Keyring
from recorder.storage.keys import check_keyring, open_keyring, rotate
from recorder.storage.store import LocalStore, RecordingStore
from recorder.storage.tiered import bucket_if_configured, store_for

COMMANDS = ("purge", "holds", "verify", "keys")


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def add_parsers(sub: Any, default_config: str) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", "-c", default=default_config, help="YAML configuration file")
    common = argparse.ArgumentParser(add_help=False, parents=[config])
    common.add_argument("--office", help="the Asterisk server (entity id) whose archive this is "
                        "(needed only when several share the database)")  # fmt: skip
    purge = sub.add_parser("purge", parents=[common],
                           help="delete recordings (and metadata) past their retention class")
    purge.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    purge.add_argument("--batch", type=int, default=1000, help="recordings per transaction")
    purge.add_argument("--json", action="store_true")

    verify = sub.add_parser("verify", parents=[common], help="re-hash the archive, check the "
                            "custody chain; exit 1 on any mismatch, missing or unknown file or "
                            "broken link")  # fmt: skip
    verify.add_argument("--since", help="only what happened since: 24h, 7d or an ISO date")
    verify.add_argument("--sample", default="100%", metavar="N%",
                        help="re-hash this share of the files (all are checked for presence)")
    verify.add_argument("--json", action="store_true")

    holds = sub.add_parser("holds", help="legal holds: place, list, release")
    actions = holds.add_subparsers(dest="holds_command", required=True)
    by = argparse.ArgumentParser(add_help=False, parents=[config])
    by.add_argument("--by", required=True, metavar="ADMIN",
                    help="the admin (a user of role admin) this is done for")  # fmt: skip
    by.add_argument("--json", action="store_true")
    add = actions.add_parser("add", parents=[by], help="place a hold (at least one criterion)")
    add.add_argument("--name", required=True, help="what it is for: the matter, the case")
    add.add_argument("--reason", required=True)
    for criterion, what in (("tag", "a tag or matter number"), ("call", "a call id"),
                            ("number", "a phone number (either party)"),
                            ("department", "a department"), ("extension", "an extension"),
                            ("from", "calls that started on or after (date or date-time)"),
                            ("to", "calls that started before (a date: up to its end)")):
        add.add_argument(f"--{criterion}", help=what)  # fmt: skip
    listing = actions.add_parser("list", parents=[by], help="list holds")
    listing.add_argument("--state", choices=("active", "release_pending", "released", "all"),
                         default="active")  # fmt: skip
    release = actions.add_parser("release", parents=[by], help="release a hold (or approve its "
                                 "release, when two admins are needed)")  # fmt: skip
    release.add_argument("hold_id", type=int)
    release.add_argument("--reason", required=True)

    keys = sub.add_parser("keys", help="encryption at rest: master keys and their rotation")
    keys_actions = keys.add_subparsers(dest="keys_command", required=True)
    keys_actions.add_parser("new", help="print a new master key (32 random bytes, base64), "
                            "for a file of mode 0400 or an environment variable")  # fmt: skip
    keys_actions.add_parser("list", parents=[config],
                            help="how many recordings each master key wraps")  # fmt: skip
    rotating = keys_actions.add_parser(
        "rotate", parents=[config], help="re-wrap every data key under storage.encryption's "
        "key_id (its previous_keys unwrap the others); the audio is not re-encrypted")  # fmt: skip
    rotating.add_argument("--batch", type=int, default=500, help="keys per transaction")


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
    async with bucket_if_configured(config) as bucket:
        return await _command(config, args, pool, store_for(config, bucket))


async def _command(config: Config, args: argparse.Namespace, pool: Any,
                   store_of: Callable[[str], RecordingStore]) -> int:  # fmt: skip
    from recorder.keeping.purge import Purger

    local = LocalStore(config.storage.archive_dir)
    if args.command == "purge":
        if args.batch < 1:
            raise UsageError("--batch must be at least 1")
        office = await resolve_office(pool, local, args.office)
        purger = Purger(pool, store_of(office), policy_of(config), office, batch=args.batch)
        report = await purger.run(datetime.now(UTC), kind="cli", dry_run=args.dry_run)
        if args.json:
            print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        else:
            print(_purge_text(report.as_dict(), office))
        return 0
    if args.command == "holds":
        return await _holds(config, args, pool)
    if args.command == "verify":
        return await _verify(args, pool, local, store_of, open_keyring(config))
    if args.command == "keys":
        return await _keys(config, args, pool)
    raise UsageError(f"unknown command {args.command}")


async def _holds(config: Config, args: argparse.Namespace, pool: Any) -> int:
    from recorder.api.access_log import Origin
    from recorder.api.users import UserStore
    from recorder.keeping.holds import HoldError, Holds, hold_spec

    user = await UserStore(pool).get(args.by)
    if user is None or user.disabled or user.role != "admin":
        raise UsageError(f"--by {args.by}: not an enabled admin (see verbatim users roles)")
    by, here = user.principal("cli"), Origin(None, "verbatim holds")
    holds = Holds(pool, policy_of(config).retention_policy.release_needs_two)
    try:
        if args.holds_command == "add":
            raw = {"name": args.name, "reason": args.reason, "tag": args.tag,
                   "call_id": args.call, "number": args.number, "department": args.department,
                   "extension": args.extension, "from": args.__dict__["from"], "to": args.to}
            spec = hold_spec({k: v for k, v in raw.items() if v is not None},
                             config.calls.default_region,
                             policy_of(config).time_zone)  # fmt: skip
            found = [await holds.add(spec, by, here)]
        elif args.holds_command == "list":
            found = await holds.list(by, here, args.state)
        else:
            found = [await holds.release(args.hold_id, args.reason, by, here)]
    except HoldError as exc:
        print(f"verbatim: {exc.message}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    if args.json:
        print(json.dumps([h.as_dict() for h in found], indent=2, default=str))
    for h in [] if args.json else found:
        criteria = ", ".join(f"{k}={v}" for k, v in h.criteria().items())
        print(f"hold {h.id} [{h.status}] {h.name}: {criteria} (by {h.created_by}, "
              f"{h.created_at:%Y-%m-%d %H:%M} UTC; {h.reason})")  # fmt: skip
        if h.status == "release_pending":
            print(f"  release asked by {h.release_requested_by}: {h.release_reason}; "
                  "another admin must approve (verbatim holds release)")  # fmt: skip
    return 0


async def _keys(config: Config, args: argparse.Namespace, pool: Any) -> int:
    counts = await pool.fetch("SELECT key_id, count(*) AS n FROM recording_keys "
                              "GROUP BY key_id ORDER BY key_id")  # fmt: skip
    if args.keys_command == "list":
        for row in counts:
            print(f"{row['key_id']}: {row['n']} recordings")
        return 0
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    keyring = open_keyring(config)
    if keyring is None:
        raise UsageError("storage.encryption is not configured: nothing to rotate to")
    try:
        await check_keyring(pool, keyring)  # a wrong current key must not wrap anything
        done = await rotate(pool, keyring, batch=args.batch)
    except CryptError as exc:
        print(f"verbatim: {exc}; the keys re-wrapped so far stay so, run it again once the "
              "master key is configured (storage.encryption.previous_keys)", file=sys.stderr)
        return 1
    print(f"re-wrapped {done.rewrapped} data keys under {keyring.current.key_id} "
          f"({done.batches} batches); the audio is unchanged")  # fmt: skip
    return 0


def percent(text: str) -> int:
    value = text.strip().removesuffix("%")
    if not value.isdigit() or not 1 <= int(value) <= 100:
        raise UsageError(f"--sample: expected a share such as 10% (1% to 100%), got {text!r}")
    return int(value)


async def _verify(args: argparse.Namespace, pool: Any, local: LocalStore,
                  store_of: Callable[[str], RecordingStore],
                  keyring: Keyring | None) -> int:  # fmt: skip
    from recorder.cli.report import parse_since
    from recorder.keeping.verify import verify

    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    office = await resolve_office(pool, local, args.office)
    report = await verify(pool, store_of(office), office, since=since,
                          sample_percent=percent(args.sample), keyring=keyring)  # fmt: skip
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return 0 if report.ok else 1
    for p in report.problems:
        print(f"{p.kind}: {p.where}: {p.detail}")
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items())
    print(f"{'OK' if report.ok else 'FAILED'} ({office}): {report.links} custody rows in "
          f"{report.chains} chains, {report.files} files, {report.hashed} re-hashed "
          f"({report.bytes_hashed} bytes); {counts}")  # fmt: skip
    for chain, head in sorted(report.heads.items()):
        print(f"  chain {chain} head {head}")
    return 0 if report.ok else 1


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
