"""The access log: a row for every search, view, playback and download (one per playback, not
per Range request), written before any data leaves, readable by auditors, unchangeable."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import pytest

from recorder.api.access_log import AccessLog, Origin, PlaybackTracker
from recorder.api.auth import Principal
from recorder.api.routes import DEPS
from tests.harness.api_world import World, world_fixture  # noqa: F401 (fixture)


def _summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None]]:
    return [(r["user_name"], r["action"], r["call_id"], r["recording_name"]) for r in rows]


async def test_every_access_writes_one_row(world: World) -> None:
    a = world.calls["A"]
    ua = {"User-Agent": "pytest-agent"}
    assert (await world.get("/api/calls?number=555-0100", "intake", headers=ua)).status == 200
    assert (await world.get(f"/api/calls/{a}", "intake", headers=ua)).status == 200
    assert (await world.get(world.audio("A"), "intake", headers=ua)).status == 200
    assert (await world.get(world.audio("A", kind="download"), "intake", headers=ua)).status == 200
    rows = await world.access_rows()
    assert _summary(rows) == [
        ("intake", "search", None, None),
        ("intake", "view", a, None),
        ("intake", "play", a, world.rec("A")),
        ("intake", "download", a, world.rec("A")),
    ]
    for row in rows:
        assert row["role"] == "manager" and row["via"] == "token"
        assert row["remote"] == "127.0.0.1" and row["user_agent"] == "pytest-agent"
        assert row["at"] is not None and row["user_id"] is not None
    assert rows[0]["detail"] == {
        "filters": {"number": "555-0100"}, "results": 1, "page": False,
    }  # fmt: skip


async def test_denied_attempts_are_logged_too(world: World) -> None:
    b = world.calls["B"]
    assert (await world.get(f"/api/calls/{b}", "intake")).status == 404
    assert (await world.get(world.audio("B"), "intake")).status == 404
    rows = await world.access_rows()
    assert _summary(rows) == [
        ("intake", "view", b, None),
        ("intake", "play", b, world.rec("B")),
    ]
    assert all(r["detail"] == {"denied": "not_found"} for r in rows)


async def test_one_row_per_playback_not_per_range_request(world: World) -> None:
    url = world.audio("A")
    size = (world.archive.rglob(f"{world.rec('A')}.wav").__next__()).stat().st_size
    first = await world.get(url, "staff201", headers={"Range": "bytes=0-99"})
    assert first.status == 206
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert first.headers["Content-Type"] == "audio/wav"
    assert first.headers["Content-Disposition"].startswith("inline;")
    assert len(await first.read()) == 100
    for rng in ("bytes=100-199", "bytes=200-", "bytes=-44"):
        resp = await world.get(url, "staff201", headers={"Range": rng})
        assert resp.status == 206
        await resp.read()
    assert len(await world.access_rows()) == 1
    # Starting again from the beginning is a new playback.
    again = await world.get(url, "staff201", headers={"Range": "bytes=0-"})
    assert again.status == 206 and len(await again.read()) == size
    # HEAD sends no audio, and a malformed Range is refused (416) without data: no rows.
    assert (await world.client.head(url, headers=world.auth("staff201"))).status == 200
    bad = await world.get(url, "staff201", headers={"Range": "bytes=zzz"})
    assert bad.status == 416
    rows = await world.access_rows()
    assert [(r["action"], r["detail"]["range"]) for r in rows] == [
        ("play", "bytes=0-99"), ("play", "bytes=0-"),
    ]  # fmt: skip


async def test_download_is_an_attachment(world: World) -> None:
    resp = await world.get(world.audio("B", kind="download"), "admin")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == f'attachment; filename="{world.rec("B")}.wav"'
    assert (await resp.read())[:4] == b"RIFF"
    assert resp.headers["Cache-Control"] == "no-store"


def test_playback_tracker_rules() -> None:
    p = Principal(1, "u", "staff", (), "201", "session")
    t = PlaybackTracker(idle_s=600)
    key = ("pbx1", "rec")

    def starts(action: str, start: int | None, now: float, who: Principal = p) -> bool:
        """As the routes use it: a start is logged, then marked."""
        if not t.starts_playback(who, action, key, start, now=now):
            return False
        t.logged(who, action, key, now=now)
        return True

    assert starts("play", None, 0)  # whole file
    assert not starts("play", 5000, 1)  # the same playback, seeking
    assert starts("play", 0, 2)  # from the start again
    assert starts("download", 5000, 3)  # another action: its own row
    assert not starts("play", 9000, 500)
    assert starts("play", 9000, 1200)  # idle > 10 min: a new playback
    assert starts("play", 9000, 1201, dataclasses.replace(p, user_id=2))  # never asked byte 0
    # a start whose row could not be written is no playback: the next request starts again
    assert t.starts_playback(p, "download", ("pbx1", "other"), None, now=1300)
    assert t.starts_playback(p, "download", ("pbx1", "other"), 1, now=1301)


class _BrokenLog(AccessLog):
    async def record(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("access log unreachable")


async def test_no_access_without_its_log_row(world: World) -> None:
    deps = world.client.app[DEPS]
    broken = _BrokenLog(world.pool)
    object.__setattr__(deps.calls, "access_log", broken)
    object.__setattr__(deps, "access_log", broken)
    for path in ("/api/calls", f"/api/calls/{world.calls['A']}", world.audio("A")):
        resp = await world.get(path, "admin")
        assert resp.status == 503, path
        body = await resp.json()
        assert body["error_id"] == "database_unavailable" and "calls" not in body


async def test_auditor_queries_the_log(world: World) -> None:
    await world.get("/api/calls", "intake")
    await world.get(f"/api/calls/{world.calls['B']}", "family")
    await world.get(world.audio("B"), "family")
    await world.get(world.audio("A"), "staff201")

    async def entries(query: str) -> list[tuple[str, str]]:
        resp = await world.get(f"/api/access-log?{query}", "auditor")
        assert resp.status == 200, await resp.text()
        return [(e["user_name"], e["action"]) for e in (await resp.json())["entries"]]

    assert await entries("user=family") == [("family", "play"), ("family", "view")]
    assert await entries("action=play") == [("staff201", "play"), ("family", "play")]
    assert await entries(f"call_id={world.calls['B']}") == [("family", "play"), ("family", "view")]
    assert await entries("from=2099-01-01") == []
    # Paging through everything (the auditor's own reads are logged as they go).
    body = await (await world.get("/api/access-log?limit=2", "auditor")).json()
    assert len(body["entries"]) == 2 and body["next_cursor"]
    page2 = await world.get(f"/api/access-log?limit=2&cursor={body['next_cursor']}", "auditor")
    ids = [e["id"] for e in body["entries"]] + [e["id"] for e in (await page2.json())["entries"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    reads = [r for r in await world.access_rows() if r["action"] == "access_log"]
    assert len(reads) == 6 and reads[0]["user_name"] == "auditor"
    bad = await world.get("/api/access-log?action=delete", "auditor")
    assert bad.status == 400


@pytest.mark.parametrize(
    "sql",
    ["UPDATE access_log SET user_name = 'nobody'", "DELETE FROM access_log"],
)
async def test_the_log_cannot_be_changed(world: World, sql: str) -> None:
    await AccessLog(world.pool).record(
        Principal(1, "admin", "admin", (), None, "token"), "search", Origin("127.0.0.1", None)
    )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await world.pool.execute(sql)
    assert len(await world.access_rows()) == 1
