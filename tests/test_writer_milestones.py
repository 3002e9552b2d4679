"""Call snapshots reach PostgreSQL at milestones (recorder.service.writer): what a step changes
besides them waits in memory and in the journal, and a crash before the next milestone loses
none of it (the journal is replayed at start). Against real PostgreSQL; nothing is mocked."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from recorder.db import repository as repository_module
from recorder.db.repository import Repository
from recorder.db.rows import CallRows, EventRow
from recorder.service import writer as writer_module
from recorder.service.journal import Journal
from recorder.service.writer import Writer, is_milestone, shown
from tests.harness.rows import T0, call_row, leg_row, rec_row

RINGING = CallRows("c1", call_row("c1", answered_at=None, state={"v": 1}),
                   (leg_row("a", "c1"),), ())
ANSWERED = CallRows("c1", call_row("c1", state={"v": 2}),
                    (leg_row("a", "c1", answered_at=T0), leg_row("b", "c1", role="callee")),
                    (rec_row("r1", call_id="c1"),))


def _with(rows: CallRows, *, state: int | None = None, rec: str | None = None,
          legs: tuple[str, ...] = (), ended_leg: str | None = None, **call: Any) -> CallRows:
    """`rows` changed: its state's "v", its recording's status, legs added or one ended, the
    call row's columns."""
    recs = tuple(replace(r, status=rec) for r in rows.recordings) if rec else rows.recordings
    old = tuple(replace(x, ended_at=T0 + timedelta(seconds=9)) if x.channel_id == ended_leg
                else x for x in rows.legs)
    new = tuple(leg_row(x, "c1", role="callee") for x in legs)
    row = replace(rows.call, **call, state={"v": state} if state else rows.call.state)
    return CallRows(rows.call_id, row, old + new, recs)


@pytest.mark.parametrize(("new", "old", "milestone"), [
    (RINGING, None, True),  # the call started
    (_with(RINGING, state=5), RINGING, False),  # the model's bookkeeping (a prompt, ringing)
    (_with(RINGING, legs=("b",)), RINGING, False),  # the callee dialled, not yet answered
    (_with(RINGING, ended_leg="a"), RINGING, False),  # a party hung up, the call not ended
    (_with(RINGING, answered_at=T0), RINGING, True),  # answered
    # answered, its recording asked for: written with the recording's start, ms later
    (ANSWERED, RINGING, False),
    (_with(ANSWERED, rec="recording"), RINGING, True),
    (_with(ANSWERED, rec="failed"), RINGING, True),  # a start that never came
    (_with(ANSWERED, recorded=True), RINGING, True),  # decided with it: no waiting
    (_with(RINGING, recorded=True, decided_by="rule 'All'"), RINGING, True),  # decided
    (_with(ANSWERED, rec="recording"), ANSWERED, True),  # the recording started
    (_with(ANSWERED, rec="finished"), _with(ANSWERED, rec="recording"), False),  # filed next
    (_with(ANSWERED, rec="filed"), _with(ANSWERED, rec="finished"), True),  # filed
    (_with(ANSWERED, rec="failed"), _with(ANSWERED, rec="recording"), True),
    (_with(ANSWERED, legs=("t",)), ANSWERED, True),  # a transfer's target joined
    (_with(ANSWERED, linked_calls=["c0"]), ANSWERED, True),  # linked by a transfer
    (_with(ANSWERED, status="ended", outcome="answered", ended_at=T0), ANSWERED, True),
])
def test_milestones(new: CallRows, old: CallRows | None, milestone: bool) -> None:
    assert is_milestone(new, None if old is None else shown(old)) is milestone


def event(kind: str) -> EventRow:
    return EventRow("c1", "pbx1", T0, kind, None, None, {})


async def test_what_waits_for_a_milestone_is_journaled_and_replayed_after_a_crash(
    repo: Repository, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    writer.stage_call(RINGING)
    assert await writer.flush(milestones=True) is True  # the call started: written
    writer.stage_call(_with(RINGING, state=3, legs=("b",)))  # the callee rings: no milestone
    writer.stage_event(event("call.dialling"))
    assert await writer.flush(milestones=True) is True
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 1}, "written before its milestone"
    assert [x.channel_id for x in await repo.legs("c1")] == ["a"]
    assert await repo.events("c1") == []
    assert writer.settled  # what waits is journaled: nothing for the daemon to wait on
    # kill -9 here: the next start replays the journal, and PostgreSQL gets what waited
    assert await Writer(repo, journal=Journal(tmp_path / "j")).replay() == 2
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 3}
    assert [x.channel_id for x in await repo.legs("c1")] == ["a", "b"]
    assert [e.kind for e in await repo.events("c1")] == ["call.dialling"]


async def test_a_milestone_takes_what_waited_and_a_full_flush_takes_the_rest(
    repo: Repository, tmp_path: Path
) -> None:
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(RINGING)
    await writer.flush(milestones=True)
    writer.stage_call(_with(RINGING, state=3))
    writer.stage_event(event("call.ringing"))
    await writer.flush(milestones=True)
    writer.stage_call(_with(RINGING, state=4, answered_at=T0))  # answered: a milestone
    await writer.flush(milestones=True)
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 4} and row.answered_at == T0
    assert [e.kind for e in await repo.events("c1")] == ["call.ringing"]
    writer.stage_call(_with(RINGING, state=5, answered_at=T0))
    await writer.flush()  # a control's, the stop's: everything
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 5}
    assert writer.pending == (0, 0)


async def test_a_tick_takes_the_rows_and_what_waited_since_the_tick_before(
    repo: Repository, tmp_path: Path
) -> None:
    """Most snapshots that are no milestone are soon overtaken by one (ringing, then the
    answer): the periodic tick writes them only once they have waited a whole tick."""
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(RINGING)
    await writer.flush(milestones=True)
    writer.stage_call(_with(RINGING, state=3, legs=("b",)))  # the callee rings: no milestone
    writer.stage_event(event("call.ringing"))
    assert await writer.tick() is True
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 1}, "no milestone, written at its first tick"
    assert [e.kind for e in await repo.events("c1")] == ["call.ringing"]  # rows: every tick
    assert writer.pending == (1, 0)
    writer.stage_call(_with(RINGING, state=4, legs=("b",)))  # it waits since before
    assert await writer.tick() is True
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 4}
    assert writer.pending == (0, 0)
    # a milestone does not wait for a tick; one staged after a write waits anew
    writer.stage_call(_with(RINGING, state=5, answered_at=T0))
    writer.stage_call(_with(RINGING, state=6, answered_at=T0, legs=("b",)))  # a milestone too
    await writer.tick()
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 6}
    writer.stage_call(_with(RINGING, state=7, answered_at=T0, legs=("b",), ended_leg="a"))
    await writer.tick()
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 6}
    await writer.tick()
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 7}


async def test_a_change_of_the_state_alone_waits_for_a_row_or_thirty_seconds(
    repo: Repository, tmp_path: Path
) -> None:
    """A snapshot that changes none of the call's rows (a prompt's end, a hold) is no reason
    to rewrite the call row at the next tick: it goes with the next change of a row, or once
    it has waited STATE_ALONE_TICKS; the journal holds it meanwhile."""
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(RINGING)
    await writer.flush(milestones=True)
    writer.stage_call(_with(RINGING, state=3))
    for _ in range(writer_module.STATE_ALONE_TICKS - 1):
        await writer.tick()
        row = await repo.call("c1")
        assert row is not None and row.state == {"v": 1}
        assert writer.pending == (1, 0) and writer.settled  # journaled: nothing waits on it
    await writer.tick()  # the sixth tick, within 30 s of the change: written
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 3}
    writer.stage_call(_with(RINGING, state=4))
    await writer.tick()
    writer.stage_call(_with(RINGING, state=5, ended_leg="a"))  # a row changed: the next tick
    await writer.tick()
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 5}
    assert [x.ended_at for x in await repo.legs("c1")] == [T0 + timedelta(seconds=9)]


async def test_a_tick_writes_every_snapshot_the_journal_could_not_take(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    writer.stage_call(RINGING)
    await writer.flush(milestones=True)
    monkeypatch.setattr(journal, "write", lambda data: False)  # the disk refuses (logged)
    writer.stage_call(_with(RINGING, state=3))  # no milestone, and only in memory
    assert await writer.tick() is True
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 3}


async def test_without_a_journal_every_snapshot_is_written(repo: Repository) -> None:
    writer = Writer(repo)  # nothing else would hold what waits
    writer.stage_call(RINGING)
    await writer.flush(milestones=True)
    writer.stage_call(_with(RINGING, state=3))
    await writer.flush(milestones=True)
    row = await repo.call("c1")
    assert row is not None and row.state == {"v": 3}


class _Codec:
    """A call that is (its id, its state's "v"); what was encoded and mapped, in order."""

    def __init__(self) -> None:
        self.encoded: list[Any] = []
        self.mapped: list[Any] = []

    def call_state(self, call: Any) -> msgspec.Raw:
        self.encoded.append(call[1])
        return msgspec.Raw(msgspec.json.encode({"id": call[0], "v": call[1]}))

    def call_rows(self, call: Any, state: msgspec.Raw | None = None) -> CallRows:
        self.mapped.append(call[1])
        return CallRows(call[0], call_row(call[0], state=state), (), ())

    def revive(self, state: Any) -> CallRows:
        if not isinstance(state.get("v"), int):
            raise ValueError("no v")
        return CallRows(state["id"], call_row(state["id"], state=state), (), ())


async def test_a_snapshot_is_encoded_once_and_mapped_only_for_postgresql(
    repo: Repository, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j")
    codec = _Codec()
    writer = Writer(repo, journal=journal, codec=codec)
    for v in (1, 2, 3):  # three steps' snapshots before the journal's next write
        writer.stage_snapshot("c1", ("c1", v))
    await writer.durable()
    assert (codec.encoded, codec.mapped) == ([3], [])  # the journal keeps the snapshot only
    assert [(e.kind, e.row) for e in journal.read()] == [("state", {"id": "c1", "v": 3})]
    await writer.flush()
    assert (codec.encoded, codec.mapped) == ([3], [3])  # its rows, around the same JSON
    row = await repo.call("c1")
    assert row is not None and row.state == {"id": "c1", "v": 3}


async def _journaled_then_died(repo: Repository, directory: Path,
                               *steps: tuple[tuple[str, Any], ...]) -> None:
    """Each step's snapshots (call id, "v") staged and journaled; then the daemon dies, with
    none of them in PostgreSQL."""
    journal = Journal(directory)
    writer = Writer(repo, journal=journal, codec=_Codec())
    for snapshots in steps:
        for call_id, v in snapshots:
            writer.stage_snapshot(call_id, (call_id, v))
        await writer.durable()
    journal.close()


async def test_a_replay_maps_the_rows_from_the_journaled_snapshot(
    repo: Repository, tmp_path: Path
) -> None:
    await _journaled_then_died(repo, tmp_path / "j", (("c1", 4), ("c2", 5)))
    assert await repo.call("c1") is None
    replayed = Writer(repo, journal=Journal(tmp_path / "j"), codec=_Codec())
    assert await replayed.replay() == 2
    for call_id, v in (("c1", 4), ("c2", 5)):
        row = await repo.call(call_id)
        assert row is not None and row.state == {"id": call_id, "v": v}


async def test_a_snapshot_the_codec_cannot_read_is_logged_and_the_rest_replayed(
    repo: Repository, tmp_path: Path
) -> None:
    await _journaled_then_died(repo, tmp_path / "j", (("c1", 1),),
                               (("c1", "not a number"), ("c2", 6)))  # c1's newer: unreadable
    with capture_logs() as logs:
        replayed = Writer(repo, journal=Journal(tmp_path / "j"), codec=_Codec())
        assert await replayed.replay() == 3
    assert [(x["event"], x["call_id"]) for x in logs if x["log_level"] == "error"] == [
        ("journal.snapshot_unreadable", "c1")]
    assert await repo.call("c1") is None  # and no older snapshot of it stands in
    row = await repo.call("c2")
    assert row is not None and row.state == {"id": "c2", "v": 6}


async def test_open_calls_give_a_staged_snapshot_as_postgresql_would(
    repo: Repository, tmp_path: Path
) -> None:
    writer = Writer(repo, journal=Journal(tmp_path / "j"), codec=_Codec())
    writer.stage_snapshot("c1", ("c1", 7))  # not yet in PostgreSQL: adoption reads it here
    (row,) = await writer.open_calls("pbx1")
    assert row.state == {"id": "c1", "v": 7}


async def test_a_failed_rewrite_puts_back_what_the_next_append_takes(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal, codec=_Codec())
    writer.stage_call(RINGING)  # a call staged as rows (as a replay's are)
    await writer.flush()  # PostgreSQL has it; the journal is emptied
    writer.stage_call(_with(RINGING, state=3))  # no milestone: it stays pending
    writer.stage_snapshot("c2", ("c2", 1))  # a new call: a milestone
    await writer.durable()

    def broken(entries: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(writer_module, "COMPACT_BYTES", 1)  # the journal is due a rewrite...
    monkeypatch.setattr(journal, "rewrite", broken)  # ...which fails
    with capture_logs() as logs:
        assert await writer.flush(milestones=True)
    assert [x["event"] for x in logs if x["log_level"] == "error"] == ["journal.write_failed"]
    monkeypatch.undo()
    writer.stage_snapshot("c3", ("c3", 4))
    await writer.durable()  # what was put back goes with it
    assert [(e.kind, e.key) for e in journal.read()][-2:] == [("call", "c1"), ("state", "c3")]


async def test_a_write_leaves_out_the_legs_and_recordings_postgresql_has(
    repo: Repository, tmp_path: Path
) -> None:
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(ANSWERED)
    await writer.flush()

    async def versions() -> dict[str, int]:  # a row's xmin changes with every update
        rows = await repo.pool.fetch(
            "SELECT channel_id AS k, xmin::text::bigint AS v FROM legs WHERE call_id = 'c1' "
            "UNION ALL SELECT name, xmin::text::bigint FROM recordings WHERE call_id = 'c1'")
        return {r["k"]: r["v"] for r in rows}

    before = await versions()
    writer.stage_call(_with(ANSWERED, ended_leg="b", rec="recording"))
    await writer.flush()
    after = await versions()
    assert after["a"] == before["a"], "a leg PostgreSQL had as it is was written again"
    assert after["b"] != before["b"] and after["r1"] != before["r1"]
    legs = {x.channel_id: x for x in await repo.legs("c1")}
    assert legs["b"].ended_at is not None and legs["a"].answered_at == T0
    assert [r.status for r in await repo.recordings("c1")] == ["recording"]


async def test_a_new_connection_gets_every_leg_and_recording_again(
    repo: Repository, tmp_path: Path
) -> None:
    """What PostgreSQL acknowledged may be gone with its connection (a failover to a standby
    that had not replayed it, a crash without synchronous commit): the first write over a new
    connection sends each call whole, not only what changed since."""
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(ANSWERED)
    await writer.flush()
    await repo.pool.execute("DELETE FROM legs WHERE call_id = 'c1' AND channel_id = 'a'")  # lost
    writes = repo._writes.get_server_pid()  # the writer's connection dies with its server
    await repo.pool.execute("SELECT pg_terminate_backend($1)", writes)
    writer.stage_call(_with(ANSWERED, rec="recording"))
    for _ in range(3):  # the first try may meet the dead connection; the next makes a new one
        if await writer.flush():
            break
        writer._next_try = 0.0  # no 5 s wait between tries in a test
    assert sorted(x.channel_id for x in await repo.legs("c1")) == ["a", "b"]


async def test_the_writers_connection_is_replaced_once_old_and_sends_calls_whole(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection kept for the daemon's life keeps one server process growing for ever, and
    a DSN's other hosts are never tried: past WRITES_LIFETIME_S the next write closes it and
    opens another, and, the server maybe another, sends each call whole."""
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(ANSWERED)
    await writer.flush()
    first = repo._writes.get_server_pid()
    writer.stage_call(_with(ANSWERED, state=3))
    await writer.flush()
    assert repo._writes.get_server_pid() == first, "replaced before its time"
    await repo.pool.execute("DELETE FROM legs WHERE call_id = 'c1' AND channel_id = 'a'")
    monkeypatch.setattr(repository_module, "WRITES_LIFETIME_S", 0.0)
    await repo.write([])  # due, but not yet said so: the writer sent what changed only
    assert repo._writes.get_server_pid() == first, "replaced under a write of changes only"
    assert not repo.writes_connected
    writer.stage_call(_with(ANSWERED, rec="recording"))
    assert await writer.flush()
    second = repo._writes.get_server_pid()
    assert second != first
    for _ in range(250):  # closed, not left behind: its server process ends
        pids = {r["pid"] for r in await repo.pool.fetch("SELECT pid FROM pg_stat_activity")}
        if first not in pids:
            break
        await asyncio.sleep(0.02)
    assert first not in pids and second in pids
    assert sorted(x.channel_id for x in await repo.legs("c1")) == ["a", "b"]


async def test_the_writers_connection_leaves_the_whole_pool_to_the_rest(pg_dsn: str) -> None:
    """database.pool_max: 1 (a small site) still leaves the daemon's other readers a
    connection once the writer has written: the writer's is one of its own."""
    small = await Repository.connect(pg_dsn, min_size=1, max_size=1)
    try:
        writer = Writer(small)
        writer.stage_call(ANSWERED)
        assert await writer.flush() is True
        async with asyncio.timeout(2):  # waited for ever when the writer kept the pool's one
            assert await small.pool.fetchval("SELECT 1") == 1
    finally:
        await small.close()


async def test_a_snapshot_written_again_keeps_an_uploaded_recordings_place(
    repo: Repository,
) -> None:
    """The uploader moved a filed recording of a call still going on to the bucket; the call's
    snapshot written again (a journal replay, the first write after a restart) still names the
    archive file that is gone: the row keeps the bucket's (trigger recordings_keep_moved, 0009)."""
    filed = _with(ANSWERED, rec="filed")
    (rec,) = filed.recordings
    filed = replace(filed, recordings=(replace(rec, path="/archive/r1.wav", sha256="ab" * 32,
                                               bytes=1000, duration_ms=62),))
    await repo.save_call(filed.call, filed.legs, filed.recordings)
    await repo.pool.execute("UPDATE recordings SET path = 's3://bucket/r1.wav' WHERE name = 'r1'")
    await repo.save_call(filed.call, filed.legs, filed.recordings)
    assert [r.path for r in await repo.recordings("c1")] == ["s3://bucket/r1.wav"]


async def test_a_journal_whose_pending_rows_are_large_is_not_rewritten_at_every_write(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshots waiting for a milestone stay in the journal across writes; once they alone
    exceed the compaction size, a rewrite after every write would copy them all each time
    (1,000 calls up: ~5 MB per write). The journal is rewritten once it has doubled instead,
    and still replays every call's newest snapshot."""
    import recorder.service.writer as writer_mod

    monkeypatch.setattr(writer_mod, "COMPACT_BYTES", 4096)
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    waiting = [CallRows(f"w{n}", call_row(f"w{n}", answered_at=None, state={"v": 1}), (), ())
               for n in range(20)]
    for rows in waiting:
        writer.stage_call(rows)
    assert await writer.flush(milestones=True) is True  # started: written, journal emptied
    for rows in waiting:  # their bookkeeping changes: no milestone, pending and journaled
        writer.stage_call(replace(rows, call=replace(rows.call, state={"v": 2, "pad": "x" * 300})))
    rewrites, appended, rewritten, last = 0, 0, 0, 0
    real_rewrite, real_write = journal.rewrite, journal.write

    def counted_rewrite(entries: Any) -> None:
        nonlocal rewrites, rewritten, last
        rewrites += 1
        real_rewrite(entries)
        last = journal.size
        rewritten += last

    def counted_write(data: bytes) -> bool:
        nonlocal appended
        appended += len(data)
        return real_write(data)

    monkeypatch.setattr(journal, "rewrite", counted_rewrite)
    monkeypatch.setattr(journal, "write", counted_write)
    for n in range(200):  # other calls start (milestones), one write each
        writer.stage_call(CallRows(f"n{n}", call_row(f"n{n}", state={"pad": "y" * 300}), (), ()))
        assert await writer.flush(milestones=True) is True
    assert 0 < rewrites <= 20, f"{rewrites} rewrites for 200 writes"
    assert rewritten <= 2 * appended, f"{rewritten} bytes rewritten for {appended} appended"
    assert journal.size <= 2 * max(4096, last) + 2048  # bounded all the same (one append over)
    # a waiting call reaches a milestone: PostgreSQL gets a newer snapshot than the journal's
    answered = waiting[0].call
    writer.stage_call(replace(waiting[0], call=replace(answered, answered_at=T0, state={"v": 3})))
    assert await writer.flush(milestones=True) is True
    # kill -9: each call's newest snapshot is what PostgreSQL keeps after the replay
    assert await Writer(repo, journal=Journal(tmp_path / "j")).replay() >= len(waiting) - 1
    for rows in waiting:
        row = await repo.call(rows.call_id)
        want = {"v": 3} if rows is waiting[0] else {"v": 2, "pad": "x" * 300}
        assert row is not None and row.state == want


async def test_a_journal_that_missed_a_write_postgresql_took_is_rewritten_at_once(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk refused an append but PostgreSQL took its rows: the journal holds an older
    snapshot of that call than PostgreSQL. It is rewritten after that write, small as it is, so
    a crash's replay does not put the older snapshot back."""
    journal = Journal(tmp_path / "j")
    writer = Writer(repo, journal=journal)
    waiting = CallRows("w", call_row("w", answered_at=None, state={"v": 1}), (), ())
    writer.stage_call(waiting)
    assert await writer.flush(milestones=True) is True
    writer.stage_call(replace(waiting, call=replace(waiting.call, state={"v": 2})))  # waits
    ringing = CallRows("a", call_row("a", answered_at=None, state={"v": 1}), (), ())
    writer.stage_call(ringing)
    assert await writer.flush(milestones=True) is True  # the journal: w v2, a v1
    monkeypatch.setattr(journal, "write", lambda data: False)  # the disk refuses the next
    writer.stage_call(replace(ringing, call=replace(ringing.call, answered_at=T0,
                                                   state={"v": 2})))
    assert await writer.flush(milestones=True) is True  # PostgreSQL took a v2 all the same
    monkeypatch.undo()
    rewrites = 0
    real_rewrite = journal.rewrite

    def counted(entries: Any) -> None:
        nonlocal rewrites
        rewrites += 1
        real_rewrite(entries)

    monkeypatch.setattr(journal, "rewrite", counted)
    writer.stage_call(CallRows("b", call_row("b", state={"v": 1}), (), ()))
    assert await writer.flush(milestones=True) is True
    assert rewrites == 0, "rewritten again: the journal was caught up already"
    # kill -9, then the replay
    await Writer(repo, journal=Journal(tmp_path / "j")).replay()
    row = await repo.call("a")
    assert row is not None and row.state == {"v": 2}, "the replay put back an older snapshot"
    row = await repo.call("w")
    assert row is not None and row.state == {"v": 2}


async def test_a_small_journal_is_compacted_before_it_fills(
    repo: Repository, tmp_path: Path
) -> None:
    """storage.journal_max_mb may be below the compaction size: the journal is rewritten on
    its way to the bound, never left to fill (rows in memory only, an error logged)."""
    journal = Journal(tmp_path / "j", max_bytes=16 * 1024)
    writer = Writer(repo, journal=journal)
    waiting = [CallRows(f"w{n}", call_row(f"w{n}", answered_at=None, state={"v": 1}), (), ())
               for n in range(8)]
    for rows in waiting:
        writer.stage_call(rows)
    assert await writer.flush(milestones=True) is True
    for rows in waiting:  # pending, journaled: ~4 KB
        writer.stage_call(replace(rows, call=replace(rows.call, state={"v": 2, "pad": "x" * 300})))
    with capture_logs() as logs:
        for n in range(100):  # ~60 KB appended in all
            writer.stage_call(CallRows(f"n{n}", call_row(f"n{n}", state={"p": "y" * 300}), (), ()))
            assert await writer.flush(milestones=True) is True
            assert not journal.full, f"the journal filled at write {n}"
    assert [x for x in logs if x["log_level"] in ("warning", "error")] == []
