"""`verbatim users add|roles|disable|token|password` against the test database."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recorder.api.auth import digest, verify_password
from recorder.api.server import create_pool
from recorder.api.users import UserStore
from recorder.cli.main import main


@pytest.fixture
def config_file(pg_dsn: str, tmp_path: Path) -> Path:
    path = tmp_path / "verbatim.yaml"
    path.write_text(
        f"""
ari: {{username: verbatim, password: secret}}
database: {{dsn: "{pg_dsn}"}}
storage: {{archive_dir: "{tmp_path}/archive", spool_dir: null}}
calls:
  departments:
    Intake: ["201", "202"]
    "Family Law": ["301"]
""",
        encoding="utf-8",
    )
    return path


def _run(config: Path, *args: str, stdin: str = "", monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["users", *args[:1], "-c", str(config), *args[1:]])


def _query(dsn: str, sql: str, *args: Any) -> list[Any]:
    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return [dict(r.items()) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(go())


def test_add_a_manager_with_a_password(
    config_file: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    code = _run(config_file, "add", "alice", "--role", "manager", "--departments", "Intake",
                "Family Law", "--password-stdin", stdin="a long passphrase\n",
                monkeypatch=monkeypatch)  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out == "added alice: manager departments=Intake,Family Law\n"
    [row] = _query(pg_dsn, "SELECT * FROM users")
    assert row["departments"] == ["Intake", "Family Law"]
    assert row["password_hash"].startswith("$argon2id$")
    assert asyncio.run(verify_password(row["password_hash"], "a long passphrase"))
    assert not asyncio.run(verify_password(row["password_hash"], "a long passphrasE"))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add", "bob", "--role", "manager", "--no-password"), "", "a manager needs --departments"),
        (("add", "bob", "--role", "staff", "--no-password"), "", "staff need --extension"),
        (("add", "bob", "--role", "admin", "--password-stdin"), "short\n", "at least 12"),
        (("add", "b b", "--role", "admin", "--no-password"), "", "refused by the database"),
        (("disable", "nobody"), "", "no user 'nobody'"),
        (("token", "nobody"), "", "no user 'nobody'"),
    ],
)  # fmt: skip
def test_refusals_exit_2(
    config_file: Path, args: tuple[str, ...], stdin: str, message: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert _run(config_file, *args, stdin=stdin, monkeypatch=monkeypatch) == 2
    assert message in capsys.readouterr().err


def test_unknown_department_is_refused_with_a_suggestion(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit, match="did you mean 'Intake'"):
        _run(config_file, "add", "bob", "--role", "manager", "--departments", "Intke",
             "--no-password", monkeypatch=monkeypatch)  # fmt: skip


def test_no_password_on_the_command_line_or_without_a_terminal(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SystemExit, match="--password-stdin"):
        _run(config_file, "add", "bob", "--role", "admin", monkeypatch=monkeypatch)


def test_token_roles_disable(
    config_file: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    run: Any = lambda *a, **kw: _run(config_file, *a, monkeypatch=monkeypatch, **kw)  # noqa: E731
    assert run("add", "sam", "--role", "staff", "--extension", "201", "--no-password") == 0
    capsys.readouterr()
    assert run("token", "sam", "--label", "nightly export") == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("vbt_") and len(token) > 40 and "only once" in err
    [stored] = _query(pg_dsn, "SELECT token_sha256, label FROM api_tokens")
    assert stored == {"token_sha256": digest(token), "label": "nightly export"}

    assert run("roles") == 0
    listing = capsys.readouterr().out
    assert "auditor: sees no calls; the access log; may access_log.read" in listing
    assert "sam: staff extension=201 (token only)" in listing
    assert run("roles", "sam", "--role", "manager", "--departments", "Intake,Family Law") == 0
    assert "changed sam: manager departments=Intake,Family Law" in capsys.readouterr().out

    async def principal() -> Any:
        pool = await create_pool(pg_dsn, 1, 1)
        try:
            return await UserStore(pool).by_token(token)
        finally:
            await pool.close()

    assert asyncio.run(principal()).role == "manager"
    assert run("disable", "sam") == 0
    assert "tokens revoked" in capsys.readouterr().out
    assert asyncio.run(principal()) is None
    assert _query(pg_dsn, "SELECT revoked_at IS NOT NULL AS r FROM api_tokens") == [{"r": True}]
    assert run("token", "sam") == 2  # no new tokens for a disabled user


def test_set_password(
    config_file: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(config_file, "add", "ann", "--role", "auditor", "--no-password",
                monkeypatch=monkeypatch) == 0  # fmt: skip
    assert _run(config_file, "password", "ann", "--password-stdin", stdin="another passphrase\n",
                monkeypatch=monkeypatch) == 0  # fmt: skip
    [row] = _query(pg_dsn, "SELECT password_hash FROM users")
    assert asyncio.run(verify_password(row["password_hash"], "another passphrase"))


def test_database_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recorder.devtools.pgcluster import free_port

    config = tmp_path / "verbatim.yaml"
    dsn = f"postgresql://verbatim:hunter22@127.0.0.1:{free_port()}/verbatim"
    config.write_text(
        f'ari: {{username: v, password: s}}\ndatabase: {{dsn: "{dsn}"}}\n'
        f'storage: {{archive_dir: "{tmp_path}"}}\n'
    )
    assert main(["users", "roles", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the database" in err and "hunter22" not in err
