"""Replay the captures of a real Asterisk 22.10.1 against the simulator and compare events."""

from __future__ import annotations

from pathlib import Path

import pytest
from arisim.replay import IdMap, ReplayOptions, replay
from arisim.server import Simulator
from arisim.testing import running_simulator


def _sipp_caller(sim: Simulator, ids: IdMap) -> None:
    """sipp's uac_pcap calling in through the trunk (sip_caller_slow_answer)."""
    sim.start_call("PJSIP/trunk", caller_number="sipp", caller_name="sipp",
                   args=["inbound", "200"], sends_media=True)


def _sipp_dtmf(sim: Simulator, ids: IdMap) -> None:
    trunk = next(c for c in sim.live_channels() if c.name.startswith("PJSIP/trunk"))
    sim.send_dtmf(trunk.id, "1", 280)


def _sipp_bye(sim: Simulator, ids: IdMap) -> None:
    trunk = next(c for c in sim.live_channels() if c.name.startswith("PJSIP/trunk"))
    sim.hangup(trunk.id)


CASES: dict[str, ReplayOptions] = {
    "basic_inbound": ReplayOptions(),
    # the AMI Atxfer is refused ("No attended transfer feature code found"): ARI sees nothing
    "atxfer_ami_in_stasis_bridge": ReplayOptions(),
    "busy": ReplayOptions(),
    "caller_abandons": ReplayOptions(),
    "sip_basic": ReplayOptions(),
    "record_started_alone_slow_answer": ReplayOptions(cut_off=True),
    "record_at_answer": ReplayOptions(cut_off=True),
    "record_channel_in_bridge": ReplayOptions(),
    "silent_parties": ReplayOptions(cut_off=True),
    # The capture reports 8 s for 9 s of audio (sipp's pcap RTP ended first); see the README.
    "sip_caller_slow_answer": ReplayOptions(
        injections=[(0.116, _sipp_caller), (8.268, _sipp_dtmf), (9.132, _sipp_bye)],
        duration_tolerance=1),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_trace_replay(name: str, tmp_path: Path) -> None:
    async with running_simulator(tmp_path, start_epoch=1795631195.0) as sim:
        problems = await replay(name, sim, CASES[name])
        assert problems == []
        assert sim.validation_errors == []
