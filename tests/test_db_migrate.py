"""The migration runner and the schema of 0001_core, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from recorder.db import rows
from recorder.db.migrate import DEFAULT_DIRECTORY, MigrationError, load, migrate, statements
from recorder.devtools.pgcluster import PrivateCluster


@pytest.fixture
def fresh_dsn(pg_cluster: PrivateCluster) -> Iterator[str]:
    """An empty database of its own (the shared one stays migrated for the other tests)."""
    name = "m_" + uuid.uuid4().hex[:12]
    pg_cluster.create_database(name)
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


@pytest.fixture
def mig_dir(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    (d / "0002_second.sql").write_text("CREATE TABLE b (y int); INSERT INTO b VALUES (1);")
    return d


async def test_applies_in_order_once_and_records_hashes(fresh_dsn: str, mig_dir: Path) -> None:
    assert await migrate(fresh_dsn, mig_dir) == ["0001_first", "0002_second"]
    assert await migrate(fresh_dsn, mig_dir) == []
    (mig_dir / "0003_third.sql").write_text("ALTER TABLE a ADD COLUMN z text;")
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await migrate(conn, mig_dir) == ["0003_third"]  # an open connection works too
        assert not conn.is_in_transaction()
        got = await conn.fetch("SELECT version, name, sha256, applied_at FROM schema_migrations")
    finally:
        await conn.close()
    on_disk = {m.version: m.sha256 for m in load(mig_dir)}
    assert {r["version"]: r["sha256"] for r in got} == on_disk
    assert [r["name"] for r in sorted(got, key=lambda r: r["version"])] == [
        "0001_first", "0002_second", "0003_third",
    ]  # fmt: skip
    assert all(r["applied_at"].tzinfo is not None for r in got)


async def test_changed_applied_file_is_an_error_naming_it(fresh_dsn: str, mig_dir: Path) -> None:
    await migrate(fresh_dsn, mig_dir)
    (mig_dir / "0002_second.sql").write_text("CREATE TABLE b (y bigint);")
    with pytest.raises(MigrationError, match=r"0002_second\.sql changed after it was applied"):
        await migrate(fresh_dsn, mig_dir)


async def test_failing_file_leaves_no_trace(fresh_dsn: str, mig_dir: Path) -> None:
    (mig_dir / "0003_bad.sql").write_text("CREATE TABLE c (x int); SELECT * FROM nowhere;")
    with pytest.raises(MigrationError, match=r"0003_bad\.sql failed"):
        await migrate(fresh_dsn, mig_dir)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        assert [r["version"] for r in versions] == [1, 2]  # the good ones stay applied
        assert await conn.fetchval("SELECT to_regclass('c')") is None
        # The advisory lock was released despite the error.
        assert await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    finally:
        await conn.close()


async def test_concurrent_daemons_do_not_race(fresh_dsn: str, mig_dir: Path) -> None:
    # pg_sleep widens the window: without the lock both would try CREATE TABLE a.
    (mig_dir / "0001_first.sql").write_text("SELECT pg_sleep(0.3); CREATE TABLE a (x int);")
    results = await asyncio.gather(*(migrate(fresh_dsn, mig_dir) for _ in range(3)))
    assert sorted(map(len, results)) == [0, 0, 2]


async def test_no_transaction_marker(fresh_dsn: str, mig_dir: Path) -> None:
    """Statement by statement: CREATE INDEX CONCURRENTLY after a function it indexes."""
    await migrate(fresh_dsn, mig_dir)
    (mig_dir / "0003_idx.sql").write_text(
        "-- migrate: no-transaction\n-- a comment;\n"
        "CREATE FUNCTION twice(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$\n"
        "BEGIN\n    RETURN v * 2;\nEND $$;\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x ON a (twice(x));\n"
    )
    assert await migrate(fresh_dsn, mig_dir) == ["0003_idx"]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1;", ["SELECT 1;"]),
        ("SELECT 1;\nSELECT 2", ["SELECT 1;", "SELECT 2"]),  # the last one's ';' may be missing
        ("-- one;\nSELECT 1;\n-- trailing comment\n", ["-- one;\nSELECT 1;"]),
        ("DO $$ BEGIN\n  PERFORM 1;\nEND $$;\nSELECT 2;", ["DO $$ BEGIN\n  PERFORM 1;\nEND $$;",
                                                          "SELECT 2;"]),
        ("CREATE FUNCTION f() RETURNS int\n  AS $$ SELECT 1; $$ LANGUAGE sql;",
         ["CREATE FUNCTION f() RETURNS int\n  AS $$ SELECT 1; $$ LANGUAGE sql;"]),
        ("SELECT 1,\n  2;", ["SELECT 1,\n  2;"]),
    ],
)  # fmt: skip
def test_statements_of_a_no_transaction_file(sql: str, expected: list[str]) -> None:
    assert statements(sql) == expected


def test_bad_directory_contents(tmp_path: Path, mig_dir: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load(tmp_path / "nope")
    (mig_dir / "3_oops.sql").write_text("")
    with pytest.raises(MigrationError, match=r"3_oops\.sql is not named NNNN_name\.sql"):
        load(mig_dir)
    (mig_dir / "3_oops.sql").unlink()
    (mig_dir / "0002_again.sql").write_text("")
    with pytest.raises(MigrationError, match="version 0002 used twice"):
        load(mig_dir)


async def test_older_daemon_tolerates_newer_schema(fresh_dsn: str, mig_dir: Path) -> None:
    await migrate(fresh_dsn, mig_dir)
    older = mig_dir.parent / "older"
    older.mkdir()
    shutil.copy(mig_dir / "0001_first.sql", older)
    assert await migrate(fresh_dsn, older) == []


async def test_a_migration_waits_for_a_lock_only_briefly(fresh_dsn: str, mig_dir: Path) -> None:
    """Online: an ALTER behind a long transaction fails at lock_timeout instead of queueing
    every later query on the table behind it; nothing is applied, and it runs once free."""
    await migrate(fresh_dsn, mig_dir)
    (mig_dir / "0003_alter.sql").write_text("ALTER TABLE a ADD COLUMN w text;")
    holder = await asyncpg.connect(fresh_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT * FROM a")  # holds ACCESS SHARE until it ends
            started = time.monotonic()
            with pytest.raises(MigrationError, match=r"0003_alter\.sql failed: .*lock timeout"):
                await migrate(fresh_dsn, mig_dir, lock_timeout_s=0.3)
            assert time.monotonic() - started < 3
            assert await holder.fetchval("SELECT count(*) FROM schema_migrations") == 2
    finally:
        await holder.close()
    assert await migrate(fresh_dsn, mig_dir) == ["0003_alter"]


async def test_a_file_rewritten_to_the_same_schema_accepts_its_earlier_form(
    fresh_dsn: str, mig_dir: Path
) -> None:
    """A database that applied the form a file names as replaced is up to date, and its row
    keeps that form's hash (the daemon it may be rolled back to knows that one)."""
    await migrate(fresh_dsn, mig_dir)
    first = load(mig_dir)[1].sha256
    (mig_dir / "0002_second.sql").write_text(
        f"-- migrate: no-transaction\n-- migrate: also applied as sha256 {first}\n"
        "CREATE TABLE IF NOT EXISTS b (y int);\nINSERT INTO b VALUES (1);\n"
    )
    assert await migrate(fresh_dsn, mig_dir) == []
    conn = await asyncpg.connect(fresh_dsn)
    try:
        kept = await conn.fetchval("SELECT sha256 FROM schema_migrations WHERE version = 2")
        assert kept == first
    finally:
        await conn.close()
    other = "0" * 64  # a form it does not name
    (mig_dir / "0002_second.sql").write_text(f"-- migrate: also applied as sha256 {other}\n")
    with pytest.raises(MigrationError, match=r"0002_second\.sql changed after it was applied"):
        await migrate(fresh_dsn, mig_dir)


async def test_a_rewritten_file_applied_anew_records_its_first_form(
    fresh_dsn: str, mig_dir: Path
) -> None:
    """A database that runs the rewritten form keeps the first form's hash too: an older
    version sharing the database (or rolled back to) ships the first form and checks it."""
    first = load(mig_dir)[1].sha256
    (mig_dir / "0002_second.sql").write_text(
        f"-- migrate: no-transaction\n-- migrate: also applied as sha256 {first}\n"
        "CREATE TABLE IF NOT EXISTS b (y int);\n"
    )
    assert await migrate(fresh_dsn, mig_dir) == ["0001_first", "0002_second"]
    conn = await asyncpg.connect(fresh_dsn)
    try:
        assert await conn.fetchval("SELECT sha256 FROM schema_migrations WHERE version = 2") \
            == first
    finally:
        await conn.close()
    assert await migrate(fresh_dsn, mig_dir) == []


async def test_a_no_transaction_files_plain_statement_gives_up_on_a_held_lock(
    fresh_dsn: str, mig_dir: Path
) -> None:
    """Outside a transaction, a plain ALTER/DROP waiting for a long transaction would queue
    every insert behind itself: it fails after the lock timeout (run it again), nothing
    recorded; the connection's own lock_timeout is back to its default after."""
    await migrate(fresh_dsn, mig_dir)
    (mig_dir / "0003_alter.sql").write_text(
        "-- migrate: no-transaction\nALTER TABLE a ADD COLUMN IF NOT EXISTS z int;\n")
    holder, conn = await asyncpg.connect(fresh_dsn), await asyncpg.connect(fresh_dsn)
    try:
        async with holder.transaction():
            await holder.execute("SELECT count(*) FROM a")  # ACCESS SHARE until it ends
            started = time.monotonic()
            with pytest.raises(MigrationError, match=r"0003_alter.*lock timeout"):
                await migrate(conn, mig_dir, lock_timeout_s=0.3)
            assert time.monotonic() - started < 5
        assert await conn.fetchval("SHOW lock_timeout") == "0"
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 2
    finally:
        await holder.close()
        await conn.close()
    assert await migrate(fresh_dsn, mig_dir) == ["0003_alter"]


# -- the real schema --------------------------------------------------------------------------


async def test_core_schema_matches_rows(fresh_dsn: str) -> None:
    """Every row field is a column, nullable exactly when the field's type allows None."""
    assert await migrate(fresh_dsn) == [m.name for m in load(DEFAULT_DIRECTORY)]
    conn = await asyncpg.connect(fresh_dsn)
    try:
        cols = await conn.fetch(
            "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    nullable = {(r["table_name"], r["column_name"]): r["is_nullable"] == "YES" for r in cols}
    tables = {
        "calls": rows.CallRow, "legs": rows.LegRow,
        "recordings": rows.RecordingRow, "call_events": rows.EventRow,
    }  # fmt: skip
    for table, row_type in tables.items():
        for f in dataclasses.fields(row_type):
            assert (table, f.name) in nullable, f"{table}.{f.name} missing"
            assert nullable[(table, f.name)] == ("None" in str(f.type)), f"{table}.{f.name}"


async def test_checks_follow_rows_vocabulary(fresh_dsn: str) -> None:
    await migrate(fresh_dsn)
    conn = await asyncpg.connect(fresh_dsn)
    try:
        defs = " ".join(
            r["d"]
            for r in await conn.fetch(
                "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE contype = 'c'"
            )
        )
    finally:
        await conn.close()
    for word in (*rows.OUTCOMES, *rows.RECORDING_STATUSES):
        assert f"'{word}'" in defs


async def test_0013_rebuilds_its_index_without_holding_up_inserts(
    fresh_dsn: str, tmp_path: Path
) -> None:
    """0013 replaces calls_started_idx on a table the daemons keep inserting into: while its
    steps wait for an open transaction on calls (a long search, say), a call is still saved."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    for m in load(DEFAULT_DIRECTORY):
        if m.version < 13:
            shutil.copy(m.path, folder)
    await migrate(fresh_dsn, folder)
    shutil.copy(DEFAULT_DIRECTORY / "0013_search_digits.sql", folder)
    reader, writer = await asyncpg.connect(fresh_dsn), await asyncpg.connect(fresh_dsn)
    migrating: asyncio.Task[list[str]] | None = None
    try:
        async with reader.transaction():
            await reader.execute("SELECT count(*) FROM calls")  # ACCESS SHARE until it ends
            migrating = asyncio.create_task(migrate(fresh_dsn, folder))
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            deadline = time.monotonic() + 10
            while not await writer.fetchval(f"{waiting} AND datname = current_database()"):
                assert time.monotonic() < deadline, "0013 never waited for the open transaction"
                await asyncio.sleep(0.02)
            await writer.execute("SET statement_timeout = '2s'")
            await writer.execute(
                "INSERT INTO calls (call_id, asterisk_id, direction, started_at, status) "
                "VALUES ('20261206T200000-0013', 'pbx1', 'inbound', now(), 'active')"
            )
        assert await migrating == ["0013_search_digits"]
        index = await writer.fetchval("SELECT indexdef FROM pg_indexes "
                                      "WHERE indexname = 'calls_started_idx'")  # fmt: skip
        assert index.endswith("USING btree (started_at, call_id) INCLUDE (number_digits)")
    finally:
        if migrating is not None and not migrating.done():
            migrating.cancel()
        await reader.close()
        await writer.close()
