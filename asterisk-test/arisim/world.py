"""The simulator's world: what exists right now, the clock, ids, and the way out for ARI events.

`World` holds channels, bridges, live recordings, playbacks, MixMonitors and snoops (Snoop
channels are channels with `snoop_of` set), allocates Asterisk-style ids, routes ARI events to
the applications subscribed to the objects they concern (res/stasis/app.c forwards), and wraps
every change in `action()`: the bus's `Render` first (recordings write their audio up to the
virtual time of the change before it applies: sample-accurate files), `MediaChanged` after. It
has no behaviour of its own; the parts (media.py, recordings.py, ...) hold a reference to it and
talk to each other over its `bus` (bus.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .bus import Bus, MediaChanged, Render
from .clock import ClockMode, Timer, VirtualClock
from .dialplan import TONE_FREQUENCIES, Dialplan
from .events import EventHub
from .model import Bridge, Channel, LiveRecording, MixMonitor, Playback
from .spec import Spec, load_spec

log = logging.getLogger("arisim")

DEFAULT_ASTERISK_ID = "02:fc:00:00:00:01"


class World:
    def __init__(
        self,
        *,
        apps: Iterable[str] | None = None,
        spool_dir: str | Path | None = None,
        sounds: dict[str, float] | None = None,
        dialplan: Dialplan | None = None,
        clock_mode: ClockMode = "manual",
        speed: float = 1.0,
        start_epoch: float | None = None,
        asterisk_id: str = DEFAULT_ASTERISK_ID,
        spec_dir: str | None = None,
        checks: bool = True,
        render_audio: bool = True,
        media_step: float = 0.0,
    ) -> None:
        self.allowed_apps = set(apps) if apps is not None else None
        self.spool_dir = Path(spool_dir) if spool_dir else Path(tempfile.mkdtemp(prefix="arisim-"))
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.dialplan = dialplan or Dialplan()
        if sounds:
            self.dialplan.sounds.update(sounds)
        self.asterisk_id = asterisk_id
        self.spec: Spec = load_spec(spec_dir)
        self.clock = VirtualClock(clock_mode, speed, start_epoch)
        # Load benchmarks (bench/load.py) turn these off so the simulator's time goes to the
        # client: no event checked against the spec, recordings written as silence (right
        # length, no tone synthesis), and `media_step` > 0: recordings rendered and what they
        # hear re-evaluated at most once per step of virtual time (0.02: one 20-ms frame), not
        # around every change, which costs O(live recordings) each. Tests keep the defaults.
        self.render_audio = render_audio
        self.media_step = media_step
        self._media_at = -media_step
        self._media_timer: Timer | None = None
        self.bus = Bus()
        self.activity = 0
        self.hub = EventHub(self.clock, asterisk_id, self.spec, self._bump, self.allowed_apps,
                            app_in_use=self._app_in_use, checks=checks)
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.recordings: dict[str, LiveRecording] = {}  # live, by name
        self.finished_recordings: list[LiveRecording] = []
        self.playbacks: dict[str, Playback] = {}
        self.mixmonitors: list[MixMonitor] = []  # running (mixmonitor.py)
        self.finished_mixmonitors: list[MixMonitor] = []
        self.errors: list[str] = []  # simulator bugs (a timer raised)
        self.warnings: list[str] = []  # things Asterisk would log (e.g. Stasis app inactive)
        self.dialplan_log: list[tuple[str, str, str]] = []  # Log(): channel, level, message
        self.dial_announcements: list[tuple[str, str]] = []  # Dial A(): (called channel, file)
        self._uniqueint = itertools.count(1)
        self._unreal_counter = itertools.count(0x26)
        self._tech_counters: dict[str, itertools.count[int]] = {}
        self._deferred: list[Callable[[], None]] | None = None
        self._depth = 0
        self._tone_cursor = 0
        self._last_activity = 0.0
        self.clock.runner = self._run_timer
        self.clock.before_time_change = self._before_time_change

    # ------------------------------------------------------------------ ids
    def _bump(self) -> None:
        self.activity += 1
        with contextlib.suppress(RuntimeError):
            self._last_activity = asyncio.get_running_loop().time()

    def _app_in_use(self, app: str) -> bool:
        """Channels or bridges still subscribed to `app` keep it registered (app_is_finished)."""
        return any(app in c.subscribers() for c in self.channels.values() if not c.destroyed) \
            or any(app in b.subscribed_apps for b in self.bridges.values() if not b.destroyed)

    def new_uniqueid(self) -> str:
        """Asterisk's "%ld.%d" of time(NULL) and a counter (main/channel.c)."""
        return f"{int(self.clock.epoch())}.{next(self._uniqueint)}"

    def next_unreal(self) -> str:
        """Suffix shared by Local and Recorder pairs ("00000026"), as in the traces."""
        return f"{next(self._unreal_counter):08x}"

    def next_tech(self, tech: str) -> str:
        counter = self._tech_counters.setdefault(tech, itertools.count(0))
        return f"{next(counter):08x}"

    def new_internal_pair(self, kind: str) -> tuple[str, str, str]:
        """Ids and the ";2" name of a Recorder/Announcer pair, which Asterisk keeps out of channel
        lists: they are consumed, not kept ("Recorder/ARI-00000027;2" in the traces)."""
        name = f"{kind}/ARI-{self.next_unreal()};2"
        return self.new_uniqueid(), self.new_uniqueid(), name

    def fresh_tone(self) -> int:
        """A frequency no live party uses, from TONE_FREQUENCIES in order."""
        used = {c.tone_hz for c in self.channels.values() if not c.destroyed}
        n = len(TONE_FREQUENCIES)
        for i in range(n):
            f = TONE_FREQUENCIES[(self._tone_cursor + i) % n]
            if f not in used:
                self._tone_cursor = (self._tone_cursor + i + 1) % n
                return f
        f = TONE_FREQUENCIES[self._tone_cursor]
        self._tone_cursor = (self._tone_cursor + 1) % n
        return f

    def id_in_use(self, uid: str) -> bool:
        return uid in self.channels and not self.channels[uid].destroyed

    # --------------------------------------------------------------- actions
    @contextlib.contextmanager
    def action(self) -> Iterator[None]:
        """Wrap a change: render recordings up to now first, re-evaluate media after."""
        outer = self._depth == 0
        media = outer and self._media_due()
        if media:
            self.bus.publish(Render(self.clock.now()))
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if media:
                self.bus.publish(MediaChanged())
            if outer:
                self._bump()

    def _media_due(self) -> bool:
        """Whether this change renders and re-evaluates media: always, unless `media_step`;
        then once per step, a change within a step taken in by a timer at its end."""
        if not self.media_step:
            return True
        now = self.clock.now()
        if now - self._media_at >= self.media_step - 1e-9:
            self._media_at = now
            if self._media_timer is not None:
                self._media_timer.cancel()
                self._media_timer = None
            return True
        if self._media_timer is None:  # its action() renders and re-evaluates
            self._media_timer = self.clock.call_at(
                self._media_at + self.media_step, lambda: None, "media step")
        return False

    def _before_time_change(self, t: float) -> None:
        if not self.media_step:
            self.bus.publish(Render(t))

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` after the current REST reply is written (e.g. StasisStart after create)."""
        if self._deferred is not None:
            self._deferred.append(fn)
        else:
            self.clock.call_later(0, fn, getattr(fn, "__name__", "deferred"))

    def schedule(self, delay: float, fn: Callable[[], None], name: str = "",
                 owner: Channel | None = None) -> Timer:
        timer = self.clock.call_later(delay, fn, name)
        if owner is not None:
            owner.timers.append(timer)
        return timer

    def _run_timer(self, timer: Timer) -> None:
        with self.action():
            try:
                timer.callback()
            except Exception as exc:  # a bug in the simulator: record it, keep running
                log.exception("timer %s failed", timer.name)
                self.errors.append(f"timer {timer.name}: {exc!r}")

    # ---------------------------------------------------------------- events
    def emit(
        self,
        etype: str,
        fields: dict[str, Any],
        channels: Iterable[Channel] = (),
        bridges: Iterable[Bridge] = (),
        apps: Iterable[str] = (),
    ) -> None:
        """Send an event to every app subscribed to one of the objects it concerns."""
        targets: set[str] = set(apps)
        for ch in channels:
            targets |= ch.subscribers()
        for b in bridges:
            targets |= b.subscribed_apps
        targets |= self.hub.subscribe_all_apps()
        event = {"type": etype, "timestamp": self.clock.timestamp(), **fields}
        if not targets:
            self.hub.unrouted(event)
        for app in sorted(targets):
            self.hub.send(app, event)

    def emit_channel(self, etype: str, ch: Channel, **fields: Any) -> None:
        self.emit(etype, {**fields, "channel": ch.json()}, channels=[ch])

    # ------------------------------------------------------------ state reads
    def live_channels(self) -> list[Channel]:
        return [c for c in self.channels.values() if not c.destroyed and not c.unlinked]

    def find_channel(self, uid: str) -> Channel | None:
        ch = self.channels.get(uid)
        if ch is None or ch.destroyed or ch.unlinked:
            return None
        return ch

    def find_bridge(self, bridge_id: str) -> Bridge | None:
        bridge = self.bridges.get(bridge_id)
        return bridge if bridge is not None and not bridge.destroyed else None

    def peer(self, ch: Channel) -> Channel | None:
        """The other half of a Local (or Recorder/Announcer) pair, while it exists."""
        if ch.peer_id is None:
            return None
        other = self.channels.get(ch.peer_id)
        return other if other is not None and not other.destroyed else None
