"""Playbacks on channels and bridges (res/res_stasis_playback.c).

Per media URI: PlaybackStarted (state playing), then PlaybackContinuing (more media follow) or
PlaybackFinished (state done). A `sound:` Asterisk has no file for (not in the sounds table, and
no default length) ends at once in PlaybackFinished state "failed" (play_on_channel publishes
"playing" before ast_control_streamfile_lang fails), and so does the playback of a channel that
hangs up (the stream answers -1: playback_final_update makes it "failed"). Playbacks on a
channel queue behind each other, as commands on the channel's control queue do. `sound:` lasts
its length from the sounds table, `tone:` until stopped, `recording:` the stored file's length.
A channel playback is heard by that channel only: it never reaches a bridge recording.

The part hears `HangupStarted` (the channel's control queue is flushed) and `BridgeDestroying`
on the bus.
"""

from __future__ import annotations

import uuid

from .audio import wav_duration
from .bus import BridgeDestroying, HangupStarted
from .model import Bridge, Channel, Playback
from .recordings import Recorder
from .world import World


class Player:
    """Playbacks on one World; `recording:` media are found through the Recorder."""

    def __init__(self, world: World, recorder: Recorder) -> None:
        self.world = world
        self.recorder = recorder
        world.bus.subscribe(HangupStarted, lambda m: self.playbacks_on_channel_gone(m.channel))
        world.bus.subscribe(BridgeDestroying, lambda m: self.stop_bridge_playbacks(m.bridge))

    def media_seconds(self, uri: str) -> float | None:
        """Length of one media URI in seconds; None plays until stopped (tones)."""
        scheme, _, rest = uri.partition(":")
        if scheme == "sound":
            return self.world.dialplan.sound_seconds(rest) or 0.0
        if scheme == "tone":
            return None
        if scheme == "recording":
            path = self.recorder.find_stored(rest)
            return wav_duration(path) if path is not None and path.suffix == ".wav" else 0.0
        if scheme in ("digits", "characters"):
            return 0.5 * len(rest)
        if scheme == "number":
            return 1.0
        return 0.0

    def new_playback(self, target: Channel | Bridge, media: list[str], lang: str | None,
                     playback_id: str | None) -> Playback:
        kind = "channel" if isinstance(target, Channel) else "bridge"
        language = lang or (target.language if isinstance(target, Channel) else "en")
        pb = Playback(id=playback_id or str(uuid.uuid4()), media=list(media),
                      target_uri=f"{kind}:{target.id}", language=language, target_kind=kind,
                      target_id=target.id)
        self.world.playbacks[pb.id] = pb
        if isinstance(target, Channel):
            target.playback_queue.append(pb.id)
            self.world.defer(lambda: self.run_next_command(target))
        else:
            self.world.new_internal_pair("Announcer")
            self.world.defer(lambda: self._start_media(pb))
        return pb

    def run_next_command(self, ch: Channel) -> None:
        if ch.playing is not None or ch.hungup:
            return
        while ch.playback_queue:
            pb = self.world.playbacks.get(ch.playback_queue.pop(0))
            if pb is not None and pb.state == "queued":
                ch.playing = pb.id
                self._start_media(pb)
                return

    def _emit_playback(self, etype: str, pb: Playback) -> None:
        if pb.target_kind == "channel":
            ch = self.world.channels.get(pb.target_id)
            self.world.emit(etype, {"playback": pb.json()}, channels=[ch] if ch else [])
        else:
            bridge = self.world.bridges.get(pb.target_id)
            self.world.emit(etype, {"playback": pb.json()}, bridges=[bridge] if bridge else [])

    def _start_media(self, pb: Playback) -> None:
        pb.state = "playing"
        self._emit_playback("PlaybackStarted", pb)
        scheme, _, name = pb.media[pb.index].partition(":")
        if scheme == "sound" and self.world.dialplan.sound_seconds(name) is None:
            self._media_done(pb, failed=True)
            return
        seconds = self.media_seconds(pb.media[pb.index])
        if seconds is not None:
            self._run_for(pb, seconds)

    def _run_for(self, pb: Playback, seconds: float) -> None:
        pb.timer = self.world.schedule(seconds, lambda: self._media_done(pb), f"playback {pb.id}")

    def _media_done(self, pb: Playback, failed: bool = False) -> None:
        pb.timer = None
        if pb.index < len(pb.media) - 1:
            pb.state = "continuing"
            self._emit_playback("PlaybackContinuing", pb)
            pb.index += 1
            self._start_media(pb)
        else:
            self._finish(pb, state="failed" if failed else "done")

    def _finish(self, pb: Playback, publish: bool = True, state: str = "done") -> None:
        if pb.timer is not None:
            pb.timer.cancel()
            pb.timer = None
        pb.state = state
        self.world.playbacks.pop(pb.id, None)
        if publish:
            self._emit_playback("PlaybackFinished", pb)
        if pb.target_kind == "channel":
            ch = self.world.channels.get(pb.target_id)
            if ch is not None and ch.playing == pb.id:
                ch.playing = None
                self.run_next_command(ch)

    def stop_playback(self, pb: Playback) -> None:
        """DELETE /playbacks/{id}: a queued one is cancelled, a playing one stopped; both end in
        PlaybackFinished (state "done")."""
        if pb.target_kind == "channel":
            ch = self.world.channels.get(pb.target_id)
            if ch is not None and pb.id in ch.playback_queue:
                ch.playback_queue.remove(pb.id)
        self._finish(pb)

    def control_playback(self, pb: Playback, operation: str) -> bool:
        """POST /playbacks/{id}/control; False when the media is not playing (409)."""
        if pb.state not in ("playing", "paused"):
            return False
        now = self.world.clock.now()
        if operation == "pause" and pb.state == "playing":
            pb.state = "paused"
            if pb.timer is not None:
                pb.remaining = max(0.0, pb.timer.due - now)
                pb.timer.cancel()
                pb.timer = None
        elif operation == "unpause" and pb.state == "paused":
            pb.state = "playing"
            if pb.remaining is not None:
                self._run_for(pb, pb.remaining)
                pb.remaining = None
        elif operation == "restart" and pb.timer is not None:
            pb.timer.cancel()
            seconds = self.media_seconds(pb.media[pb.index]) or 0.0
            self._run_for(pb, seconds)
        return True

    def playbacks_on_channel_gone(self, ch: Channel) -> None:
        queued, ch.playback_queue = ch.playback_queue, []
        for pid in queued:  # the control queue is flushed: no events
            self.world.playbacks.pop(pid, None)
        if ch.playing is not None:
            pb = self.world.playbacks.get(ch.playing)
            ch.playing = None
            if pb is not None:
                self._finish(pb, state="failed")

    def stop_bridge_playbacks(self, bridge: Bridge) -> None:
        for pb in list(self.world.playbacks.values()):
            if pb.target_kind == "bridge" and pb.target_id == bridge.id:
                self._finish(pb)
