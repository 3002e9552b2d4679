"""Repository against the real, migrated PostgreSQL (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from recorder.db.repository import Repository
from recorder.db.rows import EventRow
from tests.harness.rows import T0, call_row, leg_row, rec_row


async def test_save_call_round_trip(repo: Repository) -> None:
    call = call_row()
    legs = [leg_row("c2", role="callee"), leg_row("c1")]
    recs = [rec_row(), rec_row("20261125T191425-3fa9c2d1-s2", segment=2)]
    await repo.save_call(call, legs, recs)
    assert await repo.call(call.call_id) == call
    assert await repo.legs(call.call_id) == sorted(legs, key=lambda leg: leg.channel_id)
    assert await repo.recordings(call.call_id) == recs
    assert await repo.recording("pbx1", recs[1].name) == recs[1]
    assert await repo.recording("pbx2", recs[1].name) is None  # names are per server
    assert await repo.call("20000101T000000-00000000") is None
    got = await repo.call(call.call_id)
    assert got is not None and got.started_at.tzinfo is not None
    assert got.started_at.utcoffset() == timedelta(0)


async def test_save_call_updates_snapshot(repo: Repository) -> None:
    await repo.save_call(call_row(), [leg_row("c1")], [rec_row()])
    ended = call_row(
        status="ended", outcome="answered", ended_at=T0 + timedelta(minutes=5), state=None
    )
    leg = leg_row("c1", ended_at=T0 + timedelta(minutes=5), hangup_cause=16, outcome="answered")
    await repo.save_call(ended, [leg], [rec_row(status="finished")])
    assert await repo.call(ended.call_id) == ended
    assert await repo.legs(ended.call_id) == [leg]
    assert [r.status for r in await repo.recordings(ended.call_id)] == ["finished"]


async def test_one_write_of_many_calls_keeps_each_rows_values(repo: Repository) -> None:
    """The writer's flush: each table's rows in one statement (arrays unnested). Array columns
    keep their elements whatever they hold; a leg in two snapshots of one flush (one statement
    may change a row once) is written as the later one has it, as when each was its own."""
    first, second = "20261125T191425-3fa9c2d1", "20261125T191426-3fa9c2d2"
    odd = ['a,"b}', "{c}", "d\\e", "", "NULL"]
    calls = [call_row(first, linked_calls=[second]), call_row(second, linked_calls=None,
                                                               caller_number=None)]
    shared = leg_row("shared", call_id=first)
    later = leg_row("shared", call_id=second, role="callee", outcome="answered")
    recs = [rec_row(legs=odd), rec_row(f"{second}-s1", call_id=second, legs=[])]
    await repo.write([(calls[0], [shared, leg_row("c1")], recs[:1]),
                      (calls[1], [later], recs[1:])])
    assert [await repo.call(c.call_id) for c in calls] == calls
    assert await repo.legs(first) == [leg_row("c1")]
    assert await repo.legs(second) == [later]
    assert [await repo.recording("pbx1", r.name) for r in recs] == recs


async def test_rows_of_one_key_in_one_write_each_meet_their_rule(repo: Repository) -> None:
    """A key twice in one write (each table's rows go in one statement, which may change a
    row only once): each row meets its table's rule as if written alone, in order: an ended
    call is not reopened by a later active row, a filed recording keeps its file."""
    ended = call_row(status="ended", outcome="answered", ended_at=T0 + timedelta(minutes=1))
    filed = rec_row(status="filed")
    await repo.write([(ended, [leg_row("c1")], [filed]),
                      (call_row(), [leg_row("c1", outcome="answered")], [rec_row()])])
    assert await repo.call(ended.call_id) == ended
    assert await repo.recording("pbx1", filed.name) == filed
    assert await repo.legs(ended.call_id) == [leg_row("c1", outcome="answered")]
    # and a second write of both calls' rows updates each
    other = "20261125T191426-3fa9c2d2"
    await repo.write([(call_row(other), [leg_row("c2", call_id=other)], [])])
    later = [call_row(other, status="ended", outcome="answered", linked_calls=[ended.call_id]),
             dataclasses.replace(ended, department="tax")]
    await repo.write([(c, [], []) for c in later])
    assert [await repo.call(c.call_id) for c in later] == later


async def test_save_call_is_all_or_nothing(repo: Repository) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await repo.save_call(call_row(), [leg_row("c1"), leg_row("c2", role="bystander")], [])
    assert await repo.call(call_row().call_id) is None
    assert await repo.legs(call_row().call_id) == []


@pytest.mark.parametrize(
    "field,value",
    [("direction", "sideways"), ("status", "paused"), ("outcome", "maybe"), ("call_id", "../x")],
)
async def test_call_checks(repo: Repository, field: str, value: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await repo.save_call(call_row(**{field: value}), [], [])


async def test_recording_checks(repo: Repository) -> None:
    await repo.save_call(call_row(), [], [])
    with pytest.raises(asyncpg.CheckViolationError):
        await repo.save_recording(rec_row(status="lost"))
    with pytest.raises(asyncpg.CheckViolationError, match="recordings_filed_has_file"):
        await repo.save_recording(rec_row(status="filed", path=None))
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await repo.save_recording(rec_row(call_id="20000101T000000-00000000"))


async def test_naive_datetimes_refused(repo: Repository) -> None:
    with pytest.raises(ValueError, match=r"CallRow\.started_at is a naive datetime"):
        await repo.save_call(call_row(started_at=datetime(2026, 1, 1)), [], [])
    with pytest.raises(ValueError, match="naive"):
        await repo.recent_calls(10, since=datetime(2026, 1, 1))


async def test_other_timezones_come_back_as_utc(repo: Repository) -> None:
    berlin = timezone(timedelta(hours=1))
    await repo.save_call(call_row(started_at=T0.astimezone(berlin)), [], [])
    got = await repo.call(call_row().call_id)
    assert got is not None and got.started_at == T0 and got.started_at.utcoffset() == timedelta(0)


ORDER = ["requested", "recording", "finished", "filed"]


def allowed(old: str, new: str) -> bool:
    if old == new:
        return True
    if old == "missing":
        return new == "filed"
    if old in ("filed", "failed"):
        return False
    if new in ("failed", "missing"):
        return True
    return ORDER.index(new) > ORDER.index(old)


STATUSES = ["requested", "recording", "finished", "filed", "failed", "missing"]


@pytest.mark.parametrize("old", STATUSES)
async def test_recording_status_only_advances(repo: Repository, old: str) -> None:
    await repo.save_call(call_row(), [], [])
    for i, new in enumerate(STATUSES):
        name = f"r{i}"
        assert await repo.save_recording(rec_row(name, old)) is True
        # Through save_call, like a late snapshot of the call model would.
        await repo.save_call(call_row(), [], [rec_row(name, new, error=f"to {new}")])
        got = await repo.recording("pbx1", name)
        assert got is not None
        assert got.status == (new if allowed(old, new) else old), (old, new)
        # And through save_recording, which says whether it wrote.
        assert await repo.save_recording(rec_row(name, new)) is allowed(got.status, new)


async def test_filed_survives_an_older_snapshot_and_keeps_its_file(repo: Repository) -> None:
    await repo.save_call(call_row(), [], [rec_row(status="recording")])
    filed = rec_row(status="filed", started_at=T0, ended_at=T0 + timedelta(seconds=60))
    assert await repo.save_recording(filed)
    await repo.save_call(
        call_row(status="ended", outcome="answered"), [], [rec_row(status="finished")]
    )
    assert await repo.recording("pbx1", filed.name) == filed
    # Same status again without the file facts: what is known stays known.
    assert await repo.save_recording(rec_row(status="filed", duration_ms=None, bytes=None))
    assert await repo.recording("pbx1", filed.name) == filed


async def test_missing_recording_found_later_is_filed(repo: Repository) -> None:
    await repo.save_call(call_row(), [], [rec_row(status="missing", error="not on ARI")])
    assert not await repo.save_recording(rec_row(status="finished"))
    assert await repo.save_recording(rec_row(status="filed"))
    got = await repo.recording("pbx1", rec_row().name)
    assert got is not None and got.status == "filed" and got.error is None


async def test_ended_call_is_not_reopened(repo: Repository) -> None:
    ended = call_row(status="ended", outcome="answered", ended_at=T0 + timedelta(minutes=1))
    await repo.save_call(ended, [], [])
    await repo.save_call(call_row(), [leg_row("c1")], [])
    assert await repo.call(ended.call_id) == ended
    assert len(await repo.legs(ended.call_id)) == 1  # legs of the snapshot are still saved


async def test_concurrent_saves_do_not_deadlock(repo: Repository) -> None:
    await repo.save_call(call_row(), [], [])
    recs = [rec_row(f"r{i}", segment=i) for i in range(20)]
    legs = [leg_row(f"c{i}") for i in range(20)]
    await asyncio.wait_for(
        asyncio.gather(
            *(repo.save_call(call_row(), legs[::step], recs[::step]) for step in (1, -1) * 4)
        ),
        timeout=30,
    )
    assert len(await repo.recordings(call_row().call_id)) == 20


async def test_open_calls_and_unfiled_recordings_per_server(repo: Repository) -> None:
    a = call_row("20261125T191425-00000001")
    b = call_row("20261125T191426-00000002", status="ended", outcome="busy")
    c = call_row("20261125T191427-00000003", asterisk_id="pbx2")
    for call in (a, b, c):
        await repo.save_call(call, [], [])
    assert await repo.open_calls("pbx1") == [a]
    assert await repo.open_calls("pbx2") == [c]
    statuses = {s: rec_row(f"r-{s}", s, call_id=a.call_id) for s in STATUSES}
    other = rec_row("r-other", "finished", call_id=c.call_id, asterisk_id="pbx2")
    for r in [*statuses.values(), other]:
        await repo.save_recording(r)
    unfiled = await repo.unfiled_recordings("pbx1")
    assert {r.status for r in unfiled} == {"requested", "recording", "finished", "missing"}
    assert await repo.unfiled_recordings("pbx2") == [other]


async def test_recent_calls(repo: Repository) -> None:
    calls = [
        call_row(f"20261125T19{i:02d}00-0000000{i}", started_at=T0 + timedelta(minutes=i))
        for i in range(5)
    ]
    for call in calls:
        await repo.save_call(call, [], [])
    assert await repo.recent_calls(3) == calls[::-1][:3]
    assert await repo.recent_calls(10, since=T0 + timedelta(minutes=3)) == calls[:2:-1]
    assert await repo.recent_calls(10, since=T0 + timedelta(days=1)) == []


async def test_events_append_only(repo: Repository, pg_dsn: str) -> None:
    await repo.save_call(call_row(), [], [])
    events = [
        EventRow(call_row().call_id, "pbx1", T0 + timedelta(seconds=1), "recording.started",
                 recording_name="r1", detail={"target": "bridge:b1", "n": [1, 2]}),
        EventRow(call_row().call_id, "pbx1", T0, "consent.played", channel_id="c1"),
        EventRow(call_row().call_id, "pbx1", T0, "leg.answered", channel_id="c1"),
    ]  # fmt: skip
    await repo.add_events(events)
    await repo.add_events([])
    # Time order; the insertion order breaks ties.
    assert await repo.events(call_row().call_id) == [events[1], events[2], events[0]]
    conn = await asyncpg.connect(pg_dsn)
    try:
        for sql in ("UPDATE call_events SET kind = 'x'", "DELETE FROM call_events"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert len(await repo.events(call_row().call_id)) == 3
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await repo.add_events([dataclasses.replace(events[0], call_id="20000101T000000-00000000")])


async def test_ping_and_connect_errors(repo: Repository) -> None:
    await repo.ping()
    with pytest.raises((OSError, asyncpg.PostgresError)):
        await Repository.connect("postgresql://postgres@127.0.0.1:1/verbatim")
