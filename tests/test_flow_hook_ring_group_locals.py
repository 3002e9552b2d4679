"""Hook mode: a hook-mode ring group dialled through Local channels (FreePBX's
ring groups and queues dial Local/<member>@<context>): each member's ;2 Dial() is taken for a
*forward* to that member, so every member that merely rings joins policy's path."""

from __future__ import annotations

from pathlib import Path

from tests.harness.policy_paths import (
    CALLER_HZ,
    DAY,
    DEPARTMENTS,
    NY,
    ROOT,
    ROWS,
    explained,
    talking_with,
    until,
)
from tests.harness.stack import running_stack


async def test_ring_group_through_local_channels(tmp_path: Path, pg_dsn: str,
                                                 policy_file: Path) -> None:
    row = next(r for r in ROWS if r.name == "ring group, NY member")  # 600: 301, 210, 250
    e = explained(row, policy_file)
    async with running_stack(tmp_path, pg_dsn, hooks=True, policy_file=policy_file,
                             departments=DEPARTMENTS, start_epoch=DAY.timestamp()) as st:
        assert st.running.agi_address is not None
        port = st.running.agi_address[1]
        st.sim.load_dialplan((ROOT / "dialplan" / "verbatim-hooks.conf").read_text(),
                             {"127.0.0.1:4573": f"127.0.0.1:{port}"})
        answered = "U(verbatim-answered^${VERBATIM_CALL_ID})"
        st.sim.add_extension("hook-in", "_X.", [
            ("Gosub", "verbatim-record,s,1(inbound,${EXTEN})"),
            ("Dial", f"Local/301@rg&Local/210@rg&Local/250@rg,30,{answered}")])
        st.sim.add_extension("rg", "_X.", [("Dial", "PJSIP/${EXTEN},30")])
        st.sim.set_endpoint("PJSIP/301", result="answer", answer_after=2.0, tone_hz=1300)
        for m in ("210", "250"):
            st.sim.set_endpoint(f"PJSIP/{m}", result="manual", tone_hz=2900)
        caller = st.sim.start_dialplan_call("600", context="hook-in", endpoint="PJSIP/carrier",
                                            caller_number=NY, tone_hz=CALLER_HZ)
        await st.settle()
        call_id = next(iter(st.daemon.state.calls))
        await until(st, lambda: bool(talking_with(st, caller.id)))
        await st.advance(3.0)
        for ch in list(st.sim.channels.values()):
            if ch.name.startswith("PJSIP/") and not ch.hungup:
                st.sim.hangup(ch.id)
                await st.settle()
        await st.advance(0.5)
        call, _legs, _recs, _events = await st.call_rows(call_id)
        assert call.recorded == e.final.decision.record, (call.recorded, call.decided_by)
