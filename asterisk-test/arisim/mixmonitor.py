"""MixMonitor() in the dialplan (apps/app_mixmonitor.c): a WAV of what a channel says and hears.

`MixMonitor(file[,options[,command]])`: a relative name goes under ${ASTSPOOLDIR}/monitor, an
absolute one is used as it is (mixmonitor_exec); the extension is the format, and
MIXMONITOR_FILENAME is set. The simulator writes the files Asterisk would put in
${ASTSPOOLDIR}/recording (AST_SPOOL_DIR: asterisk.conf's default) into its spool dir, where ARI's
recordings are too; any other place is a warning, and nothing is written.

The audiohook gets both directions: what the party says (read) and what it hears (write: the
other parties of its bridge; a prompt played to it is silence here). The mix is written from the
start, silence included, until ast_hangup detaches the audiohook (destroy_hooks). The mixmonitor
thread then drops its reference to the channel (ast_autochan_destroy) before it closes the file
(mixmonitor_ds_close_fs), so ChannelDestroyed — published by the channel's destructor when the
last reference goes — can arrive before the file is complete: the file is closed here just after
ChannelDestroyed, and a reader must let the file settle.

The part hears `Render`, `MediaChanged` and `ChannelGone` on the bus.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Protocol

from .audio import RATE, WavWriter, silence, tone_samples
from .bus import ChannelGone, MediaChanged, Render
from .dialplan import split_app_args
from .media import Media
from .model import Channel, MixMonitor
from .recordings import Recorder
from .world import World

AST_SPOOL_DIR = "/var/spool/asterisk"  # ${ASTSPOOLDIR}
_RECORDING_DIR = f"{AST_SPOOL_DIR}/recording/"


class VariableSetter(Protocol):
    def dp_set_variable(self, ch: Channel, name: str, value: str) -> None: ...


class Monitor:
    """MixMonitor() on one World: sets MIXMONITOR_FILENAME through `dialplan`."""

    def __init__(self, world: World, media: Media, recorder: Recorder,
                 dialplan: VariableSetter) -> None:
        self.world = world
        self.media = media
        self.recorder = recorder
        self.dialplan = dialplan
        world.bus.subscribe(Render, lambda m: self.render_media(m.until))
        world.bus.subscribe(MediaChanged, lambda m: self.media_changed())
        world.bus.subscribe(ChannelGone, lambda m: self.mixmonitors_on_channel_gone(m.channel))

    def start_mixmonitor(self, ch: Channel, data: str) -> None:
        args = split_app_args(data)
        name = args[0].strip() if args else ""
        path = name if name.startswith("/") else f"{AST_SPOOL_DIR}/monitor/{name}"
        rel = path[len(_RECORDING_DIR):] if path.startswith(_RECORDING_DIR) else ""
        if not name or not rel or self.recorder.name_escapes(rel) \
                or PurePosixPath(rel).suffix != ".wav":
            self.world.warnings.append(f"MixMonitor({data}) on {ch.name}: only .wav files in "
                                       f"{_RECORDING_DIR} are simulated; nothing recorded")
            return
        local = self.world.spool_dir / rel
        started = self.world.clock.now()
        self.world.mixmonitors.append(MixMonitor(ch.id, local, WavWriter(local), started))
        self.dialplan.dp_set_variable(ch, "MIXMONITOR_FILENAME", path)

    def mixmonitors_on_channel_gone(self, ch: Channel) -> None:
        for mm in [m for m in self.world.mixmonitors if m.channel_id == ch.id]:
            mm.writer.close()
            self.world.mixmonitors.remove(mm)
            self.world.finished_mixmonitors.append(mm)

    def render_media(self, t: float) -> None:
        for mm in self.world.mixmonitors:
            if t <= mm.rendered_until:
                continue
            s0, s1 = round(mm.rendered_until * RATE), round(t * RATE)
            mm.rendered_until = t
            if mm.feeding:
                mm.writer.write(tone_samples(mm.mix, s0, s1 - s0) if mm.mix else silence(s1 - s0))

    def media_changed(self) -> None:
        for mm in self.world.mixmonitors:
            ch = self.world.channels.get(mm.channel_id)
            mm.feeding = ch is not None and not ch.hungup
            mm.mix = tuple(sorted(self.media.voice(ch) | self.media.heard(ch))) \
                if ch and mm.feeding else ()
