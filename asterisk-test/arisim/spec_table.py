"""Asterisk's ARI spec as one generated table, `ari_spec.json`, that ships with the simulator.

The table holds what the simulator and the checks read from the Swagger 1.1 api-docs of
Asterisk's `rest-api/`: every route (method, path template, resource, nickname, response class,
error codes, the version it appeared in) with its parameters, every model's fields (type,
required, allowable values) and, per event, its full list of fields (Message and Event base
fields included). Descriptions are left out. It is generated from `../shared/asterisk-ari/`
beside the project, which is byte for byte `rest-api/` of Asterisk 22.10.1 (and of 22.10.0):

    python -m arisim.spec_table            # from ../shared/asterisk-ari, rewrites ari_spec.json
    python -m arisim.spec_table SPEC_DIR --asterisk-version 22.11.0

`tests/test_spec_table.py` checks the table against the spec when ../shared is present, and its
own consistency always. Never edit the table by hand.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Final

ASTERISK_VERSION: Final = "22.10.1"  # the release whose rest-api/ ../shared/asterisk-ari is
TABLE: Final = Path(__file__).with_name("ari_spec.json")
SHARED_SPEC_DIR: Final = Path(__file__).resolve().parents[2].parent / "shared" / "asterisk-ari"
GENERATED_BY: Final = "python -m arisim.spec_table (asterisk-test/arisim/spec_table.py)"
# Fields of the Message/Event base models every event may carry (events.json).
BASE_MODELS: Final = ("Message", "Event")
_SCALARS: Final = frozenset(
    {"int", "long", "double", "float", "boolean", "string", "Date", "object", "binary", "void"}
)


def build_table(spec_dir: Path, asterisk_version: str = ASTERISK_VERSION) -> dict[str, Any]:
    """The table for the api-docs in `spec_dir` (resources.json + api-docs/*.json)."""
    resources = json.loads((spec_dir / "resources.json").read_text())
    stems = [api["path"].split("/")[-1].split(".")[0] for api in resources["apis"]]
    operations: list[dict[str, Any]] = []
    models: dict[str, dict[str, Any]] = {}
    for stem in stems:
        doc = json.loads((spec_dir / "api-docs" / f"{stem}.json").read_text())
        for name, model in doc.get("models", {}).items():
            models[name] = _model(model)
        for api in doc["apis"]:
            operations.extend(_operation(stem, api["path"], op) for op in api["operations"])
    return {
        "generated_by": GENERATED_BY,
        "asterisk_version": asterisk_version,
        "ari_api_version": resources["apiVersion"],
        "swagger_version": resources["swaggerVersion"],
        "resources": stems,
        "operations": operations,
        "models": models,
        "events": event_fields(models),
    }


def _model(model: dict[str, Any]) -> dict[str, Any]:
    props = {
        name: {k: prop[k] for k in ("type", "required", "allowableValues") if k in prop}
        for name, prop in model["properties"].items()
    }
    out: dict[str, Any] = {"properties": props}
    for key in ("subTypes", "discriminator"):
        if key in model:
            out[key] = model[key]
    return out


def _operation(resource: str, path: str, op: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": op["httpMethod"].upper(),
        "path": path,
        "resource": resource,
        "nickname": op["nickname"],
        "since": op.get("since", []),
        "response_class": op.get("responseClass"),
        "websocket": op.get("upgrade") == "websocket",
        "errors": {str(e["code"]): e["reason"] for e in op.get("errorResponses", [])},
        "params": [
            {
                "name": p["name"],
                "param_type": p["paramType"],
                "required": bool(p.get("required", False)),
                "data_type": p["dataType"],
                "allow_multiple": bool(p.get("allowMultiple", False)),
                "allowable": p.get("allowableValues"),
                "default": p.get("defaultValue"),
            }
            for p in op.get("parameters", [])
        ],
    }


def event_fields(models: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per event type (a subtype of Message or Event), every field it may carry, base first."""
    message, event = (models[name] for name in BASE_MODELS)
    out: dict[str, list[str]] = {}
    for base in (message, event):
        for etype in base.get("subTypes", []):
            if etype in BASE_MODELS:
                continue
            fields = list(message["properties"])
            if etype in event.get("subTypes", []):
                fields += [f for f in event["properties"] if f not in fields]
            fields += [f for f in models[etype]["properties"] if f not in fields]
            out[etype] = fields
    return dict(sorted(out.items()))


def table_problems(table: dict[str, Any]) -> list[str]:
    """What is inconsistent in a table (empty when sound): every type names a scalar or a model,
    the events list is what the models give, no route is declared twice, no operation appeared
    after the Asterisk version the table claims, path parameters match the path's wildcards."""
    problems: list[str] = []
    models: dict[str, Any] = table["models"]
    version = _version(table["asterisk_version"])
    if table.get("generated_by") != GENERATED_BY:
        problems.append("generated_by: not this generator")
    for name, model in models.items():
        for field, prop in model["properties"].items():
            base = re.sub(r"^List\[(.*)\]$", r"\1", prop["type"])
            if base not in _SCALARS and base not in models:
                problems.append(f"model {name}.{field}: unknown type {prop['type']}")
        for sub in model.get("subTypes", []):
            if sub not in models:
                problems.append(f"model {name}: unknown subtype {sub}")
    if not problems and table["events"] != event_fields(models):
        problems.append("events: differ from the Message/Event models' subtypes")
    seen: set[str] = set()
    for op in table["operations"]:
        key = f"{op['method']} {op['path']}"
        if key in seen:
            problems.append(f"{key}: declared twice")
        seen.add(key)
        if op["resource"] not in table["resources"]:
            problems.append(f"{key}: unknown resource {op['resource']}")
        if not _in_release(op["since"], version):
            problems.append(f"{key}: since {op['since']}, not in {table['asterisk_version']}")
        wildcards = set(re.findall(r"\{(\w+)\}", op["path"]))
        in_path = {p["name"] for p in op["params"] if p["param_type"] == "path"}
        if wildcards != in_path:
            problems.append(f"{key}: path parameters {sorted(in_path)} vs {sorted(wildcards)}")
    return problems


def _in_release(since: list[str], version: tuple[int, ...]) -> bool:
    """Was a route with these `since` versions (one per branch it was added to) in `version`?"""
    versions = [_version(v) for v in since]
    same_branch = [v for v in versions if v[0] == version[0]]
    if same_branch:
        return min(same_branch) <= version
    return not versions or min(versions)[0] < version[0]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def dumps(table: dict[str, Any]) -> str:
    """The table as written to ari_spec.json (stable, one field a line, diff-friendly)."""
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def read_table(path: Path = TABLE) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arisim.spec_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec_dir", nargs="?", type=Path, default=SHARED_SPEC_DIR,
                   help="Asterisk's rest-api/ (resources.json, api-docs/)")
    p.add_argument("--asterisk-version", default=ASTERISK_VERSION,
                   help="the Asterisk release spec_dir comes from")
    p.add_argument("--out", type=Path, default=TABLE)
    args = p.parse_args(argv)
    table = build_table(args.spec_dir, args.asterisk_version)
    problems = table_problems(table)
    for problem in problems:
        print(f"arisim.spec_table: {problem}")
    if problems:
        return 1
    args.out.write_text(dumps(table), encoding="utf-8")
    print(f"{args.out}: {len(table['operations'])} routes, {len(table['models'])} models, "
          f"{len(table['events'])} events (Asterisk {args.asterisk_version})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
