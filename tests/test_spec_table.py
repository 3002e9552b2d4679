"""The in-repo facts the simulator is held to: the ARI spec table and the real traces.

With ../shared beside the project (sessions, the main CI), each is compared with its source; a
clone alone still checks that each is sound on its own.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from arisim.replay import TRACE_DIR
from arisim.spec import Spec
from arisim.spec_table import (
    SHARED_SPEC_DIR,
    TABLE,
    build_table,
    dumps,
    read_table,
    table_problems,
)

SHARED_TRACES = SHARED_SPEC_DIR.parent / "ari-traces"
MARKER = "<!-- original README below, unchanged -->\n"


def test_table_matches_the_spec() -> None:
    table = read_table()
    if SHARED_SPEC_DIR.is_dir():  # regenerating gives the committed table byte for byte
        assert dumps(build_table(SHARED_SPEC_DIR, table["asterisk_version"])) == TABLE.read_text()
    assert table_problems(table) == []
    assert table["asterisk_version"] == "22.10.1"
    assert len(table["operations"]) > 100 and len(table["events"]) > 40
    assert "StasisStart" in table["events"] and "GET /asterisk/info" in {
        f"{op['method']} {op['path']}" for op in table["operations"]}


def test_every_route_leads_to_its_operation() -> None:
    spec = Spec(read_table())
    for op in spec.operations:
        path = re.sub(r"\{\w+\}", "x1", op.path)
        route = spec.route(op.method, path)
        assert route.operation is op, op.key
        assert spec.route(op.method, "/ari" + path).operation is op


def _retype(t: dict[str, Any]) -> None:
    t["models"]["Channel"]["properties"]["id"]["type"] = "Chanel"


def _drop_event(t: dict[str, Any]) -> None:
    del t["events"]["StasisStart"]


def _twice(t: dict[str, Any]) -> None:
    t["operations"].append(t["operations"][0])


def _newer(t: dict[str, Any]) -> None:
    t["operations"][0]["since"] = ["22.11.0", "23.5.0"]


def _wildcard(t: dict[str, Any]) -> None:
    t["operations"][0]["path"] += "/{more}"


def _subtype(t: dict[str, Any]) -> None:
    t["models"]["Event"]["subTypes"].append("Nope")


@pytest.mark.parametrize(
    ("breaks", "problem"),
    [
        (_retype, "model Channel.id: unknown type Chanel"),
        (_drop_event, "events: differ"),
        (_twice, "declared twice"),
        (_newer, "not in 22.10.1"),
        (_wildcard, "path parameters"),
        (_subtype, "unknown subtype Nope"),
    ],
)
def test_consistency_check_finds(breaks: Callable[[dict[str, Any]], None], problem: str) -> None:
    table = copy.deepcopy(read_table())
    breaks(table)
    problems = table_problems(table)
    assert any(problem in p for p in problems), problems


def test_since_of_older_branches() -> None:
    """A route added on an older branch is in 22.10.1; one added in 22.x only from 22.10.0 on."""
    table = copy.deepcopy(read_table())
    op = table["operations"][0]
    for since, ok in [(["12.0.0"], True), (["20.20.0", "22.10.0", "23.4.0"], True),
                      (["20.20.0", "22.11.0", "23.4.0"], False), (["23.0.0"], False)]:
        op["since"] = since
        assert (table_problems(table) == []) is ok, since


def test_traces_are_the_real_captures() -> None:
    files = sorted(p.relative_to(TRACE_DIR) for p in TRACE_DIR.rglob("*") if p.is_file())
    readme = (TRACE_DIR / "README.md").read_text()
    assert "Asterisk 22.10.1" in readme.split(MARKER, 1)[1]
    if SHARED_TRACES.is_dir():  # byte for byte the shared copy, README below its header
        shared = sorted(p.relative_to(SHARED_TRACES) for p in SHARED_TRACES.rglob("*")
                        if p.is_file())
        assert files == shared
        for name in files:
            ours, theirs = (TRACE_DIR / name).read_bytes(), (SHARED_TRACES / name).read_bytes()
            if str(name) == "README.md":
                ours = ours.split(MARKER.encode(), 1)[1]
            assert ours == theirs, name
    lines = [json.loads(line) for p in TRACE_DIR.rglob("*.jsonl")
             for line in p.read_text().splitlines() if line]
    assert len(lines) > 1000
    assert {d["kind"] for d in lines} >= {"request", "event", "ami", "phone"}
