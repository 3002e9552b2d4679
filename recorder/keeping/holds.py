"""Legal holds: place, list and release them; a held call is never purged (call_held, 0006).

The API, the web page and `verbatim holds` all come here, as an admin (`Principal`; the command
line's via 'cli'). Every action writes its access-log row (action 'hold') in the transaction
that makes it, so an action that cannot be audited does not happen. With the policy's
`retention.release_needs_two`, releasing takes two admins: the first asks (with a reason), a
different one approves (with theirs); the hold holds until then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo

from recorder.api.access_log import AccessLog, Origin
from recorder.api.auth import Principal
from recorder.common.numbers import normalise
from recorder.common.tags import normal_tag, tag_problem
from recorder.keeping import custody

STATES: Final = ("active", "release_pending", "released")
CRITERIA: Final = ("tag", "call_id", "number", "department", "extension", "from", "to")
FIELDS: Final = ("name", "reason", *CRITERIA)
MAX_NAME: Final = 200
MAX_REASON: Final = 2000
_CALL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")  # calls.call_id's CHECK (0001)
_DIALLED = re.compile(r"^[0-9+*#]{2,32}$")
_EXTENSION = re.compile(r"^[A-Za-z0-9*#+]{1,32}$")
# Controls (newlines are fine in a reason), and lone surrogates: text PostgreSQL cannot store
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_COLUMNS = (
    "id, name, reason, tag, call_id, number, department, extension, starts_at, ends_at, "
    "created_by, created_at, release_requested_by, release_requested_at, release_reason, "
    "released_by, released_at, release_approval"
)

_INSERT = (
    "INSERT INTO holds (name, reason, tag, call_id, number, department, extension, starts_at, "  # noqa: S608
    f"ends_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}"
)


class HoldError(Exception):
    """Refused: `status` 400 (a field is wrong), 404 (no such hold) or 409 (its state)."""

    def __init__(self, status: int, error_id: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.error_id, self.message, self.field = status, error_id, message, field


def _bad(field: str, message: str) -> HoldError:
    return HoldError(400, "invalid_parameter", f"{field}: {message}", field)


@dataclass(frozen=True)
class HoldSpec:
    """A new hold: its name and reason, and what it matches (at least one criterion)."""

    name: str
    reason: str
    tag: str | None = None
    call_id: str | None = None
    number: str | None = None
    department: str | None = None
    extension: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True)
class Hold:
    id: int
    name: str
    reason: str
    tag: str | None
    call_id: str | None
    number: str | None
    department: str | None
    extension: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_by: str
    created_at: datetime
    release_requested_by: str | None
    release_requested_at: datetime | None
    release_reason: str | None
    released_by: str | None
    released_at: datetime | None
    release_approval: str | None

    @property
    def status(self) -> str:
        if self.released_at is not None:
            return "released"
        return "active" if self.release_requested_at is None else "release_pending"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"status": self.status}

    def criteria(self) -> dict[str, str]:
        """What it matches, for people: {"department": "Litigation", "from": "2026-01-01…"}."""
        found = {"tag": self.tag, "call_id": self.call_id, "number": self.number,
                 "department": self.department, "extension": self.extension,
                 "from": self.starts_at, "to": self.ends_at}  # fmt: skip
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in found.items() if v is not None}  # fmt: skip


def _text(raw: Mapping[str, Any], key: str, limit: int, *, lines: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(key, "must be a string")
    value = value.strip()
    bad = _CONTROL if lines else _ONE_LINE
    if not value or len(value) > limit or bad.search(value):
        raise _bad(key, f"must be 1 to {limit} printable characters")
    return value


def _when(raw: Mapping[str, Any], key: str, *, end: bool, zone: tzinfo) -> datetime | None:
    """A date (that day in `zone`, the firm's; for `to`, up to its end) or an ISO 8601
    date-time (in `zone` when it names no offset), as UTC."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(key, "must be a date (2026-03-01) or date-time (2026-03-01T09:30:00Z)")
    try:
        if _DAY.fullmatch(value):
            day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
            found = datetime.combine(day, time(), zone).astimezone(UTC)
        else:
            found = datetime.fromisoformat(value)
            found = (found.replace(tzinfo=zone) if found.tzinfo is None else found).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _bad(key, "must be a date (2026-03-01) or date-time (2026-03-01T09:30:00Z)") \
            from None  # fmt: skip
    if not 1970 <= found.year <= 9998:
        raise _bad(key, "must be between 1970 and 9998")
    return found


def hold_spec(raw: Mapping[str, Any], region: str = "US", zone: str = "UTC") -> HoldSpec:
    """A hold from loose input (a JSON body, a form, the command line); HoldError names the
    field. `region`: how a number without +country is read (calls.default_region); `zone`:
    the firm's (the policy's time_zone), whose days a bare date names."""
    for key in raw:
        if key not in FIELDS:
            raise _bad(str(key)[:100], f"unknown field; known: {', '.join(FIELDS)}")
    name = _text(raw, "name", MAX_NAME)
    reason = _text(raw, "reason", MAX_REASON, lines=True)
    if name is None:
        raise _bad("name", "required: what the hold is for (a matter, a case)")
    if reason is None:
        raise _bad("reason", "required: why the calls must be kept")
    tag = raw.get("tag")
    if tag is not None:
        if not isinstance(tag, str) or (problem := tag_problem(tag)) is not None:
            raise _bad("tag", "must be a string" if not isinstance(tag, str) else problem or "")
        tag = normal_tag(tag)
    call_id = _text(raw, "call_id", 128)
    if call_id is not None and not _CALL_ID.fullmatch(call_id):
        raise _bad("call_id", "is not a call id")
    number = _text(raw, "number", 40)
    if number is not None:
        found = normalise(number, default_region=region)
        compact = re.sub(r"[\s().-]", "", number)
        if found is None and not _DIALLED.fullmatch(compact):
            raise _bad("number", "is not a phone number or a number as dialled (2-32 digits)")
        number = found or compact
    extension = _text(raw, "extension", 32)
    if extension is not None and not _EXTENSION.fullmatch(extension):
        raise _bad("extension", "is not an extension")
    days = ZoneInfo(zone)  # the policy loader checked the name
    starts_at = _when(raw, "from", end=False, zone=days)
    ends_at = _when(raw, "to", end=True, zone=days)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise _bad("to", "must be after from")
    spec = HoldSpec(name, reason, tag, call_id, number, _text(raw, "department", 100),
                    extension, starts_at, ends_at)  # fmt: skip
    if all(getattr(spec, k) is None for k in ("tag", "call_id", "number", "department",
                                              "extension", "starts_at", "ends_at")):  # fmt: skip
        raise _bad("tag", f"give at least one of {', '.join(CRITERIA)}: a hold on nothing "
                   "holds nothing")  # fmt: skip
    return spec


def reason_of(raw: Mapping[str, Any]) -> str:
    for key in raw:
        if key != "reason":
            raise _bad(str(key)[:100], "unknown field; known: reason")
    reason = _text(raw, "reason", MAX_REASON, lines=True)
    if reason is None:
        raise _bad("reason", "required: why the hold may end")
    return reason


class Holds:
    def __init__(self, pool: Any, release_needs_two: bool) -> None:
        self.pool = pool
        self.release_needs_two = release_needs_two

    async def add(self, spec: HoldSpec, by: Principal, origin: Origin) -> Hold:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _INSERT,
                spec.name, spec.reason, spec.tag, spec.call_id, spec.number, spec.department,
                spec.extension, spec.starts_at, spec.ends_at, by.name,
            )  # fmt: skip
            hold = Hold(**dict(row.items()))
            await self._audit(conn, by, origin, "place", hold)
            await custody.append(conn, custody.FIRM, "held", call_id=hold.call_id,
                                 hold_id=hold.id, detail={
                                     "name": hold.name, "reason": hold.reason, "by": by.name,
                                     "criteria": hold.criteria()})  # fmt: skip
            return hold

    async def list(self, by: Principal, origin: Origin, state: str | None = None) -> list[Hold]:
        where = {
            None: "true", "all": "true", "active": "released_at IS NULL",
            "release_pending": "released_at IS NULL AND release_requested_at IS NOT NULL",
            "released": "released_at IS NOT NULL",
        }[state]  # fmt: skip
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM holds WHERE {where} ORDER BY id DESC"  # noqa: S608
        )
        holds = [Hold(**dict(r.items())) for r in rows]
        await AccessLog(self.pool).record(
            by, "hold", origin, detail={"hold": "list", "state": state, "results": len(holds)}
        )
        return holds

    async def get(self, hold_id: int, by: Principal, origin: Origin) -> Hold:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM holds WHERE id = $1", hold_id)  # noqa: S608
        detail = {"hold": "read", "hold_id": hold_id} | ({} if row else {"denied": "not_found"})
        await AccessLog(self.pool).record(by, "hold", origin, detail=detail)
        if row is None:
            raise HoldError(404, "hold_not_found", "no such hold")
        return Hold(**dict(row.items()))

    async def release(self, hold_id: int, reason: str, by: Principal, origin: Origin) -> Hold:
        """Release (or, with release_needs_two, ask for or approve the release of) a hold."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM holds WHERE id = $1 FOR UPDATE", hold_id  # noqa: S608
            )
            if row is None:
                await self._refused(by, origin, hold_id, "not_found")
                raise HoldError(404, "hold_not_found", "no such hold")
            hold = Hold(**dict(row.items()))
            if hold.status == "released":
                await self._refused(by, origin, hold_id, "already_released")
                raise HoldError(409, "hold_released", f"hold {hold_id} was released already")
            if hold.status == "release_pending" and hold.release_requested_by == by.name:
                await self._refused(by, origin, hold_id, "same_admin")
                raise HoldError(409, "release_needs_second_admin",
                                f"{by.name} asked for this release: another admin must "
                                "approve it")  # fmt: skip
            if hold.status == "active" and self.release_needs_two:
                sql, op = ("UPDATE holds SET release_requested_by = $2, release_requested_at = "
                           "clock_timestamp(), release_reason = $3 WHERE id = $1"), "ask_release"
            elif hold.status == "active":
                sql, op = ("UPDATE holds SET release_requested_by = $2, release_requested_at = "
                           "clock_timestamp(), release_reason = $3, released_by = $2, "
                           "released_at = clock_timestamp() WHERE id = $1"), "release"
            else:
                sql, op = ("UPDATE holds SET released_by = $2, released_at = clock_timestamp(), "
                           "release_approval = $3 WHERE id = $1"), "approve_release"
            await conn.execute(sql, hold_id, by.name, reason)
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM holds WHERE id = $1", hold_id)  # noqa: S608
            hold = Hold(**dict(row.items()))
            await self._audit(conn, by, origin, op, hold, reason)
            kind = "released" if hold.status == "released" else "release_asked"
            await custody.append(conn, custody.FIRM, kind, call_id=hold.call_id, hold_id=hold.id,
                                 detail={"by": by.name, "reason": reason})  # fmt: skip
            return hold

    async def _audit(self, conn: Any, by: Principal, origin: Origin, op: str, hold: Hold,
                     reason: str | None = None) -> None:  # fmt: skip
        detail: dict[str, Any] = {"hold": op, "hold_id": hold.id, "name": hold.name,
                                  "status": hold.status}  # fmt: skip
        detail |= {"criteria": hold.criteria(), "reason": hold.reason} if op == "place" else {}
        detail |= {"reason": reason} if reason is not None else {}
        await AccessLog(conn).record(by, "hold", origin, call_id=hold.call_id, detail=detail)

    async def _refused(self, by: Principal, origin: Origin, hold_id: int, why: str) -> None:
        # Outside the hold's transaction (which rolls back): refused attempts are logged too.
        await self.refused(by, origin, "release", why, hold_id)

    async def refused(self, by: Principal, origin: Origin, op: str, why: str,
                      hold_id: int | None = None) -> None:  # fmt: skip
        """An attempt refused before it reached a hold (no permission, a bad request): in
        the access log as every hold action is."""
        detail: dict[str, Any] = {"hold": op, "denied": why}
        detail |= {} if hold_id is None else {"hold_id": hold_id}
        await AccessLog(self.pool).record(by, "hold", origin, detail=detail)
