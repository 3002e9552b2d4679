"""The daemon's keeping jobs: when the daily purge runs, that it runs and purges, and the
`keeping:` section of verbatim.yaml."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recorder.config import ConfigError, KeepingConfig, load_config
from recorder.db.repository import Repository
from recorder.keeping.job import Keeper, keeping, next_purge
from recorder.policy.model import Length
from recorder.storage.store import LocalStore
from tests.harness.keeping_world import AST, policy, seed_call


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NEXT = [
    ("2026-03-02T01:00", "03:30", "2026-03-02T03:30"),
    ("2026-03-02T03:30", "03:30", "2026-03-03T03:30"),  # strictly after: not twice at once
    ("2026-03-02T03:29:59", "03:30", "2026-03-02T03:30"),
    ("2026-12-31T23:59", "00:00", "2027-01-01T00:00"),
]


@pytest.mark.parametrize(("now", "purge_at", "expected"), NEXT)
def test_next_purge(now: str, purge_at: str, expected: str) -> None:
    assert next_purge(at(now), purge_at) == at(expected)


def test_next_purge_reads_any_zone_as_utc() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 3, 2, 3, 0, tzinfo=ZoneInfo("America/New_York"))  # 08:00 UTC
    assert next_purge(local, "03:30") == at("2026-03-03T03:30")


async def test_the_daemons_job_purges_when_due(repo: Repository, tmp_path: Path) -> None:
    files = await seed_call(repo, tmp_path, "old")
    now = datetime(2030, 1, 1, 3, 29, 59, 800_000, tzinfo=UTC)  # 0.2 s before 03:30

    def clock() -> datetime:
        return now

    keeper = Keeper(repo.pool, LocalStore(tmp_path), policy(standard=Length(years=2)),
                    KeepingConfig(purge_at="03:30"), clock)  # fmt: skip
    ready = asyncio.Event()
    async with keeping(keeper, ready, lambda: AST):
        await asyncio.sleep(0.3)
        assert files[0].exists()  # not before the daemon knows its server
        ready.set()
        for _ in range(100):
            if await repo.pool.fetchval("SELECT count(*) FROM tombstones WHERE status='purged'"):
                break
            await asyncio.sleep(0.05)
    assert not files[0].exists()
    assert (await repo.pool.fetchval("SELECT job FROM tombstones")).startswith("daily-")


def write(tmp_path: Path, keeping_yaml: str) -> Path:
    path = tmp_path / "verbatim.yaml"
    path.write_text(
        "ari: {username: u, password: p}\ndatabase: {dsn: 'postgresql://x'}\n"
        f"storage: {{archive_dir: /var/lib/verbatim/archive}}\nkeeping:\n{keeping_yaml}",
        encoding="utf-8",
    )
    return path


def test_keeping_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "  purge_at: null\n  verify_every_s: 0\n"), {})
    assert config.keeping == KeepingConfig(purge_at=None, verify_every_s=0)
    assert load_config(write(tmp_path, "  {}\n"), {}).keeping == KeepingConfig()


@pytest.mark.parametrize(("text", "key", "message"), [
    ("  purge_at: '3:30'\n", "keeping.purge_at", "expected a time of day HH:MM"),
    ("  purge_batch: 0\n", "keeping.purge_batch", "must be between 1 and 100000"),
    ("  verify_sample_percent: 0\n", "keeping.verify_sample_percent", "between 1 and 100"),
    ("  purge_when: '03:00'\n", "keeping.purge_when", "unknown key"),
])  # fmt: skip
def test_keeping_errors(tmp_path: Path, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), {})
    assert (err.value.line, err.value.key) == (5, key) and message in err.value.message
