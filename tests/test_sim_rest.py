"""REST behaviour of the simulator: auth, routing, and the status codes Asterisk gives misuse."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest
from arisim.server import Simulator
from arisim.spec import load_spec
from arisim.testing import AriClient, running_simulator


async def _answered_call(sim: Simulator, ari: AriClient) -> str:
    ch = sim.start_call(args=["inbound", "201"])
    assert (await ari.call("POST", f"/channels/{ch.id}/answer"))[0] == 204
    return ch.id


async def test_authentication(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.base_url}/ari/channels") as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "Authentication required"}
            assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
        bad = base64.b64encode(b"verbatim:wrong").decode()
        async with http.get(f"{sim.base_url}/ari/channels",
                            headers={"Authorization": f"Basic {bad}"}) as resp:
            assert resp.status == 401
        async with http.get(f"{sim.base_url}/ari/channels",
                            params={"api_key": "verbatim:verbatim-secret"}) as resp:
            assert resp.status == 200
            assert await resp.json() == []
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{sim.base_url}/ari/events?app=verbatim")
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as no_app:
            await http.ws_connect(f"{sim.base_url}/ari/events?api_key=verbatim:verbatim-secret")
        assert no_app.value.status == 400
        ws = await http.ws_connect(
            f"{sim.base_url}/ari/events?app=verbatim&api_key=verbatim:verbatim-secret")
        await sim.settle()
        assert sim.hub.active("verbatim")
        await ws.close()


async def test_routing_errors(ari: AriClient) -> None:
    assert await ari.call("GET", "/nothing") == (404, {"message": "Resource not found"})
    assert await ari.call("GET", "/channels/123/nothing") == (404,
                                                              {"message": "Resource not found"})
    status, body = await ari.call("PUT", "/channels")
    assert (status, body) == (405, {"message": "Invalid method"})
    # explicit segment wins over the {channelId} wildcard
    assert (await ari.call("GET", "/channels/create"))[0] == 405
    assert await ari.call("GET", "/channels/") == (
        404, {"message": "ARI URLs do not end with a slash. Try /ari/channels"})
    assert await ari.call("DELETE", "/asterisk/modules/res_pjsip.so") == (
        501, {"message": "Method not implemented"})


async def test_allow_header_on_405(sim: Simulator) -> None:
    token = base64.b64encode(b"verbatim:verbatim-secret").decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as http:
        async with http.patch(f"{sim.base_url}/ari/bridges") as resp:
            assert resp.status == 405
            assert resp.headers["Allow"] == "GET, POST"
        async with http.post(f"{sim.base_url}/ari/bridges", data="{not json",
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert await resp.json() == {"message": "Error parsing request body"}
        # a form body is merged into the query parameters (res_ari.c)
        async with http.post(f"{sim.base_url}/ari/bridges",
                             data={"name": "form-bridge"}) as resp:
            assert resp.status == 200
            assert (await resp.json())["name"] == "form-bridge"


async def test_channel_misuse(sim: Simulator, ari: AriClient) -> None:
    assert await ari.call("GET", "/channels/nope") == (404, {"message": "Channel not found"})
    assert await ari.call("DELETE", "/channels/nope") == (404, {"message": "Channel not found"})
    assert await ari.call("POST", "/channels/nope/answer") == (404,
                                                              {"message": "Channel not found"})
    # a channel outside Stasis: the originated ;1 half in the dialplan
    status, ch1 = await ari.call("POST", "/channels", endpoint="Local/100@inbound-test",
                                 context="caller", extension="s")
    assert status == 200 and ch1["dialplan"]["app_name"] == "AppDial2"
    assert await ari.call("POST", f"/channels/{ch1['id']}/answer") == (
        409, {"message": "Channel not in Stasis application"})
    # a created channel that is not answered cannot be answered or played to
    status, created = await ari.call("POST", "/channels/create", endpoint="PJSIP/201",
                                     app="verbatim")
    assert status == 200
    assert await ari.call("POST", f"/channels/{created['id']}/answer") == (
        412, {"message": "Channel in invalid state"})
    assert await ari.call("POST", f"/channels/{created['id']}/play", media="sound:beep") == (
        412, {"message": "Channel in invalid state"})
    caller = await _answered_call(sim, ari)
    assert await ari.call("POST", f"/channels/{caller}/dial") == (
        409, {"message": "Channel is not in the 'Down' state"})
    assert await ari.call("DELETE", f"/channels/{caller}", reason="busy", reason_code="17") == (
        400, {"message": "The reason and reason_code can't both be specified"})
    assert await ari.call("DELETE", f"/channels/{caller}", reason="sleepy") == (
        400, {"message": "Invalid reason for hangup reason provided"})
    assert await ari.call("DELETE", f"/channels/{caller}", reason_code="x") == (
        400, {"message": "Invalid reason for hangup reason code provided"})
    assert await ari.call("POST", "/channels") == (400, {"message": "Endpoint must be specified"})
    assert await ari.call("POST", "/channels", endpoint="PJSIP") == (
        400, {"message": "Invalid endpoint specified"})
    assert await ari.call("POST", "/channels", endpoint="PJSIP/201") == (
        400, {"message": "Application or extension must be specified"})
    assert await ari.call("POST", "/channels/create", endpoint="PJSIP/201", app="verbatim",
                          channelId=caller) == (
        409, {"message": "Channel with given unique ID already exists"})
    assert await ari.call("POST", f"/channels/{caller}/snoop", app="verbatim") == (
        400, {"message": "Direction must be specified for at least spy or whisper"})
    assert await ari.call("POST", f"/channels/{caller}/mute", direction="sideways") == (
        400, {"message": "Invalid direction specified"})
    assert await ari.call("POST", f"/channels/{caller}/record", name="x", format="wav",
                          maxDurationSeconds=-1) == (
        400, {"message": "max_duration_seconds cannot be negative"})
    assert await ari.call("POST", f"/channels/{caller}/record", name="x", format="mp9") == (
        422, {"message": "specified format is unknown on this system"})
    assert await ari.call("POST", f"/channels/{caller}/record", name="x", format="wav",
                          ifExists="sometimes") == (400, {"message": "ifExists invalid"})
    assert await ari.call("DELETE", f"/channels/{caller}", reason="busy") == (204, "")
    destroyed = [e for e in sim.hub.log if e.event["type"] == "ChannelHangupRequest"]
    assert destroyed[-1].event["cause"] == 32 and destroyed[-1].event["soft"] is True


async def test_an_endpoint_not_configured_cannot_be_created_or_originated(
    sim: Simulator, ari: AriClient
) -> None:
    """ast_request fails: create and originate answer res_ari.c's oom_json (500), and no
    channel is made; Dial() in the dialplan calls the other lines."""
    sim.set_endpoint("PJSIP/299", result="nonexistent")
    refused = (500, {"error": "Allocation failed"})
    assert await ari.call("POST", "/channels/create", endpoint="PJSIP/299",
                          app="verbatim") == refused
    assert await ari.call("POST", "/channels", endpoint="PJSIP/299", app="verbatim") == refused
    assert await ari.call("POST", "/channels/x-1", endpoint="PJSIP/299",
                          app="verbatim") == refused
    assert sim.live_channels() == []
    assert (await ari.call("POST", "/channels/create", endpoint="PJSIP/201",
                           app="verbatim"))[0] == 200


async def test_dial_before_stasis_entry_is_409(tmp_path: Path) -> None:
    """With a delay between the create reply and StasisStart, /dial in between gets 409."""
    async with running_simulator(tmp_path, create_stasis_delay=0.05) as sim:
        ari = AriClient(sim)
        await ari.connect()
        status, created = await ari.call("POST", "/channels/create", endpoint="PJSIP/201",
                                         app="verbatim", appArgs="dialed")
        assert status == 200 and ari.of_type("StasisStart") == []
        assert await ari.call("POST", f"/channels/{created['id']}/dial") == (
            409, {"message": "Channel not in Stasis application"})
        await sim.advance(0.05)
        assert [e["args"] for e in ari.of_type("StasisStart")] == [["dialed"]]
        assert (await ari.call("POST", f"/channels/{created['id']}/dial"))[0] == 204
        await ari.close()


async def test_bridge_misuse(sim: Simulator, ari: AriClient) -> None:
    assert await ari.call("GET", "/bridges/nope") == (404, {"message": "Bridge not found"})
    assert await ari.call("POST", "/bridges/nope/record", name="x", format="wav") == (
        404, {"message": "Bridge not found"})
    status, bridge = await ari.call("POST", "/bridges", type="mixing", bridgeId="b1", name="n")
    assert status == 200 and bridge["id"] == "b1" and bridge["bridge_type"] == "mixing"
    assert await ari.call("POST", "/bridges/b1") == (
        409, {"message": "Bridge with id 'b1' already exists"})
    assert (await ari.call("POST", "/bridges", type="mixing,holding"))[0] == 500
    assert await ari.call("POST", "/bridges/b1/addChannel") == (
        400, {"message": "Missing parameter channel"})
    assert await ari.call("POST", "/bridges/b1/addChannel", channel="nope") == (
        400, {"message": "Channel not found"})
    status, ch1 = await ari.call("POST", "/channels", endpoint="Local/100@inbound-test",
                                 context="caller", extension="s")
    assert await ari.call("POST", "/bridges/b1/addChannel", channel=ch1["id"]) == (
        422, {"message": "Channel not in Stasis application"})
    caller = await _answered_call(sim, ari)
    assert await ari.call("POST", "/bridges/b1/removeChannel", channel=caller) == (
        422, {"message": "Channel not in this bridge"})
    assert await ari.call("POST", "/bridges/b1/record", name="r", format="wav",
                          terminateOn="never") == (400, {"message": "terminateOn invalid"})
    assert await ari.call("POST", "/bridges/b1/record", name="r", format="xyz") == (
        422, {"message": "specified format is unknown on this system"})
    assert await ari.call("POST", "/bridges/b1/record", format="wav") == (
        500, {"message": "Error parsing request"})
    status, created = await ari.call("POST", "/bridges/b1/record", name="r", format="wav")
    assert status == 201 and created["state"] == "queued"
    # a live recording of that name: 409 whatever ifExists says
    msg = {"message": "Recording 'r' already exists and can not be overwritten"}
    assert await ari.call("POST", "/bridges/b1/record", name="r", format="wav",
                          ifExists="overwrite") == (409, msg)
    assert await ari.call("DELETE", "/bridges/b1") == (204, "")
    assert await ari.call("DELETE", "/bridges/b1") == (404, {"message": "Bridge not found"})
    # stored: ifExists=fail (the default) refuses, overwrite accepts
    await ari.call("POST", "/bridges", bridgeId="b2")
    assert await ari.call("POST", "/bridges/b2/record", name="r", format="wav") == (409, msg)
    assert (await ari.call("POST", "/bridges/b2/record", name="r", format="wav",
                           ifExists="overwrite"))[0] == 201


async def test_json_body_parameters(sim: Simulator, ari: AriClient) -> None:
    """Asterisk reads declared parameters from a JSON body too; `variables` only from it."""
    status, ch = await ari.call(
        "POST", "/channels/create",
        json_body={"endpoint": "PJSIP/201", "app": "verbatim", "appArgs": "a,b",
                   "variables": {"X_FOO": "bar", "X_OBJ": {"value": "v"}}})
    assert status == 200
    assert await ari.call("GET", f"/channels/{ch['id']}/variable", variable="X_FOO") == (
        200, {"value": "bar"})
    assert await ari.call("GET", f"/channels/{ch['id']}/variable", variable="X_OBJ") == (
        200, {"value": "v"})
    assert await ari.call("GET", f"/channels/{ch['id']}/variable", variable="NOPE") == (
        404, {"message": "Provided variable was not found"})
    assert [e["args"] for e in ari.of_type("StasisStart")] == [["a", "b"]]
    assert (await ari.call("POST", "/channels/create", unknownParam="x", endpoint="PJSIP/202",
                           app="verbatim"))[0] == 200


async def test_variables_and_info(sim: Simulator, ari: AriClient) -> None:
    caller = await _answered_call(sim, ari)
    assert await ari.call("POST", f"/channels/{caller}/variable") == (
        400, {"message": "Variable name is required"})
    assert await ari.call("POST", f"/channels/{caller}/variable", variable="V",
                          value="1") == (204, "")
    assert ari.of_type("ChannelVarset")[-1]["variable"] == "V"
    assert await ari.call("GET", f"/channels/{caller}/variable",
                          variable="CALLERID(num)") == (200, {"value": "+14155550100"})
    status, info = await ari.call("GET", "/asterisk/info")
    assert status == 200 and info["system"]["entity_id"] == sim.asterisk_id
    assert (await ari.call("GET", "/asterisk/info", only="system"))[1].keys() == {"system"}
    status, apps = await ari.call("GET", "/applications")
    assert [a["name"] for a in apps] == ["verbatim"] and apps[0]["channel_ids"] == [caller]
    assert load_spec().validate_model("AsteriskInfo", info) == []
    assert await ari.call("GET", "/applications/other") == (
        404, {"message": "Application not found"})


async def test_playbacks(sim: Simulator, ari: AriClient) -> None:
    caller = await _answered_call(sim, ari)
    status, pb = await ari.call("POST", f"/channels/{caller}/play", media="sound:hello",
                                playbackId="p1")
    assert status == 201 and pb["state"] == "queued" and pb["id"] == "p1"
    assert (await ari.call("POST", f"/channels/{caller}/play/p2", media="tone:ring"))[0] == 201
    assert (await ari.call("GET", "/playbacks/p1"))[1]["state"] == "playing"
    assert (await ari.call("GET", "/playbacks/p2"))[1]["state"] == "queued"
    await sim.advance(3.0)  # unknown sound: 3 s; then the tone plays until stopped
    assert (await ari.call("GET", "/playbacks/p1"))[0] == 404
    assert (await ari.call("GET", "/playbacks/p2"))[1]["state"] == "playing"
    assert await ari.call("POST", "/playbacks/p2/control", operation="dance") == (
        400, {"message": "Invalid operation dance"})
    assert await ari.call("POST", "/playbacks/p2/control", operation="pause") == (204, "")
    await sim.advance(30)
    assert await ari.call("DELETE", "/playbacks/p2") == (204, "")
    assert await ari.call("DELETE", "/playbacks/p2") == (404, {"message": "Playback not found"})
    assert [(e["type"], e["playback"]["id"]) for e in ari.events if "playback" in e] == [
        ("PlaybackStarted", "p1"), ("PlaybackFinished", "p1"),
        ("PlaybackStarted", "p2"), ("PlaybackFinished", "p2")]
    finished = ari.of_type("PlaybackFinished")[0]
    assert finished["playback"]["state"] == "done"


async def test_a_playback_asterisk_cannot_play_or_finish_ends_failed(
    sim: Simulator, ari: AriClient
) -> None:
    """res_stasis_playback.c: a sound Asterisk lacks is "playing", then at once "failed"; so is
    one whose channel hangs up mid-way (the stream answers -1 on the hangup)."""
    sim.dialplan.default_sound_seconds = None  # a sound not in the table is not installed
    sim.dialplan.sounds["hello"] = 2.0
    caller = await _answered_call(sim, ari)
    await ari.call("POST", f"/channels/{caller}/play/p1", media="sound:missing")
    await ari.call("POST", f"/channels/{caller}/play/p2", media="sound:hello")
    await sim.advance(1.0)
    sim.hangup(caller)
    await sim.advance(0.5)
    assert [(e["type"], e["playback"]["id"], e["playback"]["state"])
            for e in ari.events if "playback" in e] == [
        ("PlaybackStarted", "p1", "playing"), ("PlaybackFinished", "p1", "failed"),
        ("PlaybackStarted", "p2", "playing"), ("PlaybackFinished", "p2", "failed")]


async def test_stored_recordings(sim: Simulator, ari: AriClient, tmp_path: Path) -> None:
    caller = await _answered_call(sim, ari)
    await ari.call("POST", "/bridges", bridgeId="b")
    await ari.call("POST", "/bridges/b/addChannel", channel=caller)
    await ari.call("POST", "/bridges/b/record", name="calls/one", format="wav")
    assert (await ari.call("GET", "/recordings/live/calls%2Fone"))[1]["state"] == "recording"
    await sim.advance(2)
    assert await ari.call("POST", "/recordings/live/calls%2Fone/stop") == (204, "")
    finished = ari.of_type("RecordingFinished")[-1]["recording"]
    assert finished["duration"] == 2 and finished["state"] == "done"
    assert await ari.call("GET", "/recordings/live/calls%2Fone") == (
        404, {"message": "Recording not found"})
    assert await ari.call("GET", "/recordings/stored") == (
        200, [{"name": "calls/one", "format": "wav"}])
    status, data = await ari.call("GET", "/recordings/stored/calls%2Fone/file")
    assert status == 200 and data == (sim.spool_dir / "calls/one.wav").read_bytes()
    assert len(data) == 44 + 2 * 16000
    assert await ari.call("POST", "/recordings/stored/calls%2Fone/copy",
                          destinationRecordingName="copy") == (
        200, {"name": "copy", "format": "wav"})
    assert await ari.call("POST", "/recordings/stored/calls%2Fone/copy",
                          destinationRecordingName="copy") == (
        409, {"message": "A recording with the same name already exists on the system"})
    assert await ari.call("DELETE", "/recordings/stored/copy") == (204, "")
    assert await ari.call("GET", "/recordings/stored/copy") == (
        404, {"message": "Recording not found"})
    assert await ari.call("POST", "/recordings/live/nope/stop") == (
        404, {"message": "Recording not found"})


async def test_sounds_by_id(sim: Simulator, ari: AriClient) -> None:
    """GET /sounds/{soundId}: a sound Asterisk has (an id with a '/' is %2F-encoded: res_ari.c
    decodes each path segment), 404 "Sound not found" for one it lacks."""
    sim.dialplan.sounds["verbatim/consent"] = 3.0
    assert await ari.call("GET", "/sounds/verbatim%2Fconsent") == (
        200, {"id": "verbatim/consent", "formats": [{"language": "en", "format": "slin"}]})
    assert await ari.call("GET", "/sounds/verbatim%2Fmissing") == (
        404, {"message": "Sound not found"})
    assert await ari.call("GET", "/sounds/verbatim/consent") == (
        404, {"message": "Resource not found"})


@pytest.mark.parametrize("carried_out", [False, True])
async def test_a_severed_request_gets_no_answer_and_is_carried_out_or_not(
    sim: Simulator, ari: AriClient, carried_out: bool
) -> None:
    """`sever`: the connection of the next such request is cut before any of its answer,
    once; whether Asterisk carried it out is the test's to say."""
    ch = sim.start_call(args=["inbound", "201"])
    sim.sever("POST", f"/channels/{ch.id}/answer", carried_out=carried_out)
    with pytest.raises(aiohttp.ClientConnectionError):
        await ari.call("POST", f"/channels/{ch.id}/answer")
    await sim.settle()
    assert sim.channels[ch.id].state == ("Up" if carried_out else "Ring")
    assert (await ari.call("POST", f"/channels/{ch.id}/answer"))[0] == 204  # once only
