"""Bring the model in line with what Asterisk really holds, after a reconnect or a restart.

Events are lost while the WebSocket is down, and a daemon that crashed lost everything after its
last snapshot. ARI offers no event replay, so the adapter reads Asterisk's current state
(GET /channels, GET /bridges, GET /recordings/live/{name} per recording we hold as live, with
/recordings/stored as the fallback — ARI has no list of live recordings — and GET
/playbacks/{id} per playback a call waits on) and this module turns each difference into the
event that would have told us, then runs it through `step`. So a call in flight keeps its state
and nothing is handled by a second code path. A playback that is gone is the one exception: no
event can say whether it ended or never started, so it is `PlaybackLost` (played again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from recorder.ari import events as ev
from recorder.common.direction import DIRECTIONS
from recorder.model import commands as cmd
from recorder.model.calls import step
from recorder.model.inputs import PlaybackLost
from recorder.model.settings import CallSettings
from recorder.model.state import (
    CONNECTING,
    ENDING,
    GONE_UNSEEN,
    LEG_DIALING,
    LEG_GONE,
    LEG_NEW,
    LEG_RINGING,
    REC_REQUESTED,
    Call,
    CallMode,
    Leg,
    ModelState,
)


class _Base(TypedDict):
    timestamp: datetime
    asterisk_id: str


# What a recording we hold as live turned out to be.
LIVE = "live"  # GET /recordings/live/{name} → recording/paused
QUEUED = "queued"  # live but not yet started
STORED = "stored"  # 404 live, present in /recordings/stored: it finished while we were away
ABSENT = "absent"  # in neither: it failed or never started


@dataclass(frozen=True)
class AriSnapshot:
    asterisk_id: str
    channels: dict[str, ev.ChannelInfo] = field(default_factory=dict)
    bridges: dict[str, ev.BridgeInfo] = field(default_factory=dict)
    recordings: dict[str, str] = field(default_factory=dict)  # name -> LIVE|QUEUED|STORED|ABSENT
    # Of `playbacks_to_check`, those Asterisk does not have (404)
    lost_playbacks: frozenset[str] = frozenset()


def recordings_to_check(state: ModelState) -> list[str]:
    """The names whose fate the adapter must look up before calling `reconcile`."""
    return [r.name for c in state.calls.values() for r in c.live_recordings()]


def _playbacks(call: Call) -> list[str]:
    """The ARI playbacks the call waits on (a hook-mode call's prompts are the dialplan's)."""
    if call.mode == "hook":
        return []
    waiting = [call.stasis.playback_id] if call.stasis.playback_id else []
    return waiting + list(call.prompts)


def playbacks_to_check(state: ModelState) -> list[str]:
    """The playback ids the adapter must look up (GET /playbacks/{id}) before `reconcile`."""
    return [p for c in state.calls.values() for p in _playbacks(c)]


def reconcile(
    state: ModelState, snap: AriSnapshot, settings: CallSettings, now: datetime
) -> tuple[ModelState, list[cmd.Command]]:
    out: list[cmd.Command] = []

    def feed(event: ev.Event) -> None:
        nonlocal state
        state, commands = step(state, event, settings)
        out.extend(commands)

    base = _Base(timestamp=now, asterisk_id=snap.asterisk_id)
    for call_id in list(state.calls):
        call = state.calls.get(call_id)
        if call is None:
            continue
        out.append(cmd.Log(call_id, "call.reconcile", "info", {"phase": call.phase}))
        asked = len(out)
        for event in _call_differences(call, snap, base):
            feed(event)
        # the ids as the call held them before those events: one an event has ended since (a
        # ringback stopped by a caught-up answer) is no longer waited on, and playback_lost
        # leaves it
        for playback_id in _playbacks(call):
            if playback_id in snap.lost_playbacks and call_id in state.calls:
                feed(PlaybackLost(**base, playback_id=playback_id))
        after = state.calls.get(call_id)  # after those events (None once ended)
        out += _ending_resumed(call, after, snap)
        out += _connecting_resumed(after, snap, out[asked:])
        out += _cancelled_resumed(after, snap, out[asked:])

    # Channels in our app that no call knows: a caller whose StasisStart we never handled
    # (the daemon died first) is taken on now; a dialled leg of a lost call is released while
    # it only rings, and left alone once it talks in a bridge.
    known = set(state.by_channel) | {ch.id for ch, _ in state.pending_locals.values()}
    for channel in snap.channels.values():
        if channel.id in known or channel.dialplan_app != "Stasis":
            continue
        app, _, rest = channel.dialplan_app_data.partition(",")
        if app != settings.app:
            continue
        args = tuple(a for a in rest.split(",") if a) if rest else ()
        if args and args[0] in DIRECTIONS:
            out.append(cmd.Log("", "call.adopt_orphan", "warning", {"channel_id": channel.id}))
            feed(ev.StasisStart(**base, channel=channel, args=args))
        elif any(channel.id in bridge.channels and len(bridge.channels) > 1
                 for bridge in snap.bridges.values()):
            # A party talking with someone in a call nobody can place (its rows are lost):
            # never cut it; it goes on as it stands, and whatever Asterisk records is filed.
            out.append(cmd.Log("", "call.orphan_left_talking", "error", {
                "channel_id": channel.id, "args": list(args),
                "reason": "a bridged party of a call this daemon has no record of"}))
        else:
            out.append(cmd.Log("", "call.release_orphan", "warning", {"channel_id": channel.id}))
            out.append(cmd.Hangup("", channel.id))
    return state, out


def _call_differences(call: Call, snap: AriSnapshot, base: _Base) -> list[ev.Event]:
    events: list[ev.Event] = []
    bridge = snap.bridges.get(call.bridge_id)
    members = set(bridge.channels) if bridge else set()
    for leg in call.legs.values():
        if leg.state == LEG_GONE:
            continue
        channel = snap.channels.get(leg.channel_id)
        if channel is None:
            # Hung up while we were away, or (a leg we meant to create) never made at all.
            events.append(
                ev.ChannelDestroyed(
                    **base,
                    channel=_ghost(leg.channel_id),
                    cause=0,
                    cause_txt=GONE_UNSEEN,
                )
            )
            continue
        if channel.dialplan_app == "Stasis" and (
                leg.state == LEG_NEW or (leg.stasis.originated and not leg.stasis.in_stasis)):
            # a created leg's, or an originated one's (it enters the app once answered, and
            # joins the bridge then: without it, it would wait for a StasisStart long past)
            events.append(ev.StasisStart(**base, channel=channel, args=("dialed", call.call_id)))
        if leg.state in (LEG_NEW, LEG_DIALING, LEG_RINGING) and channel.state == "Up":
            events.append(ev.Dial(**base, peer=channel, dialstatus="ANSWER"))
        if call.mode == "hook":  # bridges the dialplan made: wherever the leg is now
            events += _hooked_bridging(leg, channel, snap, base)
        elif leg.channel_id in members and not leg.in_bridge:
            events.append(
                ev.ChannelEnteredBridge(
                    **base, bridge=bridge or ev.BridgeInfo(call.bridge_id), channel=channel
                )
            )
        elif leg.in_bridge and leg.channel_id not in members:
            events.append(
                ev.ChannelLeftBridge(**base, bridge=ev.BridgeInfo(call.bridge_id), channel=channel)
            )
    if call.mode == "hook":
        events += _joined_while_away(call, snap, base)
    for rec in call.live_recordings():
        fate = snap.recordings.get(rec.name, ABSENT)
        info = ev.RecordingInfo(rec.name, rec.format, fate, f"bridge:{call.bridge_id}")
        if fate == LIVE and rec.status == REC_REQUESTED:
            events.append(ev.RecordingStarted(**base, recording=info))
        elif fate == STORED:
            if rec.status == REC_REQUESTED:
                events.append(ev.RecordingStarted(**base, recording=info))
            events.append(ev.RecordingFinished(**base, recording=info))
        elif fate == ABSENT:
            events.append(
                ev.RecordingFailed(
                    **base,
                    recording=ev.RecordingInfo(
                        rec.name,
                        rec.format,
                        "failed",
                        info.target_uri,
                        cause="absent after reconnect",
                    ),
                )
            )
    if bridge is None and call.stasis.bridge_created and not call.stasis.bridge_destroyed:
        events.append(ev.BridgeDestroyed(**base, bridge=ev.BridgeInfo(call.bridge_id)))
    return events


def _ending_resumed(adopted: Call, call: Call | None, snap: AriSnapshot) -> list[cmd.Command]:
    """A Stasis call that was already ending had asked Asterisk to stop its recordings, hang up
    every other party (`begin_end`) and, once no party was left, destroy its bridges
    (`maybe_finish`); the previous run may have died before Asterisk heard any of it. What
    Asterisk still holds of that is asked again, in the same order — else the recording goes
    on with a party alone (and a bridge's Recorder outlives its parties), that party stays with
    no one, and the call stays open. What Asterisk did carry out shows as gone (the events
    above); a call that only began to end while we were away asked all of it just now.
    `adopted`: the call as it was before those events; `call`: after them (None once ended)."""
    if adopted.mode != CallMode.STASIS or adopted.phase != ENDING:
        return []
    out: list[cmd.Command] = []
    if call is not None and call.phase == ENDING:
        out += [cmd.StopRecording(call.call_id, rec.name) for rec in call.live_recordings()
                if snap.recordings.get(rec.name) in (LIVE, QUEUED)]
        out += [cmd.Hangup(call.call_id, leg.channel_id, call.stasis.hangup_reason)
                for leg in call.live_legs() if leg.channel_id in snap.channels]
    if adopted.stasis.bridge_destroyed:  # asked (no party was left), yet Asterisk still has it
        out += [cmd.DestroyBridge(adopted.call_id, bridge_id)
                for bridge_id in adopted.all_bridges() if bridge_id in snap.bridges]
    return out


def _connecting_resumed(call: Call | None, snap: AriSnapshot,
                        asked: list[cmd.Command]) -> list[cmd.Command]:
    """A Stasis call connecting its callee (the recording started: `connect_callee`) had asked
    Asterisk to add the callee to the bridge; the previous run may have died after journaling
    that and before Asterisk heard it. A callee up in the app and still outside the bridge is
    added again: else it talks to no one and the call stays connecting. One that joined while
    we were away showed as entered (the events above) and the call is bridged by now; one that
    waits for its StasisStart to join (`waiting`) is added then. `asked`: what those events
    asked already (the recording's start missed while away connects the callee itself)."""
    if call is None or call.mode != CallMode.STASIS or call.phase != CONNECTING:
        return []
    leg = call.legs.get(call.callee_channel or "")
    if (leg is None or leg.state == LEG_GONE or leg.stasis.waiting
            or leg.stasis.join_bridge is not None  # a transfer's target: it joins its own
            or call.bridge_id not in snap.bridges):
        return []
    channel = snap.channels.get(leg.channel_id)
    if (channel is None or channel.state != "Up" or channel.dialplan_app != "Stasis"
            or any(leg.channel_id in b.channels for b in snap.bridges.values())  # ours or not
            or any(isinstance(c, cmd.AddChannel) and c.channel_id == leg.channel_id
                   for c in asked)):
        return []
    return [cmd.AddChannel(call.call_id, call.bridge_id, leg.channel_id)]


def _cancelled_resumed(call: Call | None, snap: AriSnapshot,
                       asked: list[cmd.Command]) -> list[cmd.Command]:
    """A ring group's members the call stopped once another answered (`answered`): the
    previous run may have died before Asterisk heard their hang-ups. One Asterisk still holds
    is hung up again, else it rings on, unanswerable, until the call ends. `asked`: what the
    events above asked already (an ending call's own hang-ups)."""
    if call is None or call.mode != CallMode.STASIS:
        return []
    hung = {c.channel_id for c in asked if isinstance(c, cmd.Hangup)}
    return [cmd.Hangup(call.call_id, leg.channel_id, "answered_elsewhere")
            for leg in call.legs.values()
            if leg.role == "callee" and leg.outcome == "cancelled" and leg.state != LEG_GONE
            and leg.channel_id in snap.channels and leg.channel_id not in hung]


def _hooked_bridging(
    leg: Leg, channel: ev.ChannelInfo, snap: AriSnapshot, base: _Base
) -> list[ev.Event]:
    now_in = next((b for b in snap.bridges.values() if leg.channel_id in b.channels), None)
    was_in = str(leg.spans[-1][0]) if leg.in_bridge and leg.spans else None
    events: list[ev.Event] = []
    if was_in is not None and (now_in is None or now_in.id != was_in):
        events.append(ev.ChannelLeftBridge(**base, bridge=ev.BridgeInfo(was_in), channel=channel))
    if now_in is not None and now_in.id != was_in:
        events.append(ev.ChannelEnteredBridge(**base, bridge=now_in, channel=channel))
    return events


def _joined_while_away(call: Call, snap: AriSnapshot, base: _Base) -> list[ev.Event]:
    """Channels now bridged with a live leg that the call does not know (a blind transfer's
    target answered while we were away): they join it as when seen entering."""
    live = {leg.channel_id for leg in call.legs.values() if leg.state != LEG_GONE}
    events: list[ev.Event] = []
    for bridge in snap.bridges.values():
        if not live & set(bridge.channels):
            continue
        for channel_id in bridge.channels:
            channel = snap.channels.get(channel_id)
            if channel is not None and channel_id not in call.legs:
                events.append(ev.ChannelEnteredBridge(**base, bridge=bridge, channel=channel))
    return events


def _ghost(channel_id: str) -> ev.ChannelInfo:
    return ev.ChannelInfo(id=channel_id, name="", state="Down")
