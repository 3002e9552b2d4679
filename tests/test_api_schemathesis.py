"""Schemathesis against /api/openapi.json, once per role (and anonymous): no 500, responses as
documented. Bounded: a few dozen generated requests per operation and role, derandomised.

The server runs in a thread with its own event loop, since schemathesis calls it with blocking
`requests`; the test itself is synchronous.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
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
from tests.harness.api_world import ROLES_OF, ApiServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25


@pytest.fixture
def server(pg_dsn: str, tmp_path: Path) -> Iterator[ApiServer]:
    archive = tmp_path / "archive"
    archive.mkdir()
    with ApiServer(pg_dsn, archive) as running:
        yield running


def test_served_document_is_the_one_tested(server: ApiServer) -> None:
    served = requests.get(f"http://127.0.0.1:{server.port}/api/openapi.json", timeout=10)
    assert served.status_code == 200 and served.json() == openapi_document()


@pytest.mark.parametrize("role", [None, *ROLES_OF])
def test_no_server_errors_for_any_role(server: ApiServer, role: str | None) -> None:
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
