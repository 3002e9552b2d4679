"""Hook mode's log lines on calls that go right: no warning, no error, nothing missing.

On a real Asterisk a leg's snoop recording finishes, and its snoop leaves the app, before the
leg's ChannelDestroyed, and a callee that Dial() hangs up gets no ChannelHangupRequest at all
(observed/hook_mode_*; the simulator does the same: arisim.channels.destroy_channel). A normal
hang-up, transfer or forward is none the less no gap, no failure and nothing missing: ops staff
tailing recording health must see nothing then. A snoop that ends while its leg lives on is a
real gap, logged and replaced at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from arisim.audio import tones_per_second
from structlog.testing import capture_logs

from recorder.policy import consent_rows
from tests.harness.hooked import CALLEE, CALLER, PROMPT_S, TARGET, agi, at, channel, start_hooked
from tests.harness.stack import Stack, running_stack

ALARMS = ("recording.gap", "recording.failed", "recording.missing", "ari.request_failed")


def troubles(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """Lines a person tailing the log would have to look at, and every alarm of recording
    health whatever its level."""
    return [e for e in logs
            if e["log_level"] in ("warning", "error", "critical") or e["event"] in ALARMS]


def summary(logs: list[MutableMapping[str, Any]], call_id: str) -> MutableMapping[str, Any]:
    (line,) = [e for e in logs if e["event"] == "call.summary" and e.get("call_id") == call_id]
    return line


def dialplan(st: Stack, dial: str = "PJSIP/${EXTEN}") -> None:
    """As dialplan/verbatim-hooks.conf has it: [hook-in] runs the record hook, then Dial() with
    the answered hook (U()); [hook-xfer] is the TRANSFER_CONTEXT ([verbatim-hook-transfer]);
    [from-internal] is where Dial() follows a 302 (Local/<target>@from-internal)."""
    answered = "U(verbatim-answered^${VERBATIM_CALL_ID})"
    st.sim.add_extension("verbatim-answered", "s", [
        ("AGI", f"{agi(st, 'answered')},${{ARG1}}"), ("Return", "")])
    st.sim.add_extension("hook-in", "_X.", [
        ("AGI", f"{agi(st, 'record')},inbound,${{EXTEN}}"), ("Dial", f"{dial},30,{answered}")])
    st.sim.add_extension("hook-xfer", "_X.", [
        ("AGI", f"{agi(st, 'record')},internal,${{EXTEN}},${{VERBATIM_CALL_ID}}"),
        ("Dial", f"PJSIP/${{EXTEN}},30,{answered}")])
    st.sim.add_extension("from-internal", "300", [("Dial", f"PJSIP/300,30,{answered}")])
    st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=1.0)
    st.sim.set_endpoint("PJSIP/300", tone_hz=TARGET, answer_after=1.0)


async def hang_up(st: Stack, channel_id: str) -> None:
    st.sim.hangup(channel_id)
    await st.advance(0.5)


# --- the scenarios: each drives a call from the record hook's answer to its end -----------------


# (each party that answers hears its announcement first: PROMPT_S)


async def caller_hangs_up(st: Stack, caller: Any) -> None:
    await st.advance(1.0 + PROMPT_S + 2.0)
    await hang_up(st, caller.id)


async def callee_hangs_up(st: Stack, caller: Any) -> None:
    await st.advance(1.0 + PROMPT_S + 2.0)
    await hang_up(st, channel(st, "PJSIP/201").id)


async def blind_transfer(st: Stack, caller: Any) -> None:
    await st.advance(1.0 + PROMPT_S + 2.0)
    outcome = st.sim.blind_transfer(channel(st, "PJSIP/201").id, "300", context="hook-xfer")
    assert outcome.result == "Success"
    await st.advance(1.0 + PROMPT_S + 2.0)
    assert channel(st, "PJSIP/300").bridge_id == caller.bridge_id is not None
    await hang_up(st, caller.id)


async def forward(st: Stack, caller: Any) -> None:
    await st.advance(2.0 + PROMPT_S + 2.0)  # 201 answers 302: Dial() follows it to 300
    assert channel(st, "PJSIP/300").bridge_id is not None
    await hang_up(st, caller.id)


async def ring_group(st: Stack, caller: Any) -> None:
    await st.advance(1.5 + PROMPT_S + 2.0)
    assert channel(st, "PJSIP/202").bridge_id == caller.bridge_id is not None
    await hang_up(st, channel(st, "PJSIP/202").id)


async def hold(st: Stack, caller: Any) -> None:
    await st.advance(1.0 + PROMPT_S + 1.0)
    callee = channel(st, "PJSIP/201")
    st.sim.hold(callee.id)
    await st.advance(2.0)
    st.sim.unhold(callee.id)
    await st.advance(2.0)
    await hang_up(st, callee.id)


async def busy(st: Stack, caller: Any) -> None:
    await st.advance(1.0)  # Dial() returns BUSY; the dialplan ends and hangs the caller up


async def caller_gives_up(st: Stack, caller: Any) -> None:
    await st.advance(2.0)  # 201 rings for 5 s
    await hang_up(st, caller.id)


Scenario = Callable[[Stack, Any], Awaitable[None]]
SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "caller_hangs_up": (caller_hangs_up, "answered"),
    "callee_hangs_up": (callee_hangs_up, "answered"),
    "blind_transfer": (blind_transfer, "answered"),
    "forward_302": (forward, "answered"),
    "ring_group": (ring_group, "answered"),
    "hold": (hold, "answered"),
    "busy": (busy, "busy"),
    "caller_gives_up": (caller_gives_up, "abandoned"),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_a_normal_hooked_call_logs_no_alarm(tmp_path: Path, pg_dsn: str,
                                                  name: str) -> None:
    scenario, outcome = SCENARIOS[name]
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        if name == "ring_group":
            dialplan(st, "PJSIP/201&PJSIP/202")
            st.sim.set_endpoint("PJSIP/201", result="noanswer")
            st.sim.set_endpoint("PJSIP/202", tone_hz=CALLEE, answer_after=1.5)
        else:
            dialplan(st)
        if name == "forward_302":
            st.sim.set_endpoint("PJSIP/201", result="forward", forward_to="300",
                                answer_after=1.0)
        elif name == "busy":
            st.sim.set_endpoint("PJSIP/201", result="busy", answer_after=0.5)
        elif name == "caller_gives_up":
            st.sim.set_endpoint("PJSIP/201", tone_hz=CALLEE, answer_after=5.0)
        with capture_logs() as logs:
            caller, call_id = await start_hooked(st)
            await scenario(st, caller)
        call, legs, recs, _events = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", outcome)
        assert [(e["event"], e["log_level"]) for e in troubles(logs)] == []
        line = summary(logs, call_id)
        assert (line["missing"], line["gaps"], line["segments_replaced"]) == (0, 0, 0), line
        assert {r.status for r in recs} == {"filed"}
        assert await st.repo.gaps(call.started_at, call_id) == []
        for leg in legs:  # every second a party talked is in a file
            assert (leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250, leg
        # no request for a channel already gone (no re-snoop, no hangup of a gone snoop), but
        # for asking whether a leg whose snoop ended lives on
        refused = [(r.method, r.path, r.status) for r in st.sim.requests
                   if r.status >= 400 and r.method != "GET"]
        assert refused == []


@pytest.mark.parametrize("how", ["finished", "failed"])
async def test_a_snoop_that_ends_while_its_leg_lives_is_a_gap_replaced_at_once(
    tmp_path: Path, pg_dsn: str, how: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        dialplan(st)
        caller, call_id = await start_hooked(st)
        await st.advance(1.0 + PROMPT_S + 1.0)
        callee = channel(st, "PJSIP/201")
        first = st.daemon.state.calls[call_id].legs[callee.id].hook.recording
        with capture_logs() as logs:
            if how == "finished":
                st.sim.finish_recording(first)
            else:
                st.sim.fail_recording(first, cause="disk full")
            await st.settle()  # no virtual time passes: replaced at once
        # asked of the channel as ast_channel_get_by_name finds it (a variable), not of the
        # snapshot cache (GET /channels/{id}), which keeps a leg its snoop still holds
        asked = [(r.path, r.params.get("variable"), r.status) for r in st.sim.requests
                 if r.method == "GET" and r.path.startswith(f"/channels/{callee.id}")]
        assert asked == [(f"/channels/{callee.id}/variable", "CHANNEL(state)", 200)]
        leg = st.daemon.state.calls[call_id].legs[callee.id]
        assert leg.hook.recording not in (None, first)
        assert st.sim.recordings[leg.hook.recording].state == "recording"
        gap_lines = [e for e in logs if e["event"] == "recording.gap"]
        assert [(e["log_level"], e["recording"]) for e in gap_lines] == [("warning", first)]
        old_snoop = next(c for c in st.sim.channels.values()
                         if c.snoop_of == callee.id and c.hungup)
        assert old_snoop.destroyed  # the snoop left without its recording was hung up
        await st.advance(2.0)
        with capture_logs() as logs:
            await hang_up(st, caller.id)
        assert troubles(logs) == []
        line = summary(logs, call_id)
        assert (line["segments_replaced"], line["missing"]) == (1, 1 if how == "failed" else 0)
        call, legs, _recs, _events = await st.call_rows(call_id)
        assert call.status == "ended"
        for row in legs:  # the other party's snoop covered the moment between the two
            assert (row.talked_ms or 0) - (row.covered_ms or 0) <= 250, row


async def test_a_caller_hanging_up_during_the_announcement_is_an_abandoned_call(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        dialplan(st)
        with capture_logs() as logs:
            caller = st.sim.start_dialplan_call("201", context="hook-in", tone_hz=CALLER,
                                                caller_number="+12125550100")
            await st.settle()
            await st.sim.wait_agi(caller.id, "playing")
            await st.advance(1.0)
            await hang_up(st, caller.id)
            await st.sim.wait_agi(caller.id, "done")
            await st.settle()
        assert troubles(logs) == []
        call_id = await st.only_call_id()
        call, legs, recs, _events = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "abandoned")
        assert [leg.outcome for leg in legs] == ["hangup"] and recs == []
        rows = await consent_rows(st.repo.pool, call_id)
        assert [(r.party, r.played) for r in rows] == [("caller", "interrupted")]
        assert summary(logs, call_id)["missing"] == 0


@pytest.mark.parametrize("passes_id", [True, False])
async def test_a_302_into_a_context_that_calls_the_record_hook_stays_one_call(
    tmp_path: Path, pg_dsn: str, passes_id: bool
) -> None:
    """201 answers 302 to 300: Dial() follows it through Local/300@from-internal, whose
    dialplan calls the record hook (as [verbatim-record] does) before it dials 300. The ;2
    joins the caller's call by the inherited VERBATIM_CALL_ID (or, from a dialplan that does
    not pass it, as the ;2 of a Local pair whose ;1 is a leg): one call, one announcement to
    the caller, nothing played into the Local pair, and every second recorded."""
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        dialplan(st)
        inherited = ",${VERBATIM_CALL_ID}" if passes_id else ""
        st.sim.add_extension("verbatim-record", "s", [  # its fallback branch aside
            ("AGI", f"{agi(st, 'record')},${{ARG1}},${{ARG2}}{inherited}"), ("Return", "")])
        st.sim.add_extension("from-internal", "300", [
            ("Gosub", "verbatim-record,s,1(internal,300)"),
            ("Dial", "PJSIP/300,30,U(verbatim-answered^${VERBATIM_CALL_ID})")])
        st.sim.set_endpoint("PJSIP/201", result="forward", forward_to="300", answer_after=1.0)
        with capture_logs() as logs:
            caller, call_id = await start_hooked(st)
            await st.advance(2.0 + PROMPT_S + 3.0)
            target = channel(st, "PJSIP/300")
            local = channel(st, "Local/300@from-internal")
            assert caller.bridge_id == local.bridge_id is not None
            await hang_up(st, caller.id)
        assert len(await st.repo.recent_calls(10)) == 1
        call, legs, recs, _events = await st.call_rows(call_id)
        assert (call.status, call.outcome) == ("ended", "answered")
        record_sessions = [x for x in st.sim.agi_sessions if x.script == "record"]
        assert [x.channel_name[-2:] for x in record_sessions] == [caller.name[-2:], ";2"]
        joined = record_sessions[1]
        assert 'SET VARIABLE VERBATIM_STATUS "RECORDING"' in joined.commands
        assert f'SET VARIABLE __VERBATIM_CALL_ID "{call_id}"' in joined.commands
        played = [(x.channel_name, c) for x in st.sim.agi_sessions for c in x.commands
                  if c.startswith(("STREAM FILE", "ANSWER"))]
        assert [n for n, c in played if c.startswith("STREAM FILE")
                and n != target.name] == [caller.name]  # the caller heard one announcement
        assert not [n for n, _ in played if n.startswith("Local/")]  # nothing into the pair
        assert troubles(logs) == []
        line = summary(logs, call_id)
        assert (line["missing"], line["gaps"], line["segments_replaced"]) == (0, 0, 0), line
        assert await st.repo.gaps(call.started_at, call_id) == []
        by_channel = {leg.channel_id: leg for leg in legs}
        assert by_channel[local.id].role == "callee" and target.id in by_channel
        for leg in legs:
            assert (leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250, leg
        assert (by_channel[target.id].talked_ms or 0) >= 2900
        target_rec = next(r for r in recs if r.target == f"snoop:{target.id}")
        seconds = tones_per_second(Path(target_rec.path or ""), [CALLER, CALLEE, TARGET])
        assert len(seconds) >= 3 and all(x == {CALLER, TARGET} for x in seconds), seconds


async def test_an_attended_transfer_links_the_two_calls_and_proves_their_coverage(
    tmp_path: Path, pg_dsn: str
) -> None:
    """201 talks with the caller, holds it, calls 300 through the record hook (a second call,
    the consultation), then transfers: the Dial() bridges swap (destination "bridge") and the
    caller talks with 300. The two calls are linked, and each one's coverage proof counts the
    seconds its party talked with the other call's, covered by its own snoop."""
    async with running_stack(tmp_path, pg_dsn, hooks=True) as st:
        dialplan(st)
        answered = "U(verbatim-answered^${VERBATIM_CALL_ID})"
        st.sim.add_extension("hook-out", "_X.", [
            ("AGI", f"{agi(st, 'record')},internal,${{EXTEN}}"),
            ("Dial", f"PJSIP/${{EXTEN}},30,{answered}")])
        with capture_logs() as logs:
            caller, call_a = await start_hooked(st)
            await st.advance(1.0 + PROMPT_S + 2.0)
            first = channel(st, "PJSIP/201")
            st.sim.hold(first.id)
            second = st.sim.start_dialplan_call("300", context="hook-out", endpoint="PJSIP/201",
                                                tone_hz=CALLEE, caller_number="201")
            await st.advance(PROMPT_S + 1.0 + PROMPT_S + 1.0)  # announced; 300 too
            target = channel(st, "PJSIP/300")
            assert second.bridge_id == target.bridge_id is not None
            call_b = st.daemon.state.by_channel[second.id]
            assert call_b != call_a
            assert st.sim.attended_transfer(first.id, second.id).result == "Success"
            await st.advance(3.0)
            assert caller.bridge_id == target.bridge_id
            await hang_up(st, caller.id)
        entered = {(e["channel"]["id"], e["bridge"]["id"]): at(e)
                   for e in st.sim.events("ChannelEnteredBridge")}
        left = {(e["channel"]["id"], e["bridge"]["id"]): at(e)
                for e in st.sim.events("ChannelLeftBridge")}
        (b1, b2) = {b for _c, b in entered}
        if entered[(caller.id, b1)] > entered[(caller.id, b2)]:
            b1, b2 = b2, b1
        assert [(e["event"], e["log_level"]) for e in troubles(logs)] == []
        rows = {c: await st.call_rows(c) for c in (call_a, call_b)}
        assert rows[call_a][0].linked_calls == [call_b]
        assert rows[call_b][0].linked_calls == [call_a]
        for call_id, (call, legs, recs, events) in rows.items():
            assert (call.status, call.outcome) == ("ended", "answered")
            line = summary(logs, call_id)
            assert (line["missing"], line["gaps"], line["segments_replaced"]) == (0, 0, 0)
            assert await st.repo.gaps(call.started_at, call_id) == []
            assert {r.status for r in recs} == {"filed"}
            assert "transfer.attended" in [e.kind for e in events]
            for leg in legs:
                assert (leg.talked_ms or 0) - (leg.covered_ms or 0) <= 250, leg
        by_a = {leg.channel_id: leg for leg in rows[call_a][1]}
        by_b = {leg.channel_id: leg for leg in rows[call_b][1]}
        # the caller talked in both bridges (201's hold included: held, not a gap), 300 from
        # its answer to the end: with 201, then with the caller
        assert abs((by_a[caller.id].talked_ms or 0) / 1000
                   - (left[(caller.id, b1)] - entered[(caller.id, b1)])
                   - (left[(caller.id, b2)] - entered[(caller.id, b2)])) <= 0.15, by_a[caller.id]
        assert (by_a[caller.id].held_ms or 0) > 0
        assert abs((by_b[target.id].talked_ms or 0) / 1000
                   - (left[(target.id, b2)] - entered[(target.id, b2)])) <= 0.15, by_b[target.id]
        caller_rec = next(r for r in rows[call_a][2] if r.target == f"snoop:{caller.id}")
        seconds = tones_per_second(Path(caller_rec.path or ""), [CALLER, CALLEE, TARGET])
        assert seconds[-3:] == [{CALLER, TARGET}] * 3, seconds
