"""In-call controls through the API (a CRM, an IVR): parse the request, store it for the call's
daemon (recorder/db/controls.py), wait briefly for its answer, and log it.

`POST /api/calls/{call_id}/controls` with `{"action": "pause"|"resume"|"start"|"stop"|"tag",
"tag": "..."}`. The call is looked up through the caller's scope in SQL, like a detail view: out
of scope is the same 404 as a call that does not exist; a call that has ended is a 409. The
request row and its access-log row (action 'control') are written in one transaction, so a
control that cannot be logged is never stored. Then the API waits up to `wait_s` for the daemon:
done -> 200, rejected -> 409, failed -> 502, still pending or taken -> 202 (read it later with
`GET /api/controls/{id}`, under the same scope).

The body must be `application/json` (415 otherwise) and small, and a cookie session's request
must not come from another site's page (recorder/api/body.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from aiohttp import web

from recorder.api.access_log import AccessLog, Origin
from recorder.api.auth import Principal
from recorder.api.body import json_object, read_body
from recorder.api.errors import ApiError, invalid, not_found
from recorder.api.scope import Params, call_scope
from recorder.api.serialize import call_url, json_ok
from recorder.db.controls import (
    CONTROL_ACTIONS,
    STATE_COLUMNS,
    CallEnded,
    CallNotFound,
    ControlQueue,
    ControlState,
    InvalidControl,
    check_control,
)

MAX_BODY: Final = 4096  # {"action": ..., "tag": <100 characters>} is far smaller
FIELDS: Final = ("action", "tag")
WAIT_S: Final = 3.0
_CONTROL_ID = re.compile(r"^[1-9][0-9]{0,17}$")  # a bigserial, well inside int8


@dataclass(frozen=True)
class ControlAsk:
    action: str
    tag: str | None


def parse_control(raw: bytes) -> ControlAsk:
    """The body's request, or a 400 naming the field (`body` when it is not a JSON object)."""
    shape = 'must be a JSON object: {"action": "pause|resume|start|stop|tag", "tag": "..."}'
    body = json_object(raw, FIELDS, shape)
    action = body.get("action")
    if action is None:
        raise invalid("action", f"required: one of {', '.join(CONTROL_ACTIONS)}")
    if not isinstance(action, str) or action not in CONTROL_ACTIONS:
        raise invalid("action", f"must be one of {', '.join(CONTROL_ACTIONS)}", action)
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise invalid("tag", "must be a string", tag)
    try:
        check_control(action, tag)
    except InvalidControl as exc:
        raise invalid(exc.field, exc.message, tag if exc.field == "tag" else action) from None
    return ControlAsk(action, tag)


async def read_control(request: web.Request, principal: Principal) -> ControlAsk:
    return parse_control(await read_body(request, principal, MAX_BODY))


def control_id(request: web.Request) -> int:
    value = request.match_info["control_id"]
    if not _CONTROL_ID.fullmatch(value):
        raise not_found("control", control_id=value[:200])
    return int(value)


def control_url(request_id: int) -> str:
    return f"/api/controls/{request_id}"


def result_json(request_id: int, status: str, detail: str | None) -> dict[str, Any]:
    return {"id": request_id, "status": status, "detail": detail, "url": control_url(request_id)}


def state_json(state: ControlState) -> dict[str, Any]:
    return {
        "id": state.id, "call_id": state.call_id, "action": state.action, "tag": state.tag,
        "requested_by": state.requested_by, "requested_at": state.requested_at,
        "taken_at": state.taken_at, "handled_at": state.handled_at, "status": state.status,
        "detail": state.detail, "url": control_url(state.id), "call_url": call_url(state.call_id),
    }  # fmt: skip


class ControlService:
    def __init__(self, pool: Any, access_log: AccessLog, wait_s: float = WAIT_S) -> None:
        self.pool = pool
        self.queue = ControlQueue(pool)
        self.access_log = access_log
        self.wait_s = wait_s  # how long a POST waits for the daemon before answering 202

    async def request(
        self, principal: Principal, call_id: str, ask: ControlAsk, origin: Origin
    ) -> tuple[int, str, str | None]:
        """Store the control for the call and wait for the daemon: (id, status, detail)."""
        what = {"control": ask.action} | ({"tag": ask.tag} if ask.tag is not None else {})
        args = Params()
        call = await self.pool.fetchrow(
            "SELECT c.asterisk_id, c.status, c.ended_at FROM calls c "  # noqa: S608
            f"WHERE c.call_id = {args.add(call_id)} AND {call_scope(principal, args)}",
            *args.values,
        )
        if call is None:
            await self._denied(principal, origin, call_id, what, "not_found")
            raise not_found("call", call_id=call_id)
        if call["status"] != "active" or call["ended_at"] is not None:
            await self._denied(principal, origin, call_id, what, "call_ended")
            raise _ended(call_id)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                request_id = await self.queue.submit(
                    call_id, ask.action, ask.tag, principal.name, conn=conn
                )
                await AccessLog(conn).record(
                    principal, "control", origin, call_id=call_id,
                    asterisk_id=call["asterisk_id"], detail={"control_id": request_id} | what,
                )  # fmt: skip
        except CallEnded:  # it ended between the look-up and the insert
            await self._denied(principal, origin, call_id, what, "call_ended")
            raise _ended(call_id) from None
        except CallNotFound:
            await self._denied(principal, origin, call_id, what, "not_found")
            raise not_found("call", call_id=call_id) from None
        try:
            status, detail = await self.queue.wait_result(request_id, self.wait_s)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError):
            # Stored already, and it will be carried out: answer with its id (202 and where to
            # follow it), not an error that would make the caller send it twice.
            return request_id, "pending", None
        return request_id, status, detail

    async def read(self, principal: Principal, request_id: int, origin: Origin) -> ControlState:
        """A control request on a call in scope (404 otherwise), logged as a 'control' read."""
        args = Params()
        cols = ", ".join(f"r.{c.strip()}" for c in STATE_COLUMNS.split(","))
        row = await self.pool.fetchrow(
            f"SELECT {cols} FROM control_requests r "  # noqa: S608 (our identifiers)
            "JOIN calls c ON c.call_id = r.call_id "
            f"WHERE r.id = {args.add(request_id)} AND {call_scope(principal, args)}",
            *args.values,
        )
        detail: dict[str, Any] = {"control_id": request_id, "read": True}
        if row is None:
            await self.access_log.record(
                principal, "control", origin, detail=detail | {"denied": "not_found"}
            )
            raise not_found("control", control_id=str(request_id))
        state = ControlState(**dict(row.items()))
        await self.access_log.record(
            principal, "control", origin, call_id=state.call_id,
            asterisk_id=state.asterisk_id, detail=detail,
        )  # fmt: skip
        return state

    async def _denied(
        self, principal: Principal, origin: Origin, call_id: str, what: dict[str, Any],
        reason: str,
    ) -> None:  # fmt: skip
        """Refused attempts are logged too (someone probing calls, or acting on ended ones)."""
        await self.access_log.record(
            principal, "control", origin, call_id=call_id[:200], detail=what | {"denied": reason}
        )


def _ended(call_id: str) -> ApiError:
    return ApiError(409, "call_ended", "the call has ended: controls apply to live calls only",
                    {"call_id": call_id})  # fmt: skip


def answer(request_id: int, status: str, detail: str | None, action: str) -> web.Response:
    """The POST's response for the request's status after the wait."""
    body = result_json(request_id, status, detail)
    if status == "done":
        return json_ok(body)
    reason = detail or "no reason given"
    if status == "rejected":
        raise ApiError(409, "control_rejected", f"the recorder refused to {action}: {reason}", body)
    if status == "failed":
        raise ApiError(502, "control_failed", f"the recorder could not {action}: {reason}", body)
    response = json_ok(body, status=202)  # pending, or taken and still being carried out
    response.headers["Location"] = control_url(request_id)
    return response
