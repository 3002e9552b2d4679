"""The ARI spec of Asterisk 22.10.1: routing, parameter typing, request and event checks.

The spec is read from its generated table (ari_spec.json, see spec_table.py), which ships with
the simulator. The simulator routes every REST call through this module, so what it accepts is
exactly what the spec declares; tests use `check_request` to catch a client calling something
Asterisk does not have and `check_event` to hold every emitted event to the models in events.json
(and the Channel, Bridge, LiveRecording, Playback models of the other api-docs), as Asterisk's own
generated validators do (res/ari/ari_model_validators.c: required fields, types, no undocumented
field).

Routing follows res/res_ari.c `ast_ari_invoke`: the path is split on "/", each segment URL-decoded;
an explicit segment wins over a `{wildcard}`; no handler → 404 "Resource not found"; a known path
with another method → 405 "Invalid method".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .spec_table import build_table, read_table

# res/res_ari_model.c ISO8601_PATTERN
_DATE_RE = re.compile(
    r"^[0-9]{4}-[01][0-9]-[0-3][0-9]"
    r"(T[0-2][0-9]:[0-5][0-9](:[0-6][0-9](.[0-9]+)?)?(Z|[-+][0-2][0-9](:?[0-5][0-9])?))?$",
    re.IGNORECASE,
)
# main/utils.c ast_true / ast_false
TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})
FALSE_WORDS = frozenset({"no", "false", "n", "f", "0", "off"})
# Fields of the Message/Event base models every event may carry.
_BASE_EVENT_FIELDS = ("type", "asterisk_id", "application", "timestamp")


@dataclass(frozen=True)
class Param:
    name: str
    param_type: str  # path | query | body
    required: bool
    data_type: str
    allow_multiple: bool
    allowable: dict[str, Any] | None
    default: Any = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # template, e.g. /channels/{channelId}/dial
    nickname: str
    resource: str  # api-docs file stem, e.g. "channels"
    params: tuple[Param, ...]
    websocket: bool = False

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    def param(self, name: str) -> Param | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


@dataclass
class _Node:
    segment: str
    children: dict[str, _Node] = field(default_factory=dict)
    wildcard: _Node | None = None
    operations: dict[str, Operation] = field(default_factory=dict)
    template: str = ""


@dataclass(frozen=True)
class Route:
    """Result of routing a request: the operation, or the status Asterisk answers instead."""

    operation: Operation | None
    path_vars: dict[str, str]
    status: int  # 0 when found, else 404/405
    message: str
    allowed: tuple[str, ...] = ()


def split_path(path: str) -> list[str]:
    """Path (with or without the /ari prefix) → URL-decoded segments, as res_ari.c does."""
    raw = path.split("?", 1)[0]
    if raw.startswith("/ari/") or raw == "/ari":
        raw = raw[4:]
    return [unquote(s) for s in raw.strip("/").split("/") if s != ""]


class Spec:
    """The ARI spec from its table (spec_table.py); `load_spec()` caches it."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.asterisk_version: str = table["asterisk_version"]
        self.models: dict[str, dict[str, Any]] = table["models"]
        self.operations: list[Operation] = []
        self._root = _Node("")
        for op in table["operations"]:
            self._add(op)

    def _add(self, op: dict[str, Any]) -> None:
        params = tuple(
            Param(
                name=p["name"],
                param_type=p["param_type"],
                required=p["required"],
                data_type=p["data_type"],
                allow_multiple=p["allow_multiple"],
                allowable=p["allowable"],
                default=p["default"],
            )
            for p in op["params"]
        )
        path: str = op["path"]
        operation = Operation(
            method=op["method"],
            path=path,
            nickname=op["nickname"],
            resource=op["resource"],
            params=params,
            websocket=op["websocket"],
        )
        self.operations.append(operation)
        node = self._root
        for seg in path.strip("/").split("/"):
            if seg.startswith("{") and seg.endswith("}"):
                if node.wildcard is None:
                    node.wildcard = _Node(seg[1:-1])
                node = node.wildcard
            else:
                node = node.children.setdefault(seg, _Node(seg))
        node.template = path
        node.operations[operation.method] = operation

    def route(self, method: str, path: str) -> Route:
        """Find the operation for a request the way res_ari.c walks its handler tree."""
        node = self._root
        path_vars: dict[str, str] = {}
        for seg in split_path(path):
            child = node.children.get(seg)
            if child is None and node.wildcard is not None:
                child = node.wildcard
                path_vars[child.segment] = seg
            if child is None:
                return Route(None, {}, 404, "Resource not found")
            node = child
        op = node.operations.get(method.upper())
        if op is None:
            allowed = tuple(sorted(node.operations))
            if not allowed:
                return Route(None, {}, 404, "Resource not found")
            return Route(None, path_vars, 405, "Invalid method", allowed)
        return Route(op, path_vars, 0, "")

    def operation(self, method: str, template: str) -> Operation:
        for op in self.operations:
            if op.method == method and op.path == template:
                return op
        raise KeyError(f"{method} {template}")

    # ----------------------------------------------------------------- requests
    def check_request(self, method: str, path: str, params: dict[str, Any]) -> str | None:
        """None if the spec allows this call, else why not (for auditing a client's requests).

        `path` is the request path (with or without /ari and a query string); `params` the query
        and body parameters by name. Checks: path and method exist, every parameter is declared
        for the operation, required ones are present, values fit the type and allowableValues.
        """
        route = self.route(method, path)
        if route.operation is None:
            return f"{method} {path}: {route.status} {route.message}"
        op = route.operation
        for name, value in params.items():
            p = op.param(name)
            if p is None or p.param_type == "path":
                return f"{op.key}: parameter {name!r} is not declared"
            problem = _check_param_value(p, value)
            if problem:
                return f"{op.key}: {problem}"
        for p in op.params:
            if p.required and p.param_type != "path" and params.get(p.name) in (None, ""):
                return f"{op.key}: required parameter {p.name!r} missing"
        return None

    # ------------------------------------------------------------------ events
    def check_event(self, event: dict[str, Any]) -> list[str]:
        """Problems with one event as sent on the WebSocket (empty list when valid)."""
        etype = event.get("type")
        if not isinstance(etype, str):
            return ["event has no string 'type'"]
        model = self.models.get(etype)
        event_subtypes = self.models["Event"].get("subTypes", [])
        message_subtypes = self.models["Message"].get("subTypes", [])
        if model is None or (etype not in event_subtypes and etype not in message_subtypes):
            return [f"{etype}: not an event model"]
        problems: list[str] = []
        base = dict(self.models["Message"]["properties"])
        if etype in event_subtypes:
            base.update(self.models["Event"]["properties"])
        props = dict(base)
        props.update(model["properties"])
        problems.extend(self._check_props(etype, props, event, etype))
        return problems

    def validate_model(self, model_name: str, value: Any, where: str = "") -> list[str]:
        """Validate `value` against a named model (Channel, Bridge, LiveRecording, ...)."""
        model = self.models.get(model_name)
        if model is None:
            return [f"{where or model_name}: unknown model {model_name}"]
        if not isinstance(value, dict):
            return [f"{where or model_name}: expected object for {model_name}"]
        return self._check_props(model_name, model["properties"], value, where or model_name)

    def _check_props(
        self, model_name: str, props: dict[str, Any], value: dict[str, Any], where: str
    ) -> list[str]:
        problems: list[str] = []
        for name, prop in props.items():
            if name not in value:
                if prop.get("required", False):
                    problems.append(f"{where}: required field {name!r} missing")
                continue
            problems.extend(self._check_type(prop, value[name], f"{where}.{name}"))
        for name in value:
            if name not in props:
                problems.append(f"{where}: undocumented field {name!r} in {model_name}")
        return problems

    def _check_type(self, prop: dict[str, Any], value: Any, where: str) -> list[str]:
        t: str = prop["type"]
        if t.startswith("List[") and t.endswith("]"):
            if not isinstance(value, list):
                return [f"{where}: expected list"]
            out: list[str] = []
            for i, item in enumerate(value):
                out.extend(self._check_type({"type": t[5:-1]}, item, f"{where}[{i}]"))
            return out
        problems = _check_scalar(t, value, where)
        if problems is None:  # a model name
            return self.validate_model(t, value, where)
        allowable = prop.get("allowableValues")
        if (not problems and allowable and allowable.get("valueType") == "LIST"
                and value not in allowable["values"]):
            problems.append(f"{where}: {value!r} not in {allowable['values']}")
        return problems


def _check_scalar(t: str, value: Any, where: str) -> list[str] | None:
    """Type check per res/res_ari_model.c; None when `t` is not a scalar type."""
    if t in ("int", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and t == "int" and not -(2**31) <= value < 2**31:
            ok = False
        return [] if ok else [f"{where}: expected {t}, got {value!r}"]
    if t in ("double", "float"):
        return [] if isinstance(value, float) else [f"{where}: expected {t}, got {value!r}"]
    if t == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected boolean, got {value!r}"]
    if t == "string":
        return [] if isinstance(value, str) else [f"{where}: expected string, got {value!r}"]
    if t == "Date":
        if isinstance(value, str) and _DATE_RE.match(value):
            return []
        return [f"{where}: malformed Date {value!r}"]
    if t == "object":
        return [] if isinstance(value, dict) else [f"{where}: expected object"]
    return None


def _check_param_value(p: Param, value: Any) -> str | None:
    values: list[Any]
    if isinstance(value, list):
        values = value
    elif p.allow_multiple and isinstance(value, str):
        values = value.split(",")
    else:
        values = [value]
    if len(values) > 1 and not p.allow_multiple:
        return f"parameter {p.name!r} does not take several values"
    for v in values:
        if p.data_type in ("int", "long"):
            if isinstance(v, bool) or not (
                isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()))
            ):
                return f"parameter {p.name!r} expects an integer, got {v!r}"
            if p.allowable and p.allowable.get("valueType") == "RANGE":
                n = int(v)
                lo, hi = p.allowable.get("min"), p.allowable.get("max")
                if (lo is not None and n < lo) or (hi is not None and n > hi):
                    return f"parameter {p.name!r} out of range: {v!r}"
        elif p.data_type == "boolean":
            if not isinstance(v, bool) and str(v).lower() not in TRUE_WORDS | FALSE_WORDS:
                return f"parameter {p.name!r} expects a boolean, got {v!r}"
        elif p.data_type in ("containers", "object"):
            if not isinstance(v, dict):
                return f"parameter {p.name!r} expects an object"
        elif (p.allowable and p.allowable.get("valueType") == "LIST"
              and str(v).strip() not in p.allowable["values"]):
            return f"parameter {p.name!r}: {v!r} not in {p.allowable['values']}"
    return None


@lru_cache(maxsize=4)
def load_spec(spec_dir: str | None = None) -> Spec:
    """The spec from the shipped table (ari_spec.json), or built from the api-docs in `spec_dir`
    (or $ARISIM_SPEC_DIR), e.g. another Asterisk release's rest-api/; cached."""
    spec_dir = spec_dir or os.environ.get("ARISIM_SPEC_DIR")
    return Spec(build_table(Path(spec_dir)) if spec_dir else read_table())


def check_request(method: str, path: str, params: dict[str, Any]) -> str | None:
    """`Spec.check_request` on the default spec."""
    return load_spec().check_request(method, path, params)


def check_event(event: dict[str, Any]) -> list[str]:
    """`Spec.check_event` on the default spec."""
    return load_spec().check_event(event)


def atoi(value: str) -> int:
    """C atoi: leading whitespace, optional sign, digits; anything else → 0 (res_ari_*.c)."""
    m = re.match(r"\s*([-+]?\d+)", value)
    return int(m.group(1)) if m else 0


def ast_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_WORDS
