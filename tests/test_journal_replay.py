"""The journal after PostgreSQL returns: a replay never puts an older snapshot back over a newer
one, and a full journal takes nothing more (no re-encoding of the whole backlog per flush)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recorder.db.repository import Repository
from recorder.db.rows import CallRows, EventRow
from recorder.service.journal import Journal
from recorder.service.writer import Writer
from tests.harness.rows import T0, call_row


class Flaky:
    """The repository, away while `down`; `during_save` runs inside a call's save (another
    call's lane staging a row while this flush awaits PostgreSQL)."""

    def __init__(self, repo: Repository) -> None:
        self.repo, self.down = repo, False
        self.during_save: Callable[[], None] | None = None
        self.pool = repo.pool

    def _saving(self) -> None:
        if self.down:
            raise ConnectionError("away")
        if self.during_save is not None:
            self.during_save()
            self.during_save = None

    async def save_call(self, *a: Any) -> None:
        self._saving()
        await self.repo.save_call(*a)

    @property
    def writes_connected(self) -> bool:
        return not self.down and self.repo.writes_connected

    async def write(self, *a: Any, **kw: Any) -> None:  # the writer's flush: every row
        self._saving()
        await self.repo.write(*a, **kw)

    async def add_events(self, *a: Any) -> None:
        if self.down:
            raise ConnectionError("away")
        await self.repo.add_events(*a)

    async def add_gaps(self, *a: Any) -> None:
        await self.repo.add_gaps(*a)

    async def add_tags(self, *a: Any) -> None:
        await self.repo.add_tags(*a)


async def test_a_replay_after_recovery_writes_an_older_snapshot_over_a_newer_one(
    tmp_path: Path, repo: Repository
) -> None:
    flaky = Flaky(repo)
    journal = Journal(tmp_path / "j")
    writer = Writer(flaky, journal=journal, retry_every_s=0)  # type: ignore[arg-type]
    # PostgreSQL away: call A's snapshot v1 is journaled before Asterisk hears of it.
    flaky.down = True
    writer.stage_call(CallRows("A", call_row("A", state={"v": 1}), (), ()))
    assert await writer.flush() is False
    # PostgreSQL back: A's snapshot v2 is written, while call B's lane stages an event.
    flaky.down = False
    writer.stage_call(CallRows("A", call_row("A", state={"v": 2}), (), ()))
    flaky.during_save = lambda: writer.stage_event(EventRow("A", "pbx1", T0, "call.bridged"))
    assert await writer.flush() is True
    assert (await repo.call("A")).state == {"v": 2}  # type: ignore[union-attr]
    # kill -9 here; the next start replays the journal.
    await Writer(repo, journal=journal).replay()
    state = (await repo.call("A")).state  # type: ignore[union-attr]
    assert state == {"v": 2}, f"the replay put back an older snapshot of A: {state!r}"


async def test_journal_full_re_encodes_the_whole_backlog_at_every_flush(tmp_path: Path,
                                                                        repo: Repository) -> None:
    import recorder.service.journal as jmod

    flaky = Flaky(repo)
    flaky.down = True
    journal = Journal(tmp_path / "j", max_bytes=2000)
    writer = Writer(flaky, journal=journal, retry_every_s=3600)  # type: ignore[arg-type]
    encoded = 0
    real = jmod.encode

    def counting(entry: Any) -> bytes:
        nonlocal encoded
        encoded += 1
        return real(entry)

    jmod.encode = counting
    try:
        for n in range(300):  # a request per row, as the lanes do: a flush before each
            writer.stage_event(EventRow("A", "pbx1", T0, f"e{n}"))
            await writer.flush()
    finally:
        jmod.encode = real
    assert encoded < 3 * 300, f"{encoded} encodings for 300 rows (quadratic once full)"
