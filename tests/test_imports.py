"""No import cycles in the package, function-level imports included (a cycle broken by an
import inside a function is still a cycle: the modules cannot be read one before the other).
No test module imports another test module: what tests share lives in tests/harness/."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "recorder").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                # a package's own __init__ re-exporting its modules is not a cycle of theirs
                if target in modules and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
                    break
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _imports_of_test_modules(tests: Path) -> list[str]:
    """"file: module" for each import, anywhere under `tests`, of a test module (tests.test_*) or
    of conftest (pytest loads it; its helpers belong in the harness)."""
    found = []
    for path in sorted(tests.rglob("*.py")):
        package = ["tests", *path.relative_to(tests).parent.parts]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
                names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            bad = [n for n in names if n.startswith(("tests.test_", "tests.conftest"))]
            found += [f"{path.relative_to(tests)}: {bad[0]}"] if bad else []
    return found


def test_no_test_module_imports_another() -> None:
    assert _imports_of_test_modules(ROOT / "tests") == []


@pytest.mark.parametrize(("where", "line"), [
    ("test_x.py", "from tests.test_flow_basic import CALLER_HZ"),
    ("test_x.py", "import tests.test_flow_basic"),
    ("test_x.py", "from tests import test_flow_basic"),
    ("test_x.py", "from .test_flow_basic import CALLER_HZ"),
    ("test_x.py", "def f() -> None:\n    from tests.test_flow_basic import CALLER_HZ"),
    ("harness/calls.py", "from ..test_flow_basic import CALLER_HZ"),
    ("harness/calls.py", "from tests.conftest import write_wav"),
])
def test_the_check_finds_a_test_module_imported(tmp_path: Path, where: str, line: str) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "stack.py").write_text("from tests.harness.wav import write_wav\n")
    (tmp_path / "test_y.py").write_text("from tests.harness import builders as b\n")
    (tmp_path / where).write_text(line + "\n")
    assert _imports_of_test_modules(tmp_path) == [f"{where}: tests.test_flow_basic"
                                                  if "flow" in line else f"{where}: tests.conftest"]


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_graph(_modules())) == []


def test_the_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Layers, lowest first: a module imports its own layer and the layers below, never one above.
# Pure code (common, config, policy, the call model) sits under every adapter; the service and
# the command line, which wire everything, are on top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("recorder.common",),
    ("recorder.config",),
    ("recorder.policy", "recorder.ari", "recorder.agi"),
    ("recorder.model",),
    ("recorder.db", "recorder.storage", "recorder.keeping.custody"),  # custody: a chain of rows
    ("recorder.api", "recorder.web", "recorder.keeping"),  # finding, hearing and keeping calls
    ("recorder.service",),  # the running daemon: its loop, writer, journal, hooks, recovery
    ("recorder.cli", "recorder.devtools"),
)
# Imports that break the layers today, each to go; the test fails when one goes, so that the
# list is shortened with it. None left: the model hands over its own data (SaveCall carries the
# call), and the daemon maps it to rows with recorder.db.mapping.
KNOWN_BREACHES: set[tuple[str, str]] = set()


def _layer(module: str) -> int:
    """The layer of the longest package in LAYERS that holds `module`."""
    held = [(len(p), level) for level, packages in enumerate(LAYERS) for p in packages
            if module == p or module.startswith(p + ".")]
    assert held, f"{module} is in no layer: add its package to LAYERS"
    return max(held)[1]


def _breaches(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in edges.items() for b in targets if _layer(b) > _layer(a)}


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        if name != "recorder":
            _layer(name)


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = _breaches(_graph(_modules()))
    assert found - KNOWN_BREACHES == set(), "imports a layer above: " + repr(found - KNOWN_BREACHES)
    assert KNOWN_BREACHES - found == set(), "gone, remove from KNOWN_BREACHES"


def test_the_layer_check_finds_an_import_upwards() -> None:
    edges = {"recorder.model.calls": {"recorder.api.server", "recorder.policy.rules"},
             "recorder.cli.main": {"recorder.model.calls"}}
    assert _breaches(edges) == {("recorder.model.calls", "recorder.api.server")}



# The pure layers do no I/O: loading every module of the call model and the policy's rules loads
# no network, database or process client (in a fresh interpreter, so nothing else loaded them).
# The policy's loader and prompt builder read files and run tools: its edge, not its rules.
PURE_POLICY = ("announce", "audit", "explain", "jurisdiction", "model", "rules", "states", "timing")
IO = ("asyncio", "socket", "subprocess", "asyncpg", "aiohttp", "aiobotocore", "botocore", "pydub",
      "recorder.ari.client", "recorder.ari.connection", "recorder.agi", "recorder.db.repository",
      "recorder.db.connect", "recorder.db.controls", "recorder.storage", "recorder.keeping",
      "recorder.api", "recorder.web", "recorder.service", "recorder.cli", "recorder.service.daemon")
_LOAD = "import importlib, json, sys; [importlib.import_module(m) for m in sys.argv[1:]]; " \
        "print(json.dumps(sorted(sys.modules)))"


def _loaded(modules: list[str]) -> set[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "asterisk-test")])}
    out = subprocess.run([sys.executable, "-c", _LOAD, *modules], capture_output=True, text=True,
                         env=env, check=True, cwd=ROOT)
    return set(json.loads(out.stdout))


def test_the_call_model_and_the_policy_load_no_io() -> None:
    pure = [m for m in _modules() if m.startswith("recorder.model")]
    pure += [f"recorder.policy.{m}" for m in PURE_POLICY]
    loaded = _loaded(pure)
    assert {"recorder.model.calls", "recorder.policy.rules"} <= loaded
    assert sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in IO)) == []


def test_the_io_check_sees_a_client() -> None:
    assert "asyncpg" in _loaded(["recorder.db.repository"])
