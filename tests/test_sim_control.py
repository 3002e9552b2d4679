"""The /_sim/ control API, SimControl, and `python -m arisim` as a separate process."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arisim.control import SimControl
from arisim.server import Simulator
from arisim.testing import AriClient, running_simulator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    async with running_simulator(tmp_path / "spool") as s:
        yield s


async def test_control_endpoints(sim: Simulator) -> None:
    ari = AriClient(sim)
    await ari.connect()
    async with SimControl(sim.base_url) as ctl:
        await ctl.set_endpoint("PJSIP/201", result="manual", tone_hz=1300)
        cid = await ctl.start_call(caller_number="+15550001", args=["inbound", "201"])
        event = await ctl.wait_for_event("StasisStart")
        assert event["channel"]["id"] == cid
        await ari.call("POST", f"/channels/{cid}/answer")
        _, created = await ari.call("POST", "/channels/create", endpoint="PJSIP/201",
                                         app="verbatim")
        await ari.call("POST", f"/channels/{created['id']}/dial", caller=cid)
        assert (await ctl.wait_for_request("POST", "/dial"))["status"] == 204
        await ctl.answer(created["id"])
        await ari.call("POST", "/bridges", bridgeId="b")
        await ari.call("POST", "/bridges/b/addChannel", channel=f"{cid},{created['id']}")
        await ari.call("POST", "/bridges/b/record", name="r", format="wav")
        assert await ctl.advance(2.0) == pytest.approx(2.0)
        await ctl.set_media(cid, talking=False)
        await ctl.send_dtmf(cid, "5")
        state = await ctl.state()
        assert state["bridges"][0]["members"] == [cid, created["id"]]
        assert state["live_recordings"][0]["name"] == "r"
        assert {c["tone_hz"] for c in state["channels"]} >= {1300}
        await ctl.finish_recording("r")
        await ctl.wait_for_event("RecordingFinished")
        await ctl.hangup(cid, cause=16)
        await ctl.drop_websockets()
        with pytest.raises(LookupError):
            await ctl.hangup("nope")
        with pytest.raises(LookupError):
            await ctl.fail_recording("nope")
        assert (await ctl.clock())["mode"] == "manual"
        assert (await ctl.errors())["validation"] == []
        requests = await ctl.requests()
        assert requests[0]["method"] == "POST" and requests[0]["path"].endswith("/answer")
        assert any(e["event"]["type"] == "ChannelDtmfReceived" for e in await ctl.events())
    await ari.close()


async def test_control_transfers_forwards_and_hold(sim: Simulator) -> None:
    """The /_sim/ endpoints for hold, blind and attended transfers, forwards and the dialplan."""
    ari = AriClient(sim)
    await ari.connect()
    async with SimControl(sim.base_url) as ctl:
        await ctl.set_endpoint("PJSIP/201", answer_after=0.5)
        with pytest.raises(LookupError):
            await ctl.set_endpoint("PJSIP/400", result="forward")
        await ctl.set_endpoint("PJSIP/400", result="forward", forward_to="300")
        await ctl.add_extension("xfer", "_X.", [("Stasis", "verbatim,xfer,${EXTEN}")])
        caller = await ctl.start_call(args=["inbound", "201"])
        await ari.call("POST", f"/channels/{caller}/answer")
        await ari.call("POST", "/bridges", bridgeId="b")
        _, leg = await ari.call("POST", "/channels/create", endpoint="PJSIP/201", app="verbatim")
        await ari.call("POST", f"/channels/{leg['id']}/dial", caller=caller)
        await ctl.advance(0.5)
        await ari.call("POST", "/bridges/b/addChannel", channel=f"{caller},{leg['id']}")
        await ctl.hold(leg["id"], musicclass="default")
        assert (await ctl.wait_for_event("ChannelHold"))["musicclass"] == "default"
        await ctl.unhold(leg["id"])
        out = await ctl.blind_transfer(leg["id"], "300", context="xfer", via="ami")
        assert out["result"] == "Success"
        start = await ctl.wait_for_event("StasisStart", args=["xfer", "300"])
        assert start["channel"]["id"] == out["local_two"]
        consult = await ctl.start_call(endpoint="PJSIP/202", args=["outbound", "300"])
        await ari.call("POST", f"/channels/{consult}/answer")
        result = await ctl.attended_transfer(caller, consult, delay=0.1, hangup_after=None)
        assert result["result"] == "Success"
        await ctl.advance(0.2)
        xfer = await ctl.wait_for_event("BridgeAttendedTransfer")
        assert xfer["destination_type"] == "application"
        await ctl.set_endpoint("PJSIP/401", result="manual")
        _, ringing = await ari.call("POST", "/channels", endpoint="PJSIP/401", app="verbatim")
        await ctl.advance(0.1)
        await ctl.forward(ringing["id"], "PJSIP/201")
        cancel = await ctl.wait_for_event("Dial", dialstatus="CANCEL")
        assert cancel["forwarded"]["name"].startswith("PJSIP/201-")
        with pytest.raises(LookupError):
            await ctl.forward(caller, "300")  # not being dialled
        other = await ctl.start_call(endpoint="PJSIP/203", args=["outbound", "301"])
        await ctl.abandon_transfer(out["local_one"], other)
        with pytest.raises(LookupError):
            await ctl.blind_transfer("nope", "300")
        with pytest.raises(LookupError):
            await ctl.attended_transfer("nope", other)
        assert (await ctl.errors())["validation"] == []
    await ari.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_standalone_process(tmp_path: Path) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arisim", "--port", str(port), "--spool", str(tmp_path),
        "--manual", cwd=ROOT / "asterisk-test", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        async with SimControl(f"http://127.0.0.1:{port}") as ctl:
            for _ in range(200):
                try:
                    clock = await ctl.clock()
                    break
                except OSError:
                    await asyncio.sleep(0.025)
            assert clock["now"] == 0.0
            await ctl.start_call(app="nobody")  # no socket: the call fails, as in Asterisk
            assert await ctl.advance(1.5) == pytest.approx(1.5)
            assert (await ctl.errors())["warnings"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), timeout=10)
