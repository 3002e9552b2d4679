"""Two offices, one database: each office's Asterisk has its own daemon, and both write to one
PostgreSQL. Calls made at the same instant with the same channel ids on both never collide
(rows are keyed by the Asterisk server's id), both are found by one search, and each daemon
holds only its own server's calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.stack import running_stack
from tests.test_flow_basic import CALLEE_HZ, CALLER_HZ, assert_both_tones

OFFICES = {"sf": "02:fc:00:00:00:0a", "ny": "02:fc:00:00:00:0b"}
START = 1_795_600_000.0  # both simulators' clocks: the same instants, the same channel ids


async def test_two_offices_write_to_one_database_without_colliding(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path / "sf", pg_dsn, asterisk_id=OFFICES["sf"],
                             start_epoch=START) as sf, \
            running_stack(tmp_path / "ny", pg_dsn, asterisk_id=OFFICES["ny"],
                          start_epoch=START) as ny:
        callers = []
        for st in (sf, ny):
            st.sim.set_endpoint("PJSIP/201", answer_after=1.0, tone_hz=CALLEE_HZ)
            callers.append(st.sim.start_call(caller_number="+12125550100",
                                             args=["inbound", "201"], tone_hz=CALLER_HZ))
        assert callers[0].id == callers[1].id  # the same channel id on both servers
        await asyncio.gather(sf.settle(), ny.settle())
        ids = await asyncio.gather(sf.until_bridged(), ny.until_bridged())
        await asyncio.gather(sf.advance(3.0), ny.advance(3.0))
        assert ids[0] != ids[1]
        rows = await asyncio.gather(sf.hang_up(callers[0].id, ids[0]),
                                    ny.hang_up(callers[1].id, ids[1]))
        for (call, legs, recs, _events), office in zip(rows, ("sf", "ny"), strict=True):
            assert call.asterisk_id == OFFICES[office] and call.outcome == "answered"
            assert {leg.asterisk_id for leg in legs} == {OFFICES[office]}
            (rec,) = recs
            assert rec.asterisk_id == OFFICES[office] and rec.status == "filed"
            assert_both_tones(Path(rec.path or ""), 3.0)
        found = await sf.repo.recent_calls(10)  # one search sees both offices
        assert sorted(c.asterisk_id for c in found) == sorted(OFFICES.values())
        for st, office in ((sf, "sf"), (ny, "ny")):
            assert await st.repo.open_calls(OFFICES[office]) == []
            assert all(c.asterisk_id == OFFICES[office]
                       for c in st.daemon.state.calls.values())
