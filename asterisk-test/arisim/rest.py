"""REST plumbing: typed arguments from query string and JSON body, responses, handler registry.

Parameters are read as Asterisk's generated handlers (res/res_ari_*.c) read them: every declared
parameter from the query string (the last occurrence wins; ints by atoi, booleans by ast_true,
allowMultiple split on commas), then the same names from a JSON body object, which win. Unknown
parameters are ignored. A form-encoded body is merged into the query parameters (res_ari.c).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .spec import Operation, ast_true, atoi

if TYPE_CHECKING:
    from .engine import Engine


@dataclass
class ApiResponse:
    status: int
    body: Any = None  # JSON value; None → no content
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a file (GET /recordings/stored/{name}/file)
    content_type: str = "application/json"


def error(status: int, message: str) -> ApiResponse:
    return ApiResponse(status, {"message": message})


def no_content() -> ApiResponse:
    return ApiResponse(204)


def ok(body: Any) -> ApiResponse:
    return ApiResponse(200, body)


def created(location: str, body: Any) -> ApiResponse:
    return ApiResponse(201, body, {"Location": location})


def live_recording_location(name: str) -> str:
    return "/recordings/live/" + quote(name, safe="")


class Args:
    """The arguments of one call, typed per the operation's declared parameters."""

    def __init__(self, op: Operation, path_vars: dict[str, str], query: list[tuple[str, str]],
                 body: Any) -> None:
        self.op = op
        self.path = dict(path_vars)
        self.raw_body = body  # as sent: an operation whose body parameter is the whole body
        self.body = body if isinstance(body, dict) else {}
        self.query: dict[str, str] = {}
        for name, value in query:
            self.query[name] = value

    def has(self, name: str) -> bool:
        return name in self.path or name in self.body or name in self.query

    def _raw(self, name: str) -> Any:
        if name in self.path:
            return self.path[name]
        if name in self.body:
            return self.body[name]
        return self.query.get(name)

    def get_str(self, name: str, default: str | None = None) -> str | None:
        v = self._raw(name)
        if v is None:
            return default
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else str(v)

    def get_int(self, name: str, default: int = 0) -> int:
        v = self._raw(name)
        if v is None:
            return default
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            return int(v)
        return atoi(str(v))

    def get_bool(self, name: str, default: bool = False) -> bool:
        v = self._raw(name)
        if v is None:
            return default
        if isinstance(v, bool):
            return v
        return ast_true(str(v))

    def get_list(self, name: str) -> list[str]:
        v = self._raw(name)
        if v is None:
            return []
        if isinstance(v, list):
            return [str(x) for x in v]
        return [s.strip() for s in str(v).split(",")]

    def variables(self) -> dict[str, Any] | None:
        v = self.body.get("variables")
        return v if isinstance(v, dict) else None

    def logged(self) -> dict[str, Any]:
        """The parameters as sent (query and body merged; body wins), for the request log. A body
        that is the operation's body parameter itself (as eventFilter's `filter`: Asterisk
        hands the whole body to it) is logged under that parameter's name."""
        out: dict[str, Any] = dict(self.query)
        whole = next((p.name for p in self.op.params
                      if p.param_type == "body" and p.data_type == "object"), None)
        if whole is not None and self.raw_body is not None:
            out[whole] = self.raw_body
        else:
            out.update(self.body)
        return out


Handler = Callable[["Engine", Args], ApiResponse]
HANDLERS: dict[str, Handler] = {}


def route(key: str) -> Callable[[Handler], Handler]:
    """Register a handler for "METHOD /template" as written in the api-docs."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[key] = fn
        return fn

    return deco
