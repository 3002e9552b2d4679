"""What bridge and channel recordings contain, second by second, and when they end by themselves."""

from __future__ import annotations

import wave
from typing import Any

import pytest
from arisim.audio import tone_map, tones_per_second, wav_duration
from arisim.server import Simulator
from arisim.testing import AriClient

CALLER, CALLEE = 440, 700
BOTH = {CALLER, CALLEE}
FREQS = [440, 700, 1000, 1300]


async def _caller_in_bridge(sim: Simulator, ari: AriClient, *, sends_media: bool = False,
                            bridge: str = "b") -> str:
    ch = sim.start_call(tone_hz=CALLER, sends_media=sends_media)
    await ari.call("POST", f"/channels/{ch.id}/answer")
    await ari.call("POST", "/bridges", type="mixing", bridgeId=bridge)
    await ari.call("POST", f"/bridges/{bridge}/addChannel", channel=ch.id)
    return ch.id


async def _dial(sim: Simulator, ari: AriClient, caller: str, endpoint: str = "PJSIP/201",
                **behaviour: Any) -> str:
    sim.set_endpoint(endpoint, tone_hz=CALLEE, **behaviour)
    status, callee = await ari.call("POST", "/channels/create", endpoint=endpoint,
                                    app="verbatim", appArgs="dialed")
    assert status == 200
    assert (await ari.call("POST", f"/channels/{callee['id']}/dial", caller=caller))[0] == 204
    return str(callee["id"])


def _finished(ari: AriClient, name: str) -> list[dict[str, Any]]:
    return [e["recording"] for e in ari.events
            if e["type"] in ("RecordingFinished", "RecordingFailed")
            and e["recording"]["name"] == name]


async def test_recording_follows_who_is_bridged(sim: Simulator, ari: AriClient) -> None:
    """Lone Local-like caller: nothing written; both: the mix; lone SIP callee: its tone."""
    caller = await _caller_in_bridge(sim, ari)
    assert (await ari.call("POST", "/bridges/b/record", name="r", format="wav"))[0] == 201
    callee = await _dial(sim, ari, caller)
    await sim.advance(1.0)  # callee answers at 1 s
    await ari.call("POST", "/bridges/b/addChannel", channel=callee)
    await sim.advance(3.0)
    await ari.call("DELETE", f"/channels/{caller}")
    await sim.advance(2.0)
    sim.hangup(callee)
    await sim.settle()
    path = sim.spool_dir / "r.wav"
    assert tones_per_second(path, FREQS) == [BOTH, BOTH, BOTH, {CALLEE}, {CALLEE}]
    assert wav_duration(path) == pytest.approx(5.0)
    assert _finished(ari, "r") == [{"name": "r", "format": "wav", "state": "done",
                                    "target_uri": "bridge:b", "duration": 5}]


async def test_lone_local_party_recording_ends_after_4s(sim: Simulator, ari: AriClient) -> None:
    """Traces busy / record_started_alone_slow_answer: RecordingFinished, duration 0, empty."""
    await _caller_in_bridge(sim, ari)
    await ari.call("POST", "/bridges/b/record", name="alone", format="wav")
    await sim.advance(3.9)
    assert _finished(ari, "alone") == []
    await sim.advance(0.1)
    assert [r["duration"] for r in _finished(ari, "alone")] == [0]
    assert wav_duration(sim.spool_dir / "alone.wav") == 0.0
    assert sim.hub.log[-1].at == pytest.approx(4.0)


async def test_lone_sip_caller_keeps_recording_alive(sim: Simulator, ari: AriClient) -> None:
    """Trace sip_caller_slow_answer: a caller sending RTP alone is recorded, no early end."""
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="sip", format="wav")
    await sim.advance(6.0)
    assert _finished(ari, "sip") == []
    # the phone stops sending RTP: 4 s later the recorder gives up
    sim.set_media(caller, sends_media=False)
    await sim.advance(4.0)
    assert [r["duration"] for r in _finished(ari, "sip")] == [6]
    assert tones_per_second(sim.spool_dir / "sip.wav", FREQS) == [{CALLER}] * 6


async def test_empty_and_destroyed_bridges(sim: Simulator, ari: AriClient) -> None:
    # No channel of the app ever entered this bridge: the app is not subscribed to it and
    # gets no recording events (res/stasis/app.c), but the recording still ends after 4 s.
    await ari.call("POST", "/bridges", bridgeId="empty")
    await ari.call("POST", "/bridges/empty/record", name="empty", format="wav")
    await sim.advance(4.0)
    ends = [(r.at, r.delivered) for r in sim.hub.log if r.event["type"] == "RecordingFinished"]
    assert ends == [(4.0, False)]
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="gone", format="wav")
    await sim.advance(1.5)
    assert await ari.call("DELETE", "/bridges/b") == (204, "")
    assert [r["duration"] for r in _finished(ari, "gone")] == [1]
    assert [e["type"] for e in ari.events[-3:]] == [
        "ChannelLeftBridge", "RecordingFinished", "BridgeDestroyed"]
    # the caller is still in the app
    assert (await ari.call("GET", f"/channels/{caller}"))[1]["dialplan"]["app_name"] == "Stasis"


async def test_last_party_leaving_ends_recording_at_once(sim: Simulator, ari: AriClient) -> None:
    """Trace caller_abandons: ChannelLeftBridge, then RecordingFinished with no delay."""
    caller = await _caller_in_bridge(sim, ari)
    await ari.call("POST", "/bridges/b/record", name="r", format="wav")
    await sim.advance(2.0)
    await ari.call("POST", "/bridges/b/removeChannel", channel=caller)
    assert [r["duration"] for r in _finished(ari, "r")] == [0]
    left = ari.of_type("ChannelLeftBridge")[-1]
    assert left["bridge"]["channels"] != []  # the lonely Recorder still shows, as traced


async def test_sample_accurate_join_and_header_always_valid(sim: Simulator,
                                                            ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="acc", format="wav")
    callee = await _dial(sim, ari, caller, answer_after=1.25)
    await sim.advance(1.25)
    await ari.call("POST", "/bridges/b/addChannel", channel=callee)
    path = sim.spool_dir / "acc.wav"
    with wave.open(str(path)) as w:  # readable while the recording runs
        assert w.getnframes() == 10000 and w.getframerate() == 8000
    await sim.advance(0.75)
    windows = tone_map(path, FREQS, window_s=0.05)
    assert windows[:25] == [{CALLER}] * 25
    assert windows[25:] == [BOTH] * 15


async def test_pause_mute_and_party_media(sim: Simulator, ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari)
    callee = await _dial(sim, ari, caller, answer_after=0.0)
    await sim.advance(0)
    await ari.call("POST", "/bridges/b/addChannel", channel=callee)
    await ari.call("POST", "/bridges/b/record", name="pm", format="wav")
    await sim.advance(1.0)
    await ari.call("POST", "/recordings/live/pm/pause")
    assert (await ari.call("GET", "/recordings/live/pm"))[1]["state"] == "paused"
    await sim.advance(1.0)  # not written
    await ari.call("DELETE", "/recordings/live/pm/pause")
    await ari.call("POST", "/recordings/live/pm/mute")
    await sim.advance(1.0)  # silence
    await ari.call("DELETE", "/recordings/live/pm/mute")
    sim.set_media(caller, talking=False)
    await sim.advance(1.0)  # callee only
    await ari.call("POST", f"/channels/{callee}/mute", direction="in")
    await sim.advance(1.0)  # nobody
    await ari.call("POST", "/recordings/live/pm/stop")
    assert tones_per_second(sim.spool_dir / "pm.wav", FREQS) == [
        BOTH, set(), {CALLEE}, set()]
    assert [r["duration"] for r in _finished(ari, "pm")] == [4]


async def test_channel_playback_is_not_recorded(sim: Simulator, ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="pb", format="wav")
    assert (await ari.call("POST", f"/channels/{caller}/play", media="tone:1000"))[0] == 201
    await sim.advance(2.0)
    assert tones_per_second(sim.spool_dir / "pb.wav", FREQS) == [{CALLER}, {CALLER}]


async def test_limits_cancel_and_control(sim: Simulator, ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="max", format="wav", maxDurationSeconds=2)
    await sim.advance(2.5)
    assert [r["duration"] for r in _finished(ari, "max")] == [2]
    await ari.call("POST", "/bridges/b/record", name="cancel", format="wav")
    await sim.advance(1.0)
    assert await ari.call("DELETE", "/recordings/live/cancel") == (204, "")
    assert _finished(ari, "cancel")[0]["state"] == "done"
    assert not (sim.spool_dir / "cancel.wav").exists()
    await ari.call("POST", "/bridges/b/record", name="ctl", format="wav")
    await sim.advance(1.0)
    sim.fail_recording("ctl", "disk full")
    await sim.settle()
    assert _finished(ari, "ctl") == [{"name": "ctl", "format": "wav", "state": "failed",
                                      "target_uri": "bridge:b", "cause": "disk full"}]
    await ari.call("POST", "/bridges/b/record", name="fin", format="wav")
    await sim.advance(1.0)
    sim.finish_recording("fin")
    await sim.settle()
    assert [r["duration"] for r in _finished(ari, "fin")] == [1]
    # silence detection: the caller stops talking, 2 s of silence end the recording
    await ari.call("POST", "/bridges/b/record", name="quiet", format="wav", maxSilenceSeconds=2)
    await sim.advance(1.0)
    sim.set_media(caller, talking=False)
    await sim.advance(2.0)
    # main/app.c arithmetic: 3 s in the file, less (2000 - 200) // 1000 s of trailing silence;
    # the file keeps 200 ms of it.
    quiet = _finished(ari, "quiet")
    assert [(q["duration"], q["talking_duration"], q["silence_duration"]) for q in quiet] == [
        (2, 2, 0)]
    assert wav_duration(sim.spool_dir / "quiet.wav") == pytest.approx(1.2)


async def test_append_continues_the_file(sim: Simulator, ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="seg", format="wav")
    await sim.advance(1.0)
    await ari.call("POST", "/recordings/live/seg/stop")
    sim.set_media(caller, tone_hz=1000)
    await ari.call("POST", "/bridges/b/record", name="seg", format="wav", ifExists="append")
    await sim.advance(1.0)
    await ari.call("POST", "/recordings/live/seg/stop")
    assert tones_per_second(sim.spool_dir / "seg.wav", FREQS) == [{CALLER}, {1000}]
    assert [r["duration"] for r in _finished(ari, "seg")] == [1, 2]


async def test_channel_recordings_and_snoop(sim: Simulator, ari: AriClient) -> None:
    """Trace record_channel_in_bridge: recording a bridged channel fails after the 201; a snoop
    on it records both directions."""
    caller = await _caller_in_bridge(sim, ari)
    callee = await _dial(sim, ari, caller, answer_after=0.0)
    await sim.advance(0)
    await ari.call("POST", "/bridges/b/addChannel", channel=callee)
    status, rec = await ari.call("POST", f"/channels/{caller}/record", name="ch", format="wav")
    assert status == 201 and rec["state"] == "queued"
    assert _finished(ari, "ch") == [{"name": "ch", "format": "wav", "state": "failed",
                                     "target_uri": f"channel:{caller}",
                                     "cause": "Cannot record channel while in bridge"}]
    status, snoop = await ari.call("POST", f"/channels/{caller}/snoop", spy="in", app="verbatim",
                                   appArgs="snoop", snoopId="snoop-1")
    assert status == 200 and snoop["name"].startswith(f"Snoop/{caller}-")
    assert ari.of_type("StasisStart")[-1]["args"] == ["snoop"]
    await ari.call("POST", "/channels/snoop-1/record", name="spy", format="wav")
    await sim.advance(2.0)
    await ari.call("DELETE", f"/channels/{caller}")
    await sim.advance(0.01)  # the snoop notices on its next tick
    assert [r["duration"] for r in _finished(ari, "spy")] == [2]
    assert tones_per_second(sim.spool_dir / "spy.wav", FREQS) == [{CALLER}, {CALLER}]
    assert ari.types("snoop-1") == ["StasisStart", "StasisEnd"]


async def test_channel_recording_outside_bridge(sim: Simulator, ari: AriClient) -> None:
    """A channel recording answers the channel if needed (record_file: ast_auto_answer) and
    records what the party sends; it ends when the channel hangs up."""
    ch = sim.start_call(tone_hz=1300)
    await sim.settle()
    status, rec = await ari.call("POST", f"/channels/{ch.id}/record", name="voicemail",
                                 format="wav", beep=True)
    assert status == 201 and rec["target_uri"] == f"channel:{ch.id}"
    assert ari.of_type("ChannelStateChange")[-1]["channel"]["state"] == "Up"
    assert (await ari.call("GET", "/recordings/live/voicemail"))[1]["state"] == "recording"
    await sim.advance(2.0)
    sim.hangup(ch.id)
    await sim.settle()
    assert [r["duration"] for r in _finished(ari, "voicemail")] == [2]
    assert tones_per_second(sim.spool_dir / "voicemail.wav", FREQS) == [{1300}, {1300}]


async def test_bridge_playback_events(sim: Simulator, ari: AriClient) -> None:
    await _caller_in_bridge(sim, ari, sends_media=True)
    status, pb = await ari.call("POST", "/bridges/b/play", media="sound:beep,digits:12")
    assert status == 201 and pb["target_uri"] == "bridge:b"
    await sim.advance(1.25)
    assert [(e["type"], e["playback"]["media_uri"]) for e in ari.events if "playback" in e] == [
        ("PlaybackStarted", "sound:beep"), ("PlaybackContinuing", "sound:beep"),
        ("PlaybackStarted", "digits:12"), ("PlaybackFinished", "digits:12")]


async def test_terminate_on_dtmf(sim: Simulator, ari: AriClient) -> None:
    caller = await _caller_in_bridge(sim, ari, sends_media=True)
    await ari.call("POST", "/bridges/b/record", name="dtmf", format="wav", terminateOn="#")
    await sim.advance(1.0)
    sim.send_dtmf(caller, "1")
    await sim.settle()
    assert _finished(ari, "dtmf") == []
    sim.send_dtmf(caller, "#")
    await sim.settle()
    assert [r["duration"] for r in _finished(ari, "dtmf")] == [1]
