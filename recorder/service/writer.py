"""Database writes as the daemon needs them: never blocking a call on PostgreSQL.

The call model hands over whole snapshots, so only the newest snapshot of each call needs to be
kept until it is written; event rows are kept in order. Two rules:
- What a restarted daemon needs (the newest snapshots, and every row staged so far by the lane
  asking, and before it) is durable before Asterisk hears of anything it names (`durable`):
  appended to the write-ahead journal on local disk (recorder.service.journal) and fsync'd,
  once for every lane waiting at that moment (group commit); without a journal, or when it
  cannot be written, written to PostgreSQL instead. Rows no ARI request waits on
  (`durable_soon`) are journaled with the next lane's, or within JOURNAL_LINGER_S: nothing
  Asterisk hears of depends on them. `durable_begin` starts an append without waiting for it
  (a request that names nothing, a new caller's answer, overlaps the fsync).
- PostgreSQL gets what is pending in the background (`run`) once a call reaches a milestone
  (`is_milestone`: started, answered, recording started or filed, transferred, ended; an
  answer that asks for a recording is written with the recording's start), in one
  transaction (those calls' newest snapshots, with every event, gap, consent and tag row
  pending; of a call's legs and recordings, those PostgreSQL does not have as they are) on the
  writer's own connection (Repository.write), `linger_s` after the first row staged since the
  last write. The periodic `tick` (every 5 s: Daemon._periodic) writes every other row, and
  the snapshots that were waiting at the tick before: most that are no milestone (a call
  ringing its callee) are soon overtaken by one (the answer), and are never written on their
  own; one that changed only the call's state waits STATE_ALONE_TICKS (30 s). A full `flush`
  (a control's completion; the daemon's stop) writes every snapshot. So a call in progress's
  rows in PostgreSQL (what the API lists and searches) are at most one milestone or two ticks
  (10 s) behind the model, and its state (what the call page draws besides the rows) at most
  30 s; the journal holds the rest.
  While PostgreSQL is away, it is retried every few seconds; a row it refuses (REFUSED: a retry
  cannot help) is logged and dropped, so that none holds back the writes after it. The journal
  is never behind PostgreSQL (but when the disk refused an append PostgreSQL then took: it is
  rewritten after that write): it is emptied once PostgreSQL has everything, and rewritten
  with what is still pending when it grows.
A crash loses no row: the journal is replayed at start. Each row carries a key given when it was
staged: a row replayed from the journal is inserted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import operator
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import msgspec
import structlog

from recorder.db import mapping
from recorder.db.repository import REFUSED, Repository
from recorder.db.rows import CallRow, CallRows, EventRow, GapRow, LegRow, RecordingRow
from recorder.policy import add_consent_rows
from recorder.policy.audit import insert_consent_rows
from recorder.service.journal import Entry, Journal, lines

log = structlog.get_logger("verbatim.db")

T = TypeVar("T")

# The journal is rewritten with only what is still pending once it is this large (under steady
# load PostgreSQL rarely has everything at the moment it could be emptied) and twice what its
# last rewrite left: what is pending may itself be this large (a thousand calls' snapshots wait
# for their next milestone), and rewriting it after every write would cost more than appending.
# Under a smaller bound (storage.journal_max_mb), halfway from its last rewrite to the bound.
COMPACT_BYTES = 4 * 1024 * 1024

# A snapshot that changed none of its call's rows, only its state (a prompt's end, a hold, the
# model's bookkeeping), is written at this tick after it was staged (within 30 s) — or with
# the next change of a row or milestone: the journal holds it meanwhile
STATE_ALONE_TICKS = 6
# Rows no ARI request waits on are journaled this soon, with what other lanes stage meanwhile
# (recorder.service.daemon: a step that only stores rows).
JOURNAL_LINGER_S = 0.02

# Calls (or rows of one kind) per transaction: a backlog left by an outage is written in pieces
# that each fit the write timeout, so the writer catches up rather than timing out for ever.
BATCH_ROWS = 500

# The writer (its id) and number of the last row the current task (a call's lane:
# recorder.service.daemon) staged: what its requests wait for in `durable`. Rows other lanes
# stage meanwhile belong to their own calls' steps; an fsync for them is theirs to wait for.
# Unset: every row staged so far.
_lane_staged: ContextVar[tuple[int, int] | None] = ContextVar("verbatim_lane_staged",
                                                              default=None)

async def _write(
    kind: str, pending: list[Entry], write: Callable[[list[Any], list[str]], Awaitable[Any]],
    upto: int,
) -> None:
    """Write the first `upto` entries of `pending` in one batch; if PostgreSQL rejects a row,
    one by one, dropping (and logging) the rows it rejects. What was written leaves `pending`."""
    if not upto:
        return
    batch = pending[:upto]
    try:
        await write([e.row for e in batch], [e.key for e in batch])
    except REFUSED:
        for entry in batch:
            try:
                await write([entry.row], [entry.key])
            except REFUSED as exc:
                _rejected(kind, exc, getattr(entry.row, "call_id", None))
    del pending[: len(batch)]


# A call's entry: its snapshot as staged ("call", a Snapshot), or as the journal holds it
_CALL_KINDS = frozenset({"call", "state"})


def _newest(entries: list[Entry]) -> list[Entry]:
    """Entries as the journal takes them: a call's staged snapshot as its journal entry
    (`Snapshot.entry`), and only the newest of each call's (a replay keeps the newest of each
    call's anyway). Entries put back after a failed rewrite are journal entries already."""
    last = {e.key: i for i, e in enumerate(entries) if e.kind in _CALL_KINDS}
    return [e.row.entry() if isinstance(e.row, Snapshot) else e
            for i, e in enumerate(entries) if e.kind not in _CALL_KINDS or last[e.key] == i]


def _rejected(kind: str, exc: Exception, call_id: str | None) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    log.error("db.row_rejected", kind=kind, call_id=call_id, error=error)


class _JournalThread:
    """The journal's own thread: its fsyncs never queue behind the archive's file work in the
    default pool. A hand-off is one queue put and one call_soon_threadsafe (an executor's
    bookkeeping cost twice that per fsync); started at the first job, a daemon thread so that
    a writer never closed (tests) does not hold the interpreter at exit."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="verbatim-journal",
                                            daemon=True)
            self._thread.start()
        self._jobs.put((fn, done))
        return done

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, done = job
            try:
                result, error = fn(), None
            except BaseException as exc:  # handed to the awaiting task, raised there
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                done.get_loop().call_soon_threadsafe(_settle, done, result, error)


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


class SnapshotCodec(Protocol):
    """How a call the model left is stored (recorder.db.mapping, or a test's own)."""

    def call_state(self, call: Any) -> msgspec.Raw:
        """Its snapshot, as JSON: what the journal keeps of it."""

    def call_rows(self, call: Any, state: msgspec.Raw | None = None) -> CallRows:
        """Its rows for PostgreSQL, `state` their snapshot."""

    def revive(self, state: Any) -> CallRows:
        """Its rows from its journaled snapshot, as read back (ValueError if it is none)."""


class Snapshot:
    """A call as a step left it. What the journal keeps of it is its snapshot's JSON (encoded
    once, also the row's `state`); its rows are mapped only when PostgreSQL needs them, and a
    replay maps them from the snapshot. A call changed by several steps before it is journaled
    or written is encoded once. The call is never changed after its step (the next step changes
    a copy). Rows staged as rows (no call: a fallback recording's; a replayed snapshot's) are
    journaled as rows."""

    __slots__ = ("_call", "_codec", "_rows", "_state", "call_id", "milestone")

    def __init__(self, call_id: str, rows: CallRows | None = None, *, call: Any = None,
                 codec: SnapshotCodec | None = None) -> None:
        self.call_id = call_id
        self._rows, self._call, self._codec = rows, call, codec
        self._state: msgspec.Raw | None = None
        # Whether PostgreSQL must have it soon (Writer._milestone), once known
        self.milestone: bool | None = None

    @property
    def rows(self) -> CallRows:
        if self._rows is None:
            assert self._codec is not None
            self._rows, self._call = self._codec.call_rows(self._call, self._encoded()), None
        return self._rows

    def _encoded(self) -> msgspec.Raw:
        if self._state is None:
            assert self._codec is not None
            self._state = self._codec.call_state(self._call)
        return self._state

    def entry(self) -> Entry:
        """As the journal takes it."""
        if self._codec is None:
            return Entry("call", self.call_id, self.rows)
        return Entry("state", self.call_id, self._encoded())


def _stages(recordings: tuple[RecordingRow, ...]) -> frozenset[tuple[str, str]]:
    # "finished" (Asterisk closed the file) is no milestone: "filed" follows it at once
    return frozenset((r.name, "recording" if r.status == "finished" else r.status)
                     for r in recordings)


# A call row's columns but its snapshot (`state`)
_COLUMNS = operator.attrgetter(*(f.name for f in dataclasses.fields(CallRow) if f.name != "state"))

# What milestones change of a call's rows: its row's columns, its recordings' stages, its legs
Shown = tuple[tuple[Any, ...], frozenset[tuple[str, str]], frozenset[str]]


def shown(rows: CallRows) -> Shown:
    return _COLUMNS(rows.call), _stages(rows.recordings), frozenset(x.channel_id for x in rows.legs)


@dataclasses.dataclass(frozen=True)
class _Written:
    """What PostgreSQL last got of a call still active."""

    shown: Shown
    legs: dict[str, LegRow]
    recordings: dict[str, RecordingRow]

    @classmethod
    def of(cls, rows: CallRows) -> _Written:
        return cls(shown(rows), {x.channel_id: x for x in rows.legs},
                   {r.name: r for r in rows.recordings})


# Of a call row's columns (`_COLUMNS`), the answer's
_ANSWERED = [f.name for f in dataclasses.fields(CallRow) if f.name != "state"].index("answered_at")


def is_milestone(new: CallRows, old: Shown | None) -> bool:
    """Whether `new` is a milestone of the call since `old` (`shown` of what PostgreSQL last
    got of it): the call started (no `old`), a column of its row changed (answered, decided,
    linked by a transfer, ended), a recording changed status (started, filed, failed,
    missing), or a party joined a call already answered (a transfer's or forward's target).
    A recording asked for is not one: its start is, milliseconds later (RecordingStarted),
    and the answer or the party that asked for it is written with it, one write of the call
    row instead of two (a start that never comes: its failure is a milestone, or the tick
    writes it). Anything else (a prompt, ringing, a leg answered or ended, the model's own
    bookkeeping) waits for the next milestone."""
    if old is None:
        return True
    columns, stages, legs = shown(new)
    before, had, joined = old
    asked = stages - had
    if asked and all(stage == "requested" for _, stage in asked) and all(
            now == then for n, (now, then) in enumerate(zip(columns, before, strict=True))
            if n != _ANSWERED):
        return False
    return (columns != before or stages != had
            or (new.call.answered_at is not None and not legs <= joined))


class Writer:
    """Rows for PostgreSQL, written in batches; while it is away, kept in memory and in the
    journal (recorder.service.journal) so a crash during the outage loses none of them."""

    def __init__(self, repo: Repository, retry_every_s: float = 5.0, timeout_s: float = 5.0,
                 journal: Journal | None = None, linger_s: float = 0.2,
                 codec: SnapshotCodec = mapping):
        self.repo = repo
        self._codec = codec
        self.journal = journal
        self._calls: dict[str, Snapshot] = {}  # the newest not yet written, per call
        # The `tick` each call's snapshot has been waiting since (unwritten ones only)
        self._since: dict[str, int] = {}
        self._ticks = 0
        # What PostgreSQL last got of each call still active: `_milestone` compares with it,
        # and a write leaves out the legs and recordings it has as they are
        self._written: dict[str, _Written] = {}
        self._events: list[Entry] = []
        self._gaps: list[Entry] = []
        self._consent: list[Entry] = []  # rows: recorder.policy.ConsentRow
        self._tags: list[Entry] = []  # rows: (call_id, tag, by)
        self._unjournaled: list[Entry] = []  # staged since the journal was last written
        self._retry_every = retry_every_s
        self._timeout = timeout_s
        self._failing_since: float | None = None
        self._next_try = 0.0
        # Calls' lanes flush concurrently; one flush at a time, or two would write (and drop
        # from pending) the same rows.
        self._flushing = asyncio.Lock()
        self._journaling = asyncio.Lock()  # one append (or rewrite) at a time
        self._journal_thread = _JournalThread()
        # Rows are numbered as they are staged for the journal; those up to `_on_disk` are in
        # it (appended, or kept by a rewrite), in staging order.
        self._numbered = 0
        self._on_disk = 0
        self._compacted = 0  # the journal's size as its last rewrite left it
        # PostgreSQL took rows the journal could not (a disk error): the journal may hold an
        # older snapshot of a call than PostgreSQL, to be rewritten away at the next chance
        self._behind = False
        # Row keys: unique across runs (a replayed row is inserted once), with no random
        # bytes (a getrandom call) per row.
        self._key_prefix = uuid.uuid4().hex
        self._keys = 0
        self._staged = asyncio.Event()  # something waits for PostgreSQL (`run` wakes)
        self._soon: asyncio.TimerHandle | None = None  # durable_soon's pending journal append
        self._soon_tasks: set[asyncio.Task[bool]] = set()
        self._linger = linger_s
        # For ops (recorder.metrics): event rows staged since start, by kind, and how long the
        # writes that reached PostgreSQL took.
        self.staged: Counter[str] = Counter()
        self.write_seconds = 0.0
        self.writes = 0

    @property
    def pending(self) -> tuple[int, int]:
        return len(self._calls), len(self._events)

    def _stage(self, entry: Entry, into: list[Entry] | None) -> None:
        if into is not None:
            into.append(entry)
        self._staged.set()
        if self.journal is not None and not self.journal.full:
            self._unjournaled.append(entry)
            self._numbered += 1
            _lane_staged.set((id(self), self._numbered))

    def _key(self) -> str:
        self._keys += 1
        return f"{self._key_prefix}-{self._keys}"

    @property
    def pending_rows(self) -> int:
        """Every row waiting for PostgreSQL (a call's snapshot counts once)."""
        return (len(self._calls) + len(self._events) + len(self._gaps) + len(self._consent)
                + len(self._tags))  # fmt: skip

    @property
    def settled(self) -> bool:
        """Nothing waits for PostgreSQL, or it is away and what waits is journaled."""
        if not self._has_pending():
            return True
        journaled = not self._unjournaled and not self._journaling.locked()
        return journaled and (self._failing_since is not None or self._only_deferred())

    def _only_deferred(self) -> bool:
        """What waits for PostgreSQL waits for a milestone (or a later `tick`)."""
        return self.journal is not None and not any(self._milestone(s)
                                                    for s in self._calls.values())

    @property
    def failing(self) -> bool:
        """The last write failed: PostgreSQL is away (rows wait in memory)."""
        return self._failing_since is not None

    def stage_call(self, save: CallRows) -> None:
        self._stage_snapshot(Snapshot(save.call_id, save))

    def stage_snapshot(self, call_id: str, call: Any) -> None:
        """The call as a step left it (encoded and mapped by the codec when first needed)."""
        self._stage_snapshot(Snapshot(call_id, call=call, codec=self._codec))

    def _stage_snapshot(self, snapshot: Snapshot) -> None:
        self._calls.pop(snapshot.call_id, None)
        self._calls[snapshot.call_id] = snapshot
        self._since.setdefault(snapshot.call_id, self._ticks)
        self._stage(Entry("call", snapshot.call_id, snapshot), None)

    def _milestone(self, snapshot: Snapshot) -> bool:
        """Whether PostgreSQL must have the snapshot soon: a milestone (`is_milestone`), or
        nothing else holds it (no journal, or a full one). Any other snapshot waits in memory
        and in the journal for the call's next milestone, or the second `tick` after it
        (Daemon._periodic: every 5 s); a restart replays it from the journal."""
        if self.journal is None or self.journal.full:
            return True
        if snapshot.milestone is None:
            last = self._written.get(snapshot.call_id)
            snapshot.milestone = is_milestone(snapshot.rows, None if last is None else last.shown)
        return snapshot.milestone

    def stage_event(self, row: EventRow) -> None:
        self._stage(Entry("event", self._key(), row), self._events)
        self.staged[row.kind] += 1

    def stage_gaps(self, rows: tuple[GapRow, ...]) -> None:
        for row in rows:
            self._stage(Entry("gap", self._key(), row), self._gaps)

    def stage_consent(self, rows: tuple[Any, ...]) -> None:
        for row in rows:
            self._stage(Entry("consent", self._key(), row), self._consent)

    def stage_tags(self, call_id: str, tags: tuple[str, ...], by: str) -> None:
        for tag in tags:  # (call_id, tag) is unique in call_tags: a replay adds nothing
            self._stage(Entry("tag", f"{call_id}/{tag}", (call_id, tag, by)), self._tags)

    async def replay(self) -> int:
        """At start: stage again what the journal holds (a previous run died with rows
        PostgreSQL had not taken), then write it. The number of entries replayed."""
        if self.journal is None:
            return 0
        entries = await asyncio.to_thread(self.journal.read)
        lists = {"event": self._events, "gap": self._gaps, "consent": self._consent,
                 "tag": self._tags}
        for entry in entries:
            if entry.kind in _CALL_KINDS:
                rows = entry.row if entry.kind == "call" else self._revive(entry.key, entry.row)
                self._calls.pop(entry.key, None)  # an older one must not stand for it
                if rows is not None:
                    self._calls[entry.key] = Snapshot(entry.key, rows)
            else:
                lists[entry.kind].append(entry)
        if entries:
            log.warning("journal.replayed", entries=len(entries),
                        calls=len({e.key for e in entries if e.kind in _CALL_KINDS}))
            await self.flush()
        return len(entries)

    def _revive(self, call_id: str, state: Any) -> CallRows | None:
        try:
            return self._codec.revive(state)
        except (ValueError, TypeError, KeyError) as exc:  # a daemon's own line: a bug, not a tear
            log.error("journal.snapshot_unreadable", call_id=call_id,
                      error=f"{type(exc).__name__}: {exc}"[:500])
            return None

    async def run(self) -> None:
        """Write what is staged to PostgreSQL in the background, `linger_s` after it was staged
        (what is staged meanwhile goes in the same write). Snapshots that are no milestone
        (`_milestone`) wait for a `tick`."""
        while True:
            await self._staged.wait()
            # what the next linger_s stages goes in the same write (a call's answer and its
            # recording's start; the steps of a hang-up)
            await asyncio.sleep(self._linger)
            self._staged.clear()
            await self.flush(milestones=True)

    async def durable(self) -> None:
        """Until what this task staged (a call's lane: see `_lane_staged`), and every row staged
        before it, would survive a crash: journaled (one fsync for every caller waiting
        meanwhile), or, without a journal, written to PostgreSQL."""
        if self.journal is None or self.journal.full:
            await self.flush()
        elif not await self._journal(self._lane_upto()):
            await self.flush()  # the disk refused it: PostgreSQL, if it can

    def _lane_upto(self) -> int | None:
        mark = _lane_staged.get()
        return mark[1] if mark is not None and mark[0] == id(self) else None

    def durable_soon(self) -> None:
        """What was staged will be journaled within `JOURNAL_LINGER_S`, with whatever is staged
        meanwhile (a step whose rows no request waits on: nothing Asterisk hears of depends on
        them, so they need not cost an fsync of their own; the next lane's `durable`, or this
        timer, takes them)."""
        if self.journal is None or self.journal.full:
            return
        if self._unjournaled and self._soon is None:
            self._soon = asyncio.get_running_loop().call_later(JOURNAL_LINGER_S, self._journal_soon)

    async def close(self) -> None:
        """At the daemon's stop, after its last flush: what is still unjournaled goes to the
        journal, then its file and thread are closed."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self.journal is not None:
            await self._journal()
            await asyncio.gather(*self._soon_tasks, return_exceptions=True)
        self._journal_thread.close()
        if self.journal is not None:
            self.journal.close()

    def durable_begin(self) -> None:
        """Start journaling what was staged, without waiting for it: for a request that may
        go before its rows are durable (recorder.service.daemon), so that its round trip and
        their fsync overlap; the next `durable` waits for this append."""
        if self.journal is not None and not self.journal.full:
            self._journal_soon()

    def _journal_soon(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._unjournaled:
            task = asyncio.ensure_future(self._journal())
            self._soon_tasks.add(task)
            task.add_done_callback(self._soon_tasks.discard)

    async def tick(self) -> bool:
        """The periodic write (Daemon._periodic): every row pending; of the call snapshots,
        the milestones and those already waiting at the previous tick. As `flush`."""
        return await self.flush(tick=True)

    async def flush(self, milestones: bool = False, *, tick: bool = False) -> bool:
        """Write what is pending (journaled first: the journal is never behind PostgreSQL);
        False (and it stays pending, journaled) if the database is unavailable. `milestones`:
        of the call snapshots, only those PostgreSQL must have soon (`_milestone`), and no
        other row without one of them; `tick`: see `tick`. When the journal could not take
        what is pending, every snapshot: nothing else holds them."""
        if not self._has_pending() and not self._behind:
            return True
        async with self._flushing:
            if tick:  # counted here: a tick waiting behind a long write still sees one tick
                self._ticks += 1
            missed = self.journal is not None and not await self._journal()
            older_than = self._ticks - 1 if tick and not missed else None
            written = await self._flush(milestones and not missed, older_than)
            self._behind |= missed and written
            if written and self.journal is not None:
                try:
                    await self._compact()
                except OSError as exc:  # the disk's failure must not become the call's either
                    log.error("journal.write_failed", error=f"{type(exc).__name__}: {exc}")
            return written

    async def _compact(self) -> None:
        """PostgreSQL took what the journal held: empty it, or, once it has grown, keep only
        what is still pending (a replay must never put an older snapshot back over a newer
        one, and must not replay much)."""
        journal = self.journal
        assert journal is not None
        async with self._journaling:
            size = journal.size
            # twice the last rewrite, but never so far that the bound is reached first: at
            # most halfway from the last rewrite to the bound
            last = self._compacted
            grown = size > min(max(COMPACT_BYTES, 2 * last), last + (journal.max_bytes - last) // 2)
            if size and (not self._has_pending() or grown or journal.full or self._behind):
                # what is staged while the file is rewritten is appended after it
                entries, self._unjournaled = self._pending_entries(), []
                numbered = self._numbered
                try:
                    if entries:
                        await self._journal_thread.run(lambda: journal.rewrite(entries))
                    else:  # a truncation, no fsync (Journal.clear): not worth a thread's hop
                        journal.clear()
                    self._compacted, self._behind = journal.size, False
                except OSError:
                    self._unjournaled = entries + self._unjournaled  # appended next time
                    raise
                self._on_disk = numbered

    def _pending_entries(self) -> list[Entry]:
        calls = [v.entry() for v in self._calls.values()]
        return calls + self._events + self._gaps + self._consent + self._tags

    def _has_pending(self) -> bool:
        return bool(self._calls or self._events or self._gaps or self._consent or self._tags)

    async def _journal(self, upto: int | None = None) -> bool:
        """On disk, fsync'd: the rows staged up to number `upto` (None: all staged so far),
        with every other row not yet there. False if the journal could not take them (full,
        or the disk failed: logged)."""
        journal = self.journal
        assert journal is not None
        if upto is None:
            upto = self._numbered
        if self._on_disk >= upto or (not self._unjournaled and not self._journaling.locked()):
            return True
        # An append under way may hold this caller's rows: wait for it. Whoever waited here
        # finds its rows written, or writes them with every other waiter's.
        async with self._journaling:
            if self._on_disk >= upto or not self._unjournaled:
                return True
            entries, self._unjournaled = self._unjournaled, []
            numbered = self._numbered
            # encoded here: the thread then needs the GIL only briefly
            data = lines(_newest(entries))
            if await self._journal_thread.run(lambda: journal.write(data)):
                self._on_disk = max(self._on_disk, numbered)
                return True
            if not journal.full:
                self._unjournaled = entries + self._unjournaled  # retried at the next flush
            return False

    def _due(self, snapshot: Snapshot, milestones: bool, older_than: int | None) -> bool:
        """Whether this flush writes the snapshot (`flush`'s `milestones`; `older_than`: a
        tick's, the count of the tick before it): at a tick, a snapshot waiting since before
        it whose rows PostgreSQL does not have as they are, or that changed nothing but the
        call's state (`calls.state`: what the call page draws besides the rows) and has
        waited STATE_ALONE_TICKS."""
        if older_than is None:
            return not milestones or self._milestone(snapshot)
        if self._milestone(snapshot):
            return True
        since = self._since.get(snapshot.call_id, -1)
        # the second tick after it was staged (5-10 s), or the STATE_ALONE_TICKS-th (25-30 s)
        return since < older_than and (since <= older_than - STATE_ALONE_TICKS + 1
                                       or self._rows_changed(snapshot.rows))

    def _rows_changed(self, rows: CallRows) -> bool:
        """Whether PostgreSQL lacks any of the call's rows as they are, its state aside."""
        last = self._written.get(rows.call_id)
        if last is None:
            return True
        _call, legs, recordings = self._changed(rows)
        return bool(legs or recordings) or shown(rows) != last.shown

    async def _flush(self, milestones: bool, older_than: int | None = None) -> bool:
        if not self._has_pending():
            return True  # written by the flush this one waited for
        if self._failing_since is not None and time.monotonic() < self._next_try:
            return False
        # Only what was staged before this flush began: rows staged meanwhile (by another call's
        # lane) may belong to a call whose row is not in this flush; the next flush has both.
        left = [len(rows) for rows in self._rows]
        saves = [s for s in self._calls.values() if self._due(s, milestones, older_than)]
        if (milestones and not saves) or not (saves or any(left)):
            return True  # what is pending waits for a milestone, or for a later tick
        began = time.monotonic()
        try:
            while True:  # one transaction per BATCH_ROWS calls; the other rows with the last
                chunk, saves = saves[:BATCH_ROWS], saves[BATCH_ROWS:]
                counts = [0] * len(left) if saves else [min(n, BATCH_ROWS) for n in left]
                async with asyncio.timeout(self._timeout):
                    refused = await self._write_batch(chunk, counts)
                left = [n - c for n, c in zip(left, counts, strict=True)]
                for save in chunk:  # a newer snapshot staged meanwhile stays pending
                    if self._calls.get(save.call_id) is save:
                        del self._calls[save.call_id]
                        self._since.pop(save.call_id, None)  # (a replayed one has none)
                    elif save.call_id in self._calls:  # the newer waits from this tick
                        self._since[save.call_id] = self._ticks
                    if save.rows.call.status == "active" and save.call_id not in refused:
                        self._written[save.call_id] = _Written.of(save.rows)
                    else:  # over, or refused: its next snapshot is written whole
                        self._written.pop(save.call_id, None)
                if not saves and not any(left):
                    break
        except Exception as exc:  # the database's failure must not become the call's failure
            # what PostgreSQL acknowledged before may be lost with it: calls go whole again
            self._written.clear()
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
        self.write_seconds += time.monotonic() - began
        self.writes += 1
        if self._failing_since is not None:
            # good news (the outage was the error, db.write_failed): info
            log.info("db.recovered", outage_s=round(time.monotonic() - self._failing_since, 1))
            self._failing_since = None
        return True  # (what was staged meanwhile: its stager's own flush waits on this one)

    @property
    def _rows(self) -> tuple[list[Entry], list[Entry], list[Entry], list[Entry]]:
        """The pending rows that refer to calls, in the order a flush writes them."""
        return self._events, self._gaps, self._consent, self._tags

    async def _write_batch(self, saves: list[Snapshot], counts: list[int]) -> set[str]:
        """Some calls and the first `counts` events, gaps, consent and tag rows in one
        transaction (Repository.write); if PostgreSQL refuses a row, one by one, dropping (and
        logging) the rows it refuses. What was written leaves the pending lists. The calls
        whose snapshots PostgreSQL refused."""
        events, gaps, consent, tags = (rows[:n] for rows, n in zip(self._rows, counts,
                                                                  strict=True))
        refused: set[str] = set()
        if not self.repo.writes_connected:  # a new connection, maybe a new server: all again
            self._written.clear()
        try:
            await self.repo.write(
                [self._changed(s.rows) for s in saves],
                [e.row for e in events], [e.key for e in events],
                [e.row for e in gaps], [e.key for e in gaps],
                [e.row for e in tags],
                also=[lambda conn: insert_consent_rows(conn, [e.row for e in consent],
                                                       [e.key for e in consent])]
                if consent else (),
            )
        except REFUSED:
            for save in saves:
                snap = save.rows
                try:
                    await self.repo.save_call(snap.call, snap.legs, snap.recordings)
                except REFUSED as exc:  # the next snapshot of the call may be fine
                    _rejected("call", exc, save.call_id)
                    refused.add(save.call_id)
            await _write("event", self._events, self.repo.add_events, counts[0])
            await _write("gap", self._gaps, self.repo.add_gaps, counts[1])
            await _write("consent", self._consent,
                         lambda rows, keys: add_consent_rows(self.repo.pool, rows, keys),
                         counts[2])
            # after the calls: a tag row refers to its call's
            await _write("tag", self._tags, lambda rows, _keys: self.repo.add_tags(rows),
                         counts[3])
            return refused
        for rows, n in zip(self._rows, counts, strict=True):
            del rows[:n]
        return refused

    def _changed(self, rows: CallRows) -> tuple[CallRow, list[LegRow], list[RecordingRow]]:
        """The call's row, with the legs and recordings PostgreSQL does not have as they are
        (a snapshot upserts two legs, but a step changes one at most)."""
        last = self._written.get(rows.call_id)
        if last is None:
            return rows.call, list(rows.legs), list(rows.recordings)
        return (rows.call, [x for x in rows.legs if last.legs.get(x.channel_id) != x],
                [r for r in rows.recordings if last.recordings.get(r.name) != r])

    async def open_calls(self, asterisk_id: str) -> list[CallRow]:
        """This server's calls in progress: PostgreSQL's, with the newer snapshots still
        waiting to be written (replayed from the journal) taking precedence; only those when
        the database cannot be read."""
        try:
            rows = {r.call_id: r for r in await self.repo.open_calls(asterisk_id)}
        except Exception as exc:  # adopt what the journal knows rather than nothing
            log.error("db.read_failed", error=f"{type(exc).__name__}: {exc}")
            rows = {}
        for snapshot in self._calls.values():
            call = snapshot.rows.call
            if isinstance(call.state, msgspec.Raw):  # as PostgreSQL would give it back
                call = dataclasses.replace(call, state=msgspec.json.decode(call.state))
            if call.asterisk_id == asterisk_id:
                if call.status == "active":
                    rows[call.call_id] = call
                else:
                    rows.pop(call.call_id, None)
        return list(rows.values())

    async def close_orphan(self, row: CallRow) -> None:
        """An open row whose state cannot be adopted: close it as interrupted, loudly."""
        log.error("call.closed_unadoptable", call_id=row.call_id)
        closed = dataclasses.replace(
            row, status="ended", outcome="interrupted", ended_at=datetime.now(UTC), state=None
        )
        await self.repo.save_call(closed, [], [])
