"""The `verbatim explain` and `verbatim prompts build|install` commands (cli/main.py wires
them in). Exit status as for the other commands: 0 done, 1 a check failed or a tool failed,
2 bad usage or a bad configuration/policy file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from recorder.common.direction import DIRECTIONS, Direction
from recorder.common.numbers import is_extension
from recorder.config import Config, ConfigError, load_config
from recorder.config.model import default_config_path
from recorder.policy.explain import explain, render, to_json
from recorder.policy.loader import load_policy, numbering_from
from recorder.policy.model import Policy, Via
from recorder.policy.prompts import (
    DEFAULT_DIRECTORY,
    FALLBACK,
    MANIFEST,
    PromptsError,
    build,
    install,
    opt_out_keys,
    prompt_lengths,
    read_manifest,
)
from recorder.policy.rules import Join, call_facts
from recorder.policy.timing import time_to_talk

# explain needs no secret: these stand in for unset ones so a config can be read without them.
_PLACEHOLDERS = {"VERBATIM_ARI_PASSWORD": "unused", "VERBATIM_DATABASE_DSN": "postgresql://unused"}


class _JoinAction(argparse.Action):
    """--transfer-to/--forward-to/--attended-transfer-to, kept in the order given."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: str | None = None) -> None:
        joins = list(getattr(namespace, "joins", None) or [])
        via: Via = "forward" if option == "--forward-to" else "transfer"
        joins.append(Join(str(value), via, attended=option == "--attended-transfer-to"))
        namespace.joins = joins


def add_parsers(sub: Any) -> None:
    """Add `explain` and `prompts` to the `verbatim` subcommands."""
    e = sub.add_parser(
        "explain",
        help="show what the recording policy does with a call",
        description="Decision, rule, each party's jurisdiction and the announcements for a call.",
    )
    e.add_argument(
        "--config",
        "-c",
        help="verbatim.yaml, for numbering, departments and policy_file "
        "(default: $VERBATIM_CONFIG or /etc/verbatim/verbatim.yaml when present)",
    )
    e.add_argument("--policy", help="policy file (default: calls.policy_file, else built-in)")
    e.add_argument("--from", dest="caller", required=True, help="caller number or extension")
    e.add_argument("--to", dest="callee", required=True, help="number or extension dialled")
    e.add_argument("--direction", choices=DIRECTIONS, help="default: from the numbers")
    e.add_argument("--at", help="ISO time, e.g. 2026-11-25T22:30:00-08:00 (default: now)")
    e.add_argument("--did", help="the DID an inbound call came in on")
    e.add_argument("--trunk", help="the trunk's name")
    e.add_argument("--extension", help="the firm's extension (default: from the numbers)")
    e.add_argument("--department", help="its department (default: from verbatim.yaml)")
    for flag, what in (
        ("--transfer-to", "a later blind transfer: the firm's party leaves, TARGET joins"),
        ("--forward-to", "a forward: TARGET takes the firm's party's place"),
        ("--attended-transfer-to", "the firm's party consults TARGET, then connects it and leaves"),
    ):
        help_ = f"{what} (repeatable; joins count in the order given: target1, target2, ...)"
        e.add_argument(
            flag, action=_JoinAction, dest="joins", metavar="TARGET", default=[], help=help_
        )
    e.add_argument("--answered-by", metavar="MEMBER",
                   help="--to is a ring group and MEMBER (an extension) answers: it becomes "
                   "the callee")
    e.add_argument("--hangup-during", choices=("caller", "callee"),
                   help="that party hangs up during its announcement")
    e.add_argument(
        "--opt-out",
        action="append",
        default=[],
        metavar="PARTY",
        help="a party that presses the opt-out key: caller, callee, target1, ...",
    )
    e.add_argument("--prompts", type=Path, help=f"prompts folder (default {DEFAULT_DIRECTORY})")
    e.add_argument(
        "--ring-time",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="how long the callee rings, for the time before the parties can talk (default 0)",
    )
    e.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("prompts", help="build or install the consent announcements")
    ps = p.add_subparsers(dest="prompts_command", required=True)
    b = ps.add_parser("build", help="generate the WAV files and manifest (espeak-ng + sox)")
    b.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="prompts folder")
    b.add_argument("--out", type=Path, help="write here instead of --dir")
    b.add_argument("--config", "-c", help="verbatim.yaml, for its policy's opt-out key")
    b.add_argument("--policy", help="policy file, for its opt-out key (default key 9)")
    b.add_argument("--check", action="store_true", help="rebuild elsewhere and compare hashes")
    i = ps.add_parser("install", help="copy the verified prompts into Asterisk's sounds folder")
    i.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="prompts folder")
    i.add_argument(
        "--sounds-dir", type=Path, required=True, help="e.g. /var/lib/asterisk/sounds/en/verbatim"
    )
    i.add_argument("--config", "-c", help="verbatim.yaml, for its policy's language")
    i.add_argument(
        "--policy", help="policy file, for announcements.language: the fallback's (default en)"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to 3600, got {text!r}")
    return value


def _config(path: str | None) -> Config | None:
    if path is None:
        default = default_config_path()
        if not Path(default).is_file():
            return None
        path = default
    return load_config(Path(path), {**_PLACEHOLDERS, **{k: v for k, v in os.environ.items() if v}})


def policy_for(config: Config | None, policy_file: str | None) -> Policy:
    """The policy `--policy` names, else the config's calls.policy_file, else the built-in."""
    numbering = numbering_from(config.calls) if config else None
    configured = config.calls.policy_file if config else None
    path = Path(policy_file) if policy_file else configured
    return load_policy(path, numbering)


def check_config_policy(config: Config) -> str:
    """For check-config: load the configured policy (raises PolicyError); words for the report."""
    policy = policy_for(config, None)
    return f"policy {policy.path}, {len(policy.rules)} rules" if policy.path else "built-in policy"


def _at(text: str | None, policy: Policy) -> datetime:
    if text is None:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text)
    # A time without an offset is read in the policy's zone: that is how counsel thinks of it.
    return (
        value if value.utcoffset() is not None else value.replace(tzinfo=ZoneInfo(policy.time_zone))
    )


def _direction(args: argparse.Namespace, policy: Policy) -> Direction:
    if args.direction:
        return args.direction  # type: ignore[no-any-return]
    pattern = policy.numbering.extension_pattern
    inside = (is_extension(args.caller, pattern), is_extension(args.callee, pattern))
    return {(True, True): "internal", (True, False): "outbound"}.get(inside, "inbound")  # type: ignore[return-value]


def run_explain(args: argparse.Namespace) -> int:
    policy = policy_for(_config(args.config), args.policy)
    try:
        at = _at(args.at, policy)
    except ValueError:
        print(f"verbatim: --at: not an ISO time: {args.at!r}", file=sys.stderr)
        return 2
    if args.opt_out and policy.opt_out.dtmf is None:
        print("verbatim: --opt-out: this policy offers no opt-out (opt_out.dtmf is null)",
              file=sys.stderr)
        return 2
    labels = {"caller", "callee", *(f"target{i + 1}" for i in range(len(args.joins)))}
    unknown = sorted(set(args.opt_out) - labels)
    if unknown:
        print(
            f"verbatim: --opt-out: no party {', '.join(unknown)} "
            f"(parties: {', '.join(sorted(labels))})",
            file=sys.stderr,
        )
        return 2
    facts = call_facts(
        _direction(args, policy),
        args.caller,
        args.callee,
        did=args.did,
        trunk=args.trunk,
        extension=args.extension,
        department=args.department,
        answered_by=args.answered_by,
        joins=args.joins,
        opted_out=args.opt_out,
    )
    folder = args.prompts or DEFAULT_DIRECTORY
    prompts = manifest = None
    if args.prompts is not None or (folder / MANIFEST).is_file():
        manifest = read_manifest(folder)
        prompts = opt_out_keys(manifest)
    result = explain(facts, policy, at, prompts=prompts, hangup_during=args.hangup_during)
    if manifest is not None:
        lengths = prompt_lengths(manifest)
        wait = time_to_talk(result.stages[0].announcements, args.ring_time, lengths)
        result = replace(result, wait=wait)
    print(
        json.dumps(to_json(result), indent=2) if args.json else render(result),
        end="" if not args.json else "\n",
    )
    return 0


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    by_id = {p["id"]: p for p in old["prompts"]}
    out = []
    for p in new["prompts"]:
        was = by_id.pop(p["id"], None)
        if was is None:
            out.append(f"{p['id']}: not in the committed manifest")
        elif was["sha256"] != p["sha256"]:
            out.append(f"{p['id']}: rebuilt file differs (text or tool version changed?)")
    out += [f"{pid}: in the manifest but no longer in prompts.yaml" for pid in by_id]
    if old.get("tools") != new.get("tools"):
        out.append(f"tools differ: manifest {old.get('tools')}, here {new.get('tools')}")
    return out


def run_prompts(args: argparse.Namespace) -> int:
    try:
        policy = policy_for(_config(args.config), args.policy)
        if args.prompts_command == "install":
            for name, media in install(args.dir, args.sounds_dir, policy.announcements.language):
                note = ""
                if Path(name).stem == FALLBACK:  # what the dialplan's Playback() must name
                    note = f"  (fallback announcement: Playback({media.removeprefix('sound:')}))"
                print(f"{args.sounds_dir / name}  {media}{note}")
            return 0
        dtmf = policy.opt_out.dtmf
        if args.check:
            with tempfile.TemporaryDirectory(prefix="verbatim-prompts-check-") as tmp:
                problems = _differences(read_manifest(args.dir), build(args.dir, dtmf, Path(tmp)))
            for problem in problems:
                print(problem)
            print(
                "prompts match their manifest" if not problems else f"{len(problems)} difference(s)"
            )
            return 1 if problems else 0
        manifest = build(args.dir, dtmf, args.out)
        for p in manifest["prompts"]:
            print(f"{p['file']}  {p['duration_s']:.2f} s  {p['sha256'][:12]}…  {p['text']}")
        return 0
    except PromptsError as exc:
        print(f"verbatim: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    """Entry from recorder.cli.main for `explain` and `prompts`."""
    try:
        return run_explain(args) if args.command == "explain" else run_prompts(args)
    except ConfigError as exc:  # PolicyError included
        print(f"verbatim: {exc}", file=sys.stderr)
        return 2
