"""The write-ahead journal: rows round-trip exactly, a torn line is skipped, the bound holds; and
with the writer against real PostgreSQL: rows PostgreSQL could not take are on disk, and a
replay (even twice) writes each row once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from recorder.db.repository import Repository
from recorder.db.rows import CallRows, EventRow, GapRow
from recorder.policy.audit import ConsentRow
from recorder.service.journal import Entry, Journal, decode, encode
from recorder.service.writer import Writer
from tests.harness.rows import T0, call_row, leg_row, rec_row

STATE_WITH_MARKERS = {"started_at": {"$dt": "2026-11-25T19:14:25+00:00"}, "legs": {}}


def consent() -> ConsentRow:
    return ConsentRow(
        call_id="c1", asterisk_id="pbx1", channel_id="ch1", party="caller", number="+1415",
        e164="+1415", region="US", state="CA", jurisdiction_source="geocoder",
        jurisdiction_detail="San Francisco", mode="all-party", governing_mode="all-party",
        rule="default", action="yes", recorded=True, retention="standard",
        announcement="before-bridge", prompt="consent-all-party-en", prompt_sha256=None,
        language="en", started_at=T0, ended_at=T0 + timedelta(seconds=6), played="finished",
        dtmf=None)


ENTRIES: list[Entry] = [
    Entry("call", "c1", CallRows("c1", call_row("c1", state=STATE_WITH_MARKERS),
                                 (leg_row("a", "c1"),), (rec_row("c1-s1", call_id="c1"),))),
    Entry("event", "k1", EventRow("c1", "pbx1", T0, "call.started", "a", None,
                                  {"since": T0.isoformat(), "n": [1, None]})),
    Entry("gap", "k2", GapRow("c1", "pbx1", "a", T0, T0 + timedelta(seconds=1), 1000,
                              "not in any recording")),
    Entry("consent", "k3", consent()),
    Entry("tag", "c1/matter:1", ("c1", "matter:1", "agi")),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.kind for e in ENTRIES])
def test_each_kind_of_row_round_trips_exactly(entry: Entry) -> None:
    assert decode(encode(entry)) == entry


# A call's line as daemons wrote it before the model stopped handing over rows (SaveCall then
# carried them): a journal left by one still replays.
OLD_CALL_LINE = (
    '{"t":"call","k":"c1","v":{"call":{"call_id":"c1","asterisk_id":"pbx1","direction":"inbound",'
    '"caller_number":null,"caller_e164":null,"callee_number":"214","callee_e164":null,'
    '"extension":"214","department":null,"started_at":{"$journal-dt":"2026-11-25T19:14:25+00:00"},'
    '"answered_at":null,"ended_at":null,"outcome":null,"status":"active","fallback":false,'
    '"state":{"v":1},"recorded":null,"retention_class":null,"decided_by":null,"linked_calls":null},'
    '"legs":[],"recordings":[]}}')


def test_a_call_line_of_an_older_daemon_replays() -> None:
    entry = decode(OLD_CALL_LINE)
    assert entry.kind == "call" and isinstance(entry.row, CallRows)
    assert (entry.row.call_id, entry.row.call.started_at, entry.row.call.state) == (
        "c1", T0.replace(microsecond=0), {"v": 1})
    assert decode(encode(entry)) == entry  # and is written in today's form


@pytest.mark.parametrize(("line", "row"), [
    (b'{"t":"state","k":"c1","r":{"call_id":"c1","$dt":1}}', {"call_id": "c1", "$dt": 1}),
    (b'{"t":"state","k":"c1","r":[1]}', ValueError),  # a snapshot is an object
    (b'{"t":"state","k":"c1"}', KeyError),
])
def test_a_state_line_reads_back_as_the_snapshot_written(line: bytes, row: Any) -> None:
    if isinstance(row, type):
        with pytest.raises(row):
            decode(line)
        return
    entry = decode(line)
    assert (entry.kind, entry.key, entry.row) == ("state", "c1", row)
    assert encode(Entry("state", "c1", msgspec.Raw(msgspec.json.encode(row)))) == line


def test_a_call_state_keeps_its_own_markers() -> None:
    (call,) = [e for e in ENTRIES if e.kind == "call"]
    assert decode(encode(call)).row.call.state == STATE_WITH_MARKERS


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    assert journal.append(ENTRIES[:2])
    with journal.path.open("ab") as f:
        f.write(encode(ENTRIES[2])[:40])  # the crash's own half line
    with capture_logs() as logs:
        assert journal.read() == ENTRIES[:2]
    assert [e["event"] for e in logs] == ["journal.line_skipped"]


def test_the_bound_holds_and_warns_first(tmp_path: Path) -> None:
    one = len(encode(ENTRIES[1])) + 1
    journal = Journal(tmp_path / "j", max_bytes=one * 5)
    with capture_logs() as logs:
        assert all(journal.append([ENTRIES[1]]) for _ in range(5))
        assert journal.append([ENTRIES[1]]) is False
    assert [e["event"] for e in logs] == ["journal.filling", "journal.full"]
    assert journal.size == one * 5
    journal.clear()
    assert journal.read() == [] and journal.size == journal.path.stat().st_size == 0


async def test_rows_the_database_cannot_take_are_journaled_and_replayed_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    away = await Repository.connect(pg_dsn, max_size=1)
    await away.close()  # PostgreSQL "away": every write fails
    journal = Journal(tmp_path / "j")
    writer = Writer(away, journal=journal)
    call = call_row("c1")
    writer.stage_call(CallRows("c1", call, (leg_row("a", "c1"),), ()))
    writer.stage_event(EventRow("c1", "pbx1", T0, "call.started"))
    writer.stage_tags("c1", ("matter:1",), "agi")
    assert await writer.flush() is False
    kept = journal.read()
    assert [e.kind for e in kept] == ["call", "event", "tag"]
    writer.stage_event(EventRow("c1", "pbx1", T0, "call.answered"))
    assert await writer.flush() is False  # retried later: but on disk at once
    assert [e.kind for e in journal.read()] == ["call", "event", "tag", "event"]

    repo = await Repository.connect(pg_dsn, max_size=2)
    try:
        for _ in range(2):  # a restart, and a second one before the journal was emptied
            copy = Journal(tmp_path / "copy")
            copy.append(journal.read())
            assert await Writer(repo, journal=copy).replay() == 4
        assert copy.read() == [] and copy.size == 0  # emptied once written
        events: list[Any] = await repo.events("c1")
        assert [e.kind for e in events] == ["call.started", "call.answered"]  # once each
        assert [leg.channel_id for leg in await repo.legs("c1")] == ["a"]
        open_calls = await Writer(repo).open_calls("pbx1")
        assert [c.call_id for c in open_calls] == ["c1"]
    finally:
        await repo.close()


async def test_open_calls_prefer_the_journal_s_newer_snapshot(
    tmp_path: Path, repo: Repository
) -> None:
    await repo.save_call(call_row("c1", state={"v": 1}), [], [])
    writer = Writer(repo, journal=Journal(tmp_path / "j"))
    writer.stage_call(CallRows("c1", call_row("c1", state={"v": 2}), (), ()))
    writer.stage_call(CallRows("c2", call_row("c2", status="ended", state=None), (), ()))
    await repo.save_call(call_row("c2", state={"v": 1}), [], [])
    rows = {c.call_id: c for c in await writer.open_calls("pbx1")}
    assert set(rows) == {"c1"} and rows["c1"].state == {"v": 2}  # c2 ended meanwhile
