"""Every case of tests/data/consent/cases.yaml, through explain's code path (and a few through
`verbatim explain --json`). The expectations are written by hand in that file, for counsel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from recorder.config import load_config
from recorder.policy import CallFacts, Join, Policy, explain, load_policy, numbering_from
from recorder.policy.explain import Explanation, Stage
from recorder.policy.model import Via

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "consent"
CASES = yaml.safe_load((DATA / "cases.yaml").read_text(encoding="utf-8"))
ENV = {"VERBATIM_ARI_PASSWORD": "unused", "VERBATIM_DATABASE_DSN": "postgresql://unused"}
# Every stage must state these, so no case can pass by saying nothing.
REQUIRED = {"record", "by", "parties", "mode", "announcements"}
KNOWN = REQUIRED | {"action", "retention", "then", "route_to"}


@cache
def policy(name: str) -> Policy:
    config = load_config(DATA / "verbatim.yaml", ENV)
    return load_policy(DATA / CASES["policies"][name], numbering_from(config.calls))


def facts(call: dict[str, Any]) -> CallFacts:
    joins = []
    for j in call.get("joins", []):
        ((kind, target),) = j.items()
        via: Via = "forward" if kind == "forward" else "transfer"
        joins.append(Join(str(target), via, attended=kind.startswith("attended")))
    return CallFacts(
        direction=call["direction"],
        caller=call["from"],
        callee=call["to"],
        did=call.get("did"),
        trunk=call.get("trunk"),
        joins=tuple(joins),
        opted_out=frozenset(call.get("opt_out", [])),
    )


def seen(stage: Stage) -> dict[str, Any]:
    """A stage in the words cases.yaml uses."""
    d = stage.decision
    return {
        "record": d.record,
        "action": d.action,
        "by": ", ".join(d.decided_by),
        "retention": d.retention,
        "then": d.then,
        "route_to": d.route_to,
        "parties": {label: f"{j.place} {j.mode} ({j.source})" for label, j in stage.parties},
        "mode": stage.mode,
        "announcements": [str(a) for a in stage.announcements],
    }


def check(explanation: Explanation, case: dict[str, Any]) -> None:
    wanted = [case["expect"], *case.get("after", [])]
    assert len(explanation.stages) == len(wanted), "one expectation per stage (start + joins)"
    for i, (stage, expected) in enumerate(zip(explanation.stages, wanted, strict=True)):
        assert set(expected) >= REQUIRED and set(expected) <= KNOWN, sorted(expected)
        got = seen(stage)
        assert {k: got[k] for k in expected} == expected, f"stage {i}: {stage.title}"


def test_enough_cases_with_unique_names() -> None:
    names = [c["name"] for c in CASES["cases"]]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: c["name"][:70])
def test_case(case: dict[str, Any]) -> None:
    p = policy(case.get("policy", "firm"))
    at = datetime.fromisoformat(case["call"]["at"])
    check(explain(facts(case["call"]), p, at), case)


def _cli(case: dict[str, Any]) -> dict[str, Any]:
    call = case["call"]
    args = ["--direction", call["direction"], "--from", call["from"], "--to", call["to"]]
    args += ["--at", call["at"], "--json"]
    args += [x for k in ("did", "trunk") if k in call for x in (f"--{k}", call[k])]
    for j in call.get("joins", []):
        ((kind, target),) = j.items()
        args += [f"--{kind.replace(' ', '-')}-to", str(target)]
    args += [x for party in call.get("opt_out", []) for x in ("--opt-out", party)]
    policy_file = DATA / CASES["policies"][case.get("policy", "firm")]
    command = [sys.executable, "-m", "recorder.cli", "explain", "-c", str(DATA / "verbatim.yaml")]
    result = subprocess.run(
        [*command, "--policy", str(policy_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **ENV},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_cli_json_agrees_with_the_cases() -> None:
    # A sample through the command line: joins, opt-outs, DID, trunk and the alt policy.
    chosen = [
        c
        for c in CASES["cases"]
        if c["call"].get("joins") or c["call"].get("opt_out") or c["call"].get("trunk")
    ][::4] + [c for c in CASES["cases"] if c.get("policy") == "alt"][:2]
    assert len(chosen) >= 5
    for case in chosen:
        out = _cli(case)
        wanted = [case["expect"], *case.get("after", [])]
        assert len(out["stages"]) == len(wanted), case["name"]
        for stage, expected in zip(out["stages"], wanted, strict=True):
            parties = {
                p["party"]: f"{p['place']} {p['mode']} ({p['source']})" for p in stage["parties"]
            }
            anns = [
                f"{a['to']}: {a['mode']} {a['language']} ({a['when']})"
                for a in stage["announcements"]
            ]
            assert stage["record"] == expected["record"], case["name"]
            assert ", ".join(stage["decision"]["decided_by"]) == expected["by"], case["name"]
            assert parties == expected["parties"] and anns == expected["announcements"], case[
                "name"
            ]
