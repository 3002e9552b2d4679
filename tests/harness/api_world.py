"""Shared by the API, users, web and audit tests: a seeded world and the app on it (no tests).

Calls (all answered, in 2026-03, UTC):
  A  inbound  +1 415-555-0100 → ext 201, Intake; two filed segments (real WAVs), a transfer
     event, tag matter:2026-0113
  B  inbound  +44 20 7946 0958 → ext 301, Family Law; one filed segment
  C  outbound ext 202 → +1 212-555-0199, Intake; its recording failed (no file)
  D  internal ext 201 → ext 230, no department; one filed segment
  E  inbound  +1 646-555-0142 → ext 202, Intake; the database names a file outside the archive
Users (bearer tokens, no passwords unless asked): admin, auditor, intake (manager of Intake),
family (manager of Family Law), staff201 (staff, ext 201).
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from recorder.api.auth import hash_password
from recorder.api.server import build_deps, create_pool, make_app
from recorder.api.users import UserStore
from recorder.config import (
    AriConfig,
    CallsConfig,
    Config,
    DatabaseConfig,
    HttpConfig,
    Secret,
    StorageConfig,
)
from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, LegRow, RecordingRow
from recorder.devtools.pgcluster import free_port
from tests.harness.wav import write_wav

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
DEPARTMENTS = {"Intake": ("201", "202"), "Family Law": ("301",)}
AST = "pbx1"
ROLES_OF = {
    "admin": ("admin", (), None),
    "auditor": ("auditor", (), None),
    "intake": ("manager", ("Intake",), None),
    "family": ("manager", ("Family Law",), None),
    "staff201": ("staff", (), "201"),
}
PASSWORD = "correct horse battery"


def config_for(dsn: str, archive: Path, http: HttpConfig | None = None) -> Config:
    return Config(
        ari=AriConfig(username="verbatim", password=Secret("x")),
        database=DatabaseConfig(dsn=Secret(dsn)),
        storage=StorageConfig(archive_dir=archive, spool_dir=None),
        calls=CallsConfig(departments=DEPARTMENTS),
        http=http or HttpConfig(),
    )


@dataclass
class World:
    client: TestClient[Any, Any]
    repo: Repository
    pool: Any
    archive: Path
    config: Config
    tokens: dict[str, str] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)  # letter -> call_id

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def get(self, path: str, user: str | None = None, **kw: Any) -> Any:
        headers = {**(self.auth(user) if user else {}), **kw.pop("headers", {})}
        return await self.client.get(path, headers=headers, allow_redirects=False, **kw)

    async def access_rows(self) -> list[dict[str, Any]]:
        rows = await self.pool.fetch("SELECT * FROM access_log ORDER BY id")
        return [dict(r.items()) for r in rows]

    def rec(self, letter: str, segment: int = 1) -> str:
        return f"{self.calls[letter]}-s{segment}"

    def audio(self, letter: str, segment: int = 1, kind: str = "audio") -> str:
        return f"/api/calls/{self.calls[letter]}/recordings/{self.rec(letter, segment)}/{kind}"


async def seed_calls(repo: Repository, archive: Path) -> dict[str, str]:
    specs: dict[str, dict[str, Any]] = {
        "A": dict(direction="inbound", caller_number="(415) 555-0100", caller_e164="+14155550100",
                  callee_number="201", extension="201", department="Intake", minutes=0, secs=95),
        "B": dict(direction="inbound", caller_number="00442079460958",
                  caller_e164="+442079460958", callee_number="301", extension="301",
                  department="Family Law", minutes=60, secs=300),
        "C": dict(direction="outbound", caller_number="202", callee_number="912125550199",
                  callee_e164="+12125550199", extension="202", department="Intake",
                  minutes=24 * 60, secs=40),
        "D": dict(direction="internal", caller_number="201", callee_number="230",
                  extension="201", department=None, minutes=48 * 60, secs=20),
        "E": dict(direction="inbound", caller_number="6465550142", caller_e164="+16465550142",
                  callee_number="202", extension="202", department="Intake",
                  minutes=72 * 60, secs=15),
    }  # fmt: skip
    ids: dict[str, str] = {}
    for letter, spec in specs.items():
        start = T0 + timedelta(minutes=spec.pop("minutes"))
        length = spec.pop("secs")
        call_id = f"{start:%Y%m%dT%H%M%S}-{letter.lower() * 8}"
        ids[letter] = call_id
        call = CallRow(
            call_id=call_id, asterisk_id=AST, started_at=start,
            answered_at=start + timedelta(seconds=5), ended_at=start + timedelta(seconds=length),
            outcome="answered", status="ended", **_fill(spec),
        )  # fmt: skip
        legs = [
            LegRow(AST, f"{call_id}-l1", call_id, "PJSIP/trunk-1", "caller", "Client",
                   call.caller_number, start, start, call.ended_at, 16, "hangup"),
            LegRow(AST, f"{call_id}-l2", call_id, "PJSIP/201-2", "callee", None,
                   call.callee_number, start, start + timedelta(seconds=5), call.ended_at, 16,
                   "answered"),
        ]  # fmt: skip
        recordings = []
        segments = 2 if letter == "A" else 1
        for seg in range(1, segments + 1):
            name = f"{call_id}-s{seg}"
            recordings.append(_recording(letter, call_id, name, seg, start, archive))
        await repo.save_call(call, legs, recordings)
        events = [
            EventRow(call_id, AST, start, "call.started"),
            EventRow(call_id, AST, start + timedelta(seconds=1), "consent.played"),
            EventRow(call_id, AST, start + timedelta(seconds=5), "recording.started",
                     recording_name=f"{call_id}-s1"),
        ]  # fmt: skip
        if letter == "A":
            events.append(
                EventRow(call_id, AST, start + timedelta(seconds=30), "transfer.blind",
                         channel_id=f"{call_id}-l2", detail={"to": "202"})
            )  # fmt: skip
        await repo.add_events(events)
    await repo.pool.execute(
        "INSERT INTO call_tags (call_id, tag) VALUES ($1, 'matter:2026-0113')", ids["A"]
    )
    return ids


def _fill(spec: dict[str, Any]) -> dict[str, Any]:
    base = {"caller_number": None, "caller_e164": None, "callee_number": None,
            "callee_e164": None}  # fmt: skip
    return base | spec


def _recording(
    letter: str, call_id: str, name: str, seg: int, start: datetime, archive: Path
) -> RecordingRow:
    common: dict[str, Any] = dict(
        asterisk_id=AST, name=name, call_id=call_id, segment=seg, target="bridge:b1",
        format="wav", requested_at=start + timedelta(seconds=5),
        started_at=start + timedelta(seconds=5),
    )  # fmt: skip
    if letter == "C":
        return RecordingRow(status="failed", error="disk full", **common)
    if letter == "E":  # a row naming a file outside the archive must never be served
        return RecordingRow(status="filed", path="/etc/hostname", sha256="0" * 64, **common)
    folder = archive / f"{start:%Y/%m/%d}" / call_id
    folder.mkdir(parents=True, exist_ok=True)
    path = write_wav(folder / f"{name}.wav", 3.0 if letter == "A" else 1.0)
    return RecordingRow(
        status="filed", path=str(path), sha256="a" * 64, bytes=path.stat().st_size,
        duration_ms=3000 if letter == "A" else 1000, **common,
    )  # fmt: skip


@functools.cache
def password_hash() -> str:
    """PASSWORD's argon2 hash, computed once: each hash costs ~0.1 s on purpose."""
    return hash_password(PASSWORD)


async def add_users(store: UserStore, passwords: bool = False) -> dict[str, str]:
    tokens = {}
    for name, (role, departments, extension) in ROLES_OF.items():
        await store.add(name, role, departments, extension)
        tokens[name] = await store.issue_token(name, "tests")
    if passwords:
        await store.pool.execute("UPDATE users SET password_hash = $1", password_hash())
    return tokens


async def start_world(
    pg_dsn: str, tmp_path: Path, http: HttpConfig | None = None, passwords: bool = False
) -> World:
    archive = tmp_path / "archive"
    archive.mkdir()
    pool = await create_pool(pg_dsn, 1, 4)
    repo = Repository(pool)
    config = config_for(pg_dsn, archive, http)
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(build_deps(config, pool))))
    await client.start_server()
    world = World(client, repo, pool, archive, config)
    world.calls = await seed_calls(repo, archive)
    world.tokens = await add_users(UserStore(pool), passwords)
    return world


@pytest.fixture(name="world")
async def world_fixture(pg_dsn: str, tmp_path: Path) -> AsyncIterator[World]:
    """The seeded world with its app (import `world_fixture` to use `world`)."""
    w = await start_world(pg_dsn, tmp_path)
    try:
        yield w
    finally:
        await w.client.close()
        await w.pool.close()


@pytest.fixture(name="web")
async def web_fixture(pg_dsn: str, tmp_path: Path) -> AsyncIterator[World]:
    """The seeded world whose users also have PASSWORD, for the web page's logins (import
    `web_fixture` to use `web`)."""
    w = await start_world(pg_dsn, tmp_path, passwords=True)
    try:
        yield w
    finally:
        await w.client.close()
        await w.pool.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def login(w: World, name: str, password: str = PASSWORD, next_url: str = "") -> Any:
    form = await w.client.get("/login" + (f"?next={next_url}" if next_url else ""))
    csrf = _csrf(await form.text())
    return await w.client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf,
              "next": _next_field(await form.text())},
        allow_redirects=False,
    )  # fmt: skip


def _next_field(html: str) -> str:
    found = re.search(r'name="next" value="([^"]*)"', html)
    return found.group(1) if found else ""


T = TypeVar("T")


class ApiServer:
    """The app on a real port, in a thread; seeded with the usual world."""

    def __init__(self, dsn: str, archive: Path) -> None:
        self.dsn, self.archive = dsn, archive
        self.port = free_port()
        self.ready = threading.Event()
        self.tokens: dict[str, str] = {}
        self.calls: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._pool: Any = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        pool = self._pool = await create_pool(self.dsn, 1, 4)
        try:
            self.calls = await seed_calls(Repository(pool), self.archive)
            self.tokens = await add_users(UserStore(pool))
            app = make_app(build_deps(config_for(self.dsn, self.archive), pool))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.ready.set()
            await self._stop.wait()
            await runner.cleanup()
        finally:
            self.ready.set()
            await pool.close()

    def call(self, work: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        """Run `work(pool)` on the server's loop (the pool belongs to it), from the test."""
        assert self._loop is not None and self._pool is not None
        return asyncio.run_coroutine_threadsafe(work(self._pool), self._loop).result(30)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        assert self.ready.wait(30) and self.tokens, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
