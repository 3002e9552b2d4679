"""Per-call lanes: one call's slow request never holds up another call.

The simulator holds one call's answer request (an Asterisk slow to answer it, up to the
client's timeout) while twenty other calls arrive: each of them is answered, announced, dialled,
recorded and bridged meanwhile. Before lanes, the daemon's single consumer waited on the held
request and every other call waited with it.
"""

from __future__ import annotations

from pathlib import Path

from tests.harness.calls import advance_around
from tests.harness.stack import running_stack

OTHERS = 20


async def test_a_held_request_of_one_call_does_not_delay_the_others(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as st:
        release = st.sim.stall("POST", "/channels/held-caller/answer")
        for n in range(OTHERS + 1):
            st.sim.set_endpoint(f"PJSIP/{201 + n}", answer_after=1.0)
        held = st.sim.start_call(caller_number="+12125550100", args=["inbound", "201"],
                                 channel_id="held-caller")
        await st.sim.settle()
        others = [st.sim.start_call(caller_number=f"+1212555{1000 + n}",
                                    args=["inbound", str(202 + n)]) for n in range(OTHERS)]
        await advance_around(st, 3.0 + 1.0 + 1.0)  # announcement, ringing, recording starts
        try:
            assert st.sim.stalled == 1  # the first call's answer is still held
            phases = {c.caller_channel: c.phase for c in st.daemon.state.calls.values()}
            assert all(phases[o.id] == "bridged" for o in others), phases
            assert all(o.bridge_id for o in others)
            assert not [r for r in st.sim.requests if r.path == "/channels/create"
                        and r.params.get("endpoint") == "PJSIP/201"]  # it waits, in order
        finally:
            release.set()
        await st.settle()
        call_id = await st.until_bridged_call(held.id)
        await st.advance(1.0)
        for ch in [held, *others]:
            st.sim.hangup(ch.id)
        await st.settle()
        calls = await st.repo.recent_calls(OTHERS + 5)
        assert len(calls) == OTHERS + 1 and all(c.status == "ended" for c in calls)
        assert all(c.outcome == "answered" for c in calls), call_id
