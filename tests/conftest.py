"""Shared fixtures: a real PostgreSQL per test session, and generic helpers.

PostgreSQL: one PrivateCluster per pytest session, so one per xdist worker (fsync off), in a
temporary directory, migrated once. `pg_dsn` gives each test empty tables (TRUNCATE of every
table but schema_migrations); `repo` is a Repository on that database. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recorder.db.migrate import migrate
from recorder.db.repository import Repository
from recorder.devtools.pgcluster import PrivateCluster
from recorder.storage.objects import S3Store, s3_store
from tests.harness.policy_paths import POLICY
from tests.harness.seaweedfs import SeaweedFS
from tests.harness.wav import WavWriter, write_wav

# Set to reuse a cluster directory between runs (faster local iterations); default: a new one.
PG_DIR_ENV = "VERBATIM_TEST_PGDIR"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PrivateCluster]:
    """A started, migrated private cluster with database "verbatim"."""
    keep = os.environ.get(PG_DIR_ENV)
    if keep and (worker := os.environ.get("PYTEST_XDIST_WORKER")):
        keep = f"{keep}-{worker}"  # each xdist worker runs its own cluster
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="verbatim-pg-"))
    # mkdtemp makes 0700 dirs; the postgres user (we may be root) must be able to pass through.
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o711)  # noqa: S103 (search only, no listing)
    cluster = PrivateCluster(base / "data", fsync=False)
    cluster.start()
    try:
        asyncio.run(migrate(cluster.dsn()))
        yield cluster
    finally:
        cluster.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


async def truncate_all(dsn: str) -> None:
    """Empty every table of the public schema except schema_migrations (new tables included)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS t FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(r["t"] for r in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")  # quote_ident'd
    finally:
        await conn.close()


@pytest.fixture
async def pg_dsn(pg_cluster: PrivateCluster) -> str:
    """DSN of the migrated test database, with all tables empty for this test."""
    dsn = pg_cluster.dsn()
    await truncate_all(dsn)
    return dsn


@pytest.fixture
async def repo(pg_dsn: str) -> AsyncIterator[Repository]:
    repository = await Repository.connect(pg_dsn, min_size=1, max_size=4)
    try:
        yield repository
    finally:
        await repository.close()


@pytest.fixture
def make_wav(tmp_path: Path) -> WavWriter:
    """make_wav("name.wav", seconds=…, rate=…, channels=…) -> path in this test's tmp_path."""

    def make(name: str, seconds: float = 1.0, **kwargs: int) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_wav(path, seconds, **kwargs)

    return make


@pytest.fixture
async def sim(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A started simulator (manual clock). Every event it sent must match events.json; in a
    module that sets CHECK_REQUESTS = True, every request it got must be one the spec allows
    (modules testing misuse leave it off)."""
    from arisim.testing import running_simulator

    async with running_simulator(tmp_path / "spool") as s:
        yield s
        assert s.validation_errors == []
        if getattr(request.module, "CHECK_REQUESTS", False):
            assert s.request_problems() == []


@pytest.fixture
async def ari(sim: Any) -> AsyncIterator[Any]:
    """A minimal ARI client connected to `sim`'s events WebSocket."""
    from arisim.testing import AriClient

    client = AriClient(sim)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def watcher(sim: Any) -> AsyncIterator[Any]:
    """The daemon's view in hook mode: app "verbatim" with subscribeAll=true."""
    from arisim.testing import AriClient

    client = AriClient(sim, subscribe_all=True)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real SeaweedFS (S3 on loopback) for the session, started when a test first asks."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bucket(seaweed: SeaweedFS) -> AsyncIterator[S3Store]:
    """The whole bucket (office ""), as the API reads it."""
    if seaweed.proc is None:  # a test stopped it and failed before starting it again
        seaweed.start()
    async with s3_store(seaweed.config()) as store:
        for _ in range(100):  # `weed mini -bucket` creates it just after S3 answers
            with contextlib.suppress(Exception):
                await store.client.head_bucket(Bucket=store.bucket)
                break
            await asyncio.sleep(0.1)
        yield store


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy of the call-path table (tests.harness.policy_paths), as a file."""
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return path
