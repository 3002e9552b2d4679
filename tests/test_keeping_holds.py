"""Legal holds on a real PostgreSQL: what a hold matches, that a held call is never purged
whatever its class, that releasing it makes it purgeable, the two-admin release, and the audit
of every action."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from recorder.api.access_log import Origin
from recorder.api.auth import Principal
from recorder.api.users import UserStore
from recorder.db.repository import Repository
from recorder.keeping.holds import Hold, HoldError, Holds, hold_spec
from recorder.keeping.purge import Purger
from recorder.policy.model import Length
from recorder.storage.store import LocalStore
from tests.harness.keeping_world import AST, T0, policy, seed_call

ENDED = T0 + timedelta(minutes=2)
LATER = ENDED + timedelta(days=3000)
SHORT = policy(standard=Length(days=1))
HERE = Origin("127.0.0.1", "pytest")


@pytest.fixture
async def admins(repo: Repository) -> AsyncIterator[dict[str, Principal]]:
    store = UserStore(repo.pool)
    found = {}
    for name in ("alice", "bob"):
        user = await store.add(name, "admin", [], None)
        found[name] = Principal(user.id, name, "admin", (), None, "token")
    yield found


def purger(repo: Repository, archive: Path, **kw: Any) -> Purger:
    return Purger(repo.pool, LocalStore(archive), SHORT, AST, **kw)


async def place(repo: Repository, by: Principal, **raw: str) -> Hold:
    return await Holds(repo.pool, False).add(hold_spec({"name": "Smith v. Jones",
                                                        "reason": "litigation"} | raw), by, HERE)


async def test_a_held_call_is_not_purged_and_its_release_makes_it_purgeable(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal]
) -> None:
    held = await seed_call(repo, tmp_path, "held", department="Litigation")
    free = await seed_call(repo, tmp_path, "free", department="Intake")
    hold = await place(repo, admins["alice"], department="Litigation")

    report = await purger(repo, tmp_path).run(LATER)
    assert report.audio == 1 and held[0].exists() and not free[0].exists()

    released = await Holds(repo.pool, False).release(hold.id, "case settled", admins["alice"],
                                                     HERE)  # fmt: skip
    assert released.status == "released" and released.released_by == "alice"
    assert (await purger(repo, tmp_path).run(LATER)).audio == 1
    assert not held[0].exists()


async def test_held_whatever_the_class(repo: Repository, tmp_path: Path,
                                       admins: dict[str, Principal]) -> None:  # fmt: skip
    from recorder.policy.model import RetentionClass

    gone = RetentionClass("gone", Length(), Length())  # audio and metadata at once
    files = await seed_call(repo, tmp_path, "c1", retention_class="gone")
    await place(repo, admins["alice"], call_id="c1")
    report = await Purger(repo.pool, LocalStore(tmp_path), policy(standard=Length(), gone=gone),
                          AST).run(LATER)  # fmt: skip
    assert (report.audio, report.metadata) == (0, 0) and files[0].exists()


# (hold criteria, call facts, held?)
MATCHES: list[tuple[dict[str, str], dict[str, Any], bool]] = [
    ({"call_id": "c1"}, {}, True),
    ({"call_id": "c2"}, {}, False),
    ({"tag": "matter:2026-0113"}, {"tag": "matter:2026-0113"}, True),
    ({"tag": "matter:2026-0113"}, {"tag": "matter:2026-0999"}, False),
    ({"number": "(415) 555-0100"}, {"caller_e164": "+14155550100"}, True),
    ({"number": "+1 415 555 0100"}, {"caller_e164": "+14155550199"}, False),
    ({"department": "Litigation"}, {"department": "Litigation"}, True),
    ({"extension": "211"}, {"extension": "211"}, True),
    ({"extension": "211"}, {"extension": "212"}, False),
    ({"from": "2024-01-10", "to": "2024-01-10"}, {}, True),  # that whole day
    ({"from": "2024-01-11"}, {}, False),
    ({"to": "2024-01-09"}, {}, False),
    ({"department": "Litigation", "extension": "211"},
     {"department": "Litigation", "extension": "212"}, False),  # every criterion must hold
]  # fmt: skip


@pytest.mark.parametrize(("criteria", "facts", "held"), MATCHES)
async def test_what_a_hold_matches(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal],
    criteria: dict[str, str], facts: dict[str, Any], held: bool,
) -> None:  # fmt: skip
    tag = facts.pop("tag", None)
    await seed_call(repo, tmp_path, "c1", **facts)
    if tag:
        await repo.pool.execute("INSERT INTO call_tags (call_id, tag) VALUES ('c1', $1)", tag)
    await place(repo, admins["alice"], **criteria)
    assert await repo.pool.fetchval("SELECT call_held(c) FROM calls c") is held


async def test_a_holds_dates_are_the_firms_days(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal]
) -> None:
    """`to: 2025-12-31` in a New York firm holds that evening's calls (before: the day ended
    at midnight UTC, 19:00 in New York, and a call at 23:00 could be purged)."""
    spec = hold_spec({"name": "Smith", "reason": "letter", "from": "2025-12-31",
                      "to": "2025-12-31"}, zone="America/New_York")
    assert (spec.starts_at, spec.ends_at) == (datetime(2025, 12, 31, 5, tzinfo=UTC),
                                              datetime(2026, 1, 1, 5, tzinfo=UTC))
    naive = hold_spec({"name": "Smith", "reason": "letter", "from": "2025-07-01T09:30:00"},
                      zone="America/New_York")  # a time with no offset: the firm's too
    assert naive.starts_at == datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    evening = datetime(2026, 1, 1, 4, tzinfo=UTC)  # 23:00 on 31 December in New York
    await seed_call(repo, tmp_path, "evening", started=evening)
    await seed_call(repo, tmp_path, "next", started=evening + timedelta(hours=2))
    await Holds(repo.pool, False).add(spec, admins["alice"], HERE)
    held = dict(await repo.pool.fetch("SELECT call_id, call_held(c) FROM calls c"))
    assert held == {"evening": True, "next": False}


@pytest.mark.parametrize("criteria", [{"call_id": "first"}, {"number": "+14155550100"},
                                      {"call_id": "second"}])
async def test_a_hold_on_a_call_keeps_the_calls_a_transfer_linked_to_it(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal], criteria: dict[str, str]
) -> None:
    """After an attended transfer the conversation goes on in the other call's recording: a
    hold matching either call keeps both (the client's number is only on the first)."""
    first = await seed_call(repo, tmp_path, "first", caller_e164="+14155550100")
    second = await seed_call(repo, tmp_path, "second", extension="300")
    other = await seed_call(repo, tmp_path, "other")
    await repo.pool.execute("UPDATE calls SET linked_calls = ARRAY['second'] "
                            "WHERE call_id = 'first'")
    await repo.pool.execute("UPDATE calls SET linked_calls = ARRAY['first'] "
                            "WHERE call_id = 'second'")
    await place(repo, admins["alice"], **criteria)
    report = await purger(repo, tmp_path).run(LATER)
    assert report.audio == 1 and first[0].exists() and second[0].exists()
    assert not other[0].exists()


async def test_a_hold_placed_during_a_purge_wins(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal]
) -> None:
    files = await seed_call(repo, tmp_path, "c1")

    async def hold_it(step: str) -> None:
        if step == "marked":
            await place(repo, admins["bob"], call_id="c1")

    report = await purger(repo, tmp_path, on_step=hold_it).run(LATER)
    assert (report.audio, report.kept) == (0, 1) and files[0].exists()
    assert await repo.pool.fetchval("SELECT status FROM tombstones") == "kept"
    assert await repo.pool.fetchval("SELECT count(*) FROM recordings") == 1


async def test_release_needs_two_admins(
    repo: Repository, tmp_path: Path, admins: dict[str, Principal]
) -> None:
    files = await seed_call(repo, tmp_path, "c1")
    hold = await place(repo, admins["alice"], call_id="c1")
    holds = Holds(repo.pool, release_needs_two=True)

    asked = await holds.release(hold.id, "matter closed", admins["alice"], HERE)
    assert (asked.status, asked.release_requested_by, asked.released_at) == (
        "release_pending", "alice", None)
    assert (await purger(repo, tmp_path).run(LATER)).audio == 0  # still held
    with pytest.raises(HoldError) as err:
        await holds.release(hold.id, "really", admins["alice"], HERE)
    assert (err.value.status, err.value.error_id) == (409, "release_needs_second_admin")

    done = await holds.release(hold.id, "agreed with counsel", admins["bob"], HERE)
    assert (done.status, done.released_by, done.release_reason, done.release_approval) == (
        "released", "bob", "matter closed", "agreed with counsel")
    assert (await purger(repo, tmp_path).run(LATER)).audio == 1 and not files[0].exists()


async def test_release_refusals(repo: Repository, admins: dict[str, Principal]) -> None:
    holds = Holds(repo.pool, False)
    with pytest.raises(HoldError) as err:
        await holds.release(99, "x", admins["alice"], HERE)
    assert err.value.status == 404
    hold = await place(repo, admins["alice"], extension="201")
    await holds.release(hold.id, "done", admins["alice"], HERE)
    with pytest.raises(HoldError) as err:
        await holds.release(hold.id, "again", admins["bob"], HERE)
    assert (err.value.status, err.value.error_id) == (409, "hold_released")


async def test_every_hold_action_is_audited(repo: Repository,
                                            admins: dict[str, Principal]) -> None:  # fmt: skip
    holds = Holds(repo.pool, True)
    hold = await place(repo, admins["alice"], tag="matter:7", call_id="c9")
    await holds.list(admins["bob"], HERE, "active")
    await holds.get(hold.id, admins["bob"], HERE)
    await holds.release(hold.id, "closed", admins["alice"], HERE)
    with pytest.raises(HoldError):
        await holds.release(hold.id, "closed", admins["alice"], HERE)
    await holds.release(hold.id, "ok", admins["bob"], HERE)
    rows = await repo.pool.fetch("SELECT user_name, action, call_id, detail FROM access_log "
                                 "ORDER BY id")  # fmt: skip
    seen = [(r["user_name"], r["detail"]["hold"], r["detail"].get("denied")) for r in rows]
    assert seen == [("alice", "place", None), ("bob", "list", None), ("bob", "read", None),
                    ("alice", "ask_release", None), ("alice", "release", "same_admin"),
                    ("bob", "approve_release", None)]  # fmt: skip
    assert {r["action"] for r in rows} == {"hold"}
    placed = rows[0]["detail"]
    assert placed["criteria"] == {"tag": "matter:7", "call_id": "c9"}
    assert placed["reason"] == "litigation" and rows[0]["call_id"] == "c9"


async def test_a_hold_is_never_edited_or_deleted(repo: Repository,
                                                 admins: dict[str, Principal]) -> None:  # fmt: skip
    hold = await place(repo, admins["alice"], extension="201")
    for sql in ("UPDATE holds SET extension = '202'", "DELETE FROM holds"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await repo.pool.execute(sql)
    await Holds(repo.pool, False).release(hold.id, "done", admins["alice"], HERE)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # nor its release rewritten
        await repo.pool.execute("UPDATE holds SET release_reason = 'other'")
    assert (await Holds(repo.pool, False).get(hold.id, admins["bob"], HERE)).extension == "201"


SPEC_ERRORS = [
    ({}, "name", "required"),
    ({"name": "X"}, "reason", "required"),
    ({"name": "X", "reason": "r"}, "tag", "give at least one of"),
    ({"name": "X", "reason": "r", "colour": "red"}, "colour", "unknown field"),
    ({"name": "X", "reason": "r", "number": "call me"}, "number", "not a phone number"),
    ({"name": "X", "reason": "r", "call_id": "../etc"}, "call_id", "not a call id"),
    ({"name": "X", "reason": "r", "from": "2026-13-01"}, "from", "must be a date"),
    ({"name": "X", "reason": "r", "from": "2026-03-02", "to": "2026-03-01"}, "to", "after from"),
    ({"name": "X", "reason": "r", "tag": " padded"}, "tag", "must not start or end"),
    ({"name": "X\x00", "reason": "r", "tag": "t"}, "name", "printable"),
    ({"name": 5, "reason": "r", "tag": "t"}, "name", "must be a string"),
]


@pytest.mark.parametrize(("raw", "field", "message"), SPEC_ERRORS)
def test_hold_spec_errors(raw: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(HoldError) as err:
        hold_spec(raw)
    assert (err.value.status, err.value.field) == (400, field) and message in err.value.message


def test_hold_spec_reads_numbers_and_dates() -> None:
    spec = hold_spec({"name": "N", "reason": "r\nsecond line", "number": "(212) 555-0199",
                      "from": "2026-03-01", "to": "2026-03-01T12:00:00+01:00"})  # fmt: skip
    assert spec.number == "+12125550199" and spec.reason == "r\nsecond line"
    assert spec.starts_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert spec.ends_at == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert hold_spec({"name": "N", "reason": "r", "number": "201"}).number == "201"
