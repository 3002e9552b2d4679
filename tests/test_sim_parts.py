"""The simulator's parts, each alone on a bare World: no server, no mixin chain.

Each test builds the world's state by hand (a bridge, two parties), drives one part, and reads
what it did from the ARI events the world sent and the files it wrote. Other parts a part
needs are built for real; the bus carries what the rest of the simulator would have told it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from arisim.agi import Agi
from arisim.appdial import DialApp
from arisim.audio import tones_per_second, wav_duration
from arisim.bridges import Bridging
from arisim.bus import (
    BridgeDestroying,
    BridgeEmptied,
    ChannelGone,
    ChannelHungUp,
    HangupStarted,
    LeftBridge,
)
from arisim.channels import ChannelLife
from arisim.dialing import Dialling
from arisim.dialplan import EndpointBehaviour
from arisim.events import AppState, Session
from arisim.media import Media
from arisim.mixmonitor import Monitor
from arisim.model import Bridge, Channel
from arisim.pbx import Pbx
from arisim.playbacks import Player
from arisim.recordings import Recorder
from arisim.transfers import Transfers
from arisim.wiring import Wiring
from arisim.world import World

APP = "verbatim"


def _party(world: World, tone: int, bridge: Bridge | None = None) -> Channel:
    ch = Channel(id=world.new_uniqueid(), name=f"PJSIP/{tone}-{world.next_tech('PJSIP')}",
                 tech="PJSIP", resource=str(tone), creationtime=world.clock.epoch(),
                 state="Up", tone_hz=tone, sends_media=True, stasis_app=APP)
    world.channels[ch.id] = ch
    if bridge is not None:
        ch.bridge_id = bridge.id
        bridge.channels.append(ch.id)
        bridge.settle_technology()
    return ch


def _bridge(world: World) -> Bridge:
    bridge = Bridge(id="b1", name="", bridge_type="mixing", creationtime=world.clock.epoch(),
                    subscribed_apps={APP})
    world.bridges[bridge.id] = bridge
    return bridge


class _Answers:
    """The channels part as the Recorder sees it: answering a channel it records."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.answered: list[str] = []

    def answer_channel(self, ch: Channel) -> None:
        self.answered.append(ch.id)
        ch.state = "Up"


def _events(world: World) -> list[dict[str, Any]]:
    return [r.event for r in world.hub.log]


def _recorder(tmp_path: Path) -> tuple[World, Recorder, _Answers]:
    world = World(spool_dir=tmp_path)
    answers = _Answers(world)
    return world, Recorder(world, Media(world), answers), answers


async def test_recorder_start_pause_stop_on_a_bridge(tmp_path: Path) -> None:
    world, recorder, _ = _recorder(tmp_path)
    bridge = _bridge(world)
    _party(world, 440, bridge)
    _party(world, 700, bridge)
    with world.action():
        rec = recorder.new_recording("bridge", bridge.id, "call", "wav", max_duration=0,
                                     max_silence=0, if_exists="fail", beep=False,
                                     terminate_on="none")
    assert bridge.technology == "softmix"  # the Recorder is a third channel
    await world.clock.advance(2.0)
    with world.action():
        recorder.pause_recording(rec, True)
    await world.clock.advance(1.0)  # paused: nothing written
    with world.action():
        recorder.pause_recording(rec, False)
    await world.clock.advance(1.0)
    with world.action():
        recorder.end_recording(rec)
    assert [e["type"] for e in _events(world)] == ["RecordingStarted", "RecordingFinished"]
    finished = _events(world)[-1]["recording"]
    assert finished["state"] == "done" and finished["duration"] == 3
    assert wav_duration(tmp_path / "call.wav") == 3.0
    assert tones_per_second(tmp_path / "call.wav", [440, 700]) == [{440, 700}] * 3
    assert bridge.recorder_ids == [] and bridge.technology == "simple_bridge"
    assert world.hub.errors == [] and world.errors == []


async def test_recorder_ends_a_bridge_recording_when_the_bus_says_the_bridge_emptied(
        tmp_path: Path) -> None:
    world, recorder, _ = _recorder(tmp_path)
    bridge = _bridge(world)
    _party(world, 440, bridge)
    with world.action():
        recorder.new_recording("bridge", bridge.id, "alone", "wav", max_duration=0,
                               max_silence=0, if_exists="fail", beep=False,
                               terminate_on="none")
    await world.clock.advance(1.0)  # one SIP party sends media: 1 s of its tone
    with world.action():
        bridge.channels.clear()
        world.bus.publish(BridgeEmptied(bridge))
    assert [e["type"] for e in _events(world)] == ["RecordingStarted", "RecordingFinished"]
    assert world.recordings == {} and [r.name for r in world.finished_recordings] == ["alone"]
    assert tones_per_second(tmp_path / "alone.wav", [440]) == [{440}]


async def test_recorder_answers_the_channel_it_records_and_ends_when_it_hangs_up(
        tmp_path: Path) -> None:
    world, recorder, answers = _recorder(tmp_path)
    ch = _party(world, 440)
    ch.state = "Ring"
    with world.action():
        recorder.new_recording("channel", ch.id, "leg", "wav", max_duration=0,
                               max_silence=0, if_exists="fail", beep=False,
                               terminate_on="none")
    await world.clock.advance(1.5)
    assert answers.answered == [ch.id]
    with world.action():
        ch.hungup = True
        world.bus.publish(ChannelHungUp(ch))
    types = [e["type"] for e in _events(world)]
    assert types == ["RecordingStarted", "RecordingFinished"]
    assert wav_duration(tmp_path / "leg.wav") == 1.5


async def test_recorder_fails_a_channel_recording_of_a_bridged_channel(tmp_path: Path) -> None:
    world, recorder, answers = _recorder(tmp_path)
    bridge = _bridge(world)
    ch = _party(world, 440, bridge)
    with world.action():
        recorder.new_recording("channel", ch.id, "leg", "wav", max_duration=0,
                               max_silence=0, if_exists="fail", beep=False,
                               terminate_on="none")
    await world.clock.advance(0.1)
    failed = _events(world)[-1]
    assert failed["type"] == "RecordingFailed"
    assert failed["recording"]["cause"] == "Cannot record channel while in bridge"
    assert answers.answered == []


class _Variables:
    """The dialplan part as the Monitor sees it: Set() of MIXMONITOR_FILENAME."""

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value


async def test_monitor_writes_what_a_party_says_and_hears_until_it_is_gone(
        tmp_path: Path) -> None:
    world = World(spool_dir=tmp_path)
    media = Media(world)
    monitor = Monitor(world, media, Recorder(world, media, _Answers(world)), _Variables())
    bridge = _bridge(world)
    caller = _party(world, 440, bridge)
    _party(world, 700, bridge)
    with world.action():
        monitor.start_mixmonitor(caller, "/var/spool/asterisk/recording/mm/call.wav,b")
        monitor.start_mixmonitor(caller, "elsewhere.wav")  # under monitor/: not simulated
    assert caller.variables["MIXMONITOR_FILENAME"] == "/var/spool/asterisk/recording/mm/call.wav"
    assert len(world.warnings) == 1 and "elsewhere.wav" in world.warnings[0]
    await world.clock.advance(1.0)
    with world.action():
        caller.on_hold = True  # says nothing, still hears the other party
    await world.clock.advance(1.0)
    with world.action():
        caller.hungup = True
        world.bus.publish(ChannelGone(caller))
    await world.clock.advance(1.0)  # closed: nothing more written
    assert world.mixmonitors == [] and len(world.finished_mixmonitors) == 1
    path = tmp_path / "mm" / "call.wav"
    assert wav_duration(path) == 2.0
    assert tones_per_second(path, [440, 700]) == [{440, 700}, {700}]


def _player(tmp_path: Path) -> tuple[World, Player]:
    world = World(spool_dir=tmp_path, sounds={"hello": 2.0, "bye": 1.0})
    media = Media(world)
    return world, Player(world, Recorder(world, media, _Answers(world)))


def _playback_events(world: World) -> list[tuple[float, str, str]]:
    return [(r.at, r.event["type"], r.event["playback"]["id"]) for r in world.hub.log
            if r.event["type"].startswith("Playback")]


async def test_player_queues_a_channel_playbacks_pauses_and_flushes_on_hangup(
        tmp_path: Path) -> None:
    world, player = _player(tmp_path)
    ch = _party(world, 440)
    with world.action():
        player.new_playback(ch, ["sound:hello", "sound:bye"], None, "p1")
        player.new_playback(ch, ["sound:hello"], None, "p2")
        player.new_playback(ch, ["sound:bye"], None, "p3")
    await world.clock.advance(1.0)
    with world.action():
        assert player.control_playback(world.playbacks["p1"], "pause")
    await world.clock.advance(5.0)  # paused: hello still has 1 s left
    with world.action():
        player.control_playback(world.playbacks["p1"], "unpause")
    await world.clock.advance(2.5)  # hello ends at 7, bye at 8: p2 starts
    with world.action():
        ch.hungup = True
        world.bus.publish(HangupStarted(ch))
    assert _playback_events(world) == [
        (0.0, "PlaybackStarted", "p1"), (7.0, "PlaybackContinuing", "p1"),
        (7.0, "PlaybackStarted", "p1"), (8.0, "PlaybackFinished", "p1"),
        (8.0, "PlaybackStarted", "p2"), (8.5, "PlaybackFinished", "p2")]
    assert world.playbacks == {} and ch.playback_queue == [] and ch.playing is None


async def test_player_stops_a_bridge_playback_when_the_bridge_is_destroyed(
        tmp_path: Path) -> None:
    world, player = _player(tmp_path)
    bridge = _bridge(world)
    with world.action():
        player.new_playback(bridge, ["tone:ring"], None, "t1")  # plays until stopped
    await world.clock.advance(30.0)
    with world.action():
        world.bus.publish(BridgeDestroying(bridge))
    assert _playback_events(world) == [(0.0, "PlaybackStarted", "t1"),
                                       (30.0, "PlaybackFinished", "t1")]
    assert world.playbacks == {}


def test_bridging_joins_swaps_and_tells_the_bus_when_parties_leave(tmp_path: Path) -> None:
    world = World(spool_dir=tmp_path)
    bridging = Bridging(world)
    heard: list[str] = []
    world.bus.subscribe(BridgeEmptied, lambda m: heard.append(f"emptied {m.bridge.id}"))
    world.bus.subscribe(LeftBridge, lambda m: heard.append(f"left {m.channel.resource}"))
    world.bus.subscribe(BridgeDestroying, lambda m: heard.append(f"destroying {m.bridge.id}"))
    a, b, c = _party(world, 440), _party(world, 700), _party(world, 900)
    bridge = bridging.create_bridge("mixing", "talk", "b1")
    assert bridge is not None and bridging.create_bridge("mixing,holding", None, None) is None
    bridging.bridge_add(bridge, a)
    bridging.bridge_add(bridge, b)
    assert bridging.bridge_peer(bridge, a) is b and bridge.technology == "simple_bridge"
    bridging.bridge_swap(bridge, c, b)  # c takes b's place: no one "left"
    assert bridge.channels == [a.id, c.id] and b.bridge_id is None and heard == []
    bridging.bridge_remove(bridge, a)
    bridging.bridge_remove(bridge, c)
    assert heard == ["left 440", f"emptied {bridge.id}", "left 900"]
    bridging.destroy_bridge(bridge)
    assert heard[-1] == f"destroying {bridge.id}" and world.find_bridge(bridge.id) is None
    assert [e["type"] for e in _events(world)] == [
        "BridgeCreated", "ChannelEnteredBridge", "ChannelEnteredBridge", "ChannelLeftBridge",
        "ChannelEnteredBridge", "ChannelLeftBridge", "ChannelLeftBridge", "BridgeDestroyed"]


class _Neighbours:
    """The dialling part and the applications as ChannelLife sees them."""

    def __init__(self, holding: frozenset[str] = frozenset()) -> None:
        self.holding = set(holding)
        self.answered: list[str] = []
        self.gone_while_dialled: list[str] = []

    def far_answered(self, ch: Channel) -> None:
        self.answered.append(ch.name)

    def dial_hung_up(self, ch: Channel) -> None:
        self.gone_while_dialled.append(ch.name)

    def hold_destroy(self, ch: Channel) -> bool:
        return ch.id in self.holding


def _life(tmp_path: Path, *, app_active: bool = False
          ) -> tuple[World, Bridging, ChannelLife, _Neighbours]:
    """A World with Bridging and ChannelLife; `app_active`: APP has a WebSocket, so a channel
    can enter Stasis."""
    world = World(spool_dir=tmp_path)
    if app_active:
        world.hub.apps[APP] = AppState(APP, session=Session(web.WebSocketResponse(), [APP],
                                                            False))
    bridging = Bridging(world)
    neighbours = _Neighbours()
    return world, bridging, ChannelLife(world, bridging, neighbours, neighbours), neighbours


def test_channel_life_hangs_up_in_asterisks_order_and_tells_the_bus(tmp_path: Path) -> None:
    world, bridging, life, neighbours = _life(tmp_path)
    heard: list[str] = []
    for topic in (HangupStarted, ChannelHungUp, ChannelGone):
        world.bus.subscribe(topic, lambda m: heard.append(type(m).__name__))
    bridge = _bridge(world)
    caller = _party(world, 440)
    life.register(caller)
    bridging.bridge_add(bridge, caller)
    one, two = life.new_local_pair("300@transfer-target")
    life.answer_channel(one)  # the other half is the far end's to answer
    assert neighbours.answered == [two.name]
    before = len(world.hub.log)
    life.hangup_channel(caller, soft=True)
    caller_events = [r.event["type"] for r in world.hub.log[before:]]
    assert caller_events == ["ChannelHangupRequest", "ChannelLeftBridge", "StasisEnd",
                             "ChannelDestroyed"]
    assert heard == ["HangupStarted", "ChannelHungUp", "ChannelGone"]
    assert neighbours.gone_while_dialled == [caller.name]
    assert world.find_channel(caller.id) is None
    # A Local half hung up takes the other with it, a moment later.
    neighbours.holding.add(two.id)  # an application (AGI) still runs on ;2
    life.hangup_channel(one, 16)
    world.clock.run_due(1.0)
    assert two.hungup and two.destroy_pending and not two.destroyed
    life.destroy_channel(two)
    assert two.destroyed and [r.event["cause"] for r in world.hub.log
                              if r.event["type"] == "ChannelDestroyed"] == [16, 16, 16]


class _Runner:
    """The dialplan part as Transfers see it."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, str, str, int]] = []

    def run_dialplan(self, ch: Channel, context: str, exten: str, priority: int = 1) -> None:
        self.ran.append((ch.name, context, exten, priority))

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value


async def test_transfers_blind_transfer_swaps_a_local_half_in_and_byes_the_transferer(
        tmp_path: Path) -> None:
    world, bridging, life, _ = _life(tmp_path, app_active=True)
    runner = _Runner()
    transfers = Transfers(world, life, bridging, runner)
    bridge = _bridge(world)
    caller, callee = _party(world, 440), _party(world, 700)
    for ch in (caller, callee):
        bridging.bridge_add(bridge, ch)
    before = len(world.hub.log)
    with world.action():
        out = transfers.blind_transfer_channel(callee, "300", "transfer-target")
    assert out.result == "Success" and out.local_one and out.local_two
    one, two = world.channels[out.local_one], world.channels[out.local_two]
    assert bridge.channels == [caller.id, one.id] and callee.bridge_id is None
    assert runner.ran == [(two.name, "transfer-target", "300", 1)]
    assert caller.variables["BLINDTRANSFER"] == callee.name == one.variables["BLINDTRANSFER"]
    types = [r.event["type"] for r in world.hub.log[before:]]
    assert types[types.index("StasisStart"):] == [
        "StasisStart", "ChannelLeftBridge", "ChannelEnteredBridge", "BridgeBlindTransfer"]
    assert types[0] == "ChannelUnhold"
    await world.clock.advance(0.5)  # the phone's BYE once NOTIFY said it worked
    assert callee.destroyed and not caller.hungup
    # No bridge: Invalid, and nothing happens.
    assert transfers.blind_transfer_channel(callee, "300", "transfer-target").result == "Invalid"


class _Pbx:
    """The dialplan interpreter as an AGI session sees it: variables only, no functions."""

    def __init__(self) -> None:
        self.continued: list[str] = []
        self.aborted: list[str] = []

    def dp_continue(self, ch: Channel) -> None:
        self.continued.append(ch.name)

    def dp_abort(self, ch: Channel) -> None:
        self.aborted.append(ch.name)

    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None:
        ch.variables[name] = value

    def read_variable(self, ch: Channel, name: str) -> str | None:
        return ch.variables.get(name)

    def substitute(self, ch: Channel, data: str) -> str:
        return data

    def playback_length(self, data: str) -> float:
        return 1.0

    def playback_status(self, data: str) -> str:
        return "SUCCESS"


async def test_agi_runs_a_fastagi_session_and_the_dialplan_goes_on_after_it(
        tmp_path: Path) -> None:
    env: list[str] = []
    replies: list[str] = []

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (line := (await reader.readline()).decode()) != "\n":
            env.append(line.strip())
        for command in ("ANSWER", "SET VARIABLE FOO bar", "GET VARIABLE FOO", "GET VARIABLE NO"):
            writer.write(f"{command}\n".encode())
            await writer.drain()
            replies.append((await reader.readline()).decode().strip())
        writer.close()

    listening = await asyncio.start_server(server, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    world, _, life, _ = _life(tmp_path)
    pbx = _Pbx()
    agi = Agi(world, life, pbx, patience_s=0.5)
    ch = _party(world, 440)
    ch.state = "Ring"
    with world.action():
        agi.start_agi(ch, f"agi://127.0.0.1:{port}/record,one")
    session = await agi.wait_agi(ch.id, "done")
    listening.close()
    assert "agi_network_script: record" in env and "agi_arg_1: one" in env
    assert replies == ["200 result=0", "200 result=1", "200 result=1 (bar)", "200 result=0"]
    assert ch.state == "Up" and pbx.continued == [ch.name] and pbx.aborted == []
    assert session.result == "SUCCESS" and ch.variables["AGISTATUS"] == "SUCCESS"
    assert not agi.waiting_on_agi()


class _Apps:
    """Dialling's far-end signals and the dialplan applications as the Pbx sees them."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str, str]] = []

    def far_ringing(self, ch: Channel) -> None:
        self.started.append(("ringing", ch.name, ""))

    def far_busy(self, ch: Channel, hangup_after: float = 0.0) -> None:
        self.started.append(("busy", ch.name, ""))

    def start_agi(self, ch: Channel, data: str) -> None:
        self.started.append(("AGI", ch.name, data))

    def start_dial(self, ch: Channel, data: str) -> None:
        self.started.append(("Dial", ch.name, data))

    def start_mixmonitor(self, ch: Channel, data: str) -> None:
        self.started.append(("MixMonitor", ch.name, data))


async def test_pbx_runs_set_gotoif_gosub_wait_and_hands_dial_to_the_application(
        tmp_path: Path) -> None:
    world, _, life, _ = _life(tmp_path)
    apps = _Apps()
    pbx = Pbx(world, life, apps, apps)
    world.dialplan.add_extension("unit", "100", [
        ("Set", "__CALL=abc"),
        ("GotoIf", "$[${CALL} = abc]?4:3"),
        ("Log", "ERROR,not reached"),
        ("Gosub", "sub,s,1(${CALLERID(num)})"),
        ("Log", "NOTICE,back in ${CONTEXT}"),
        ("Wait", "2"),
        ("MixMonitor", "/var/spool/asterisk/recording/${UNIQUEID}.wav"),
        ("Dial", "PJSIP/200,30"),
    ])
    world.dialplan.add_extension("sub", "s", [("Log", "NOTICE,in sub ${ARG1}"), ("Return", "")])
    ch = _party(world, 440)
    ch.caller.number = "4155550100"
    ch.stasis_app = None  # a call the dialplan keeps
    with world.action():
        pbx.run_dialplan(ch, "unit", "100")
    assert world.dialplan_log == [(ch.name, "NOTICE", "in sub 4155550100"),
                                  (ch.name, "NOTICE", "back in unit")]
    assert ch.inherit == {"CALL": 2} and apps.started == []  # Wait(2) is running
    await world.clock.advance(2.0)
    assert apps.started == [
        ("MixMonitor", ch.name, f"/var/spool/asterisk/recording/{ch.id}.wav"),
        ("Dial", ch.name, "PJSIP/200,30")]
    assert ch.dialplan.priority == 8 and not ch.hungup
    assert pbx.read_variable(ch, "FILTER(0-9,+1 (415))") == "1415"


class _NoDialApp:
    """Dial() in the dialplan, which these legs (created by the app) never meet."""

    def app_dial_answered(self, ch: Channel) -> None:
        raise AssertionError(ch.name)

    def app_dial_busy(self, ch: Channel, status: str) -> None:
        raise AssertionError(ch.name)

    def app_dial_gone(self, ch: Channel) -> None:
        raise AssertionError(ch.name)

    def app_dial_forward(self, ch: Channel, target: str) -> None:
        raise AssertionError(ch.name)


def _dialling(tmp_path: Path) -> tuple[World, ChannelLife, Dialling]:
    world, _, life, _ = _life(tmp_path, app_active=True)
    apps = _Apps()
    dialling = Dialling(world, life, Pbx(world, life, apps, apps), _NoDialApp())
    return world, life, dialling


def _dial_statuses(world: World, ch: Channel) -> list[tuple[float, str]]:
    return [(r.at, r.event["dialstatus"]) for r in world.hub.log
            if r.event["type"] == "Dial" and r.event["peer"]["id"] == ch.id]


async def test_dialling_a_created_leg_rings_answers_and_times_out_unanswered(
        tmp_path: Path) -> None:
    world, _, dialling = _dialling(tmp_path)
    world.dialplan.endpoints["PJSIP/200"] = EndpointBehaviour(answer_after=1.5, tone_hz=700)
    world.dialplan.endpoints["PJSIP/201"] = EndpointBehaviour(result="noanswer")
    with world.action():
        answered = dialling.create_channel("PJSIP/200", APP, None)
        ringing = dialling.create_channel("PJSIP/201", APP, None)
    await world.clock.advance(0.1)  # StasisStart, after the create's reply
    with world.action():
        dialling.ari_dial(answered, None, 30)
        dialling.ari_dial(ringing, None, 5)
    await world.clock.advance(10.0)
    assert _dial_statuses(world, answered) == [(0.1, ""), (0.1, "RINGING"), (1.6, "ANSWER")]
    assert answered.state == "Up" and answered.tone_hz == 700
    assert _dial_statuses(world, ringing) == [(0.1, ""), (0.1, "RINGING")]
    assert ringing.destroyed and ringing.hangup_cause == 19  # control.c: no NOANSWER Dial


async def test_dialling_follows_a_302_of_an_originated_leg_through_a_local_pair(
        tmp_path: Path) -> None:
    world, _, dialling = _dialling(tmp_path)
    world.dialplan.endpoints["PJSIP/400"] = EndpointBehaviour(
        result="forward", forward_to="300", answer_after=0.5)
    with world.action():
        ch = dialling.originate("PJSIP/400", app=APP, app_args="outbound", context=None,
                                extension=None, priority=1, caller_id=None, timeout=30,
                                channel_id=None, other_id=None, variables={})
    await world.clock.advance(1.0)
    cancel = [r.event for r in world.hub.log if r.event["type"] == "Dial"
              and r.event["dialstatus"] == "CANCEL"]
    assert len(cancel) == 1 and cancel[0]["forward"] == "300"
    assert cancel[0]["forwarded"]["name"].startswith("Local/300@")
    assert ch.destroyed and ch.caller_rdnis == "400"


async def test_dial_app_bridges_the_answered_line_and_the_dialplan_goes_on_after_it(
        tmp_path: Path) -> None:
    world = World(spool_dir=tmp_path)
    wiring = Wiring()  # as the Simulator builds them: parts calling each other both ways
    bridging = Bridging(world)
    life = ChannelLife(world, bridging, wiring, wiring)
    pbx = Pbx(world, life, wiring, wiring)
    wiring.agi = agi = Agi(world, life, pbx, patience_s=0.5)
    wiring.dialling = Dialling(world, life, pbx, wiring)
    wiring.dial_app = DialApp(world, life, bridging, wiring.dialling, pbx, agi)
    world.dialplan.endpoints["PJSIP/200"] = EndpointBehaviour(answer_after=1.0, tone_hz=700)
    world.dialplan.add_extension("unit", "200", [
        ("Dial", "PJSIP/200,30,g"), ("Log", "NOTICE,${DIALSTATUS}")])
    caller = _party(world, 440)
    caller.stasis_app = None
    caller.state = "Ring"
    with world.action():
        pbx.run_dialplan(caller, "unit", "200")
    await world.clock.advance(1.5)
    bridge = world.find_bridge(caller.bridge_id or "")
    assert bridge is not None and bridge.bridge_class == "basic" and len(bridge.channels) == 2
    (callee,) = [world.channels[c] for c in bridge.channels if c != caller.id]
    assert caller.state == "Up" and callee.name.startswith("PJSIP/200-")
    dials = [(r.event["caller"]["id"], r.event["dialstatus"]) for r in world.hub.log
             if r.event["type"] == "Dial" and "caller" in r.event]
    assert dials == [(caller.id, ""), (caller.id, "RINGING"), (caller.id, "ANSWER")]
    with world.action():
        life.far_hangup(callee)  # the bridge dissolves; with g the caller goes on
    await world.clock.advance(0.1)
    assert bridge.destroyed and world.dialplan_log == [(caller.name, "NOTICE", "ANSWER")]
    assert caller.destroyed  # its dialplan ran out: the PBX hung it up
