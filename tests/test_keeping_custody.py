"""Tamper evidence on a real PostgreSQL and archive: the custody chain (filed, held, released,
purged, played) and `verify`, which finds a flipped byte, a deleted file, an extra file and an
edited custody row; concurrent writers never fork a chain."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recorder.api.access_log import AccessLog, Origin
from recorder.api.users import UserStore
from recorder.config import KeepingConfig
from recorder.db.repository import Repository
from recorder.keeping import custody
from recorder.keeping.holds import Holds, hold_spec
from recorder.keeping.job import Keeper
from recorder.keeping.purge import Purger
from recorder.keeping.verify import VerifyReport, verify
from recorder.policy.model import Length
from recorder.storage.store import LocalStore
from tests.harness.keeping_world import AST, T0, policy, seed_call

HERE = Origin("127.0.0.1", "pytest")


async def check(repo: Repository, archive: Path, **kw: Any) -> VerifyReport:
    return await verify(repo.pool, LocalStore(archive), AST, **kw)


def kinds(report: VerifyReport) -> list[tuple[str, str]]:
    return [(p.kind, p.where) for p in report.problems]


async def chain(repo: Repository, name: str = AST) -> list[dict[str, Any]]:
    rows = await repo.pool.fetch("SELECT * FROM custody WHERE chain = $1 ORDER BY seq", name)
    return [dict(r.items()) for r in rows]


@pytest.fixture
async def filed(repo: Repository, tmp_path: Path) -> list[Path]:
    files = await seed_call(repo, tmp_path, "c1", segments=2)
    files += await seed_call(repo, tmp_path, "c2", started=T0 + timedelta(days=1))
    return files


async def test_filing_is_a_custody_event_and_the_chain_verifies(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    rows = await chain(repo)
    assert [(r["seq"], r["kind"], r["recording_name"]) for r in rows] == [
        (1, "filed", "c1-s1"), (2, "filed", "c1-s2"), (3, "filed", "c2-s1")]
    assert rows[0]["prev_sha256"] == custody.GENESIS
    assert rows[1]["prev_sha256"] == rows[0]["sha256"]
    assert rows[0]["subject_sha256"] == await repo.pool.fetchval(
        "SELECT sha256 FROM recordings WHERE name = 'c1-s1'")
    report = await check(repo, tmp_path)
    assert report.ok, report.problems
    assert (report.chains, report.links, report.files, report.hashed) == (1, 3, 3, 3)
    assert report.heads == {AST: f"3:{rows[2]['sha256']}"}


async def test_a_flipped_byte_is_a_mismatch(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    data = bytearray(filed[1].read_bytes())
    data[100] ^= 0x01
    filed[1].write_bytes(bytes(data))
    assert kinds(await check(repo, tmp_path)) == [("mismatch", str(filed[1]))]


async def test_a_deleted_file_is_missing(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    filed[0].unlink()
    assert kinds(await check(repo, tmp_path)) == [("missing_file", str(filed[0]))]


async def test_an_extra_file_is_an_orphan(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    extra = filed[0].parent / "c1-s3.wav"  # between the call's files, in the listing's order
    extra.write_bytes(b"planted")
    late = tmp_path / "2031" / "01" / "01" / "x" / "x.wav"  # after every recording
    late.parent.mkdir(parents=True)
    late.write_bytes(b"planted")
    assert kinds(await check(repo, tmp_path)) == [("orphan_file", str(extra)),
                                                  ("orphan_file", str(late))]  # fmt: skip


async def test_a_row_deleted_with_its_file_is_still_missing(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    """Deleting a recording's row and its file together leaves the file check nothing to
    miss; the chain's 'filed' event remembers it, and no purge says why it went (before:
    verify said ok). A purge's deletions are accounted for."""
    filed[0].unlink()
    await repo.pool.execute("DELETE FROM recordings WHERE name = 'c1-s1'")
    assert [(p.kind, p.where) for p in (await check(repo, tmp_path)).problems] == [
        ("missing_file", str(filed[0]))]
    await Purger(repo.pool, LocalStore(tmp_path), policy(standard=Length(days=1)),
                 AST).run(T0 + timedelta(days=30))  # fmt: skip
    assert [p.where for p in (await check(repo, tmp_path)).problems] == [str(filed[0])]


@pytest.mark.parametrize("meanwhile", ["filed", "moved", "purged"])
async def test_what_happens_while_verify_runs_raises_no_false_alarm(
    repo: Repository, tmp_path: Path, filed: list[Path], monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """verify reads the rows in one snapshot and the archive as its listing reaches each file,
    minutes apart in a real archive: a recording filed, moved (an upload) or purged in between
    is no orphan and no missing file."""
    from recorder.storage import store as store_module

    monkeypatch.setattr(store_module, "_LIST_BATCH", 1)  # the listing read as it goes
    moved = tmp_path / "2031" / "01" / "01" / "c1" / "c1-s1.wav"
    done: list[str] = []

    class Busy(LocalStore):
        async def digest(self, key: str) -> Any:
            if not done:  # the first file re-hashed: the daemon, an upload or a purge acts
                done.append(key)
                if meanwhile == "filed":
                    await seed_call(repo, tmp_path, "new", started=T0 + timedelta(days=1))
                elif meanwhile == "moved":
                    moved.parent.mkdir(parents=True)
                    moved.write_bytes(filed[0].read_bytes())
                    await repo.pool.execute("UPDATE recordings SET path = $1 WHERE name = "
                                            "'c1-s1'", str(moved))  # fmt: skip
                    filed[0].unlink()
                else:
                    filed[2].unlink()
                    async with repo.pool.acquire() as conn, conn.transaction():
                        await conn.execute("DELETE FROM recordings WHERE name = 'c2-s1'")
                        await custody.append(conn, AST, "purged", call_id="c2",
                                             asterisk_id=AST, recording_name="c2-s1")
            return await super().digest(key)

    report = await verify(repo.pool, Busy(tmp_path), AST)
    assert report.ok, report.problems
    # what is wrong at the end is still said
    (tmp_path / "2031" / "01" / "01").mkdir(parents=True, exist_ok=True)
    (tmp_path / "2031" / "01" / "01" / "x.wav").write_bytes(b"planted")
    assert [p.kind for p in (await check(repo, tmp_path)).problems] == ["orphan_file"]


async def test_an_edited_custody_row_breaks_the_chain(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    # What an intruder with the database owner's rights could do: switch the guard off, make
    # the chain vouch for another file.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await repo.pool.execute("UPDATE custody SET detail = '{}'")
    async with repo.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE custody DISABLE TRIGGER custody_append_only")
        await conn.execute("UPDATE custody SET subject_sha256 = $1 WHERE seq = 2", "b" * 64)
        await conn.execute("ALTER TABLE custody ENABLE TRIGGER custody_append_only")
    # The row no longer hashes to what the next row links to; and the file is not what the
    # chain now claims it was filed as.
    assert kinds(await check(repo, tmp_path)) == [("broken_link", f"chain {AST} seq 2"),
                                                  ("mismatch", str(filed[1]))]  # fmt: skip


async def test_a_rewritten_row_hash_and_a_removed_row_still_show(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    """Recomputing the row's hash too (rewriting it) still leaves the next link broken; deleting
    a row leaves a gap."""
    rows = await chain(repo)
    forged = dict(rows[1], subject_sha256="c" * 64, detail="{}")
    new_hash = custody.row_hash(forged["prev_sha256"], forged)
    async with repo.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE custody DISABLE TRIGGER custody_append_only")
        await conn.execute("UPDATE custody SET subject_sha256 = $1, detail = '{}', sha256 = $2 "
                           "WHERE seq = 2", "c" * 64, new_hash)  # fmt: skip
        await conn.execute("DELETE FROM custody WHERE seq = 3")
        await conn.execute("ALTER TABLE custody ENABLE TRIGGER custody_append_only")
    problems = kinds(await check(repo, tmp_path))
    assert ("broken_link", f"chain {AST} head") in problems  # row 3 is gone: the head says 3
    assert ("mismatch", str(filed[1])) in problems  # c1-s2's row is not what it was filed as


async def test_plays_and_downloads_are_chained_in(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    user = await UserStore(repo.pool).add("ann", "admin", [], None)
    who = user.principal("token")
    log = AccessLog(repo.pool)
    await log.record(who, "play", HERE, call_id="c1", asterisk_id=AST, recording_name="c1-s1",
                     detail={"range": None})  # fmt: skip
    await log.record(who, "download", HERE, call_id="c1", asterisk_id=AST,
                     recording_name="c1-s1")  # fmt: skip
    await log.record(who, "view", HERE, call_id="c1")  # not a custody event
    rows = await chain(repo)
    assert [(r["kind"], r["access_id"]) for r in rows[3:]] == [("play", 1), ("download", 2)]
    assert (await check(repo, tmp_path)).ok
    async with repo.pool.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE access_log DISABLE TRIGGER access_log_append_only")
        await conn.execute("UPDATE access_log SET user_name = 'someone' WHERE id = 1")
        await conn.execute("ALTER TABLE access_log ENABLE TRIGGER access_log_append_only")
    assert kinds(await check(repo, tmp_path)) == [("broken_link", f"chain {AST} seq 4")]


async def test_holds_and_purges_are_custody_events(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    alice = (await UserStore(repo.pool).add("alice", "admin", [], None)).principal("token")
    holds = Holds(repo.pool, False)
    hold = await holds.add(hold_spec({"name": "M", "reason": "r", "call_id": "c1"}), alice, HERE)
    p = policy(standard=Length(days=1))
    later = T0 + timedelta(days=30)
    assert (await Purger(repo.pool, LocalStore(tmp_path), p, AST).run(later)).audio == 1
    await holds.release(hold.id, "done", alice, HERE)
    assert (await Purger(repo.pool, LocalStore(tmp_path), p, AST).run(later)).audio == 2
    firm = [(r["kind"], r["hold_id"]) for r in await chain(repo, custody.FIRM)]
    assert firm == [("held", hold.id), ("released", hold.id)]
    purged = [(r["kind"], r["recording_name"]) for r in (await chain(repo))[3:]]
    assert purged == [("purged", "c2-s1"), ("purged", "c1-s1"), ("purged", "c1-s2")]
    report = await check(repo, tmp_path)
    assert report.ok and report.chains == 2 and report.files == 0


async def _append_many(dsn: str, chain_name: str, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for i in range(n):
            await conn.execute("SELECT custody_append($1, 'held', NULL, NULL, NULL, $2, NULL, "
                               "NULL, NULL)", chain_name, i)  # fmt: skip
    finally:
        await conn.close()


async def test_concurrent_writers_never_fork_a_chain(
    repo: Repository, pg_dsn: str, tmp_path: Path
) -> None:
    writers = [_append_many(pg_dsn, name, 40) for name in ("a", "a", "a", "a", "b", "b")]
    files = [seed_call(repo, tmp_path, f"f{i}") for i in range(10)]  # the daemon, meanwhile
    await asyncio.gather(*writers, *files)
    counts = {r["chain"]: (r["n"], r["top"]) for r in await repo.pool.fetch(
        "SELECT chain, count(*) AS n, max(seq) AS top FROM custody GROUP BY chain")}  # fmt: skip
    assert counts == {"a": (160, 160), "b": (80, 80), AST: (10, 10)}
    report = await check(repo, tmp_path)
    assert report.ok, report.problems[:3]
    assert report.links == 250


async def test_since_and_sample(repo: Repository, tmp_path: Path, filed: list[Path]) -> None:
    old_orphan = filed[0].parent / "planted.wav"
    old_orphan.write_bytes(b"x")
    since = T0 + timedelta(days=1)
    report = await check(repo, tmp_path, since=since)
    assert report.ok and report.files == 1  # only c2's day
    report = await check(repo, tmp_path, sample_percent=1, rng=random.Random(7))
    assert report.files == 3 and report.hashed < 3
    assert kinds(report) == [("orphan_file", str(old_orphan))]


async def test_the_daemon_verifies_periodically_and_tells_the_hook(
    repo: Repository, tmp_path: Path, filed: list[Path]
) -> None:
    filed[0].unlink()
    keeper = Keeper(repo.pool, LocalStore(tmp_path), policy(), KeepingConfig(
        purge_at=None, verify_every_s=1))  # fmt: skip
    seen: list[VerifyReport] = []
    keeper.on_verified.append(seen.append)
    task = asyncio.create_task(keeper.run(lambda: AST))
    try:
        for _ in range(60):
            if seen:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert seen and kinds(seen[0]) == [("missing_file", str(filed[0]))]
    assert keeper.last_verified is seen[0]


def test_python_and_database_agree_on_field_encoding() -> None:
    assert custody.field(None) == "-" and custody.field("é") == "2:é"
    assert custody.field(12) == "2:12"



async def test_a_purge_in_many_batches_chains_its_events_in_tombstone_order(
    repo: Repository, tmp_path: Path
) -> None:
    # Two batches are in step 2 at once (the next one's files go while this one commits): the
    # custody events must still follow the tombstones one for one, and the chain verify.
    for i in range(9):
        await seed_call(repo, tmp_path, f"c{i}", segments=2)
    p = policy(standard=Length(days=1))
    report = await Purger(repo.pool, LocalStore(tmp_path), p, AST, batch=4).run(
        T0 + timedelta(days=30))
    assert report.audio == 18
    stones = [r["id"] for r in await repo.pool.fetch(
        "SELECT id FROM tombstones WHERE status = 'purged' ORDER BY id")]  # fmt: skip
    purged = [(r["detail"], r["kind"]) for r in await chain(repo) if r["kind"] != "filed"]
    assert [(d["tombstone"], k) for d, k in purged] == [(i, "purged") for i in stones]
    assert (await check(repo, tmp_path)).ok


async def test_a_failure_in_one_batch_rolls_back_the_next_and_a_rerun_finishes(
    repo: Repository, tmp_path: Path
) -> None:
    files = [f for i in range(6) for f in await seed_call(repo, tmp_path, f"c{i}")]
    p = policy(standard=Length(days=1))
    deleted = 0

    async def fail_second(step: str) -> None:
        nonlocal deleted
        if step == "deleted":
            deleted += 1
            if deleted == 2:
                raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        await Purger(repo.pool, LocalStore(tmp_path), p, AST, batch=2,
                     on_step=fail_second).run(T0 + timedelta(days=30))  # fmt: skip
    # Each row still there has its file, or a 'purging' tombstone saying why not.
    left = await repo.pool.fetch(
        "SELECT r.path, t.status FROM recordings r LEFT JOIN tombstones t "
        "ON t.recording_name = r.name AND t.status = 'purging'")  # fmt: skip
    assert all(Path(r["path"]).exists() or r["status"] == "purging" for r in left)
    assert len(left) >= 4  # the failed batch (and any after it) rolled back
    report = await Purger(repo.pool, LocalStore(tmp_path), p, AST, batch=2).run(
        T0 + timedelta(days=30))
    assert report.audio + 6 - len(left) == 6
    assert not any(f.exists() for f in files)
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 0
    assert (await check(repo, tmp_path)).ok
