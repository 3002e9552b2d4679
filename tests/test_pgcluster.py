"""PrivateCluster against the real PostgreSQL binaries (each start is a real initdb/pg_ctl)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from recorder.devtools.pgcluster import ClusterError, PrivateCluster, find_bindir


@pytest.fixture
def base() -> Iterator[Path]:
    # Not tmp_path: pytest's dirs are 0700, and the postgres user (when we are root) must
    # traverse the parents of the data directory.
    path = Path(tempfile.mkdtemp(prefix="verbatim-pgtest-"))
    os.chmod(path, 0o711)  # noqa: S103 (search only, no listing)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _query(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_start_create_use_stop_restart(base: Path) -> None:
    data = base / "pg"
    t0 = time.monotonic()
    with PrivateCluster(data, fsync=False) as c:
        started = time.monotonic() - t0
        assert c.running
        assert (data / "PG_VERSION").exists()
        assert (data / f".s.PGSQL.{c.port}").exists()  # unix socket lives in the data dir
        if os.geteuid() == 0:
            assert data.stat().st_uid != 0  # ran as the postgres user, who owns the data
        assert await _query(c.dsn(), "SELECT current_database()") == "verbatim"
        assert await _query(c.dsn(), "SHOW listen_addresses") == "127.0.0.1"
        assert await _query(c.dsn(), "SHOW fsync") == "off"
        assert c.create_database("other") is True
        assert c.create_database("other") is False
        conn = await asyncpg.connect(c.dsn("other"))
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        await conn.close()
    assert not c.running
    print(f"initdb+start: {started:.2f}s")

    # Same directory again: no initdb, the data is still there, a new free port is fine.
    with PrivateCluster(data) as c2:
        assert await _query(c2.dsn("other"), "SELECT x FROM kept") == 42
        assert await _query(c2.dsn(), "SHOW fsync") == "on"


async def test_adopts_a_cluster_already_running(base: Path) -> None:
    # A space in the path: the settings pg_ctl passes through /bin/sh must be quoted.
    c = PrivateCluster(base / "my pg", fsync=False)
    c.start()
    try:
        assert (base / "my pg" / f".s.PGSQL.{c.port}").exists()
        again = PrivateCluster(base / "my pg", fsync=False)
        again.start()
        assert again.port == c.port
        assert await _query(again.dsn(), "SELECT 1") == 1
        with pytest.raises(ClusterError, match="already running on port"):
            PrivateCluster(base / "my pg", port=(c.port or 0) + 1).start()
        # A fresh object (say, a later `stop` command) can stop it.
        PrivateCluster(base / "my pg").stop()
        assert not c.running
    finally:
        c.stop()


def test_fixed_port_in_use_is_a_clear_error(base: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ClusterError, match="pg_ctl start failed"):
            PrivateCluster(base / "pg", port=port, fsync=False, start_timeout=20).start()


def test_non_empty_non_cluster_dir_refused(base: Path) -> None:
    (base / "pg").mkdir()
    (base / "pg" / "notes.txt").write_text("mine")
    with pytest.raises(ClusterError, match="neither empty nor a cluster"):
        PrivateCluster(base / "pg").start()
    assert (base / "pg" / "notes.txt").read_text() == "mine"


def test_missing_binaries_named(base: Path) -> None:
    with pytest.raises(ClusterError, match=r"nowhere/initdb is missing"):
        PrivateCluster(base / "pg", bindir=Path("/nowhere")).start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to 'postgres'")
def test_unreachable_dir_named_when_root(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    with pytest.raises(ClusterError, match="is not traversable"):
        PrivateCluster(locked / "pg").start()


def test_find_bindir_and_dsn_before_start(base: Path) -> None:
    assert (find_bindir() / "initdb").is_file()
    with pytest.raises(ClusterError, match="not started"):
        PrivateCluster(base / "pg").dsn()
    with pytest.raises(ValueError, match="invalid database name"):
        PrivateCluster(base / "pg", port=1).create_database('x"; DROP')
