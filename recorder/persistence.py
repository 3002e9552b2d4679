"""Database writes as the daemon needs them: never blocking a call on PostgreSQL.

The call model hands over whole snapshots, so only the newest snapshot of each call needs to be
kept while the database is away; event rows are kept in order. Both are retried before each ARI
request and every few seconds. While PostgreSQL is down calls go on and are recorded; what is
pending lives in memory (a disk journal that also survives a crash during an outage is planned).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, GapRow
from recorder.model.commands import SaveCall
from recorder.policy import add_consent_rows

log = structlog.get_logger("verbatim.db")

# What PostgreSQL refuses for the row itself (a CHECK, a bad value), as opposed to being away:
# retrying cannot help, and one such row must not hold back every write after it.
REJECTED = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


async def _write(
    kind: str, pending: list[Any], write: Callable[[list[Any]], Awaitable[Any]], upto: int
) -> None:
    """Write the first `upto` rows of `pending` in one batch; if PostgreSQL rejects a row, one
    by one, dropping (and logging) the rows it rejects. What was written leaves `pending`."""
    if not upto:
        return
    batch = pending[:upto]
    try:
        await write(batch)
    except REJECTED:
        for row in batch:
            try:
                await write([row])
            except REJECTED as exc:
                _rejected(kind, exc, getattr(row, "call_id", None))
    del pending[: len(batch)]


def _rejected(kind: str, exc: Exception, call_id: str | None) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    log.error("db.row_rejected", kind=kind, call_id=call_id, error=error)


class Writer:
    def __init__(self, repo: Repository, retry_every_s: float = 5.0, timeout_s: float = 5.0):
        self.repo = repo
        self._calls: dict[str, SaveCall] = {}
        self._events: list[EventRow] = []
        self._gaps: list[GapRow] = []
        self._consent: list[Any] = []  # recorder.policy.ConsentRow
        self._tags: list[tuple[str, str, str]] = []  # (call_id, tag, by)
        self._retry_every = retry_every_s
        self._timeout = timeout_s
        self._failing_since: float | None = None
        self._next_try = 0.0
        # Calls' lanes flush concurrently; one flush at a time, or two would write (and drop
        # from pending) the same rows.
        self._flushing = asyncio.Lock()

    @property
    def pending(self) -> tuple[int, int]:
        return len(self._calls), len(self._events)

    def stage_call(self, save: SaveCall) -> None:
        self._calls.pop(save.call_id, None)
        self._calls[save.call_id] = save

    def stage_event(self, row: EventRow) -> None:
        self._events.append(row)

    def stage_gaps(self, rows: tuple[GapRow, ...]) -> None:
        self._gaps.extend(rows)

    def stage_consent(self, rows: tuple[Any, ...]) -> None:
        self._consent.extend(rows)

    def stage_tags(self, call_id: str, tags: tuple[str, ...], by: str) -> None:
        self._tags.extend((call_id, tag, by) for tag in tags)

    async def flush(self) -> bool:
        """Write what is pending; False (and it stays pending) if the database is unavailable."""
        if not (self._calls or self._events or self._gaps or self._consent or self._tags):
            return True
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> bool:
        if not (self._calls or self._events or self._gaps or self._consent or self._tags):
            return True  # written by the flush this one waited for
        if self._failing_since is not None and time.monotonic() < self._next_try:
            return False
        # Only what was staged before this flush began: rows staged meanwhile (by another call's
        # lane) may belong to a call whose row is not in this flush; the next flush has both.
        upto = len(self._events), len(self._gaps), len(self._consent), len(self._tags)
        try:
            async with asyncio.timeout(self._timeout):
                for call_id in list(self._calls):
                    save = self._calls[call_id]
                    try:
                        await self.repo.save_call(save.call, save.legs, save.recordings)
                    except REJECTED as exc:  # the next snapshot of the call may be fine
                        _rejected("call", exc, call_id)
                    if self._calls.get(call_id) is save:
                        del self._calls[call_id]
                await _write("event", self._events, self.repo.add_events, upto[0])
                await _write("gap", self._gaps, self.repo.add_gaps, upto[1])
                await _write("consent", self._consent,
                             lambda rows: add_consent_rows(self.repo.pool, rows), upto[2])
                # after the calls: a tag row refers to its call's
                await _write("tag", self._tags, self.repo.add_tags, upto[3])
        except Exception as exc:  # the database's failure must not become the call's failure
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.error(
                    "db.write_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    pending_calls=len(self._calls),
                    pending_events=len(self._events),
                )
            self._next_try = time.monotonic() + self._retry_every
            return False
        if self._failing_since is not None:
            log.warning("db.recovered", outage_s=round(time.monotonic() - self._failing_since, 1))
            self._failing_since = None
        return True  # (what was staged meanwhile: its stager's own flush waits on this one)

    async def open_calls(self, asterisk_id: str) -> list[CallRow]:
        return await self.repo.open_calls(asterisk_id)

    async def close_orphan(self, row: CallRow) -> None:
        """An open row whose state cannot be adopted: close it as interrupted, loudly."""
        log.error("call.closed_unadoptable", call_id=row.call_id)
        closed = dataclasses.replace(
            row, status="ended", outcome="interrupted", ended_at=datetime.now(UTC), state=None
        )
        await self.repo.save_call(closed, [], [])
