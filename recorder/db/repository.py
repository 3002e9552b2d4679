"""The daemon's PostgreSQL access: upserts of call snapshots, the event log, recovery queries.

Column lists come from the row dataclasses (rows.py), so a field added there and in a migration
needs no change here. All times are timestamptz; asyncpg returns them as aware UTC datetimes, and
naive datetimes are refused on the way in (a naive time is a bug in the caller, and asyncpg would
silently take it as UTC).
"""

from __future__ import annotations

import json
import operator
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import msgspec

from recorder.db.rows import CallRow, EventRow, GapRow, LegRow, RecordingRow

T = TypeVar("T")


def _cols(row_type: type[Any]) -> list[str]:
    return [f.name for f in fields(row_type)]


CALL_COLS = _cols(CallRow)
LEG_COLS = _cols(LegRow)
RECORDING_COLS = _cols(RecordingRow)
EVENT_COLS = _cols(EventRow)
GAP_COLS = _cols(GapRow)


def _conflict(key: tuple[str, ...], set_sql: str, where: str) -> str:
    return (f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {set_sql}, updated_at = now() "
            f"WHERE {where}")


def _upsert(table: str, cols: list[str], tail: str) -> str:
    """One row's upsert (the writes' own are `_Batches`)."""
    values = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
    # Identifiers come from our own dataclasses, never from input.
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({values}) {tail}"  # noqa: S608


def _set_all(cols: list[str], key: tuple[str, ...]) -> str:
    return ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in key)


# An ended call never becomes active again: a late, older snapshot must not reopen it (recovery
# would then adopt a call that is over).
_UPSERT_CALL_TAIL = _conflict(
    ("call_id",), _set_all(CALL_COLS, ("call_id",)),
    "NOT (calls.status = 'ended' AND EXCLUDED.status = 'active')")
_UPSERT_LEG_TAIL = _conflict(
    ("asterisk_id", "channel_id"), _set_all(LEG_COLS, ("asterisk_id", "channel_id")), "true")
# Facts about the file, once known, stay known (COALESCE); the status rule lives in the database
# (recording_status_may_change, migration 0001) so an older snapshot is skipped as a whole.
_KEEP = ("started_at", "ended_at", "path", "duration_ms", "bytes", "sha256")
_UPSERT_RECORDING_TAIL = _conflict(
    ("asterisk_id", "name"),
    ", ".join(
        f"{c} = COALESCE(EXCLUDED.{c}, recordings.{c})" if c in _KEEP else f"{c} = EXCLUDED.{c}"
        for c in RECORDING_COLS
        if c not in ("asterisk_id", "name")
    ),
    "recording_status_may_change(recordings.status, EXCLUDED.status)",
)
_UPSERT_RECORDING = _upsert("recordings", RECORDING_COLS, _UPSERT_RECORDING_TAIL)
# replayed from the daemon's journal: written once
_INSERT_EVENT_TAIL = "ON CONFLICT (row_key) DO NOTHING"


def _select(table: str, cols: list[str]) -> str:
    return f"SELECT {', '.join(cols)} FROM {table} "  # noqa: S608 (our identifiers)


SELECT_CALLS = _select("calls", CALL_COLS)
SELECT_LEGS = _select("legs", LEG_COLS)
SELECT_RECORDINGS = _select("recordings", RECORDING_COLS)
SELECT_EVENTS = _select("call_events", EVENT_COLS)
SELECT_GAPS = _select("coverage_gaps", GAP_COLS)
_INSERT_GAP = (
    f"INSERT INTO coverage_gaps ({', '.join(GAP_COLS)}, row_key) "  # noqa: S608
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(GAP_COLS) + 2))}) "
    "ON CONFLICT (row_key) DO NOTHING"
)
_INSERT_TAG = ("INSERT INTO call_tags (call_id, tag, created_by) VALUES ($1, $2, $3) "
               "ON CONFLICT (call_id, tag) DO NOTHING")
# What PostgreSQL refuses for the row itself (a CHECK, a bad value), as opposed to being away:
# retrying cannot help (recorder.service.writer drops such a row, so it holds back no other).
# ValueError: a value asyncpg cannot encode (its client-side DataError), or one our own row
# code rejects (a naive time) -- the row's fault as much.
REFUSED = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, ValueError)
# The writer's own connection is replaced at its first write after this long: a server process
# kept for the daemon's whole life grows its caches for ever, and a DSN's list of hosts is read
# again (pgbouncer's server_lifetime does the same, at 3,600 s by default).
WRITES_LIFETIME_S = 3600.0

# Same predicate as the partial index recordings_unfiled_idx, so the planner can use it.
UNFILED_PREDICATE = "status NOT IN ('filed', 'failed')"


def _values(row: Any) -> tuple[Any, ...]:
    """A row's column values, in its fields' order (the column lists above)."""
    get, cols, times = _LAYOUTS[type(row)]
    values: tuple[Any, ...] = get(row)
    for i in times:  # only the columns that may hold one: most rows have 3 of 15-20
        v = values[i]
        if isinstance(v, datetime) and v.utcoffset() is None:
            raise ValueError(f"{type(row).__name__}.{cols[i]} is a naive datetime: {v!r}")
    return values


def _layout(row_type: type[Any]) -> tuple[Any, list[str], tuple[int, ...]]:
    """A row type's getter of all its values (one C call), its columns, and which of them may
    hold a datetime (annotated so, or as Any)."""
    cols, types = _cols(row_type), [str(f.type) for f in fields(row_type)]
    times = tuple(i for i, t in enumerate(types) if "datetime" in t or "Any" in t)
    return operator.attrgetter(*cols), cols, times


_LAYOUTS = {t: _layout(t) for t in (CallRow, LegRow, RecordingRow, EventRow, GapRow)}


def _gone(conn: Any) -> bool:
    """A pool's connection that died: closed, or (once its server went away) already back in
    the pool, which then refuses any call on it."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


async def _insert_gaps(conn: Any, gaps: Sequence[GapRow],
                       keys: Sequence[str | None] | None) -> None:
    keys = keys or [None] * len(gaps)
    await conn.executemany(
        _INSERT_GAP, [(*_values(g), k) for g, k in zip(gaps, keys, strict=True)])


async def _save(
    conn: Any,
    statements: _Batches,
    snapshots: Sequence[tuple[CallRow, Sequence[LegRow], Sequence[RecordingRow]]],
    events: Sequence[EventRow],
    event_keys: Sequence[str | None] | None,
) -> None:
    """Upsert call snapshots and add event rows, in the caller's transaction: one statement a
    table, its rows as arrays (`_Batches`)."""
    # Rows are written in key order so concurrent saves lock them in the same order.
    calls = [s[0] for s in snapshots]
    legs = [leg for s in snapshots for leg in s[1]]
    recordings = [rec for s in snapshots for rec in s[2]]
    for some_calls in _rounds(calls, lambda r: r.call_id):
        await statements.calls.run(conn, [_values(c) for c in some_calls])
    for some_legs in _rounds(legs, lambda r: (r.asterisk_id, r.channel_id)):
        await statements.legs.run(conn, [_values(x) for x in some_legs])
    for some_recordings in _rounds(recordings, lambda r: (r.asterisk_id, r.name)):
        await statements.recordings.run(conn, [_values(r) for r in some_recordings])
    if events:  # ON CONFLICT DO NOTHING: a key twice in one statement is no error
        keys = event_keys or [None] * len(events)
        await statements.events.run(conn, [
            (*_values(e), k) for e, k in zip(events, keys, strict=True)])


def _rounds(rows: list[T], key: Callable[[T], Any]) -> list[list[T]]:
    """`rows` in statements that change a row once each (PostgreSQL refuses one that would
    change a row twice): each key's first row in the first, its second (a party two calls'
    snapshots share) in the next, and so on, each sorted by key; so every row meets its
    conflict rule (an older status refused, a known path kept) as when each was its own
    statement. `key` must be the table's conflict key."""
    rounds: list[dict[Any, T]] = []
    for row in rows:
        k = key(row)
        for round_ in rounds:
            if k not in round_:
                round_[k] = row
                break
        else:
            rounds.append({k: row})
    return [[r[k] for k in sorted(r)] for r in rounds]


@dataclass(frozen=True)
class _Batch:
    """One table's write of many rows in one statement: each column's values as one array
    parameter, `unnest` making rows of them again. Values of a jsonb or an array column go as
    JSON text, encoded here: asyncpg would take a list among them for one more dimension of
    the array, which unnest flattens."""

    sql: str
    cols: tuple[str, ...]
    as_json: tuple[int, ...]  # the jsonb and array columns

    @classmethod
    def of(cls, table: str, cols: list[str], types: list[str], tail: str) -> _Batch:
        json = [t == "jsonb" or t.endswith("[]") for t in types]
        params = ", ".join(f"${i}::{'text' if j else t}[]"
                           for i, (t, j) in enumerate(zip(types, json, strict=True), 1))
        names = ", ".join(f"c{i}" for i in range(1, len(cols) + 1))
        values = ", ".join(_from_json(f"c{i}", t) if j else f"c{i}"
                           for i, (t, j) in enumerate(zip(types, json, strict=True), 1))
        # Identifiers and types come from our own dataclasses and the catalog.
        return cls(f"INSERT INTO {table} ({', '.join(cols)}) "  # noqa: S608
                   f"SELECT {values} FROM unnest({params}) AS u({names}) {tail}",
                   tuple(cols), tuple(i for i, j in enumerate(json) if j))

    async def run(self, conn: Any, rows: list[tuple[Any, ...]]) -> None:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i in self.as_json:
            try:
                columns[i] = [None if v is None else _json_text(v) for v in columns[i]]
            except (TypeError, msgspec.EncodeError) as exc:  # the row's fault: REFUSED
                raise ValueError(f"{self.cols[i]}: {exc}") from exc
        await conn.execute(self.sql, *columns)


def _from_json(name: str, column_type: str) -> str:
    if column_type == "jsonb":
        return f"{name}::jsonb"
    return (f"CASE WHEN {name} IS NULL THEN NULL ELSE ARRAY("  # noqa: S608 (ours, as above)
            f"SELECT e FROM jsonb_array_elements_text({name}::jsonb) WITH ORDINALITY AS x(e, n) "
            f"ORDER BY n)::{column_type} END")


@dataclass(frozen=True)
class _Batches:
    """The writes' statements (`_Batch`): one execution a table instead of one a row, so the
    server prepares the insert (its CHECKs and generated columns read back from the catalog,
    its indexes opened) once a flush, not once a row (with `executemany`, a quarter of
    PostgreSQL's CPU under bench/load.py). The arrays' types are the columns' own, read from
    the catalog at the first write over a connection (again after a new one), without their
    length limits (a cast would cut a value short; the insert refuses it)."""

    calls: _Batch
    legs: _Batch
    recordings: _Batch
    events: _Batch

    @classmethod
    async def read(cls, conn: Any) -> _Batches:
        types: dict[tuple[str, str], str] = {
            (r["tab"], r["col"]): r["type"] for r in await conn.fetch(_COLUMN_TYPES, _TABLES)}

        def batch(table: str, cols: list[str], tail: str) -> _Batch:
            try:
                kinds = [types[table, c] for c in cols]
            except KeyError as exc:  # a schema older than this code: migrations not applied
                raise RuntimeError(f"table {table} has no column {exc.args[0][1]}") from exc
            return _Batch.of(table, cols, kinds, tail)

        return cls(*(batch(*spec) for spec in _BATCHED))


# Each batched table, its columns and its conflict rule, in `_Batches`' fields' order
_BATCHED = (
    ("calls", CALL_COLS, _UPSERT_CALL_TAIL),
    ("legs", LEG_COLS, _UPSERT_LEG_TAIL),
    ("recordings", RECORDING_COLS, _UPSERT_RECORDING_TAIL),
    ("call_events", [*EVENT_COLS, "row_key"], _INSERT_EVENT_TAIL),
)
_TABLES = [table for table, _, _ in _BATCHED]
_COLUMN_TYPES = """
SELECT c.relname AS tab, a.attname AS col, format_type(a.atttypid, NULL) AS type
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.oid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) AS t)
  AND a.attnum > 0 AND NOT a.attisdropped
"""


def _row(row_type: type[T], record: Any) -> T:
    return row_type(**dict(record.items()))


def _json_text(value: Any) -> str:
    # msgspec: a tenth of json.dumps' time on a call's snapshot, written with every call row
    return _JSON.encode(value).decode()


_JSON = msgspec.json.Encoder()


async def _init_connection(conn: Any) -> None:
    for typ in ("jsonb", "json"):
        await conn.set_type_codec(
            typ, encoder=_json_text, decoder=json.loads, schema="pg_catalog", format="text"
        )


class Repository:
    def __init__(self, pool: Any, dsn: str | None = None) -> None:
        """`pool` is an asyncpg pool whose connections were set up by `init_connection`;
        `dsn`, its database, for the writer's own connection (without it, one of the pool's)."""
        self.pool = pool
        self._dsn = dsn
        # The writer's own connection (`write`), made at its first write and kept for up to
        # WRITES_LIFETIME_S: a pool's acquire and release cost a reset query (a round trip and
        # a transaction of its own) per write. Outside the pool, so that the pool's size
        # (database.pool_max) is all the rest of the daemon's (adoption, controls, sweeps,
        # readiness), and one more connection in all. Closed by `close`, or when a write fails
        # for want of it.
        self._writes: Any = None
        self._writes_since = 0.0  # time.monotonic() when `_writes` was made
        self._retire = False  # `_writes` is due to be replaced (`writes_connected`)
        self._pooled = False  # `_writes` came from the pool (no dsn)
        self._closed = False  # by `close`: no new connection for a late write
        self._batches: _Batches | None = None  # read at the first write

    async def _statements(self, conn: Any) -> _Batches:
        if self._batches is None:
            self._batches = await _Batches.read(conn)
        return self._batches

    @property
    def writes_connected(self) -> bool:
        """Whether the next `write` goes over the connection the last one used: when not, the
        server may be another (a failover) or may have lost what it acknowledged (a crash
        without synchronous commit), so the writer sends its calls whole again. Nor once the
        connection is due to be replaced (WRITES_LIFETIME_S): this answer decides it, so the
        next `write` replaces it and what it sends is whole."""
        if (self._writes is not None and not self._pooled
                and time.monotonic() - self._writes_since >= WRITES_LIFETIME_S):
            self._retire = True  # (a pooled one would come back from the pool as it is)
        return self._writes is not None and not _gone(self._writes) and not self._retire

    init_connection = staticmethod(_init_connection)

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 1, max_size: int = 5) -> Repository:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection
        )
        return cls(pool, dsn)

    async def close(self) -> None:
        self._closed = True
        await self._drop_writes(gracefully=True)
        await self.pool.close()

    async def _connect_writes(self) -> Any:
        if self._dsn is None:
            self._pooled = True
            return await self.pool.acquire()
        self._pooled = False
        conn = await asyncpg.connect(self._dsn)
        try:
            await _init_connection(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _drop_writes(self, gracefully: bool = False, close_s: float = 5) -> None:
        """The writer's connection gone: closed at the end or once retired, or terminated after
        a failure (its state, or its server's, is unknown: a fenced old primary would be found
        again)."""
        conn, self._writes = self._writes, None
        self._batches = None  # a new connection may be to another server: its types read again
        if conn is None:
            return
        try:
            if not gracefully:
                conn.terminate()
            if self._pooled:
                await self.pool.release(conn, timeout=1)
            elif gracefully:
                await conn.close(timeout=close_s)
        except Exception:  # a close that fails must not leave the socket open
            if not self._pooled:
                conn.terminate()

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # -- writes -----------------------------------------------------------------------------

    async def save_call(
        self, call: CallRow, legs: Sequence[LegRow], recordings: Sequence[RecordingRow]
    ) -> None:
        """Upsert a call snapshot with its legs and recordings, all or nothing."""
        await self.save_calls([(call, legs, recordings)])

    async def save_calls(
        self,
        snapshots: Sequence[tuple[CallRow, Sequence[LegRow], Sequence[RecordingRow]]],
        events: Sequence[EventRow] = (),
        event_keys: Sequence[str | None] | None = None,
    ) -> None:
        """Upsert call snapshots (with their legs and recordings) and add event rows, all in
        one transaction on one connection: the writer's whole flush in one round trip's worth
        of statements. All or nothing."""
        async with self.pool.acquire() as conn, conn.transaction():
            await _save(conn, await self._statements(conn), snapshots, events, event_keys)

    async def write(
        self,
        snapshots: Sequence[tuple[CallRow, Sequence[LegRow], Sequence[RecordingRow]]],
        events: Sequence[EventRow] = (),
        event_keys: Sequence[str | None] | None = None,
        gaps: Sequence[GapRow] = (),
        gap_keys: Sequence[str | None] | None = None,
        tags: Sequence[tuple[str, str, str]] = (),
        also: Sequence[Callable[[Any], Awaitable[Any]]] = (),
    ) -> None:
        """The daemon writer's flush, all or nothing, in one transaction on the writer's own
        connection: call snapshots (with their legs and recordings), then rows that refer to
        calls (events, gaps, tags; `also`: more statements, given the connection, e.g.
        consent rows). Keys: each row's, so that writing it again adds nothing."""
        if self._closed:  # as a closed pool would: the writer keeps the rows pending
            raise ConnectionError("the repository is closed")
        conn = self._writes
        if conn is None or _gone(conn) or self._retire:
            # a retired one is closed, not cut off, but within the writer's own timeout
            await self._drop_writes(gracefully=conn is not None and not _gone(conn), close_s=1)
            conn = self._writes = await self._connect_writes()
            self._writes_since, self._retire = time.monotonic(), False
        try:
            statements = await self._statements(conn)
            async with conn.transaction():
                await _save(conn, statements, snapshots, events, event_keys)
                if gaps:
                    await _insert_gaps(conn, gaps, gap_keys)
                if tags:
                    await conn.executemany(_INSERT_TAG, list(tags))
                for more in also:
                    await more(conn)
        except REFUSED:  # the rows', not the connection's: rolled back, the connection is fine
            raise
        except BaseException:  # lost, cancelled mid-statement, timed out: a fresh one next time
            await self._drop_writes()
            raise

    async def save_recording(self, row: RecordingRow) -> bool:
        """Upsert one recording; False if refused because its status would move backwards."""
        result = await self.pool.fetchval(
            _UPSERT_RECORDING + " RETURNING true", *_values(row)
        )
        return result is True

    async def add_gaps(self, gaps: Sequence[GapRow],
                       keys: Sequence[str | None] | None = None) -> None:
        """`keys`: each row's key, so that writing it again adds nothing (None: no key)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await _insert_gaps(conn, gaps, keys)

    async def add_tags(self, tags: Sequence[tuple[str, str, str]]) -> None:
        """(call_id, tag, by) rows; a tag a call already has is kept as it was."""
        await self.pool.executemany(_INSERT_TAG, list(tags))

    async def gaps(self, since: datetime, call_id: str | None = None) -> list[GapRow]:
        sql = SELECT_GAPS + "WHERE starts_at >= $1"
        args: list[Any] = [since]
        if call_id is not None:
            sql += " AND call_id = $2"
            args.append(call_id)
        return await self._fetch(GapRow, sql + " ORDER BY starts_at", *args)

    async def leg_coverage(self, since: datetime) -> list[tuple[CallRow, LegRow]]:
        """Legs of calls started since `since`, with their coverage figures (ops report)."""
        cols = ", ".join(
            [f"c.{x} AS c_{x}" for x in CALL_COLS] + [f"l.{x} AS l_{x}" for x in LEG_COLS]
        )
        sql = (  # identifiers from our own dataclasses, never from input
            f"SELECT {cols} FROM calls c JOIN legs l USING (call_id) "  # noqa: S608
            "WHERE c.started_at >= $1 ORDER BY c.started_at, l.started_at"
        )
        async with self.pool.acquire() as conn:
            records = await conn.fetch(sql, since)
        return [
            (
                CallRow(**{x: r[f"c_{x}"] for x in CALL_COLS}),
                LegRow(**{x: r[f"l_{x}"] for x in LEG_COLS}),
            )
            for r in records
        ]

    async def add_events(self, events: Sequence[EventRow],
                         keys: Sequence[str | None] | None = None) -> None:
        """`keys`: each row's key, so that writing it again adds nothing (None: no key)."""
        if events:
            await self.save_calls([], events, keys)

    # -- reads ------------------------------------------------------------------------------

    async def call(self, call_id: str) -> CallRow | None:
        rec = await self.pool.fetchrow(
            SELECT_CALLS + "WHERE call_id = $1",
            call_id,
        )
        return None if rec is None else _row(CallRow, rec)

    async def open_calls(self, asterisk_id: str) -> list[CallRow]:
        """This server's calls still marked active: what a restarted daemon must adopt."""
        return await self._fetch(
            CallRow,
            SELECT_CALLS
            + "WHERE asterisk_id = $1 AND status = 'active' ORDER BY started_at, call_id",
            asterisk_id,
        )

    async def recent_calls(self, limit: int, since: datetime | None = None) -> list[CallRow]:
        """Newest first; `since` bounds started_at from below (inclusive)."""
        order = " ORDER BY started_at DESC, call_id DESC LIMIT $1"
        if since is None:
            return await self._fetch(CallRow, SELECT_CALLS + order, limit)
        if since.utcoffset() is None:
            raise ValueError(f"since is a naive datetime: {since!r}")
        sql = SELECT_CALLS + "WHERE started_at >= $2" + order
        return await self._fetch(CallRow, sql, limit, since)

    async def legs(self, call_id: str) -> list[LegRow]:
        return await self._fetch(
            LegRow,
            SELECT_LEGS + "WHERE call_id = $1 ORDER BY started_at, channel_id",
            call_id,
        )

    async def recordings(self, call_id: str) -> list[RecordingRow]:
        return await self._fetch(
            RecordingRow,
            SELECT_RECORDINGS + "WHERE call_id = $1 ORDER BY segment, requested_at, name",
            call_id,
        )

    async def recording(self, asterisk_id: str, name: str) -> RecordingRow | None:
        rec = await self.pool.fetchrow(
            SELECT_RECORDINGS + "WHERE asterisk_id = $1 AND name = $2",
            asterisk_id,
            name,
        )
        return None if rec is None else _row(RecordingRow, rec)

    async def unfiled_recordings(self, asterisk_id: str) -> list[RecordingRow]:
        """This server's recordings not in the archive and not failed (requested, recording,
        finished, and missing ones, which may still turn up in the spool), oldest first."""
        return await self._fetch(
            RecordingRow,
            SELECT_RECORDINGS
            + f"WHERE asterisk_id = $1 AND {UNFILED_PREDICATE} ORDER BY requested_at, name",
            asterisk_id,
        )

    async def events(self, call_id: str) -> list[EventRow]:
        return await self._fetch(
            EventRow,
            SELECT_EVENTS + "WHERE call_id = $1 ORDER BY at, id",
            call_id,
        )

    async def _fetch(self, row_type: type[T], sql: str, *args: Any) -> list[T]:
        return [_row(row_type, r) for r in await self.pool.fetch(sql, *args)]
