"""Control requests (migration 0005, recorder/db/controls.py) on a real PostgreSQL: storing them
for live calls only, the NOTIFY that wakes a daemon, claiming (never one row twice), results,
waiting for them, expiry and a restarted daemon's leftovers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from recorder.db import controls as c
from recorder.db.controls import (
    CallEnded,
    CallNotFound,
    ControlNotFound,
    ControlQueue,
    InvalidControl,
)
from recorder.db.migrate import DEFAULT_DIRECTORY
from recorder.db.repository import Repository
from recorder.db.rows import CallRow

AST, OTHER_AST = "pbx1", "pbx2"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


async def add_call(repo: Repository, call_id: str, *, ast: str = AST, ended: bool = False) -> str:
    call = CallRow(
        call_id=call_id, asterisk_id=ast, direction="inbound", caller_number="4155550100",
        caller_e164="+14155550100", callee_number="201", callee_e164=None, extension="201",
        department="Intake", started_at=T0, answered_at=T0 + timedelta(seconds=2),
        ended_at=T0 + timedelta(seconds=60) if ended else None,
        outcome="answered" if ended else None, status="ended" if ended else "active",
    )  # fmt: skip
    await repo.save_call(call, [], [])
    return call_id


@pytest.fixture
async def queue(repo: Repository) -> ControlQueue:
    return ControlQueue(repo.pool)


async def _rows(repo: Repository) -> list[dict[str, object]]:
    return [dict(r.items()) for r in await repo.pool.fetch(
        "SELECT * FROM control_requests ORDER BY id")]  # fmt: skip


async def test_submit_copies_the_server_and_refuses_ended_or_unknown_calls(
    repo: Repository, queue: ControlQueue
) -> None:
    live = await add_call(repo, "live-1", ast=OTHER_AST)
    ended = await add_call(repo, "ended-1", ended=True)
    first = await queue.submit(live, "pause", None, "alice")
    second = await queue.submit(live, "tag", "matter:2026-0113", "crm")
    assert second > first
    rows = await _rows(repo)
    assert [(r["call_id"], r["asterisk_id"], r["action"], r["tag"], r["requested_by"],
             r["status"]) for r in rows] == [
        (live, OTHER_AST, "pause", None, "alice", "pending"),
        (live, OTHER_AST, "tag", "matter:2026-0113", "crm", "pending"),
    ]  # fmt: skip
    assert all(r["requested_at"] is not None and r["handled_at"] is None for r in rows)
    with pytest.raises(CallEnded, match="has ended"):
        await queue.submit(ended, "resume", None, "alice")
    with pytest.raises(CallNotFound, match="no call"):
        await queue.submit("nope", "resume", None, "alice")
    # An active row whose ended_at is set (the daemon ending it) counts as ended too.
    await repo.pool.execute("UPDATE calls SET ended_at = now() WHERE call_id = $1", live)
    with pytest.raises(CallEnded):
        await queue.submit(live, "stop", None, "alice")
    assert len(await _rows(repo)) == 2


@pytest.mark.parametrize(
    ("action", "tag", "field"),
    [
        ("explode", None, "action"),
        ("", None, "action"),
        ("tag", None, "tag"),
        ("tag", "", "tag"),
        ("tag", "x" * 101, "tag"),
        ("tag", "a\x07b", "tag"),
        ("tag", "a\nb", "tag"),
        ("tag", "a\x85b", "tag"),  # C1 control (NEL)
        ("tag", "a\u200bb", "tag"),  # zero-width space: two tags that look alike
        ("tag", "a\u2028b", "tag"),  # line separator
        ("pause", "matter:1", "tag"),  # a tag with another action
    ],
)
async def test_invalid_requests_are_refused_before_the_database(
    repo: Repository, queue: ControlQueue, action: str, tag: str | None, field: str
) -> None:
    call = await add_call(repo, "live-1")
    with pytest.raises(InvalidControl) as exc:
        await queue.submit(call, action, tag, "alice")
    assert exc.value.field == field
    assert await _rows(repo) == []


async def test_the_table_refuses_what_the_code_refuses(repo: Repository) -> None:
    """The CHECKs hold for writers that bypass ControlQueue."""
    call = await add_call(repo, "live-1")
    insert = ("INSERT INTO control_requests (call_id, asterisk_id, action, tag, requested_by, "
              "status, handled_at) VALUES ($1, $2, $3, $4, 'x', $5, $6)")  # fmt: skip
    for action, tag, status, handled in [
        ("tag", None, "pending", None),  # a tag request without its tag
        ("pause", "t", "pending", None),  # a tag on another action
        ("tag", "a\x01b", "pending", None),
        ("skip", None, "pending", None),
        ("pause", None, "done", None),  # a result without its time
        ("pause", None, "pending", T0),  # a time without a result
        ("pause", None, "taken", None),  # taken without taken_at
        ("pause", None, "claimed", None),
    ]:
        with pytest.raises(asyncpg.CheckViolationError):
            await repo.pool.execute(insert, call, AST, action, tag, status, handled)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await repo.pool.execute(insert, "no-such-call", AST, "pause", None, "pending", None)
    # The access log takes the new action.
    await repo.pool.execute(
        "INSERT INTO access_log (user_name, role, via, action) VALUES ('a', 'admin', 'token', "
        "'control')"
    )


async def test_listener_is_woken_for_its_own_server_only(
    repo: Repository, queue: ControlQueue
) -> None:
    mine, theirs = await add_call(repo, "live-1"), await add_call(repo, "live-2", ast=OTHER_AST)
    woken: dict[str, asyncio.Event] = {AST: asyncio.Event(), OTHER_AST: asyncio.Event()}
    listeners = [await queue.listen(a, woken[a].set) for a in (AST, OTHER_AST)]
    try:
        assert not listeners[0].closed
        await queue.submit(theirs, "pause", None, "alice")
        await asyncio.wait_for(woken[OTHER_AST].wait(), 5)
        await asyncio.sleep(0.2)  # a notification for pbx1 would have arrived by now
        assert not woken[AST].is_set()
        woken[OTHER_AST].clear()
        await queue.submit(mine, "pause", None, "alice")
        await asyncio.wait_for(woken[AST].wait(), 5)
        assert not woken[OTHER_AST].is_set()
        # Not sent before commit: a rolled-back request wakes nobody.
        woken[AST].clear()
        async with repo.pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            await queue.submit(mine, "resume", None, "alice", conn=conn)
            await asyncio.sleep(0.2)
            assert not woken[AST].is_set()
            await tx.rollback()
        await asyncio.sleep(0.2)
        assert not woken[AST].is_set()
    finally:
        for listener in listeners:
            await queue.unlisten(listener)
    # The connections went back to the pool, without their listeners.
    woken[AST].clear()
    await queue.submit(mine, "stop", None, "alice")
    await asyncio.sleep(0.3)
    assert not woken[AST].is_set()


async def test_a_failing_callback_does_not_stop_the_listener(
    repo: Repository, queue: ControlQueue
) -> None:
    call = await add_call(repo, "live-1")
    calls: list[int] = []
    done = asyncio.Event()

    def callback() -> None:
        calls.append(1)
        if len(calls) == 2:
            done.set()
        raise RuntimeError("boom")

    listener = await queue.listen(AST, callback)
    try:
        await queue.submit(call, "pause", None, "alice")
        await asyncio.sleep(0.2)
        await queue.submit(call, "resume", None, "alice")
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await queue.unlisten(listener)


async def test_pending_takes_oldest_first_once(repo: Repository, queue: ControlQueue) -> None:
    call, other = await add_call(repo, "live-1"), await add_call(repo, "live-2", ast=OTHER_AST)
    ids = [await queue.submit(call, a, None, "alice") for a in ("pause", "resume", "stop")]
    tag_id = await queue.submit(call, "tag", "matter:7", "crm")
    other_id = await queue.submit(other, "pause", None, "bob")
    first = await queue.pending(AST, limit=2)
    assert [r.id for r in first] == ids[:2]
    assert (first[0].call_id, first[0].action, first[0].tag, first[0].requested_by) == (
        call, "pause", None, "alice",
    )  # fmt: skip
    assert first[0].requested_at.tzinfo is not None
    rest = await queue.pending(AST)
    assert [(r.id, r.action, r.tag) for r in rest] == [(ids[2], "stop", None),
                                                       (tag_id, "tag", "matter:7")]  # fmt: skip
    assert await queue.pending(AST) == []
    states = {r["id"]: r for r in await _rows(repo)}
    assert all(states[i]["status"] == "taken" and states[i]["taken_at"] for i in [*ids, tag_id])
    assert states[other_id]["status"] == "pending"  # another server's request is left alone
    assert [r.id for r in await queue.pending(OTHER_AST)] == [other_id]


async def test_concurrent_claimers_never_share_a_row(repo: Repository, pg_dsn: str) -> None:
    call = await add_call(repo, "live-1")
    queue = ControlQueue(repo.pool)
    ids = {await queue.submit(call, "pause", None, "alice") for _ in range(120)}
    # Three "daemons" of the same server (a misconfiguration, or a restart overlapping), each
    # with two claiming tasks on its own pool.
    pools = [await asyncpg.create_pool(pg_dsn, min_size=2, max_size=2) for _ in range(3)]
    try:
        claimers = [ControlQueue(p) for p in pools for _ in range(2)]

        async def drain(q: ControlQueue) -> list[int]:
            got: list[int] = []
            while batch := await q.pending(AST, limit=5):
                got += [r.id for r in batch]
                await asyncio.sleep(0)
            return got

        results = await asyncio.gather(*(drain(q) for q in claimers))
    finally:
        for p in pools:
            await p.close()
    taken = [i for got in results for i in got]
    assert sorted(taken) == sorted(ids)  # every row once: none twice, none lost
    assert sum(1 for got in results if got) > 1  # they really competed


async def test_a_claim_in_progress_is_skipped_not_waited_for(
    repo: Repository, queue: ControlQueue
) -> None:
    call = await add_call(repo, "live-1")
    ids = [await queue.submit(call, "pause", None, "alice") for _ in range(5)]
    async with repo.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        held = await ControlQueue(conn).pending(AST, limit=2)  # locked until this commits
        assert [r.id for r in held] == ids[:2]
        others = await asyncio.wait_for(queue.pending(AST), 2)  # does not block on the locks
        assert [r.id for r in others] == ids[2:]
        await tx.commit()
    assert await queue.pending(AST) == []


async def test_complete_writes_the_result_once(repo: Repository, queue: ControlQueue) -> None:
    call = await add_call(repo, "live-1")
    a, b = [await queue.submit(call, act, None, "alice") for act in ("pause", "start")]
    late = await queue.submit(call, "stop", None, "alice")
    await queue.pending(AST, limit=2)
    assert await queue.complete(a, "done", "recording paused")
    assert await queue.complete(b, "rejected", "policy: never record this number")
    assert not await queue.complete(a, "failed", "again")  # already handled: unchanged
    assert not await queue.complete(late, "done")  # never taken: a claim comes first
    assert not await queue.complete(99999, "done")
    with pytest.raises(ValueError, match="status must be one of"):
        await queue.complete(a, "taken")
    assert await queue.wait_result(a, 0) == ("done", "recording paused")
    state = await queue.get(b)
    assert state is not None and state.final
    assert (state.status, state.detail, state.asterisk_id) == (
        "rejected", "policy: never record this number", AST,
    )  # fmt: skip
    assert state.handled_at is not None and state.taken_at is not None
    assert await queue.get(99999) is None
    late_state = await queue.get(late)
    assert late_state is not None and not late_state.final and late_state.status == "pending"


async def test_wait_result(repo: Repository, queue: ControlQueue) -> None:
    call = await add_call(repo, "live-1")
    request_id = await queue.submit(call, "pause", None, "alice")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await queue.wait_result(request_id, 0.3) == ("pending", None)
    assert 0.25 <= loop.time() - start < 2

    async def daemon() -> None:
        await asyncio.sleep(0.2)
        [taken] = await queue.pending(AST)
        await asyncio.sleep(0.2)
        await queue.complete(taken.id, "done", "paused")

    task = asyncio.create_task(daemon())
    start = loop.time()
    assert await queue.wait_result(request_id, 10) == ("done", "paused")
    assert loop.time() - start < 2  # answered when done, not at the timeout
    await task
    with pytest.raises(ControlNotFound):
        await queue.wait_result(424242, 1)


async def test_stale_requests_expire_instead_of_running_late(
    repo: Repository, queue: ControlQueue
) -> None:
    call = await add_call(repo, "live-1")
    old, fresh = [await queue.submit(call, a, None, "alice") for a in ("pause", "resume")]
    await repo.pool.execute(
        "UPDATE control_requests SET requested_at = now() - interval '2 minutes' WHERE id = $1",
        old,
    )
    assert [r.id for r in await queue.pending(AST)] == [fresh]
    status, detail = await queue.wait_result(old, 0)
    assert status == "failed" and detail is not None and "expired" in detail
    # Without an expiry, an old request is still handed out.
    older = await queue.submit(call, "stop", None, "alice")
    await repo.pool.execute(
        "UPDATE control_requests SET requested_at = now() - interval '1 hour' WHERE id = $1",
        older,
    )
    assert [r.id for r in await queue.pending(AST, expire_after_s=None)] == [older]


async def test_a_restarted_daemon_fails_what_its_predecessor_left_taken(
    repo: Repository, queue: ControlQueue
) -> None:
    call, other = await add_call(repo, "live-1"), await add_call(repo, "live-2", ast=OTHER_AST)
    taken = [await queue.submit(call, "pause", None, "alice") for _ in range(2)]
    other_taken = await queue.submit(other, "pause", None, "alice")
    await queue.pending(AST)
    await queue.pending(OTHER_AST)
    waiting = await queue.submit(call, "resume", None, "alice")
    assert await queue.abandon_taken(AST) == 2
    for request_id in taken:
        assert await queue.wait_result(request_id, 0) == (
            "failed", "the recorder restarted before finishing it",
        )  # fmt: skip
    assert (await queue.wait_result(other_taken, 0))[0] == "taken"
    assert (await queue.wait_result(waiting, 0))[0] == "pending"
    assert await queue.abandon_taken(AST) == 0


async def test_requests_left_hanging_are_failed_not_kept_forever(
    repo: Repository, queue: ControlQueue
) -> None:
    call = await add_call(repo, "live-1")
    taken = await queue.submit(call, "pause", None, "alice")
    await queue.pending(AST)
    waiting = await queue.submit(call, "resume", None, "alice")
    # a poll fails only what was taken longer ago than the expiry
    assert await queue.abandon_taken(AST, "lost", older_than_s=60) == 0
    await repo.pool.execute(
        "UPDATE control_requests SET taken_at = now() - interval '2 minutes', "
        "requested_at = now() - interval '2 minutes' WHERE id = ANY($1)", [taken, waiting])
    assert await queue.abandon_taken(AST, "lost", older_than_s=60) == 1
    assert await queue.wait_result(taken, 0) == ("failed", "lost")
    # and a request no recorder ever took reads as expired (its daemon may be gone)
    state = await queue.get(waiting)
    assert state is not None and state.status == "failed"
    assert (state.detail or "").startswith("expired")


def test_vocabulary_matches_the_migration() -> None:
    text = (DEFAULT_DIRECTORY / "0005_controls.sql").read_text()
    for word in (*c.CONTROL_ACTIONS, *c.STATUSES):
        assert f"'{word}'" in text
    assert f"'{c.CHANNEL}'" in text


async def test_a_dedicated_listener_holds_none_of_the_pool(repo: Repository, pg_dsn: str) -> None:
    """The daemon listens on a connection of its own: a pool of one still writes."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        queue = ControlQueue(pool, listen_dsn=pg_dsn)
        call = await add_call(repo, "live-1")
        woken = asyncio.Event()
        listener = await queue.listen(AST, woken.set)
        try:
            assert listener.dedicated
            async with asyncio.timeout(2):  # the pool's only connection is free
                await queue.submit(call, "pause", None, "alice")
            await asyncio.wait_for(woken.wait(), 5)
        finally:
            await queue.unlisten(listener)
        assert listener.connection.is_closed()
    finally:
        await pool.close()
