"""In-call controls as durable requests: the API stores them, the call's daemon carries them out.

The API server and the daemons (one per Asterisk server, all on one PostgreSQL) are separate
processes, so a control on a live call ("pause", "resume", "start", "stop", "tag") is a row of
control_requests (migration 0005), not a message:

- the API calls `submit` (the row copies the call's asterisk_id; an INSERT trigger sends
  `NOTIFY verbatim_controls, '<asterisk_id>'`), then `wait_result` for a short while;
- each daemon `listen`s for its own asterisk_id and, when woken and every few seconds anyway (a
  notification is lost while the listening connection is down), takes its rows with `pending`
  (pending -> taken in one UPDATE over FOR UPDATE SKIP LOCKED, so two claimers never get the
  same row), carries each out and writes the outcome with `complete`;
- a daemon starting up fails the rows its predecessor had taken but not finished
  (`abandon_taken`): replaying a pause or a stop minutes late would surprise more than help.

Statuses: pending (stored, not yet taken), taken (a daemon has it), then one of done, rejected
(the daemon refused: the call's state or the policy does not allow it) and failed (it could not be
carried out: Asterisk refused, it expired before a daemon took it, or its daemon restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import structlog

from recorder.common.tags import normal_tag, tag_problem

# The queue takes the call model's control actions (its one list; 0005_controls.sql checks it).
from recorder.model.controls import CONTROL_ACTIONS as CONTROL_ACTIONS

log = structlog.get_logger(__name__)

STATUSES: Final = ("pending", "taken", "done", "rejected", "failed")
FINAL_STATUSES: Final = ("done", "rejected", "failed")
CHANNEL: Final = "verbatim_controls"  # NOTIFY channel; the payload is the asterisk_id
# Requests no daemon took within this are failed instead of carried out late (see `pending`).
DEFAULT_EXPIRY_S: Final = 60.0


class ControlError(Exception):
    """A control request that cannot be stored or found."""


class InvalidControl(ControlError, ValueError):
    """An action or tag the table would refuse; `field` names which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CallNotFound(ControlError):
    def __init__(self, call_id: str) -> None:
        super().__init__(f"no call {call_id!r}")
        self.call_id = call_id


class CallEnded(ControlError):
    def __init__(self, call_id: str) -> None:
        super().__init__(f"call {call_id!r} has ended: controls apply to live calls only")
        self.call_id = call_id


class ControlNotFound(ControlError):
    def __init__(self, request_id: int) -> None:
        super().__init__(f"no control request {request_id}")
        self.request_id = request_id


@dataclass(frozen=True)
class ControlRequest:
    """A request as the daemon carries it out."""

    id: int
    call_id: str
    action: str  # one of CONTROL_ACTIONS
    tag: str | None  # set exactly when action == "tag"
    requested_by: str
    requested_at: datetime


@dataclass(frozen=True)
class ControlState:
    """A request with its outcome so far: what the API shows."""

    id: int
    call_id: str
    asterisk_id: str
    action: str
    tag: str | None
    requested_by: str
    requested_at: datetime
    taken_at: datetime | None
    handled_at: datetime | None
    status: str  # one of STATUSES
    detail: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


STATE_COLUMNS: Final = (
    "id, call_id, asterisk_id, action, tag, requested_by, requested_at, taken_at, handled_at, "
    "status, detail"
)


def check_control(action: str, tag: str | None) -> None:
    """Raise InvalidControl unless (action, tag) is a request the table accepts."""
    if action not in CONTROL_ACTIONS:
        raise InvalidControl("action", f"must be one of {', '.join(CONTROL_ACTIONS)}")
    if action == "tag":
        if tag is None:
            raise InvalidControl("tag", "required with action tag")
        problem = tag_problem(tag)
        if problem is not None:
            raise InvalidControl("tag", problem)
    elif tag is not None:
        raise InvalidControl("tag", "only with action tag")


_SUBMIT = (
    "INSERT INTO control_requests (call_id, asterisk_id, action, tag, requested_by) "
    "SELECT call_id, asterisk_id, $2, $3, $4 FROM calls "
    "WHERE call_id = $1 AND status = 'active' AND ended_at IS NULL "
    "RETURNING id"
)
# Oldest first; rows another claimer holds are skipped, not waited for, and a row a concurrent
# claimer took meanwhile fails the status re-check under its lock. Rows older than the expiry
# ($3 seconds, NULL: never) are failed in the same statement instead of being handed out.
_CLAIM = """
WITH picked AS (
    SELECT id,
           ($3::float8 IS NOT NULL
            AND requested_at < now() - make_interval(secs => $3::float8)) AS stale
    FROM control_requests
    WHERE asterisk_id = $1 AND status = 'pending'
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE control_requests r
SET status = CASE WHEN p.stale THEN 'failed' ELSE 'taken' END,
    taken_at = now(),
    handled_at = CASE WHEN p.stale THEN now() END,
    detail = CASE WHEN p.stale THEN $4 END
FROM picked p
WHERE r.id = p.id
RETURNING r.id, r.call_id, r.action, r.tag, r.requested_by, r.requested_at, p.stale
"""
_COMPLETE = (
    "UPDATE control_requests SET status = $2, detail = $3, handled_at = now() "
    "WHERE id = $1 AND status = 'taken' RETURNING id"
)
_ABANDON = (
    "UPDATE control_requests SET status = 'failed', detail = $2, handled_at = now() "
    "WHERE asterisk_id = $1 AND status = 'taken' "
    "AND ($3::float8 IS NULL OR taken_at < now() - make_interval(secs => $3))"
)
# A request no recorder took in time is failed when it is read, too: the daemon that should
# take it may be gone (its server's id changed, the call's row left active).
_EXPIRE_ONE = (
    "UPDATE control_requests SET status = 'failed', detail = $2, handled_at = now() "
    "WHERE id = $1 AND status = 'pending' AND requested_at < now() - make_interval(secs => $3)"
)


@dataclass
class ControlListener:
    """A LISTEN on its own connection (taken from the pool until `ControlQueue.unlisten`)."""

    asterisk_id: str
    connection: Any
    handler: Callable[..., None]
    dedicated: bool = False  # its own connection (closed at unlisten), not the pool's

    @property
    def closed(self) -> bool:
        """True once the connection is gone: notifications no longer arrive; listen again."""
        return bool(self.connection.is_closed())


class ControlQueue:
    def __init__(self, pool: Any, listen_dsn: str | None = None) -> None:
        """`pool`: an asyncpg pool (or, for the single-statement methods, a connection).
        `listen_dsn`: LISTEN on a connection of its own, not one taken from the pool for
        the daemon's whole life (a small pool would starve its writes)."""
        self.pool = pool
        self._listen_dsn = listen_dsn

    # -- the API's side ---------------------------------------------------------------------

    async def submit(
        self, call_id: str, action: str, tag: str | None, requested_by: str, *,
        conn: Any = None,
    ) -> int:  # fmt: skip
        """Store a request for the live call `call_id`; its id. The row (and so the NOTIFY,
        sent at commit) exists once the caller's transaction commits, if `conn` is given in
        one. Raises InvalidControl, CallNotFound, or CallEnded (the call is over)."""
        check_control(action, tag)
        tag = None if tag is None else normal_tag(tag)
        db = self.pool if conn is None else conn
        request_id = await db.fetchval(_SUBMIT, call_id, action, tag, requested_by)
        if request_id is not None:
            return int(request_id)
        status = await db.fetchval("SELECT status FROM calls WHERE call_id = $1", call_id)
        if status is None:
            raise CallNotFound(call_id)
        raise CallEnded(call_id)

    async def get(self, request_id: int) -> ControlState | None:
        await self._expire(request_id)
        row = await self.pool.fetchrow(
            f"SELECT {STATE_COLUMNS} FROM control_requests WHERE id = $1",  # noqa: S608
            request_id,
        )
        return None if row is None else ControlState(**dict(row.items()))

    async def wait_result(self, request_id: int, timeout_s: float) -> tuple[str, str | None]:
        """(status, detail) once the request is handled, or as it stands after `timeout_s`
        ("pending" or "taken"). Polls, at 20 ms growing to 250 ms: a LISTEN would hold one of the
        API's few pooled connections per waiting request. Raises ControlNotFound."""
        await self._expire(request_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = 0.02
        while True:
            row = await self.pool.fetchrow(
                "SELECT status, detail FROM control_requests WHERE id = $1", request_id
            )
            if row is None:
                raise ControlNotFound(request_id)
            left = deadline - loop.time()
            if row["status"] in FINAL_STATUSES or left <= 0:
                return row["status"], row["detail"]
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.25)

    # -- the daemon's side ------------------------------------------------------------------

    async def pending(
        self, asterisk_id: str, limit: int = 100, *,
        expire_after_s: float | None = DEFAULT_EXPIRY_S,
    ) -> list[ControlRequest]:  # fmt: skip
        """Take (pending -> taken) up to `limit` of this server's pending requests, oldest
        first. Each row goes to exactly one caller, however many claim at once. Requests older
        than `expire_after_s` are failed ("expired") instead of returned: a pause carried out a
        minute late is not what anyone asked for."""
        detail = (
            None if expire_after_s is None
            else f"expired: no recorder took it within {expire_after_s:g} s"
        )  # fmt: skip
        rows = await self.pool.fetch(_CLAIM, asterisk_id, limit, expire_after_s, detail)
        taken = sorted((r for r in rows if not r["stale"]), key=lambda r: r["id"])
        for r in rows:
            if r["stale"]:
                log.warning("control.expired", control_id=r["id"], call_id=r["call_id"],
                            action=r["action"])  # fmt: skip
        fields = ("id", "call_id", "action", "tag", "requested_by", "requested_at")
        return [ControlRequest(**{f: r[f] for f in fields}) for r in taken]

    async def complete(self, request_id: int, status: str, detail: str | None = None) -> bool:
        """Write the outcome of a taken request: status done, rejected or failed. False if the
        request is not taken (unknown, never claimed, or already handled): an outcome is
        written once."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
        return await self.pool.fetchval(_COMPLETE, request_id, status, detail) is not None

    async def abandon_taken(
        self, asterisk_id: str, detail: str = "the recorder restarted before finishing it",
        *, older_than_s: float | None = None,
    ) -> int:  # fmt: skip
        """Fail this server's requests left taken: at a daemon's start, all of them (its
        predecessor's); on each poll, those taken longer ago than `older_than_s` (their
        outcome was lost). How many."""
        result = await self.pool.execute(_ABANDON, asterisk_id, detail, older_than_s)
        return int(result.split()[-1])

    async def _expire(self, request_id: int) -> None:
        await self.pool.execute(
            _EXPIRE_ONE, request_id,
            f"expired: no recorder took it within {DEFAULT_EXPIRY_S:g} s", DEFAULT_EXPIRY_S)

    async def listen(self, asterisk_id: str, callback: Callable[[], object]) -> ControlListener:
        """Call `callback()` (on the event loop; keep it quick, e.g. set an asyncio.Event)
        whenever a request for `asterisk_id` is stored. Holds one pooled connection until
        `unlisten`. Notifications are a wake-up, not a delivery: call `pending` on each, and
        every few seconds anyway."""

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload != asterisk_id:
                return  # another Asterisk server's request
            try:
                callback()
            except Exception:
                log.exception("control.listener_failed", asterisk_id=asterisk_id)

        dedicated = self._listen_dsn is not None
        conn = (await asyncpg.connect(self._listen_dsn) if dedicated
                else await self.pool.acquire())
        try:
            await conn.add_listener(CHANNEL, on_notify)
        except BaseException:
            await (conn.close() if dedicated else self.pool.release(conn))
            raise
        return ControlListener(asterisk_id, conn, on_notify, dedicated)

    async def unlisten(self, listener: ControlListener) -> None:
        """Stop `listener` and give its connection back (a broken one is discarded)."""
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await listener.connection.remove_listener(CHANNEL, listener.handler)
        if listener.dedicated:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await listener.connection.close()
        else:
            await self.pool.release(listener.connection)
