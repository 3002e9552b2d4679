"""Legal holds through the API, for admins (permission holds.manage): recorder/keeping/holds.py
does the work and the auditing; here are the handlers, their parsing and their JSON.

  GET  /api/holds?state=active|release_pending|released|all   newest first
  POST /api/holds                      {"name", "reason", "tag"|"call_id"|"number"|...} -> 201
  GET  /api/holds/{hold_id}
  POST /api/holds/{hold_id}/release    {"reason"} -> 200: released, or release_pending when a
                                       second admin must approve (then they post the same)
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from recorder.api.auth import Permission, principal_of, require
from recorder.api.body import json_object, read_body
from recorder.api.errors import ApiError, invalid, not_found
from recorder.api.params import choice, reject_unknown
from recorder.api.routes import deps, origin
from recorder.api.serialize import call_url, json_ok
from recorder.keeping.holds import FIELDS, STATES, Hold, HoldError, hold_spec, reason_of

MAX_BODY: Final = 8192  # a name, a 2000-character reason and the criteria
_HOLD_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_SHAPE = 'must be a JSON object: {"name": "...", "reason": "...", "department": "...", ...}'


def hold_url(hold_id: int) -> str:
    return f"/api/holds/{hold_id}"


def hold_json(hold: Hold) -> dict[str, Any]:
    out = hold.as_dict()
    out["from"], out["to"] = out.pop("starts_at"), out.pop("ends_at")
    out["url"] = hold_url(hold.id)
    out["call_url"] = call_url(hold.call_id) if hold.call_id else None
    return out


def _api_error(exc: HoldError) -> ApiError:
    if exc.status == 400 and exc.field is not None:
        return invalid(exc.field, exc.message.removeprefix(f"{exc.field}: "))
    return ApiError(exc.status, exc.error_id, exc.message)


def _hold_id(request: web.Request) -> int:
    value = request.match_info["hold_id"]
    if not _HOLD_ID.fullmatch(value):
        raise not_found("hold", hold_id=value[:200])
    return int(value)


async def list_holds(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.HOLDS_MANAGE)
    reject_unknown(request.query, ("state",))
    state = choice(request.query, "state", (*STATES, "all"))
    holds = await deps(request).holds.list(principal, origin(request), state)
    return json_ok({"holds": [hold_json(h) for h in holds]})


async def _denied(request: web.Request, op: str, exc: ApiError | HoldError,
                  hold_id: int | None = None) -> None:  # fmt: skip
    """A hold action refused before Holds took it (no permission, a bad body): audited too.
    Nobody signed in (401) names no one to audit."""
    principal = principal_of(request)
    if principal is not None:
        await deps(request).holds.refused(principal, origin(request), op, exc.error_id,
                                          hold_id)  # fmt: skip


async def place_hold(request: web.Request) -> web.StreamResponse:
    d = deps(request)
    try:
        principal = require(request, Permission.HOLDS_MANAGE)
        body = json_object(await read_body(request, principal, MAX_BODY), FIELDS, _SHAPE)
        spec = hold_spec(body, d.region, d.zone)
    except (ApiError, HoldError) as exc:
        await _denied(request, "place", exc)
        raise _api_error(exc) if isinstance(exc, HoldError) else exc from None
    try:
        hold = await d.holds.add(spec, principal, origin(request))
    except HoldError as exc:
        raise _api_error(exc) from None
    response = json_ok(hold_json(hold), status=201)
    response.headers["Location"] = hold_url(hold.id)
    return response


async def get_hold(request: web.Request) -> web.StreamResponse:
    principal = require(request, Permission.HOLDS_MANAGE)
    hold_id = _hold_id(request)
    try:
        hold = await deps(request).holds.get(hold_id, principal, origin(request))
    except HoldError as exc:
        raise _api_error(exc) from None
    return json_ok(hold_json(hold))


async def release_hold(request: web.Request) -> web.StreamResponse:
    try:
        principal = require(request, Permission.HOLDS_MANAGE)
        hold_id = _hold_id(request)
        body = json_object(await read_body(request, principal, MAX_BODY), ("reason",),
                           'must be a JSON object: {"reason": "..."}')  # fmt: skip
        reason = reason_of(body)
    except (ApiError, HoldError) as exc:
        value = request.match_info["hold_id"]
        await _denied(request, "release", exc, int(value) if _HOLD_ID.fullmatch(value) else None)
        raise _api_error(exc) if isinstance(exc, HoldError) else exc from None
    try:  # Holds audits what it refuses
        hold = await deps(request).holds.release(hold_id, reason, principal, origin(request))
    except HoldError as exc:
        raise _api_error(exc) from None
    return json_ok(hold_json(hold))


def add_hold_routes(app: web.Application) -> None:
    app.router.add_get("/api/holds", list_holds)
    app.router.add_post("/api/holds", place_hold)
    app.router.add_get("/api/holds/{hold_id}", get_hold)
    app.router.add_post("/api/holds/{hold_id}/release", release_hold)
