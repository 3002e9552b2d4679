"""`verbatim purge` against the test database and a real archive (the policy file says the
lengths)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from recorder.cli.main import main
from recorder.db.repository import Repository
from tests.harness.keeping_world import seed_call

T = TypeVar("T")


def sync(dsn: str, work: Callable[[Repository], Awaitable[T]]) -> T:
    async def go() -> T:
        repo = await Repository.connect(dsn, 1, 2)
        try:
            return await work(repo)
        finally:
            await repo.close()

    return asyncio.run(go())


@pytest.fixture
def config_file(pg_dsn: str, tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text("retention:\n  classes:\n    standard: 1y\n", encoding="utf-8")
    path = tmp_path / "verbatim.yaml"
    path.write_text(
        f"ari: {{username: verbatim, password: secret}}\ndatabase: {{dsn: '{pg_dsn}'}}\n"
        f"storage: {{archive_dir: '{tmp_path}/archive', spool_dir: null}}\n"
        f"calls: {{policy_file: '{policy}'}}\n",
        encoding="utf-8",
    )
    return path


def run(config: Path, *args: str) -> int:
    return main([*args, "-c", str(config)])


def test_purge_dry_run_then_purge(
    config_file: Path, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sync(pg_dsn, lambda repo: seed_call(repo, tmp_path / "archive", "c1", segments=2))
    assert run(config_file, "purge", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would purge 2 recordings" in out and "class standard: 2 audio" in out
    assert all(f.exists() for f in files)

    assert run(config_file, "purge", "--json") == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert (report["audio"], report["dry_run"]) == (2, False)
    assert report["job"].startswith("cli-")
    assert not any(f.exists() for f in files)


def test_purge_needs_the_office_when_several_share_the_database(
    config_file: Path, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def two(repo: Repository) -> None:
        await seed_call(repo, tmp_path / "archive", "c1")
        await seed_call(repo, tmp_path / "other", "c2", asterisk_id="pbx2")

    sync(pg_dsn, two)
    assert run(config_file, "purge") == 2
    assert "several Asterisk servers share this database (pbx1, pbx2)" in capsys.readouterr().err
    assert run(config_file, "purge", "--office", "pbx1") == 0


def test_holds_add_list_release(
    config_file: Path, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def admin(repo: Repository) -> None:
        from recorder.api.users import UserStore

        await UserStore(repo.pool).add("alice", "admin", [], None)
        await UserStore(repo.pool).add("mallory", "staff", [], "201")

    sync(pg_dsn, admin)
    assert run(config_file, "holds", "add", "--by", "alice", "--name", "Smith", "--reason",
               "discovery", "--tag", "matter:1", "--from", "2026-01-01") == 0  # fmt: skip
    assert "hold 1 [active] Smith: tag=matter:1, from=2026-01-01T00:00:00+00:00" in \
        capsys.readouterr().out  # fmt: skip
    assert run(config_file, "holds", "list", "--by", "alice", "--json") == 0
    assert [h["name"] for h in json.loads(capsys.readouterr().out)] == ["Smith"]
    assert run(config_file, "holds", "release", "1", "--by", "alice", "--reason", "done") == 0
    assert "[released]" in capsys.readouterr().out

    assert run(config_file, "holds", "add", "--by", "mallory", "--name", "x", "--reason", "y",
               "--call", "c1") == 2  # fmt: skip
    assert "--by mallory: not an enabled admin" in capsys.readouterr().err
    assert run(config_file, "holds", "add", "--by", "alice", "--name", "x", "--reason", "y") == 2
    assert "give at least one of" in capsys.readouterr().err
    rows = sync(pg_dsn, lambda repo: repo.pool.fetch(
        "SELECT via, detail->>'hold' AS op FROM access_log ORDER BY id"))  # fmt: skip
    assert [(r["via"], r["op"]) for r in rows] == [("cli", "place"), ("cli", "list"),
                                                    ("cli", "release")]  # fmt: skip


def test_verify_exit_status(
    config_file: Path, pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sync(pg_dsn, lambda repo: seed_call(repo, tmp_path / "archive", "c1"))
    assert run(config_file, "verify", "--sample", "100%") == 0
    out = capsys.readouterr().out
    assert "OK (pbx1): 1 custody rows in 1 chains, 1 files, 1 re-hashed" in out
    assert "chain pbx1 head 1:" in out
    files[0].write_bytes(b"tampered")
    assert run(config_file, "verify") == 1
    assert f"mismatch: {files[0]}: c1-s1: SHA-256" in capsys.readouterr().out
    assert run(config_file, "verify", "--json", "--since", "7d") == 0  # nothing that recent
    assert json.loads(capsys.readouterr().out)["files"] == 0
    assert run(config_file, "verify", "--sample", "0%") == 2
