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


def _live(sim: Simulator, prefix: str, args: list[str] | None = None) -> str:
    """The id of the live channel whose name starts with `prefix` (and with these Stasis args)."""
    return next(c.id for c in sim.live_channels()
                if c.name.startswith(prefix) and (args is None or c.stasis_args == args))


def _phone_answers_at_once(sim: Simulator, ids: IdMap) -> None:
    """sipp's uas_refer.xml / pjsua auto-answer: 200 OK at once, no 180 Ringing; 300 (sipp's
    uas_answer.xml) rings 1 s, its state change published before the Dial RINGING here."""
    sim.set_endpoint("PJSIP/200", answer_after=0.002, ringing=False)
    sim.set_endpoint("PJSIP/300", state_before_dial=True)


def _phone_302(sim: Simulator, ids: IdMap) -> None:
    """sipp's uas_302.xml: 302 Moved Temporarily to 300 at once."""
    sim.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=0.001,
                     ringing=False)


def _ami_blind_transfer(sim: Simulator, ids: IdMap) -> None:
    """AMI BlindTransfer Channel=Local/200@targets-...;1 Context=transfer-target Exten=300."""
    assert sim.blind_transfer(_live(sim, "Local/200@targets-", ["dialed"]), "300",
                              "transfer-target", via="ami").result == "Success"


def _sip_refer(sim: Simulator, ids: IdMap) -> None:
    """uas_refer.xml: REFER to 300 two seconds after the ACK, BYE 200 ms after the NOTIFY."""
    assert sim.blind_transfer(_live(sim, "PJSIP/200-"), "300").result == "Success"


def _consultation_call(sim: Simulator, ids: IdMap) -> None:
    """The softphone (200) calls 300 through from-internal: Stasis(verbatim,outbound,300)."""
    sim.start_call("PJSIP/200", caller_number="200", caller_name="", args=["outbound", "300"])


def _refer_with_replaces(sim: Simulator, ids: IdMap) -> None:
    """The softphone's attended transfer: REFER on the first call, Replaces the second."""
    first = _live(sim, "PJSIP/200-", ["dialed"])
    second = _live(sim, "PJSIP/200-", ["outbound", "300"])
    assert sim.attended_transfer(first, second).result == "Success"


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
    "blind_transfer": ReplayOptions(injections=[(3.022, _ami_blind_transfer)]),
    "sip_blind_transfer_refer": ReplayOptions(
        injections=[(0.0, _phone_answers_at_once), (3.039, _sip_refer)], cut_off=True),
    "sip_forward_302_create_dial": ReplayOptions(injections=[(0.0, _phone_302)]),
    "sip_forward_302_originate": ReplayOptions(injections=[(0.0, _phone_302)], cut_off=True),
    "sip_attended_transfer_refer": ReplayOptions(
        injections=[(0.0, _phone_answers_at_once), (4.229, _consultation_call),
                    (10.955, _refer_with_replaces)], cut_off=True),
    "sip_attended_transfer_unbridged": ReplayOptions(
        injections=[(0.0, _phone_answers_at_once), (4.233, _consultation_call),
                    (8.940, _refer_with_replaces)], cut_off=True),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_trace_replay(name: str, tmp_path: Path) -> None:
    async with running_simulator(tmp_path, start_epoch=1795631195.0) as sim:
        problems = await replay(name, sim, CASES[name])
        assert problems == []
        assert sim.validation_errors == []
