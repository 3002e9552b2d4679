"""Retention: delete what has outlived its class, leaving a tombstone for each deletion.

A call's class is `calls.retention_class` (NULL: the policy's default class); its length comes
from the policy at the time the purge runs, so a changed length applies to every existing call.
A call expires `length` after it ended. Audio goes first (the file, then its row); a class with
`metadata:` later loses the call's rows too (legs, timeline, consent, tags, the call).

Each run works on one Asterisk server's recordings in one store (the files are on that server's
disk), in batches (memory stays flat whatever the archive's size), walking recordings by name
(keyset) so each row is read at most once. Crash safety is in two transactions per batch; see
migrations/0006_keeping.sql. A run first finishes what an earlier run left 'purging'.

A batch costs the same however large the tables are: every statement reaches its rows through
an index by key (the keyset window, primary keys), never by a scan that grows with the tables
or with the dead entries of rows already purged. Two batches overlap (see `_batches`), and
the files go on threads of the store's own (recorder.storage.store).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import structlog

from recorder.keeping import custody
from recorder.policy.model import Policy
from recorder.storage.store import RecordingStore

log = structlog.get_logger("verbatim.keeping")

DEFAULT_BATCH: Final = 1000
Step = Callable[[str], Awaitable[None]]

# The policy's classes as a relation: (name, audio interval, metadata interval); NULL: forever.
_CLASSES = (
    "k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(name, audio, metadata))"
)
_ENDED = "coalesce(c.ended_at, c.started_at)"
# When a class's length has passed since the call ended, counted in UTC: `timestamptz +
# interval` adds days in the session's time zone, so on a server whose zone keeps DST a day
# across the change is 23 hours, and a recording would expire an hour before its class allows.
_AUDIO_EXPIRES = f"(({_ENDED} AT TIME ZONE 'UTC') + k.audio::interval) AT TIME ZONE 'UTC'"
_METADATA_EXPIRES = f"(({_ENDED} AT TIME ZONE 'UTC') + k.metadata::interval) AT TIME ZONE 'UTC'"
# call_held(c) runs as a function call per row (~20 us; it cannot be inlined): asked only when
# some hold is active, which the uncorrelated EXISTS (an InitPlan) answers once per statement.
_ANY_HOLD = "EXISTS (SELECT 1 FROM holds WHERE released_at IS NULL)"
_NOT_HELD = f"(NOT {_ANY_HOLD} OR NOT call_held(c))"
# Params $1..$3 classes, $4 default class, $5 now, $6 server, $7 store prefix.
_AUDIO_CANDIDATES = f"""
    SELECT r.asterisk_id, r.name, r.call_id, r.sha256, r.path, r.bytes, k.name AS class,
           c.decided_by, {_ENDED} AS ended, {_AUDIO_EXPIRES} AS expired
    FROM recordings r
    JOIN calls c ON c.call_id = r.call_id
    JOIN k ON k.name = coalesce(c.retention_class, $4)
    WHERE r.asterisk_id = $6 AND r.status = 'filed' AND starts_with(r.path, $7)
      AND c.status = 'ended' AND k.audio IS NOT NULL
      AND {_AUDIO_EXPIRES} <= $5 AND {_NOT_HELD}
      AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.status = 'purging'
                      AND t.asterisk_id = r.asterisk_id AND t.call_id = r.call_id
                      AND coalesce(t.recording_name, '') = r.name)
"""  # noqa: S608 (constant SQL)
_METADATA_CANDIDATES = f"""
    SELECT c.call_id, c.asterisk_id, k.name AS class, c.decided_by,
           encode(sha256(convert_to(to_jsonb(c)::text, 'UTF8')), 'hex') AS sha256,
           {_ENDED} AS ended, {_METADATA_EXPIRES} AS expired
    FROM calls c
    JOIN k ON k.name = coalesce(c.retention_class, $4)
    WHERE c.asterisk_id = $6 AND c.status = 'ended' AND k.metadata IS NOT NULL
      AND {_METADATA_EXPIRES} <= $5 AND {_NOT_HELD}
      AND NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.status = 'purging'
                      AND t.asterisk_id = c.asterisk_id AND t.call_id = c.call_id
                      AND t.recording_name IS NULL)
      AND $7::text IS NOT NULL
"""  # noqa: S608
# Metadata goes only once no file is left (a dry run counts as if this run's audio were gone).
_NO_FILES = """
      AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.call_id = c.call_id
                      AND r.status = 'filed')
"""
_TOMBSTONE_COLS = (
    "job, what, call_id, asterisk_id, recording_name, retention_class, rule, sha256, path, "
    "bytes, call_ended_at, expired_at"
)
# Params: as the candidates, then $8 after (keyset), $9 batch size, $10 job. Each batch looks
# at the next $9 rows in key order (the window) and marks those that expired, so a run reads
# every row once however few expire. Only those are locked (SKIP LOCKED: another run has them;
# PostgreSQL re-reads a locked row, so one deleted meanwhile drops out), and a tombstone another
# run wrote meanwhile wins (ON CONFLICT): a recording is never marked twice.
_ON_CONFLICT = """
    ON CONFLICT (asterisk_id, call_id, coalesce(recording_name, '')) WHERE status = 'purging'
    DO NOTHING
"""
_MARK_AUDIO = f"""
    WITH {_CLASSES},
    win AS MATERIALIZED (
        SELECT r.name, r.call_id, r.path FROM recordings r
        WHERE r.asterisk_id = $6 AND r.status = 'filed' AND r.name > $8
        ORDER BY r.name LIMIT $9),
    due AS MATERIALIZED (
        SELECT w.name, k.name AS class, c.decided_by, {_ENDED} AS ended,
               {_AUDIO_EXPIRES} AS expired
        FROM win w
        JOIN calls c ON c.call_id = w.call_id
        JOIN k ON k.name = coalesce(c.retention_class, $4)
        WHERE starts_with(w.path, $7) AND c.status = 'ended' AND k.audio IS NOT NULL
          AND {_AUDIO_EXPIRES} <= $5 AND {_NOT_HELD}),
    locked AS (
        SELECT r.asterisk_id, r.name, r.call_id, r.sha256, r.path, r.bytes, d.class,
               d.decided_by, d.ended, d.expired
        FROM due d JOIN recordings r ON r.asterisk_id = $6 AND r.name = d.name
        WHERE r.status = 'filed'
        FOR UPDATE OF r SKIP LOCKED),
    ins AS (
        INSERT INTO tombstones ({_TOMBSTONE_COLS})
        SELECT $10, 'audio', call_id, asterisk_id, name, class, decided_by, sha256, path, bytes,
               ended, expired
        FROM locked ORDER BY name
        {_ON_CONFLICT}
        RETURNING id)
    SELECT (SELECT max(name) FROM win) AS last, (SELECT count(*) FROM win) AS seen,
           ARRAY(SELECT id FROM ins ORDER BY id) AS ids
"""  # noqa: S608 (constant SQL)
_MARK_METADATA = f"""
    WITH {_CLASSES},
    win AS MATERIALIZED (
        SELECT c.call_id FROM calls c
        WHERE c.asterisk_id = $6 AND c.status = 'ended' AND c.call_id > $8
        ORDER BY c.call_id LIMIT $9),
    due AS MATERIALIZED (
        {_METADATA_CANDIDATES} {_NO_FILES} AND c.call_id IN (SELECT call_id FROM win)),
    locked AS (
        SELECT d.* FROM due d JOIN calls c ON c.call_id = d.call_id
        WHERE c.status = 'ended' FOR UPDATE OF c SKIP LOCKED),
    ins AS (
        INSERT INTO tombstones ({_TOMBSTONE_COLS})
        SELECT $10, 'metadata', call_id, asterisk_id, NULL, class, decided_by, sha256, NULL,
               NULL, ended, expired
        FROM locked ORDER BY call_id
        {_ON_CONFLICT}
        RETURNING id)
    SELECT (SELECT max(call_id) FROM win) AS last, (SELECT count(*) FROM win) AS seen,
           ARRAY(SELECT id FROM ins ORDER BY id) AS ids
"""  # noqa: S608
_COUNT = "WITH {classes} SELECT class, count(*) AS n, coalesce(sum({bytes}), 0) AS bytes " \
    "FROM ({candidates}) x GROUP BY class ORDER BY class"  # fmt: skip
_UNKNOWN = """
    SELECT c.retention_class AS class, count(*) AS n FROM calls c
    WHERE c.asterisk_id = $2 AND c.status = 'ended' AND c.retention_class IS NOT NULL
      AND c.retention_class <> ALL($1::text[])
    GROUP BY c.retention_class ORDER BY c.retention_class
"""
_LEFT_OVER = """
    SELECT id FROM tombstones WHERE status = 'purging' AND asterisk_id = $1 AND what = $2
    ORDER BY id LIMIT $3
"""
# Step 2's statements find a batch's rows by primary key (id = ANY, name = ANY), so a batch
# costs the same however many tombstones, dead index entries and recordings the tables hold.
# `done_at IS NULL` is `status = 'purging'` (constraint tombstones_done) in a form that does not
# match tombstones_purging_idx's predicate: that index also holds an entry for every tombstone
# finished since the last vacuum, and the planner, thinking it holds one row, would walk all of
# them for each batch.
_TAKE = f"""
    SELECT t.id, t.call_id, t.recording_name, t.retention_class, t.path, t.bytes,
           ({_ANY_HOLD} AND coalesce(call_held(c), false)) AS held, r.compact_path,
           r.original_path
    FROM tombstones t LEFT JOIN calls c ON c.call_id = t.call_id
    LEFT JOIN recordings r ON r.asterisk_id = t.asterisk_id AND r.name = t.recording_name
    WHERE t.id = ANY($1::bigint[]) AND t.done_at IS NULL
    ORDER BY t.id FOR UPDATE OF t SKIP LOCKED
"""  # noqa: S608 (constant SQL)
# `t.id = ANY($1)` beside the join: else the planner hashes the whole table for 1,000 rows.
_WHERE_NOW = """
    SELECT name, path FROM recordings WHERE asterisk_id = $1 AND name = ANY($2::text[])
      AND path IS NOT NULL
    ORDER BY name FOR UPDATE
"""
_DONE = """
    UPDATE tombstones t SET status = 'purged', done_at = $2, file_found = f.found
    FROM unnest($1::bigint[], $3::boolean[]) AS f(id, found)
    WHERE t.id = ANY($1::bigint[]) AND t.id = f.id
"""
# Each deletion is a custody event on its server's chain, in tombstone order.
_CUSTODY_EVENTS = """
    SELECT CASE what WHEN 'audio' THEN 'purged' ELSE 'metadata_purged' END AS kind, call_id,
           asterisk_id, recording_name, sha256 AS subject_sha256,
           jsonb_build_object('tombstone', id, 'class', retention_class, 'job', job,
                              'file_found', file_found)::text AS detail
    FROM tombstones WHERE id = ANY($1::bigint[]) ORDER BY id
"""
# What goes with a call's metadata, children first (control_requests, legs, ... reference it).
METADATA_TABLES: Final = (
    "call_tags", "control_requests", "coverage_gaps", "consent_audit", "call_events", "legs",
    "recordings", "calls",
)  # fmt: skip


@dataclass
class PurgeReport:
    job: str
    dry_run: bool = False
    audio: int = 0  # recordings whose file and row were deleted
    bytes: int = 0
    metadata: int = 0  # calls whose rows were deleted
    finished: int = 0  # of those, left 'purging' by an earlier run and finished by this one
    kept: int = 0  # marked, then found under a legal hold before the deletion: kept
    missing_files: int = 0  # the file was already gone (an earlier run crashed after deleting)
    by_class: dict[str, dict[str, int]] = field(default_factory=dict)
    unknown_classes: dict[str, int] = field(default_factory=dict)  # calls never expiring

    def count(self, cls: str, what: str, n: int = 1) -> None:
        per = self.by_class.setdefault(cls, {})
        per[what] = per.get(what, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job, "dry_run": self.dry_run, "audio": self.audio, "bytes": self.bytes,
            "metadata": self.metadata, "finished": self.finished, "kept": self.kept,
            "missing_files": self.missing_files, "by_class": self.by_class,
            "unknown_classes": self.unknown_classes,
        }  # fmt: skip


def class_arrays(policy: Policy) -> tuple[list[str], list[str | None], list[str | None]]:
    classes = policy.retention_policy.classes.values()
    return (
        [c.name for c in classes],
        [None if c.audio is None else c.audio.sql for c in classes],
        [None if c.metadata is None else c.metadata.sql for c in classes],
    )


def new_job(kind: str, now: datetime) -> str:
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class Purger:
    """One run's work for one server (`asterisk_id`) and one store."""

    def __init__(
        self,
        pool: Any,
        store: RecordingStore,
        policy: Policy,
        asterisk_id: str,
        *,
        batch: int = DEFAULT_BATCH,
        on_step: Step | None = None,
    ) -> None:
        self.pool = pool
        self.store = store
        self.policy = policy
        self.asterisk_id = asterisk_id
        self.batch = batch
        # Called after each step ("marked", "deleted", "purged": committed): the crash tests
        # stop a run there, the bench times them.
        self.on_step = on_step
        self._tidying: asyncio.Task[None] | None = None

    def _expires(self, what: str) -> bool:
        """Whether any class lets `what` (audio, metadata) go: else no need to look."""
        return any((c.audio if what == "audio" else c.metadata) is not None
                   for c in self.policy.retention_policy.classes.values())  # fmt: skip

    async def _tidy(self, keys: list[str]) -> None:
        """Tidy after the previous batch (waited for: one at a time), then start this one's."""
        if self._tidying is not None:
            with contextlib.suppress(OSError):
                await self._tidying
        self._tidying = asyncio.create_task(self.store.tidy(keys)) if keys else None

    def _params(self, now: datetime) -> list[Any]:
        return [*class_arrays(self.policy), self.policy.retention, now, self.asterisk_id,
                self.store.prefix]  # fmt: skip

    async def run(self, now: datetime, *, kind: str = "cli", dry_run: bool = False) -> PurgeReport:
        report = PurgeReport(new_job(kind, now), dry_run)
        if not self.policy.retention_policy.classes:
            return report  # no classes, no lengths: nothing ever expires
        names = class_arrays(self.policy)[0]
        for row in await self.pool.fetch(_UNKNOWN, names, self.asterisk_id):
            report.unknown_classes[row["class"]] = row["n"]
        if report.unknown_classes:
            log.warning("retention.unknown_class", classes=report.unknown_classes,
                        detail="calls under classes the policy does not define never expire")
        if dry_run:
            await self._count(now, report)
            return report
        try:
            for what in ("audio", "metadata"):
                await self._finish_left_over(what, now, report)
                if self._expires(what):
                    await self._batches(what, now, report)
        finally:
            await self._tidy([])
        if report.audio or report.metadata or report.kept:
            log.info("retention.purged", **report.as_dict())
        return report

    async def _count(self, now: datetime, report: PurgeReport) -> None:
        params = self._params(now)
        for what, candidates, size in (("audio", _AUDIO_CANDIDATES, "bytes"),
                                       ("metadata", _METADATA_CANDIDATES, "0")):  # fmt: skip
            sql = _COUNT.format(classes=_CLASSES, bytes=size, candidates=candidates)
            for row in await self.pool.fetch(sql, *params):
                report.count(row["class"], what, row["n"])
                if what == "audio":
                    report.audio += row["n"]
                    report.bytes += row["bytes"]
                else:
                    report.metadata += row["n"]

    async def _mark(
        self, what: str, now: datetime, after: str, job: str
    ) -> tuple[list[int], str | None]:
        """Step 1: tombstones for the next window's expired rows, committed before anything is
        deleted; returns their ids and where the next window starts (None: this was the last)."""
        sql = _MARK_AUDIO if what == "audio" else _MARK_METADATA
        row = await self.pool.fetchrow(sql, *self._params(now), after, self.batch, job)
        ids = list(row["ids"])
        if self.on_step is not None and ids:
            await self.on_step("marked")
        return ids, row["last"] if row["seen"] >= self.batch else None

    async def _batches(self, what: str, now: datetime, report: PurgeReport) -> None:
        """Mark and finish every window, two batches at a time: while one batch's rows go and
        its commit waits on the disk, the next is marked and its files deleted (the file system
        and PostgreSQL wait on different things). Each batch is its own two transactions as
        before; the custody events stay in batch order (a batch appends only once the one before
        has committed), and at most two step-2 transactions are open."""
        after: str | None = ""
        running: asyncio.Task[int] | None = None  # the latest batch's step 2
        try:
            while after is not None:
                marked, after = await self._mark(what, now, after, report.job)
                if marked:
                    previous, running = running, asyncio.create_task(
                        self._finish(what, marked, now, report, previous=running))  # fmt: skip
                    if previous is not None:
                        await previous
            if running is not None:
                await running
        finally:
            if running is not None and not running.done():
                running.cancel()  # rolled back: its tombstones stay 'purging' for the next run
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running

    async def _finish_left_over(self, what: str, now: datetime, report: PurgeReport) -> None:
        while ids := [r["id"] for r in await self.pool.fetch(
                _LEFT_OVER, self.asterisk_id, what, self.batch)]:  # fmt: skip
            done = await self._finish(what, ids, now, report)
            report.finished += done
            if not done:
                break  # another run holds them

    async def _finish(
        self, what: str, ids: list[int], now: datetime, report: PurgeReport,
        previous: asyncio.Task[int] | None = None,
    ) -> int:  # fmt: skip
        """Step 2: delete the files, then (one transaction) the rows; the tombstones say done.
        `previous`: the batch before, whose custody events must go first."""
        async with self.pool.acquire() as conn, conn.transaction():
            # A hold placed since step 1 wins: no hold can be placed or released until this
            # transaction ends, and what it holds now is kept.
            await conn.execute("LOCK TABLE holds IN SHARE MODE")
            rows = await conn.fetch(_TAKE, ids)
            kept = [r["id"] for r in rows if r["held"]]
            if kept:
                await conn.execute(
                    "UPDATE tombstones SET status = 'kept', done_at = $2 "
                    "WHERE id = ANY($1::bigint[])", kept, now)  # fmt: skip
                report.kept += len(kept)
                log.info("retention.kept_by_hold", tombstones=len(kept))
            rows = [r for r in rows if not r["held"]]
            if not rows:
                return len(kept)
            if what == "audio":
                names = [r["recording_name"] for r in rows]
                # Where each row points now, its row locked: an upload to the object store
                # may have moved it since step 1 (the tombstone names the local copy). A move
                # under way commits first; one that comes after finds the row gone.
                now_at = await conn.fetch(_WHERE_NOW, self.asterisk_id, names)
                found = await self.store.delete_many([r["path"] for r in rows])
                # A kept original's compact copy, a dropped original not deleted yet (0011),
                # the copy an upload made meanwhile: the recording's other files go with it,
                # before its row.
                marked = {r["path"] for r in rows}
                others = [p for r in rows for p in (r["compact_path"], r["original_path"])
                          if p is not None and p != r["path"]]  # fmt: skip
                others += [r["path"] for r in now_at if r["path"] not in marked]
                if others:
                    await self.store.delete_many(others)
                if self.on_step is not None:
                    await self.on_step("deleted")
                await conn.execute(
                    "DELETE FROM recordings WHERE asterisk_id = $1 AND name = ANY($2::text[])",
                    self.asterisk_id, names)  # fmt: skip
            else:
                found = [True] * len(rows)
                calls = [r["call_id"] for r in rows]
                for table in METADATA_TABLES:
                    await conn.execute(
                        f"DELETE FROM {table} WHERE call_id = ANY($1::text[])", calls  # noqa: S608
                    )
                if self.on_step is not None:
                    await self.on_step("deleted")
            gone = [r["id"] for r in rows]
            await conn.execute(_DONE, gone, now, found if what == "audio" else [None] * len(gone))
            if previous is not None:
                await asyncio.wait([previous])  # not `await`: cancelling us must not cancel it
                previous.result()  # it failed: roll back too, leaving no gap in the chain
            events = await conn.fetch(_CUSTODY_EVENTS, gone)
            await custody.append_many(conn, self.asterisk_id, [dict(e.items()) for e in events])
        if self.on_step is not None:
            await self.on_step("purged")
        if what == "audio":
            await self._tidy([r["path"] for r in rows])
        for row, ok in zip(rows, found, strict=True):
            report.count(row["retention_class"], what)
            if what == "audio":
                report.audio += 1
                report.bytes += row["bytes"] or 0
                report.missing_files += not ok
            else:
                report.metadata += 1
        return len(rows) + len(kept)
