"""Recordings that end mid-call, a dropped WebSocket, bad events: the call is still recorded."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from arisim import rest
from arisim.audio import tone_map
from structlog.testing import capture_logs

from recorder.service.lines import IN_A_ROW
from tests.harness.calls import (
    CALLEE_HZ,
    CALLER_HZ,
    bridged_call,
    dialled,
    event_time,
    recordings,
)
from tests.harness.stack import running_stack

BOTH = {CALLER_HZ, CALLEE_HZ}


def covered_seconds(paths: list[Path]) -> float:
    """Seconds, over all files, of 100-ms windows holding both parties' tones."""
    return sum(sum(1 for w in tone_map(p, sorted(BOTH)) if w == BOTH) * 0.1 for p in paths)


async def test_recording_ended_mid_call_is_followed_by_a_new_segment(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.advance(3.0)
        (first,) = recordings(st.sim)
        with capture_logs() as logs:
            st.sim.finish_recording(first)
            await st.settle()  # no virtual time passes: one event round trip
        _, second = recordings(st.sim)
        started = [e for e in st.sim.events("RecordingStarted") if e["recording"]["name"] == second]
        assert started, "the next segment must start at once"
        gap_lines = [entry for entry in logs if entry["event"] == "recording.gap"]
        assert gap_lines and gap_lines[0]["call_id"] == call_id
        assert gap_lines[0]["recording"] == first
        await st.advance(4.0)
        st.sim.hangup(caller_id)
        await st.settle()
        call, _legs, recs, events = await st.call_rows(call_id)
        assert call.status == "ended"
        assert [(r.name, r.status) for r in sorted(recs, key=lambda r: r.segment)] == [
            (first, "filed"),
            (second, "filed"),
        ]
        assert "recording.gap" in [e.kind for e in events]
        joined = event_time(st.sim, "ChannelEnteredBridge", channel__id=dialled(st.sim, call_id))
        left = event_time(st.sim, "ChannelHangupRequest", channel__id=caller_id)
        # two files together cover the conversation (a request round trip may be lost)
        covered = covered_seconds([Path(r.path or "") for r in recs])
        assert (left - joined) - 0.2 <= covered <= (left - joined) + 0.1


async def test_recordings_asterisk_cannot_keep_are_tried_again_later_not_in_a_loop(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Each new segment ends as it starts (Asterisk cannot write the file): three in a row, then
    the daemon stops asking (one recording.unavailable error) until the call's retry time,
    which its periodic task (every 5 s) finds passed: one more segment, which now runs."""
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.advance(3.0)  # the first segment ran 3 s: replaced at once when it ends
        with capture_logs() as logs:
            for _ in range(4):
                st.sim.finish_recording(recordings(st.sim)[-1])
                await st.settle()
        asked = len(recordings(st.sim))
        assert asked == 4  # the first, then three that could not run
        assert [e["event"] for e in logs if e["log_level"] == "error"] == [
            "recording.unavailable"]
        await st.advance(6.0)  # the retry time passes (Asterisk's clock)
        for _ in range(40):  # the periodic task looks every 5 s (real time)
            if len(recordings(st.sim)) > asked:
                break
            await asyncio.sleep(0.25)
        await st.settle()
        assert len(recordings(st.sim)) == asked + 1
        await st.advance(3.0)
        st.sim.hangup(caller_id)
        await st.settle()
        _call, _legs, recs, _events = await st.call_rows(call_id)
        assert sorted(r.status for r in recs).count("filed") == 5


async def test_recording_failed_mid_call_is_a_failed_row_and_a_new_segment(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.advance(2.0)
        with capture_logs() as logs:
            (first,) = recordings(st.sim)
            st.sim.fail_recording(first, cause="disk full")
            await st.settle()
        assert any(e["event"] == "recording.failed" and e["log_level"] == "error" for e in logs)
        _, second = recordings(st.sim)
        assert second in st.sim.recordings
        await st.advance(2.0)
        st.sim.hangup(caller_id)
        await st.settle()
        _call, _legs, recs, _events = await st.call_rows(call_id)
        statuses = {r.name: (r.status, r.error) for r in recs}
        assert statuses[first][0] == "failed"
        assert "disk full" in (statuses[first][1] or "")
        assert statuses[second][0] == "filed"
        # what the failed recording spanned is a gap for both parties, never covered
        gaps = await st.repo.gaps(datetime.now(UTC) - timedelta(days=1), call_id)
        assert sorted(g.channel_id for g in gaps) == sorted([caller_id, dialled(st.sim, call_id)])
        joined = event_time(st.sim, "ChannelEnteredBridge", channel__id=dialled(st.sim, call_id))
        failed = event_time(st.sim, "RecordingFailed")
        assert all(abs(g.duration_ms / 1000 - (failed - joined)) <= 0.1 for g in gaps), gaps


async def test_phones_asterisk_cannot_call_in_a_row_are_warned_once_then_its_end_said(
    tmp_path: Path, pg_dsn: str
) -> None:
    """One phone Asterisk cannot call (500) is an everyday call (info); every call's callee
    refused, none made between, is the line side down: one warning, and its end at info."""
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="nonexistent")
        with capture_logs() as logs:
            for n in range(IN_A_ROW + 2):
                st.sim.start_call(caller_number=f"41555501{n:02d}", args=["inbound", "201"])
                await st.settle()
                await st.advance(6.0)  # the announcement, then the refused dial
            ended = await st.repo.recent_calls(IN_A_ROW + 2)
            assert [(c.status, c.outcome) for c in ended] == [("ended", "failed")] * (IN_A_ROW + 2)
            quiet = [(x["event"], x["log_level"]) for x in logs
                     if x["log_level"] in ("warning", "error")]
            # the tenth refusal in a row, not before it, and once
            assert quiet == [("ari.channels_refused", "warning")]
            [said] = [x for x in logs if x["event"] == "ari.channels_refused"]
            assert (said["in_a_row"], said["last_endpoint"]) == (IN_A_ROW, "PJSIP/201")
            assert not [x for x in logs if x["event"] == "ari.channels_made_again"]

            caller_id, call_id = await bridged_call(st)  # the phones are back
            made = [x for x in logs if x["event"] == "ari.channels_made_again"]
            assert [(x["log_level"], x["after_refused"]) for x in made] == [
                ("info", IN_A_ROW + 2)]
        call, _legs, _recs, _events = await st.hang_up(caller_id, call_id)
        assert call.outcome == "answered"


async def test_websocket_drop_mid_call_reconnects_reconciles_and_completes(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.sim.drop_websockets()
        # While the daemon is away, the recording ends by itself: nobody hears of it.
        (first,) = recordings(st.sim)
        st.sim.finish_recording(first)
        await st.settle()
        await st.connected()  # reconnected (backoff is tens of milliseconds in tests)
        await st.settle()
        assert len(recordings(st.sim)) == 2, "reconcile must start the next segment"
        assert recordings(st.sim)[1] in st.sim.recordings
        await st.advance(3.0)
        st.sim.hangup(caller_id)
        await st.settle()
        call, _legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        assert sorted(r.status for r in recs) == ["filed", "filed"]
        gets = [r for r in st.sim.requests if r.method == "GET"]
        paths = {r.path for r in gets}
        assert {
            "/channels",
            "/bridges",
            f"/recordings/live/{first}",
            f"/recordings/stored/{first}",
        } <= paths


async def test_an_announcement_that_ended_while_disconnected_is_played_again(
    tmp_path: Path, pg_dsn: str
) -> None:
    """No event can say whether a playback that is gone ended or never started: the caller
    hears the announcement again, then is put through (before: left in silence for good)."""
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        caller = st.sim.start_call(
            caller_number="4155550100", args=["inbound", "201"], tone_hz=CALLER_HZ)
        await st.settle()
        (announcement,) = st.sim.playbacks.values()
        await st.sim.drop_websockets()
        with capture_logs() as logs:
            st.sim.player.stop_playback(announcement)  # its end is an event nobody hears
            await st.settle()
            await st.connected()
            await st.settle()
        replayed = [x for x in logs if x["event"] == "consent.prompt_replayed"]
        # said once, by the drop (ari.disconnected): the replay is its consequence, at info
        assert [(x["log_level"], x["lost"]) for x in replayed] == [("info", announcement.id)]
        plays = [r.path for r in st.sim.requests if r.method == "POST" and "/play/" in r.path]
        assert len(plays) == 2 and plays[0].endswith(announcement.id), plays
        assert f"/playbacks/{announcement.id}" in {
            r.path for r in st.sim.requests if r.method == "GET"}
        call_id = await st.until_bridged()
        st.sim.hangup(caller.id)
        await st.settle()
        call, _legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        assert [r.status for r in recs] == ["filed"]


async def test_an_announcement_that_ends_as_the_daemon_asks_for_it_is_not_played_again(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The announcement ends just after the events connection is back, as the reconciliation
    asks for it: Asterisk answers 404, and its PlaybackFinished comes on the other connection.
    It ended, so the call goes on without it, once (before: the caller heard it twice)."""
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=1.0, tone_hz=CALLEE_HZ)
        st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                          tone_hz=CALLER_HZ)  # fmt: skip
        await st.settle()
        (announcement,) = st.sim.playbacks.values()
        await st.sim.drop_websockets()
        key = "GET /playbacks/{playbackId}"
        asked = rest.HANDLERS[key]

        def ends_first(sim: Any, args: Any) -> Any:
            if announcement.id in sim.playbacks:
                sim.player.stop_playback(announcement)  # PlaybackFinished, on the WebSocket
            return asked(sim, args)

        monkeypatch.setitem(rest.HANDLERS, key, ends_first)
        with capture_logs() as logs:
            await st.connected()
            await st.settle()
        assert f"/playbacks/{announcement.id}" in {
            r.path for r in st.sim.requests if r.method == "GET"}
        assert not [x for x in logs if x["event"] == "consent.prompt_replayed"]
        media = [r.params.get("media") for r in st.sim.requests
                 if r.method == "POST" and "/play/" in r.path]  # fmt: skip
        assert [m for m in media if m != "tone:ring"] == announcement.media, media
        await st.until_bridged()


async def test_hangup_while_disconnected_closes_the_call_after_reconnect(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await bridged_call(st)
        await st.sim.drop_websockets()
        st.sim.hangup(caller_id)
        await st.settle()
        await st.connected()
        await st.settle()
        call, legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        assert [r.status for r in recs] == ["filed"]
        assert all(leg.ended_at is not None for leg in legs)
        left = [c.name for c in st.sim.channels.values() if not c.destroyed]
        assert not left, left


async def test_malformed_and_unknown_events_are_logged_and_skipped(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        session = st.sim.hub.apps["verbatim"].session
        assert session is not None
        bad = [
            "{not json",
            json.dumps(
                {
                    "type": "StasisStart",
                    "timestamp": "2026-11-25T18:26:35.399+0000",
                    "args": "inbound",
                    "channel": {},
                }
            ),
            json.dumps({"type": "FromTheFuture", "timestamp": "2026-11-25T18:26:35.399+0000"}),
        ]
        with capture_logs() as logs:
            for text in bad:
                session.queue.put_nowait(text)
            await st.settle()
        errors = [e for e in logs if e["event"] == "ari.bad_event"]
        assert len(errors) == 3, logs
        assert "$.args" in errors[1]["error"] and "unknown event type" in errors[2]["error"]
        # and the daemon still records the next call
        caller_id, call_id = await bridged_call(st)
        st.sim.hangup(caller_id)
        await st.settle()
        call, _legs, recs, _ = await st.call_rows(call_id)
        assert call.status == "ended" and [r.status for r in recs] == ["filed"]


async def test_every_line_about_a_call_carries_its_ids(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        with capture_logs() as logs:
            caller_id, call_id = await bridged_call(st)
            st.sim.hangup(caller_id)
            await st.settle()
        about_calls = [e for e in logs if e["event"].startswith(("call.", "recording."))]
        assert about_calls and all(e.get("call_id") == call_id for e in about_calls)
        (summary,) = [e for e in logs if e["event"] == "call.summary"]
        assert summary["seconds_recorded"] > 0 and summary["gaps"] == 0
