"""The access log: one row per search, detail view, playback, download and access-log read.

Rows are written before the data is sent, and a failed write fails the request (503): an access
that cannot be logged does not happen. The table is append-only (trigger, migration 0002), and
the product has no way to change it.

A playback is one row however many HTTP Range requests the player makes: `PlaybackTracker`
counts a request as a new playback when it asks for the file from its start (no Range, or one
starting at byte 0, which is how players begin) or when this user has not fetched this
recording for a while (a player resuming mid-file after a pause, or a client that never asks
for byte 0, is still logged).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg
import structlog

from recorder.api import params as p
from recorder.api.auth import Principal
from recorder.api.errors import UNAVAILABLE, ApiError

log = structlog.get_logger(__name__)

ACCESS_ACTIONS: Final = ("search", "view", "play", "download", "access_log", "control", "hold")
PARAMETERS: Final = ("from", "to", "user", "call_id", "action", "limit", "cursor")
_COLS = (
    "id, at, user_name, role, via, action, call_id, asterisk_id, recording_name, detail, "
    "remote, user_agent"
)


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the TCP peer's address and what the client calls itself."""

    remote: str | None
    user_agent: str | None


@dataclass(frozen=True)
class AccessQuery:
    start: datetime | None = None
    stop: datetime | None = None
    user: str | None = None
    call_id: str | None = None
    action: str | None = None
    limit: int = p.DEFAULT_LIMIT
    after: tuple[datetime, int] | None = None

    def filters(self) -> dict[str, str]:
        """What was asked, for the auditor's own access-log row."""
        found = {"from": self.start, "to": self.stop, "user": self.user,
                 "call_id": self.call_id, "action": self.action}  # fmt: skip
        return {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in found.items()
            if v is not None
        }


def parse_access_query(query: p.Query) -> AccessQuery:
    p.reject_unknown(query, PARAMETERS)
    start, stop = p.date_range(query)
    cursor = p.decode_cursor(query, (datetime, int))
    return AccessQuery(
        start=start,
        stop=stop,
        user=p.text(query, "user", 64),
        call_id=p.text(query, "call_id", 128),
        action=p.choice(query, "action", ACCESS_ACTIONS),
        limit=p.limit(query),
        after=None if cursor is None else (cursor[0], cursor[1]),
    )


class AccessLog:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def record(
        self,
        principal: Principal,
        action: str,
        origin: Origin,
        *,
        call_id: str | None = None,
        asterisk_id: str | None = None,
        recording_name: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Write the row, or fail the request: 503 when PostgreSQL refuses it (a full disk,
        a trigger, a permission), as when it cannot be reached."""
        try:
            await self._insert(principal, action, origin, call_id, asterisk_id, recording_name,
                               detail)  # fmt: skip
        except asyncpg.PostgresError as exc:
            if isinstance(exc, UNAVAILABLE):
                raise
            log.error("access_log.write_failed", action=action, user=principal.name,
                      error=f"{type(exc).__name__}: {exc}")  # fmt: skip
            raise ApiError(
                503, "access_log_failed",
                "the access could not be written to the access log, so it was not done; retry",
            ) from None  # fmt: skip

    async def _insert(
        self,
        principal: Principal,
        action: str,
        origin: Origin,
        call_id: str | None,
        asterisk_id: str | None,
        recording_name: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        await self.pool.execute(
            "INSERT INTO access_log (user_id, user_name, role, via, action, call_id, "
            "asterisk_id, recording_name, detail, remote, user_agent) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            principal.user_id,
            principal.name,
            principal.role,
            principal.via,
            action,
            call_id,
            asterisk_id,
            recording_name,
            detail or {},
            origin.remote,
            (origin.user_agent or "")[:300] or None,
        )

    async def read(
        self, principal: Principal, q: AccessQuery, origin: Origin
    ) -> tuple[list[dict[str, Any]], str | None]:
        """An auditor's read of the log, itself logged (who watched the watchers)."""
        rows, cursor = await self.query(q)
        detail = {"filters": q.filters(), "results": len(rows)}
        await self.record(principal, "access_log", origin, detail=detail)
        return rows, cursor

    async def query(self, q: AccessQuery) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; (rows, cursor of the next page or None)."""
        args: list[Any] = []

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        where = ["true"]
        if q.start is not None:
            where.append(f"at >= {arg(q.start)}")
        if q.stop is not None:
            where.append(f"at < {arg(q.stop)}")
        for column, value in (("user_name", q.user), ("call_id", q.call_id), ("action", q.action)):
            if value is not None:
                where.append(f"{column} = {arg(value)}")
        if q.after is not None:
            at, row_id = arg(q.after[0]), arg(q.after[1])
            where.append(f"at <= {at} AND (at, id) < ({at}, {row_id})")
        rows = await self.pool.fetch(
            f"SELECT {_COLS} FROM access_log WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY at DESC, id DESC LIMIT {int(q.limit) + 1}",
            *args,
        )
        page = [dict(r.items()) for r in rows[: q.limit]]
        more = len(rows) > q.limit
        cursor = p.encode_cursor(page[-1]["at"], page[-1]["id"]) if more else None
        return page, cursor


class PlaybackTracker:
    """Decides which audio requests start a playback (and so get an access-log row).

    In memory, per process: a restart at worst logs one extra row, never one fewer.
    """

    def __init__(self, idle_s: float = 600.0, max_entries: int = 10_000) -> None:
        self.idle_s = idle_s
        self.max_entries = max_entries
        self._seen: dict[tuple[int, str, str, str, str], float] = {}

    def starts_playback(
        self, principal: Principal, action: str, key: tuple[str, str], range_start: int | None,
        now: float | None = None,
    ) -> bool:
        """Whether this request starts a playback, to be logged (then `logged`) before any
        byte is sent; one that goes on with a playback already logged keeps it going.
        `range_start`: the first byte asked for (None: no Range header, the whole file).
        Nothing counts as logged until `logged` says so: a row that could not be written
        leaves the next request a start too, refused again while the log refuses (before,
        a request from byte 1 after a refused one was served, unlogged)."""
        now = time.monotonic() if now is None else now
        entry = (principal.user_id, principal.via, action, *key)
        last = self._seen.get(entry)
        if range_start in (None, 0) or last is None or now - last > self.idle_s:
            return True
        self._seen[entry] = now
        return False

    def logged(self, principal: Principal, action: str, key: tuple[str, str],
               now: float | None = None) -> None:
        """The playback's row is written: the requests that go on with it are not logged."""
        now = time.monotonic() if now is None else now
        self._seen[(principal.user_id, principal.via, action, *key)] = now
        if len(self._seen) > self.max_entries:
            cutoff = now - self.idle_s
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
