"""Schemathesis against /api/openapi.json, once per role (and anonymous): no 500, responses as
documented. Bounded: a few dozen generated requests per operation and role, derandomised.

The server runs in a thread with its own event loop, since schemathesis calls it with blocking
`requests`; the test itself is synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recorder.api.openapi import openapi_document
from recorder.api.server import build_deps, create_pool, make_app
from recorder.api.users import UserStore
from recorder.db.repository import Repository
from recorder.devtools.pgcluster import free_port
from tests.test_api_fixtures import ROLES_OF, add_users, config_for, seed_calls

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25
T = TypeVar("T")


class _Server:
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

    def __enter__(self) -> _Server:
        self._thread.start()
        assert self.ready.wait(30) and self.tokens, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[_Server]:
    archive = tmp_path / "archive"
    archive.mkdir()
    with _Server(pg_dsn, archive) as running:
        yield running


def test_served_document_is_the_one_tested(server: _Server) -> None:
    served = requests.get(f"http://127.0.0.1:{server.port}/api/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == openapi_document()


@pytest.mark.parametrize("role", [None, *ROLES_OF])
def test_no_server_errors_for_any_role(server: _Server, role: str | None) -> None:
    schema = schemathesis.openapi.from_dict(openapi_document())
    base_url = f"http://127.0.0.1:{server.port}"
    headers = {"Authorization": f"Bearer {server.tokens[role]}"} if role else {}
    # Real ids too, so the in-scope paths (200, 206) are exercised, not only 404s.
    known = {"call_id": server.calls["A"], "name": f"{server.calls['A']}-s1"}
    session = requests.Session()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        strategies = [operation.as_strategy(mode) for mode in GenerationMode]
        params = {p.name for p in operation.path_parameters}
        if params:
            fixed = {k: v for k, v in known.items() if k in params}
            strategies.append(operation.as_strategy(path_parameters=fixed))

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=st.one_of(strategies))
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS
            )

        check()
