"""Asterisk (the simulator) dies and comes back mid-call: its channels, bridges and live
recordings are gone, without an event; what the recordings wrote stays in the spool.

The daemon reconnects, finds none of its calls' channels, and closes each call with the outcome
it had reached (a talking call answered, a ringing one abandoned), filing each call's partial
recording under the call.
"""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from tests.harness.calls import CALLEE_HZ, CALLER_HZ, assert_both_tones, bridged_call, event_time
from tests.harness.stack import running_stack


async def test_asterisk_restart_mid_call_closes_each_call_and_files_its_part(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        talking_caller, talking = await bridged_call(st)
        st.sim.set_endpoint("PJSIP/202", result="answer", answer_after=60.0, tone_hz=CALLEE_HZ)
        ringing_caller = st.sim.start_call(caller_number="4155550111", args=["inbound", "202"],
                                           tone_hz=CALLER_HZ)
        await st.settle()
        await st.advance(4.0)  # the second call's announcement; it rings; the first talks on
        assert st.sim.channels[f"{talking}-l2"].state == "Up"
        died = st.sim.clock.epoch()
        with capture_logs() as logs:
            await st.sim.restart()
            await st.settle()
            await st.connected()
            await st.settle()
        assert not st.sim.channels and not st.sim.bridges
        rows = {leg.channel_id: c for c in await st.repo.recent_calls(5)
                for leg in await st.repo.legs(c.call_id) if leg.role == "caller"}
        assert set(rows) == {talking_caller, ringing_caller.id}
        call, _legs, recs, _events = await st.call_rows(talking)
        assert (call.status, call.outcome) == ("ended", "answered")
        assert [r.status for r in recs] == ["filed"], recs
        joined = event_time(st.sim, "ChannelEnteredBridge", channel__id=f"{talking}-l2")
        assert_both_tones(Path(recs[0].path or ""), died - joined)  # all it had heard
        rang = rows[ringing_caller.id]
        assert (rang.status, rang.outcome) == ("ended", "abandoned")
        assert not [r for r in await st.repo.recordings(rang.call_id) if r.status != "filed"]
        assert not list((tmp_path / "spool").iterdir())
        assert not [e for e in logs if e["event"] in ("call.adopt_orphan", "call.release_orphan",
                                                       "daemon.event_failed")]
