"""JSON request bodies (controls, holds): a small object from a script or this site's page,
every problem a 4xx naming it.

The body must be `application/json` (415 otherwise) and at most `max_body` bytes (413); a cookie
session's request must not come from another site's page (Origin, 403). With SameSite=Strict
session cookies this is belt and braces against cross-site requests; scripts use bearer tokens.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from recorder.api.auth import Principal
from recorder.api.errors import ApiError, invalid


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Duplicate(key)
        found[key] = value
    return found


def json_object(raw: bytes, fields: tuple[str, ...], shape: str) -> dict[str, Any]:
    """The body as a JSON object of known `fields`, or a 400 naming the field (`body` when it
    is not an object: `shape` says what it should be)."""
    try:
        body = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _Duplicate as dup:
        raise invalid(dup.key[:100], "given more than once") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid("body", shape) from None
    if not isinstance(body, dict):
        raise invalid("body", shape)
    for key in body:
        if key not in fields:
            raise invalid(key[:100], f"unknown field; known: {', '.join(fields)}")
    return body


async def read_body(request: web.Request, principal: Principal, max_body: int) -> bytes:
    if principal.via == "session":
        found = request.headers.get("Origin")
        if found is not None and found != f"{request.scheme}://{request.host}":
            raise ApiError(403, "cross_origin", "request sent from another site",
                           {"origin": found[:200]})  # fmt: skip
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as application/json",
            {"content_type": request.content_type[:100]},
        )  # fmt: skip
    too_large = ApiError(
        413, "request_too_large", f"the body is limited to {max_body} bytes", {"limit": max_body}
    )
    if request.content_length is not None and request.content_length > max_body:
        raise too_large
    raw = await request.read()  # bounded by the application's client_max_size (413)
    if len(raw) > max_body:
        raise too_large
    return raw
