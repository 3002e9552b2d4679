"""End to end on the simulator: a call handed to the app is recorded, filed and indexed."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
from arisim.dialplan import Result

from recorder.ari.events import IGNORED
from tests.harness.calls import assert_both_tones, event_time, run_answered_call
from tests.harness.stack import running_stack


@pytest.mark.parametrize(
    ("args", "endpoint", "number", "expect"),
    [
        (
            ["inbound", "201"],
            "PJSIP/201",
            "4155550100",
            {
                "direction": "inbound",
                "caller_e164": "+14155550100",
                "callee_e164": None,
                "extension": "201",
            },
        ),
        (
            ["outbound", "912125550123"],
            "PJSIP/912125550123@trunk",
            "305",
            {
                "direction": "outbound",
                "caller_e164": None,
                "callee_e164": "+12125550123",
                "extension": "305",
            },
        ),
    ],
)
async def test_call_is_recorded_in_full_and_indexed(
    tmp_path: Path,
    pg_dsn: str,
    args: list[str],
    endpoint: str,
    number: str,
    expect: dict[str, Any],
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        caller_id, call_id = await run_answered_call(st, args, endpoint, number, 2.0, 10.0)
        call, legs, recs, events = await st.call_rows(call_id)
        assert {k: getattr(call, k) for k in expect} == expect
        assert (call.status, call.outcome) == ("ended", "answered")
        assert call.asterisk_id == st.sim.asterisk_id
        assert call.answered_at is not None and call.ended_at is not None
        assert call.started_at < call.answered_at < call.ended_at
        assert {leg.role for leg in legs} == {"caller", "callee"}
        assert all(leg.asterisk_id == st.sim.asterisk_id for leg in legs)
        (rec,) = recs
        assert rec.status == "filed" and rec.path is not None
        path = Path(rec.path)
        assert path.is_relative_to(st.archive) and call_id in path.parts
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.sha256
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert not list(st.spool.iterdir()), "the spool copy must be gone"
        callee = next(leg for leg in legs if leg.role == "callee")
        joined = event_time(st.sim, "ChannelEnteredBridge", channel__id=callee.channel_id)
        left = event_time(st.sim, "ChannelHangupRequest", channel__id=caller_id)
        assert_both_tones(path, left - joined)
        assert rec.duration_ms is not None
        assert abs(rec.duration_ms / 1000 - (left - joined)) <= 0.1
        for leg in legs:  # the coverage proof: every second talked is in the file
            assert leg.talked_ms is not None and abs(leg.talked_ms / 1000 - (left - joined)) <= 0.1
            assert leg.covered_ms == leg.talked_ms and leg.held_ms == 0
        assert rec.legs is not None and sorted(rec.legs) == sorted(x.channel_id for x in legs)
        kinds = [e.kind for e in events]
        for kind in (
            "call.started",
            "consent.finished",
            "call.answered",
            "recording.started",
            "recording.filed",
            "call.ended",
        ):
            assert kind in kinds, kinds


async def test_asterisk_is_told_not_to_send_what_the_daemon_ignores(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The app's event filter (set at every connection: a re-created app has none) keeps
    the types the daemon skips off the WebSocket; calls are recorded as before."""
    async with running_stack(tmp_path, pg_dsn) as st:
        app = st.sim.hub.apps["verbatim"]
        assert app.events_disallowed == [{"type": t} for t in sorted(IGNORED)]
        start = len(st.sim.hub.log)
        await run_answered_call(st, ["inbound", "201"], "PJSIP/201", "4155550100", 2.0, 3.0)
        sent = [r for r in st.sim.hub.log[start:] if r.app == "verbatim"]
        assert {r.event["type"] for r in sent if not r.delivered} & IGNORED  # some were held
        assert not [r for r in sent if r.delivered and r.event["type"] in IGNORED]
        assert [r for r in sent if r.delivered and r.event["type"] == "RecordingFinished"]
        assert st.sim.request_problems() == []


async def test_recording_starts_before_the_answered_party_joins(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        await run_answered_call(st, ["inbound", "201"], "PJSIP/201", "4155550100", 10.0, 5.0)
        order = [
            e["type"]
            for e in st.sim.events()
            if e["type"] in ("RecordingStarted", "ChannelEnteredBridge")
        ]
        # the caller joins first, then the recording starts, then the callee joins
        assert order == ["ChannelEnteredBridge", "RecordingStarted", "ChannelEnteredBridge"]
        call_id = await st.only_call_id()
        _call, _legs, (rec,), _ev = await st.call_rows(call_id)
        # ten seconds of ringing, then five of conversation: all of it recorded
        assert rec.duration_ms is not None and abs(rec.duration_ms - 5000) <= 100


@pytest.mark.parametrize(
    ("result", "outcome", "advance"),
    [("busy", "busy", 2.0), ("noanswer", "no_answer", 31.0)],
)
async def test_unanswered_calls_end_with_their_outcome_and_no_recording(
    tmp_path: Path, pg_dsn: str, result: Result, outcome: str, advance: float
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result=result, answer_after=1.0)
        st.sim.start_call(caller_number="4155550100", args=["inbound", "201"])
        await st.settle()
        await st.advance(3.0 + advance, step=1.0)
        call_id = await st.only_call_id()
        call, legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", outcome)
        assert recs == []
        assert not st.sim.recordings and not list(st.spool.iterdir())
        assert not [c for c in st.sim.channels.values() if not c.destroyed]
        callee = next(leg for leg in legs if leg.role == "callee")
        assert callee.outcome == outcome


async def test_caller_abandoning_while_it_rings(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="noanswer")
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"])
        await st.settle()
        await st.advance(6.0)
        st.sim.hangup(caller.id)
        await st.settle()
        call_id = await st.only_call_id()
        call, legs, recs, _ = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "abandoned")
        assert recs == []
        assert {leg.role: leg.outcome for leg in legs} == {
            "caller": "hangup",
            "callee": "cancelled",
        }
        # the ringing leg was hung up by the app, not left ringing (trace caller_abandons)
        assert not [c for c in st.sim.channels.values() if not c.destroyed]
