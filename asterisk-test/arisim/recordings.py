"""Live recordings (the Recorder part): what reaches a recorder, the WAV it writes, how it ends.

A bridge recording's Recorder channel gets frames when two or more parties are bridged (softmix
mixes all the time, silence included) or when a lone party sends media (a SIP phone's RTP); a lone
Local channel sends nothing, so nothing is written (basic_inbound: 3.02 s file for a 4 s call).
With no frames for 4 s the recorder gives up — main/app.c __ast_play_and_record waits 2000 ms
twice, "No audio available" — and the recording finishes with what it has (busy,
record_started_alone_slow_answer: duration 0, empty file). RecordingFinished `duration` is whole
seconds of audio in the file (ast_tellstream / 8000).

A channel recording of a bridged channel is accepted (201) then fails (res_stasis_recording.c
record_file: "Cannot record channel while in bridge"); on a Snoop channel it records what is spied.

The part subscribes to the bus: `Render` (write audio up to a time), `MediaChanged` (recompute
what reaches each recorder), `ChannelHungUp` (a channel's recordings end), `BridgeEmptied` and
`BridgeDestroying` (a bridge's recordings end).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from .audio import RATE, WavWriter, silence, tone_samples
from .bus import BridgeDestroying, BridgeEmptied, ChannelHungUp, MediaChanged, Render
from .media import Media
from .model import Bridge, Channel, LiveRecording
from .world import World

STARVE_SECONDS = 4.0
# Formats Asterisk knows (ast_get_format_for_file_ext); the simulator writes WAV content.
KNOWN_FORMATS = {"wav", "WAV", "wav49", "gsm", "ulaw", "alaw", "sln", "slin", "g722", "g729",
                 "g726", "siren7", "siren14", "ilbc", "ogg", "h263", "h264"}


class Answerer(Protocol):
    def answer_channel(self, ch: Channel) -> None: ...


class Recorder:
    """ARI's live and stored recordings, on one World; answers a channel it records through
    `channels` (record_file's ast_auto_answer)."""

    def __init__(self, world: World, media: Media, channels: Answerer) -> None:
        self.world = world
        self.media = media
        self.answerer = channels
        world.bus.subscribe(Render, lambda m: self.render_media(m.until))
        world.bus.subscribe(MediaChanged, lambda m: self.media_changed())
        world.bus.subscribe(ChannelHungUp, lambda m: self.recordings_on_channel_gone(m.channel))
        world.bus.subscribe(BridgeEmptied, lambda m: self.end_bridge_recordings(m.bridge))
        world.bus.subscribe(BridgeDestroying, lambda m: self.end_bridge_recordings(m.bridge))

    # ------------------------------------------------------------- creation
    def recording_path(self, name: str, fmt: str) -> Path:
        return self.world.spool_dir / f"{name}.{fmt}"

    def name_exists(self, name: str) -> bool:
        """ast_fileexists(name) in any format, or a live recording of that name."""
        if name in self.world.recordings:
            return True
        base = self.world.spool_dir / name
        return any(base.with_name(f"{base.name}.{f}").exists() for f in KNOWN_FORMATS)

    def name_escapes(self, name: str) -> bool:
        root = os.path.realpath(self.world.spool_dir)
        return not os.path.realpath(self.world.spool_dir / name).startswith(root + os.sep)

    def new_recording(self, kind: str, target_id: str, name: str, fmt: str, *,
                      max_duration: int, max_silence: int, if_exists: str, beep: bool,
                      terminate_on: str) -> LiveRecording:
        rec = LiveRecording(
            name=name, format=fmt, target_uri=f"{kind}:{target_id}", kind=kind,
            target_id=target_id, path=self.recording_path(name, fmt), if_exists=if_exists,
            max_duration=max_duration, max_silence=max_silence, beep=beep,
            terminate_on=terminate_on,
        )
        self.world.recordings[name] = rec
        if kind == "bridge":
            bridge = self.world.bridges[target_id]
            _, rec.recorder_id, rec.recorder_name = self.world.new_internal_pair("Recorder")
            bridge.recorder_ids.append(rec.recorder_id)
            bridge.settle_technology()
        self.world.defer(lambda: self._start_recording(rec))
        return rec

    def _start_recording(self, rec: LiveRecording) -> None:
        if rec.state != "queued":
            return
        if rec.kind == "channel":
            ch = self.world.channels.get(rec.target_id)
            if ch is None or ch.hungup:
                self.end_recording(rec, "failed", "Channel hung up")
                return
            if ch.bridge_id is not None:
                self.end_recording(rec, "failed", "Cannot record channel while in bridge")
                return
            if ch.state != "Up":
                self.answerer.answer_channel(ch)  # record_file: ast_auto_answer
        elif self.world.find_bridge(rec.target_id) is None:
            self.end_recording(rec, "failed", "Bridge gone")
            return
        rec.writer = WavWriter(rec.path, append=rec.if_exists == "append")
        rec.state = "recording"
        rec.started_at = rec.rendered_until = self.world.clock.now()
        self._emit_recording("RecordingStarted", rec)
        if rec.max_duration > 0:
            self._arm_duration(rec)
        self._media_changed(rec)  # only this one: the others heard nothing new

    def _arm_duration(self, rec: LiveRecording) -> None:
        if rec.end_timer is not None:
            rec.end_timer.cancel()
        left = max(0.0, rec.max_duration - rec.active_seconds)
        rec.end_timer = self.world.schedule(left, lambda: self.end_recording(rec),
                                            f"maxDuration {rec.name}")

    def _emit_recording(self, etype: str, rec: LiveRecording) -> None:
        fields = {"recording": rec.json()}
        if rec.kind == "bridge":
            bridge = self.world.bridges.get(rec.target_id)
            self.world.emit(etype, fields, bridges=[bridge] if bridge else [])
        else:
            ch = self.world.channels.get(rec.target_id)
            self.world.emit(etype, fields, channels=[ch] if ch else [])

    # --------------------------------------------------------------- ending
    def end_recording(self, rec: LiveRecording, state: str = "done",
                      cause: str | None = None, delete: bool = False,
                      by_silence: bool = False) -> None:
        """End a recording: RecordingFinished (done; also after cancel, which deletes the file)
        or RecordingFailed (failed, with `cause`)."""
        if self.world.recordings.get(rec.name) is not rec:
            return
        del self.world.recordings[rec.name]
        for t in (rec.starve_timer, rec.end_timer, rec.silence_timer):
            if t is not None:
                t.cancel()
        rec.starve_timer = rec.end_timer = rec.silence_timer = None
        if rec.writer is not None:
            if state == "done":
                rec.duration, rec.talking_duration = _durations(rec, by_silence)
                if by_silence and rec.silence_run > 0.2:
                    # "trim all but the first 200ms of silence off the recording"
                    keep = rec.writer.samples - round((rec.silence_run - 0.2) * RATE)
                    rec.writer.truncate(max(0, keep))
            rec.writer.close()
        rec.state = state
        rec.cause = cause
        if delete:
            rec.path.unlink(missing_ok=True)
        if rec.kind == "bridge":
            bridge = self.world.bridges.get(rec.target_id)
            if bridge is not None and rec.recorder_id in bridge.recorder_ids:
                bridge.recorder_ids.remove(rec.recorder_id)
                bridge.settle_technology()
        self._emit_recording("RecordingFailed" if state == "failed" else "RecordingFinished", rec)
        self.world.finished_recordings.append(rec)

    def end_bridge_recordings(self, bridge: Bridge) -> None:
        for rec in list(self.world.recordings.values()):
            if rec.kind == "bridge" and rec.target_id == bridge.id:
                self.end_recording(rec)

    def recordings_on_channel_gone(self, ch: Channel) -> None:
        for rec in list(self.world.recordings.values()):
            if rec.kind == "channel" and rec.target_id == ch.id:
                self.end_recording(rec)

    # ------------------------------------------------------------ rendering
    def _mix_for(self, rec: LiveRecording) -> tuple[bool, tuple[int, ...]]:
        """(frames reach the recorder, tones in them) given the current state."""
        if rec.kind == "bridge":
            bridge = self.world.bridges.get(rec.target_id)
            if bridge is None or bridge.destroyed:
                return False, ()
            parties = [self.world.channels[c] for c in bridge.channels]
            tones = tuple(sorted(set().union(*(self.media.bridge_voice(p) for p in parties))))
            if len(parties) >= 2:
                return True, tones
            if len(parties) == 1:
                return self.media.frames_out(parties[0]), tones
            return False, ()
        ch = self.world.channels.get(rec.target_id)
        if ch is None or ch.destroyed:
            return False, ()
        if ch.snoop_of is not None:
            spied = self.world.channels.get(ch.snoop_of)
            if spied is not None and spied.unlinked:  # its audiohook is detached: no frames
                return False, ()
            return True, self._snooped(ch)
        return True, tuple(sorted(self.media.voice(ch)))

    def _snooped(self, snoop: Channel) -> tuple[int, ...]:
        """Audio a Snoop channel spies: "in" what the channel says, "out" what it hears."""
        target = self.world.channels.get(snoop.snoop_of or "")
        if target is None:
            return ()
        tones: set[int] = set()
        if snoop.spy in ("in", "both"):
            tones |= self.media.voice(target)
        if snoop.spy in ("out", "both"):
            tones |= self.media.heard(target)
        return tuple(sorted(tones))

    def render_media(self, t: float) -> None:
        """Write every live recording's audio from where it stopped up to virtual time t."""
        for rec in list(self.world.recordings.values()):
            if rec.writer is None or t <= rec.rendered_until:
                continue
            start, dt = rec.rendered_until, t - rec.rendered_until
            rec.rendered_until = t
            if rec.state != "recording":
                continue
            rec.active_seconds += dt
            if not rec.feeding:
                continue
            s0, s1 = round(start * RATE), round(t * RATE)
            tones = () if rec.muted else rec.mix
            if not self.world.render_audio:  # load benchmarks: silence of the same length
                rec.writer.add_silence(s1 - s0)
            else:
                rec.writer.write(tone_samples(tones, s0, s1 - s0) if tones else silence(s1 - s0))
            if tones:
                rec.silence_run = 0.0
            else:
                rec.silence_run += dt
                rec.silence_total += dt

    def media_changed(self) -> None:
        """Recompute what each recording receives; arm or cancel the 4-s starvation and the
        maxSilenceSeconds timers."""
        for rec in list(self.world.recordings.values()):
            self._media_changed(rec)

    def _media_changed(self, rec: LiveRecording) -> None:
        if rec.state not in ("recording", "paused"):
            return
        rec.feeding, rec.mix = self._mix_for(rec)
        if rec.kind == "bridge" and not rec.feeding:
            if rec.starve_timer is None:
                rec.starve_timer = self.world.schedule(
                    STARVE_SECONDS, self._ender(rec), f"no audio {rec.name}")
        elif rec.starve_timer is not None:
            rec.starve_timer.cancel()
            rec.starve_timer = None
        if rec.max_silence > 0 and rec.state == "recording":
            silent = rec.feeding and (rec.muted or not rec.mix)
            if silent and rec.silence_timer is None:
                left = max(0.0, rec.max_silence - rec.silence_run)
                rec.silence_timer = self.world.schedule(
                    left, self._ender(rec, by_silence=True), f"maxSilence {rec.name}")
            elif not silent and rec.silence_timer is not None:
                rec.silence_timer.cancel()
                rec.silence_timer = None

    def _ender(self, rec: LiveRecording, by_silence: bool = False) -> Callable[[], None]:
        return lambda: self.end_recording(rec, by_silence=by_silence)

    # ------------------------------------------------------------ operations
    def pause_recording(self, rec: LiveRecording, paused: bool) -> None:
        if paused and rec.state == "recording":
            rec.state = "paused"
            for t in (rec.end_timer, rec.silence_timer):
                if t is not None:
                    t.cancel()
            rec.end_timer = rec.silence_timer = None
        elif not paused and rec.state == "paused":
            rec.state = "recording"
            if rec.max_duration > 0:
                self._arm_duration(rec)

    # ---------------------------------------------------------------- stored
    def stored_recordings(self) -> list[dict[str, str]]:
        """Files under the spool dir with a known format, sorted (stored.c find_all)."""
        out: list[dict[str, str]] = []
        for path in sorted(self.world.spool_dir.rglob("*")):
            if path.is_file() and path.suffix[1:] in KNOWN_FORMATS:
                rel = path.relative_to(self.world.spool_dir).as_posix()
                out.append({"name": rel[: -len(path.suffix)], "format": path.suffix[1:]})
        return out

    def find_stored(self, name: str) -> Path | None:
        if self.name_escapes(name):
            return None
        for f in sorted(KNOWN_FORMATS):
            p = self.world.spool_dir / f"{name}.{f}"
            if p.is_file():
                return p
        return None


def _durations(rec: LiveRecording, by_silence: bool) -> tuple[int, int | None]:
    """(duration, talking_duration) with main/app.c's integer arithmetic: whole seconds in
    the file, less (silence - 200 ms) truncated to seconds when silence detection is on."""
    assert rec.writer is not None
    total = rec.writer.samples // RATE
    if rec.max_silence <= 0:
        return total, None
    total_silence_ms = round(rec.silence_total * 1000)
    trailing_ms = round(rec.silence_run * 1000) if by_silence else 0
    talking = total - int((total_silence_ms - 200) / 1000) if total_silence_ms > 0 else total
    duration = total - int((trailing_ms - 200) / 1000) if trailing_ms > 0 else total
    return max(0, duration), max(0, talking)
