"""Retention on a real PostgreSQL and a real archive, with a controlled clock: what expires is
purged (file and row) with a tombstone, what has not stays, a class's length applies to the
calls already in it, and a run interrupted anywhere is finished by the next one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recorder.db.repository import Repository
from recorder.keeping.purge import Purger
from recorder.policy.model import Length, Policy, RetentionClass
from recorder.storage.store import LocalStore
from tests.harness.keeping_world import AST, T0, policy, seed_call

TWO_YEARS = policy(standard=Length(years=2), training=Length(days=90))
ENDED = T0 + timedelta(minutes=2)


class Crash(Exception):
    """Stands for kill -9 at a step: the run stops there, its open transaction rolls back."""


def purger(repo: Repository, archive: Path, p: Policy = TWO_YEARS, **kw: object) -> Purger:
    return Purger(repo.pool, LocalStore(archive), p, AST, **kw)  # type: ignore[arg-type]


async def rows(repo: Repository, sql: str, *args: object) -> list[dict[str, object]]:
    return [dict(r.items()) for r in await repo.pool.fetch(sql, *args)]


async def test_a_call_past_its_class_is_purged_with_a_tombstone(
    repo: Repository, tmp_path: Path
) -> None:
    old = await seed_call(repo, tmp_path, "old-call", segments=2)
    young = await seed_call(repo, tmp_path, "young-call", started=T0 + timedelta(days=400))
    mix = tmp_path / ".derived" / "old-call" / "call-1.wav"  # the call page's whole-call mix
    mix.parent.mkdir(parents=True)
    mix.write_bytes(b"RIFF")
    report = await purger(repo, tmp_path).run(ENDED + timedelta(days=731), kind="daily")
    assert not mix.parent.exists()  # no copy of the audio outlives its class

    assert (report.audio, report.metadata, report.missing_files) == (2, 0, 0)
    assert not any(f.exists() for f in old) and not old[0].parent.exists()
    assert young[0].exists()
    left = await rows(repo, "SELECT name FROM recordings ORDER BY name")
    assert left == [{"name": "young-call-s1"}]
    stones = await rows(repo, "SELECT * FROM tombstones ORDER BY recording_name")
    assert [s["recording_name"] for s in stones] == ["old-call-s1", "old-call-s2"]
    s = stones[0]
    assert (s["call_id"], s["asterisk_id"], s["what"], s["retention_class"], s["rule"]) == (
        "old-call", AST, "audio", "standard", "rule 'Office hours'")
    assert (s["status"], s["file_found"], s["path"]) == ("purged", True, str(old[0]))
    assert s["expired_at"] == ENDED.replace(year=ENDED.year + 2)
    assert s["job"] == report.job and report.job.startswith("daily-")
    # The call's metadata stays: the class keeps it.
    assert await repo.pool.fetchval("SELECT count(*) FROM calls") == 2


async def test_tombstone_keeps_the_deleted_files_hash(repo: Repository, tmp_path: Path) -> None:
    await seed_call(repo, tmp_path, "c1")
    filed = await repo.pool.fetchval("SELECT sha256 FROM recordings")
    await purger(repo, tmp_path).run(ENDED + timedelta(days=800))
    assert await repo.pool.fetchval("SELECT sha256 FROM tombstones") == filed


async def test_changing_a_class_length_moves_the_expiry_of_existing_calls(
    repo: Repository, tmp_path: Path
) -> None:
    files = await seed_call(repo, tmp_path, "c1", retention_class="training")
    now = ENDED + timedelta(days=100)
    longer = policy(standard=Length(years=2), training=Length(years=1))
    assert (await purger(repo, tmp_path, longer).run(now)).audio == 0
    assert files[0].exists()
    assert (await purger(repo, tmp_path, TWO_YEARS).run(now)).audio == 1  # 90 days now
    assert not files[0].exists()


async def test_class_from_the_default_when_the_call_has_none(
    repo: Repository, tmp_path: Path
) -> None:
    await seed_call(repo, tmp_path, "c1", retention_class=None)
    p = policy(standard=Length(days=30))
    assert (await purger(repo, tmp_path, p).run(ENDED + timedelta(days=31))).audio == 1


async def test_forever_and_unknown_classes_never_expire(repo: Repository, tmp_path: Path) -> None:
    await seed_call(repo, tmp_path, "kept", retention_class="litigation")
    await seed_call(repo, tmp_path, "renamed", retention_class="old-name")
    p = policy(standard=Length(days=1), litigation=None)
    report = await purger(repo, tmp_path, p).run(ENDED + timedelta(days=10_000))
    assert report.audio == 0 and report.unknown_classes == {"old-name": 1}
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 2


async def test_no_classes_means_nothing_expires(repo: Repository, tmp_path: Path) -> None:
    await seed_call(repo, tmp_path, "c1")
    report = await purger(repo, tmp_path, Policy()).run(ENDED + timedelta(days=10_000))
    assert report.audio == 0 and await repo.pool.fetchval("SELECT count(*) FROM recordings") == 1


async def test_metadata_goes_only_where_the_class_says_and_after_the_audio(
    repo: Repository, tmp_path: Path
) -> None:
    privileged = RetentionClass("privileged", Length(), Length(years=7))
    p = policy(standard=Length(years=2), privileged=privileged)
    files = await seed_call(repo, tmp_path, "priv", retention_class="privileged")
    await repo.pool.execute("INSERT INTO call_tags (call_id, tag) VALUES ('priv', 'matter:1')")

    report = await purger(repo, tmp_path, p).run(ENDED + timedelta(days=1))
    assert (report.audio, report.metadata) == (1, 0) and not files[0].exists()
    assert await repo.pool.fetchval("SELECT count(*) FROM calls") == 1

    report = await purger(repo, tmp_path, p).run(ENDED + timedelta(days=7 * 366))
    assert (report.audio, report.metadata) == (0, 1)
    for table in ("calls", "call_events", "call_tags", "recordings"):
        assert await repo.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    stone = (await rows(repo, "SELECT * FROM tombstones WHERE what = 'metadata'"))[0]
    assert (stone["call_id"], stone["status"], stone["recording_name"]) == ("priv", "purged", None)
    assert len(str(stone["sha256"])) == 64


async def test_append_only_logs_refuse_deletes_outside_a_purge(
    repo: Repository, tmp_path: Path
) -> None:
    import asyncpg

    await seed_call(repo, tmp_path, "c1")
    await purger(repo, tmp_path).run(ENDED + timedelta(days=800))  # a tombstone (audio)

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await repo.pool.execute("DELETE FROM call_events")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await repo.pool.execute("DELETE FROM tombstones")


async def test_dry_run_counts_and_deletes_nothing(repo: Repository, tmp_path: Path) -> None:
    files = await seed_call(repo, tmp_path, "c1", segments=3)
    report = await purger(repo, tmp_path).run(ENDED + timedelta(days=800), dry_run=True)
    assert (report.audio, report.by_class) == (3, {"standard": {"audio": 3}})
    assert report.bytes == sum(f.stat().st_size for f in files)
    assert all(f.exists() for f in files)
    assert await repo.pool.fetchval("SELECT count(*) FROM tombstones") == 0


async def test_batches_walk_every_recording_once(repo: Repository, tmp_path: Path) -> None:
    for i in range(7):
        cls = "training" if i % 2 else "standard"
        await seed_call(repo, tmp_path, f"c{i}", retention_class=cls)
    report = await purger(repo, tmp_path, batch=2).run(ENDED + timedelta(days=100))
    assert report.audio == 3  # the training calls only
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 4


async def test_a_recording_moved_between_the_steps_is_deleted_where_it_went(
    repo: Repository, tmp_path: Path
) -> None:
    """The uploader moves a recording (its row repointed, the local copy removed) after the
    purge marked it: the tombstone names the old copy, and the one the upload made must go
    too (before: it stayed, in the bucket, named by no row, past its class)."""
    (local,) = await seed_call(repo, tmp_path, "c1")
    moved = tmp_path / "bucket" / "c1-s1.wav"

    async def upload(at: str) -> None:
        if at == "marked":  # as recorder/storage/upload.py's _MOVE, then the local removal
            moved.parent.mkdir()
            moved.write_bytes(local.read_bytes())
            await repo.pool.execute("UPDATE recordings SET path = $1 WHERE name = 'c1-s1'",
                                    str(moved))
            local.unlink()

    report = await purger(repo, tmp_path, on_step=upload).run(ENDED + timedelta(days=800))
    assert report.audio == 1 and not moved.exists()
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 0


async def test_a_class_is_counted_in_whole_days_whatever_the_servers_zone(
    repo: Repository, pg_dsn: str, tmp_path: Path
) -> None:
    """On a PostgreSQL whose time zone keeps DST, `ended + '1 day'` across the change is 23
    hours: a one-day recording would be purged an hour early. Counted in UTC it is 24."""
    import asyncpg

    ended = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)  # New York springs forward on 10 March
    (file,) = await seed_call(repo, tmp_path, "dst", started=ended - timedelta(minutes=2))
    one_day = policy(standard=Length(days=1))
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2,
                                     server_settings={"timezone": "America/New_York"})
    try:
        run = Purger(pool, LocalStore(tmp_path), one_day, AST)
        assert (await run.run(ended + timedelta(hours=23, minutes=30))).audio == 0
        assert file.exists()
        assert (await run.run(ended + timedelta(hours=24, minutes=1))).audio == 1
    finally:
        await pool.close()


@pytest.mark.parametrize("step", ["marked", "deleted"])
async def test_a_run_killed_between_steps_is_finished_by_the_next(
    repo: Repository, tmp_path: Path, step: str
) -> None:
    files = await seed_call(repo, tmp_path, "c1", segments=3)
    now = ENDED + timedelta(days=800)

    async def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        await purger(repo, tmp_path, on_step=crash).run(now)
    states = await rows(repo, "SELECT status FROM tombstones")
    assert states == [{"status": "purging"}] * 3
    # Whatever is on disk, every row is still there, and says (through its tombstone) why.
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 3
    assert all(f.exists() for f in files) == (step == "marked")

    report = await purger(repo, tmp_path).run(now)
    assert (report.audio, report.finished) == (3, 3)
    assert report.missing_files == (3 if step == "deleted" else 0)
    assert not any(f.exists() for f in files)
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 0
    stones = await rows(repo, "SELECT status, file_found FROM tombstones")
    assert stones == [{"status": "purged", "file_found": step == "marked"}] * 3


async def test_a_metadata_purge_killed_midway_rolls_back_and_is_finished(
    repo: Repository, tmp_path: Path
) -> None:
    gone = RetentionClass("gone", Length(), Length(days=1))
    p = policy(standard=Length(years=2), gone=gone)
    await seed_call(repo, tmp_path, "c1", retention_class="gone")
    now = ENDED + timedelta(days=2)

    async def crash(at: str) -> None:
        if at == "deleted" and await repo.pool.fetchval(
                "SELECT count(*) FROM tombstones WHERE what = 'metadata'"):  # fmt: skip
            raise Crash(at)

    with pytest.raises(Crash):
        await purger(repo, tmp_path, p, on_step=crash).run(now)
    assert await repo.pool.fetchval("SELECT count(*) FROM calls") == 1  # rolled back
    report = await purger(repo, tmp_path, p).run(now)
    assert (report.metadata, report.finished) == (1, 1)
    assert await repo.pool.fetchval("SELECT count(*) FROM calls") == 0


async def test_only_this_servers_files_in_this_archive(repo: Repository, tmp_path: Path) -> None:
    ours = await seed_call(repo, tmp_path / "a", "ours")
    theirs = await seed_call(repo, tmp_path / "b", "theirs", asterisk_id="pbx2")
    elsewhere = await seed_call(repo, tmp_path / "b", "elsewhere")  # ours, another archive
    report = await purger(repo, tmp_path / "a").run(ENDED + timedelta(days=800))
    assert report.audio == 1 and not ours[0].exists()
    assert theirs[0].exists() and elsewhere[0].exists()


async def test_two_runs_at_once_purge_each_recording_once(
    repo: Repository, tmp_path: Path
) -> None:
    import asyncio

    for i in range(12):
        await seed_call(repo, tmp_path, f"c{i:02d}", segments=2)
    now = ENDED + timedelta(days=800)
    reports = await asyncio.gather(*(purger(repo, tmp_path, batch=5).run(now) for _ in range(3)))
    assert sum(r.audio for r in reports) == 24
    assert await repo.pool.fetchval("SELECT count(*) FROM tombstones") == 24
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 0
    assert await repo.pool.fetchval(
        "SELECT count(DISTINCT recording_name) FROM tombstones WHERE status = 'purged'") == 24
