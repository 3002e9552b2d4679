"""The consent audit on a real PostgreSQL: rows written and read back, what the table refuses."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from recorder.db.repository import Repository
from recorder.policy import (
    CallFacts,
    ConsentRow,
    Party,
    Policy,
    add_consent_rows,
    announcements_at_start,
    consent_row,
    consent_rows,
    decide,
    jurisdiction_of,
)
from recorder.policy.model import Announcements

T0 = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)
CALL = "20261125T183000-aa11bb22"
AST = "00:11:22:33:44:55"


async def _call(pool: Any) -> None:
    await pool.execute(
        "INSERT INTO calls (call_id, asterisk_id, direction, started_at, status) "
        "VALUES ($1, $2, 'inbound', $3, 'active')",
        CALL,
        AST,
        T0,
    )


def _rows() -> list[ConsentRow]:
    policy = Policy(announcements=Announcements(to_extensions=True))  # 201 hears its prompt
    facts = CallFacts("inbound", "+14155550100", "201", opted_out=frozenset({"caller"}))
    decision = decide(facts, policy, T0)
    caller, callee = Party("caller", "+14155550100"), Party("callee", "201")
    (ann, _) = announcements_at_start(caller, callee, policy)
    heard = consent_row(
        call_id=CALL, asterisk_id=AST, channel_id="chan-caller", party="caller",
        jurisdiction=jurisdiction_of("+14155550100", policy), governing_mode="all-party",
        decision=decision, announcement=ann, prompt_sha256="ab" * 32,
        started_at=T0, ended_at=T0 + timedelta(seconds=4), played="interrupted", dtmf="9",
        opted_out=True,
    )  # fmt: skip
    never_played = consent_row(
        call_id=CALL, asterisk_id=AST, channel_id="chan-callee", party="callee",
        jurisdiction=jurisdiction_of("201", policy), governing_mode="all-party", decision=decision,
    )  # fmt: skip
    return [heard, never_played]


async def test_rows_round_trip_in_order(repo: Repository) -> None:
    await _call(repo.pool)
    rows = _rows()
    await add_consent_rows(repo.pool, rows)
    back = await consent_rows(repo.pool, CALL)
    assert back == rows
    first = back[0]
    assert (first.state, first.jurisdiction_source, first.prompt, first.language) == (
        "CA",
        "geocoder",
        "consent-all-party-en",
        "en",
    )
    assert (first.recorded, first.action, first.rule) == (False, "yes", "default, opt-out")
    assert (back[1].played, back[1].jurisdiction_source, back[1].prompt) == (
        "none",
        "default",
        None,
    )
    assert await consent_rows(repo.pool, "no-such-call") == []


async def test_table_is_append_only_and_checked(repo: Repository) -> None:
    await _call(repo.pool)
    rows = _rows()
    await add_consent_rows(repo.pool, rows)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await repo.pool.execute("UPDATE consent_audit SET opted_out = false")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await repo.pool.execute("DELETE FROM consent_audit")
    bad = [
        replace(rows[0], call_id="20261125T000000-unknown"),  # no such call
        replace(rows[0], played="none"),  # a prompt that was not played
        replace(rows[0], mode="two-party"),
        replace(rows[0], ended_at=T0 - timedelta(seconds=1)),
    ]
    for row in bad:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await add_consent_rows(repo.pool, [row])
    assert len(await consent_rows(repo.pool, CALL)) == 2  # all or nothing: none of those got in
    async with repo.pool.acquire() as conn:  # a connection works as well as a pool
        await add_consent_rows(conn, [rows[1]])
    assert len(await consent_rows(repo.pool, CALL)) == 3


def test_row_builder_and_naive_times_are_refused() -> None:
    rows = _rows()
    with pytest.raises(ValueError, match="played must be 'none'"):
        consent_row(
            call_id=CALL, asterisk_id=AST, channel_id="c", party="callee",
            jurisdiction=jurisdiction_of(None, Policy()), governing_mode="all-party",
            decision=decide(CallFacts("inbound", None, "201"), Policy(), T0), played="finished",
        )  # fmt: skip
    naive = replace(rows[0], started_at=datetime(2026, 11, 25, 18, 30))
    with pytest.raises(ValueError, match="naive datetime"):
        asyncio.run(add_consent_rows(object(), [naive]))  # refused before the database is used
