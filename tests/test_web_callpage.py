"""The call page on real calls (tests/callpage_calls.py: placed on the simulator, recorded by
the daemon): words instead of reprs, the timeline's lanes, gaps and pauses, consent in words,
and the whole-call playback's length and access-log rows."""

from __future__ import annotations

import re
from pathlib import Path

from recorder.storage.audio import probe
from tests.harness.callpage_calls import call_world

REPRS = ("None", "{'", "['")
GAP_BAR = 'class="bar bar-gap" x='  # a red bar on the timeline (the legend has no x)
PAUSED_BAR = 'class="bar bar-paused" x='


async def test_every_page_reads_as_words_not_python(pg_dsn: str, tmp_path: Path) -> None:
    async with call_world(tmp_path, pg_dsn) as w:
        pages = ["/calls", "/calls?number=415", "/access-log"]
        pages += [f"/calls/{cid}" for cid in w.calls.values()]
        for user in ("admin", "intake"):
            for path in pages:
                if user == "intake" and path == "/access-log":
                    continue
                resp = await w.get(path, user)
                html = await resp.text()
                assert resp.status == 200, (user, path, resp.status)
                found = [r for r in REPRS if r in html]
                assert not found, (user, path, found, _around(html, found[0]))

        page = {name: await (await w.get(f"/calls/{cid}", "admin")).text()
                for name, cid in w.calls.items()}  # fmt: skip
        # the transferred call: three parties' lanes and the transfer between them
        assert page["transferred"].count('<g class="lane"') == 3
        assert 'class="arrow"' in page["transferred"] and "transfer target" in page["transferred"]
        # the second the target rang (the caller heard ringback through the Local pair) is
        # recorded but is no connected second
        assert "Recorded 7.5 of 7.5 connected seconds." in page["transferred"]
        assert "Transferred by 201 to 300" in page["transferred"]
        # the recording that failed mid-call: its seconds in red, with the reason
        gap = re.search(r'class="bar bar-gap"[^>]*><title>([^<]*)</title>', page["restarted"])
        assert gap and "segment 1 failed (disk full)" in gap.group(1), gap
        assert "2.5 s missing (segment 1 failed (disk full))" in page["restarted"]
        # paused by the attorney: paused, never a gap
        assert PAUSED_BAR in page["paused"] and GAP_BAR not in page["paused"]
        assert "3 s paused on purpose" in page["paused"]
        assert "Recording paused by 201 with a keypad code" in page["paused"]
        # hook mode: each party's file named by whose side it is
        assert "Segment 1 (the caller&#x27;s side)" in page["hook"]
        assert page["hook"].count('<g class="lane"') == 3
        # not recorded on purpose: said so, and not as a gap
        assert "declined by the caller (opt-out)" in page["opted_out"]
        assert "key 9 pressed (opt-out)" in page["opted_out"]
        assert "Managing partner" in page["policy"] and GAP_BAR not in page["policy"]
        # consent in words: the law, why, the announcement's words, the decision as explain
        consent = page["transferred"]
        assert "California law: all-party consent" in consent
        assert "This call is recorded; by staying on the line you consent." in consent
        assert "<dt>Decision</dt><dd>RECORD (yes): no rule decided" in consent
        # the raw detail is for admins only
        assert "The events as stored" in consent
        intake = await (await w.get(f"/calls/{w.calls['transferred']}", "intake")).text()
        assert "The events as stored" not in intake and "Transferred by 201 to 300" in intake


def _around(html: str, needle: str) -> str:
    at = html.find(needle)
    return html[max(at - 200, 0): at + 200]


async def test_whole_call_playback(pg_dsn: str, tmp_path: Path) -> None:
    async with call_world(tmp_path, pg_dsn, ("transferred", "paused", "hook")) as w:
        for name, cid in w.calls.items():
            recs = await w.pool.fetch(
                "SELECT name, started_at, ended_at, duration_ms, status FROM recordings "
                "WHERE call_id = $1 ORDER BY segment", cid)
            resp = await w.get(f"/api/calls/{cid}/audio", "intake")
            assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
            path = tmp_path / f"{name}.wav"
            path.write_bytes(await resp.read())
            length = probe(path).duration_ms
            if name == "hook":  # the mix is as long as the longest party's file
                assert length == max(r["duration_ms"] for r in recs), (name, length)
            else:  # the recorded span: first recorded second to the last, pauses included
                span = (recs[-1]["ended_at"] - recs[0]["started_at"]).total_seconds() * 1000
                assert abs(length - span) <= 20, (name, length, span)
            if name == "paused":  # 3 s paused: silence in the stream, not audio
                assert length - sum(r["duration_ms"] for r in recs) == 3000
            # a player's Range requests still work, and it is one playback in the log
            part = await w.get(f"/api/calls/{cid}/audio", "intake", headers={"Range": "bytes=100-"})
            assert part.status == 206
        plays = [r for r in await w.access_rows() if r["action"] == "play"]
        assert len(plays) == 3  # one per call: the Range request went on with the playback
        assert all(p["detail"]["whole_call"] and p["recording_name"] is None for p in plays)
        assert {p["call_id"] for p in plays} == set(w.calls.values())
        staff = await w.get(f"/api/calls/{w.calls['hook']}/audio", "staff201")
        assert staff.status == 200  # 201's own call
        family = await w.get(f"/api/calls/{w.calls['hook']}/audio", "family")
        assert family.status == 404  # out of scope: as if it did not exist, and logged
        denied = [r for r in await w.access_rows() if r["user_name"] == "family"]
        assert denied and denied[0]["detail"] == {"denied": "not_found"}
