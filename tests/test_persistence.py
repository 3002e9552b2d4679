"""The daemon's writer against real PostgreSQL: a row the database refuses is logged and
dropped, and never holds back the writes after it; what must survive a crash is journaled first,
once for every caller waiting meanwhile, and PostgreSQL gets it later; the clock it stamps rows
with never goes back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from recorder.db.repository import Repository
from recorder.db.rows import CallRows, EventRow
from recorder.service import writer as writer_module
from recorder.service.daemon import AsteriskClock
from recorder.service.journal import Journal
from recorder.service.writer import Writer
from tests.harness.rows import T0, call_row


def event(call_id: str, kind: str) -> EventRow:
    return EventRow(call_id=call_id, asterisk_id="pbx1", at=T0, kind=kind, channel_id=None,
                    recording_name=None, detail={})


class Appends:
    """Counts a journal's appends (each one write and one fdatasync)."""

    def __init__(self, journal: Journal) -> None:
        self.n = 0
        self._write = journal.write
        journal.write = self  # type: ignore[method-assign]

    def __call__(self, data: bytes) -> bool:
        self.n += 1
        return self._write(data)


async def test_a_rejected_row_is_dropped_and_the_rest_is_written(repo: Repository) -> None:
    writer = Writer(repo)
    call = call_row()
    writer.stage_call(CallRows(call.call_id, call, (), ()))
    writer.stage_event(event(call.call_id, "call.started"))
    writer.stage_event(event("no-such-call", "call.started"))  # refused: no such call
    writer.stage_event(event(call.call_id, "call.bridged"))
    writer.stage_tags(call.call_id, ("matter:1", "bad\x01tag"), "agi")  # CHECK refuses one
    with capture_logs() as logs:
        assert await writer.flush() is True
    assert writer.pending == (0, 0)
    kinds = [e.kind for e in await repo.events(call.call_id)]
    assert kinds == ["call.started", "call.bridged"]
    tags = await repo.pool.fetch("SELECT tag FROM call_tags WHERE call_id = $1", call.call_id)
    assert [r["tag"] for r in tags] == ["matter:1"]
    rejected = [e for e in logs if e["event"] == "db.row_rejected"]
    assert sorted(e["kind"] for e in rejected) == ["event", "tag"]
    writer.stage_event(event(call.call_id, "call.ended"))  # and later writes go on
    assert await writer.flush() is True
    assert [e.kind for e in await repo.events(call.call_id)][-1] == "call.ended"


async def test_durable_journals_once_for_every_waiter_and_postgresql_follows(
    repo: Repository, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    appends = Appends(journal)
    calls = [call_row(f"c{n}") for n in range(5)]
    for call in calls:
        writer.stage_call(CallRows(call.call_id, call, (), ()))
        writer.stage_event(event(call.call_id, "call.started"))
    await asyncio.gather(*(writer.durable() for _ in calls))  # five lanes before a request
    assert appends.n == 1
    assert sorted(e.key for e in journal.read() if e.kind == "call") == [c.call_id for c in calls]
    assert await repo.call("c0") is None  # PostgreSQL has not been written yet
    assert not writer.settled
    assert await writer.flush() is True
    assert writer.settled and (await repo.call("c4")) is not None
    assert [e.kind for e in await repo.events("c4")] == ["call.started"]
    assert journal.size == 0 and journal.read() == []  # PostgreSQL has everything: emptied
    await writer.durable()
    assert appends.n == 1  # nothing new: no write


async def test_a_lane_waits_for_the_journal_up_to_its_own_rows_only(
    repo: Repository, tmp_path: Path
) -> None:
    """A call's lane (a task) waits for the rows it staged and every row staged before them;
    rows another lane staged later cost it no fsync. A task that staged nothing waits for all."""
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    appends = Appends(journal)
    first_done, b_staged = asyncio.Event(), asyncio.Event()

    async def lane_a() -> None:
        call = call_row("a")
        writer.stage_call(CallRows(call.call_id, call, (), ()))
        await writer.durable()  # its first request
        first_done.set()
        await b_staged.wait()
        await writer.durable()  # its second request: its rows are on disk already

    async def lane_b() -> None:
        await first_done.wait()
        writer.stage_event(event("b", "call.started"))
        b_staged.set()

    await asyncio.gather(asyncio.create_task(lane_a()), asyncio.create_task(lane_b()))
    assert appends.n == 1
    assert [e.key for e in journal.read()] == ["a"]
    await writer.durable()  # this task staged nothing: every row staged so far
    assert appends.n == 2
    assert [e.kind for e in journal.read()] == ["call", "event"]


async def test_a_backlog_is_written_in_pieces_that_each_fit_the_timeout(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an outage the backlog is larger than one write can carry in time: written whole it
    would time out at every retry for ever (seen in bench/load.py's soak); in pieces it goes."""
    monkeypatch.setattr(writer_module, "BATCH_ROWS", 4)
    write, sizes = repo.write, []

    async def slow(snapshots: Sequence[object], *args: Any, **kw: Any) -> None:
        sizes.append(len(snapshots))
        await asyncio.sleep(0.05 * len(snapshots))  # a database slow per row, as under load
        await write(snapshots, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "write", slow)
    writer = Writer(repo, timeout_s=0.5)  # 30 calls at once would take 1.5 s
    calls = [call_row(f"b{n:02}") for n in range(30)]
    for call in calls:
        writer.stage_call(CallRows(call.call_id, call, (), ()))
        writer.stage_event(event(call.call_id, "call.started"))
    assert await writer.flush() is True
    assert writer.pending == (0, 0)
    assert max(sizes) == 4 and sum(sizes) == 30
    for call in calls:
        assert [e.kind for e in await repo.events(call.call_id)] == ["call.started"]


async def test_close_journals_what_is_left_and_releases_the_file(
    repo: Repository, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    call = call_row("c-close")
    writer.stage_call(CallRows(call.call_id, call, (), ()))
    writer.durable_soon()  # not yet written: its timer is cancelled by close
    await writer.close()
    assert [e.key for e in journal.read()] == ["c-close"]
    assert journal.path not in _open_files()


def _open_files() -> list[Path]:
    fds = Path("/proc/self/fd")
    return [Path(os.readlink(fds / fd)) for fd in os.listdir(fds) if (fds / fd).is_symlink()]


def test_the_clock_never_goes_back() -> None:
    clock = AsteriskClock()
    clock.seen(T0)
    first = clock.now()
    assert first >= T0
    clock.seen(T0 - timedelta(seconds=5))  # an event stamped earlier than our estimate
    assert clock.now() >= first
    clock.seen(first + timedelta(seconds=30))  # Asterisk ahead of us: we follow it
    assert clock.now() >= first + timedelta(seconds=30)
