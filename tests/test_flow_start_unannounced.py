"""An on-demand start never records a party that joined unannounced while the call was not
recorded (policy said no at the transfer): it is refused until everyone present has heard."""

from __future__ import annotations

from pathlib import Path

from recorder.model.inputs import ControlRequested
from recorder.policy import consent_rows
from tests.harness.calls import dialled
from tests.harness.policy_paths import CALLER_HZ, DAY, DEPARTMENTS, SF
from tests.harness.stack import running_stack


async def test_start_after_a_flip_records_the_unannounced_target(
    tmp_path: Path, pg_dsn: str, policy_file: Path
) -> None:
    async with running_stack(tmp_path, pg_dsn, policy_file=policy_file, departments=DEPARTMENTS,
                             start_epoch=DAY.timestamp()) as st:
        st.sim.set_endpoint("PJSIP/301", answer_after=1.0, tone_hz=1300)
        st.sim.set_endpoint("PJSIP/305", answer_after=1.0, tone_hz=2100)
        caller = st.sim.start_call(endpoint="PJSIP/carrier", caller_number=SF,
                                   args=["inbound", "301"], tone_hz=CALLER_HZ)
        await st.settle()
        call_id = await st.until_bridged()
        await st.advance(2.0)
        st.sim.blind_transfer(dialled(st.sim, call_id), "305")  # "Into reception": no
        await st.settle()
        await st.advance(3.0)
        call = st.daemon.state.calls[call_id]
        assert not call.record
        await st.daemon.queue.put(ControlRequested(
            timestamp=st.daemon.clock.now(), asterisk_id=st.daemon.asterisk_id, request_id=1,
            call_id=call_id, action="start", tag=None, by="crm"))
        await st.settle()
        await st.advance(3.0)
        call = st.daemon.state.calls[call_id]
        live = [r.name for r in call.recordings.values() if r.status == "recording"]
        st.sim.hangup(caller.id)
        await st.settle()
        heard = sorted((r.party, r.prompt) for r in await consent_rows(st.repo.pool, call_id))
        assert not live or any(p.startswith("target") for p, _ in heard), \
            "the transfer target (all-party call) is recorded without any announcement"
