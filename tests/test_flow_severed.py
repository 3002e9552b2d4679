"""A request whose connection is cut before its answer: Asterisk may or may not have carried
it out, and the daemon looks, as after a reconnection, rather than leave the call as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from arisim.audio import tone_map

from tests.harness.calls import CALLEE_HZ, CALLER_HZ, dialled
from tests.harness.stack import running_stack


@pytest.mark.parametrize("carried_out", [False, True])
async def test_a_callee_whose_add_to_the_bridge_was_cut_off_is_connected(
    tmp_path: Path, pg_dsn: str, carried_out: bool
) -> None:
    """The callee answered and the recording runs; the request adding the callee to the
    bridge loses its connection. Asterisk never heard it: the parties were left apart, in
    silence, until one hung up (before); now the daemon finds the callee outside the bridge
    and adds it. Asterisk did it (the answer was lost): the callee is in, once."""
    async with running_stack(tmp_path, pg_dsn) as st:
        st.sim.set_endpoint("PJSIP/201", result="answer", answer_after=2.0, tone_hz=CALLEE_HZ)
        caller = st.sim.start_call(caller_number="4155550100", args=["inbound", "201"],
                                   tone_hz=CALLER_HZ)
        await st.settle()
        (call,) = st.daemon.state.calls.values()
        st.sim.sever("POST", f"/bridges/{call.bridge_id}/addChannel", carried_out=carried_out)
        call_id = await st.until_bridged(limit_s=15.0)
        callee = dialled(st.sim, call_id)
        bridge = st.sim.bridges[call.bridge_id]
        assert set(bridge.channels) >= {caller.id, callee}
        adds = [r for r in st.sim.requests
                if r.method == "POST" and r.path == f"/bridges/{call.bridge_id}/addChannel"
                and r.params.get("channel") == callee]
        # one carried out: the lost one that was (never asked again: it is in), or the
        # daemon's second (the cut one Asterisk never heard is not in Asterisk's log)
        assert [r.status for r in adds] == [204], adds
        await st.advance(3.0)
        st.sim.hangup(caller.id)
        await st.settle()
        await st.advance(0.5)
        row, _legs, (rec,), _events = await st.call_rows(call_id)
        assert (row.status, row.outcome) == ("ended", "answered")
        windows = tone_map(Path(rec.path or ""), [CALLER_HZ, CALLEE_HZ])
        assert sum(1 for w in windows if w == {CALLER_HZ, CALLEE_HZ}) >= 25  # 3 s together
