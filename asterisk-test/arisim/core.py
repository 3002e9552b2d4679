"""Shared state of the simulator and the plumbing every behaviour module uses.

`Core` holds channels, bridges, recordings and playbacks, allocates Asterisk-style ids, routes
events to the applications subscribed to the objects they concern (res/stasis/app.c forwards), and
wraps every change in `action()` so the audio of live recordings is rendered up to the virtual time
of the change before the change applies (sample-accurate files). Behaviour lives in the mixins
(channels.py, bridges.py, media.py), which call each other through the stubs declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import ClockMode, Timer, VirtualClock
from .dialplan import TONE_FREQUENCIES, Dialplan
from .events import EventHub
from .model import AgiSession, Bridge, Channel, LiveRecording, MixMonitor, Playback
from .spec import Spec, load_spec

log = logging.getLogger("arisim")

DEFAULT_ASTERISK_ID = "02:fc:00:00:00:01"


@dataclass
class RequestRecord:
    """One REST request the simulator answered."""

    method: str
    path: str  # under /ari, e.g. /channels/123/answer
    params: dict[str, Any]
    status: int
    at: float  # virtual seconds since the simulator started
    response: Any = None

    def json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "params": self.params,
                "status": self.status, "at": self.at, "response": self.response}


class Core:
    def __init__(
        self,
        *,
        username: str = "verbatim",
        password: str = "verbatim-secret",  # noqa: S107 - ari.conf of the traces
        apps: Iterable[str] | None = None,
        spool_dir: str | Path | None = None,
        sounds: dict[str, float] | None = None,
        dialplan: Dialplan | None = None,
        clock_mode: ClockMode = "manual",
        speed: float = 1.0,
        start_epoch: float | None = None,
        asterisk_id: str = DEFAULT_ASTERISK_ID,
        spec_dir: str | None = None,
        settle_real_s: float = 0.01,
        create_stasis_delay: float = 0.0,
        agi_patience_s: float = 0.5,
        checks: bool = True,
        render_audio: bool = True,
    ) -> None:
        self.username = username
        self.password = password
        self.allowed_apps = set(apps) if apps is not None else None
        self.spool_dir = Path(spool_dir) if spool_dir else Path(tempfile.mkdtemp(prefix="arisim-"))
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.dialplan = dialplan or Dialplan()
        if sounds:
            self.dialplan.sounds.update(sounds)
        self.asterisk_id = asterisk_id
        self.spec: Spec = load_spec(spec_dir)
        self.clock = VirtualClock(clock_mode, speed, start_epoch)
        # `settle` (after each timer in `advance`) waits until nothing happened for this long
        # (real seconds): raise it for a client that takes longer to react to an event.
        self.settle_real_s = settle_real_s
        # Virtual delay between a /channels/create reply and the channel's StasisStart; while
        # it runs, /dial answers 409 "Channel not in Stasis application".
        self.create_stasis_delay = create_stasis_delay
        # `settle` also waits (real seconds, at most this long after its last reply) for a
        # FastAGI server to send its next command: virtual time stands still while it thinks.
        self.agi_patience_s = agi_patience_s
        # Load benchmarks (bench/load.py) turn these off so the simulator's time goes to the
        # client: no event checked against the spec, recordings written as silence (right
        # length, no tone synthesis). Tests keep both on.
        self.render_audio = render_audio
        self.agi_sessions: list[AgiSession] = []
        self.agi_stopped = False
        self.activity = 0
        self.inflight = 0
        self.stalled = 0  # requests held by `stall` (server.py)
        self.dial_announcements: list[tuple[str, str]] = []  # Dial A(): (called channel, file)
        self._stalls: list[tuple[str, str, asyncio.Event]] = []
        self.hub = EventHub(self.clock, asterisk_id, self.spec, self._bump, self.allowed_apps,
                            app_in_use=self._app_in_use, checks=checks)
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.recordings: dict[str, LiveRecording] = {}  # live, by name
        self.finished_recordings: list[LiveRecording] = []
        self.playbacks: dict[str, Playback] = {}
        self.mixmonitors: list[MixMonitor] = []  # running (mixmonitor.py)
        self.finished_mixmonitors: list[MixMonitor] = []
        self.dialplan_log: list[tuple[str, str, str]] = []  # Log(): channel, level, message
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []  # simulator bugs (a timer raised)
        self.warnings: list[str] = []  # things Asterisk would log (e.g. Stasis app inactive)
        self._uniqueint = itertools.count(1)
        self._unreal_counter = itertools.count(0x26)
        self._tech_counters: dict[str, itertools.count[int]] = {}
        self._deferred: list[Callable[[], None]] | None = None
        self._depth = 0
        self._tone_cursor = 0
        self._last_activity = 0.0
        self.clock.runner = self._run_timer
        self.clock.before_time_change = self._before_time_change
        self.clock.settle = self.settle

    # ------------------------------------------------------------------ ids
    def _bump(self) -> None:
        self.activity += 1
        with contextlib.suppress(RuntimeError):
            self._last_activity = asyncio.get_running_loop().time()

    async def settle(self) -> None:
        """Let the client react: wait until no request is in flight, no event is queued and
        nothing happened for `settle_real_s` (real time; gives up after 2 s of chatter)."""
        loop = asyncio.get_running_loop()
        for _ in range(3):
            await asyncio.sleep(0)
        started = loop.time()
        while loop.time() - started < 2.0:
            busy = self.inflight > 0 or self.hub.pending() > 0 or self.waiting_on_agi()
            if not busy and loop.time() - self._last_activity >= self.settle_real_s:
                return
            await asyncio.sleep(min(0.002, self.settle_real_s / 2))

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
        if outer:
            self.render_media(self.clock.now())
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if outer:
                self.media_changed()
                self._bump()

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

    def _before_time_change(self, t: float) -> None:
        self.render_media(t)

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

    def state(self) -> dict[str, Any]:
        """Snapshot for tests: channels, bridges with members, live and stored recordings."""
        return {
            "now": self.clock.now(),
            "channels": [
                {**c.json(), "stasis_app": c.stasis_app, "bridge_id": c.bridge_id,
                 "tone_hz": c.tone_hz, "talking": c.talking, "sends_media": c.sends_media}
                for c in self.live_channels()
            ],
            "bridges": [b.json() | {"members": list(b.channels)}
                        for b in self.bridges.values() if not b.destroyed],
            "live_recordings": [r.json() for r in self.recordings.values()],
            "stored_recordings": self.stored_recordings(),
            "playbacks": [p.json() for p in self.playbacks.values()],
            "apps": sorted(a for a in self.hub.apps if self.hub.active(a)),
        }

    # ------------------------------------------------- implemented by mixins
    def waiting_on_agi(self) -> bool:
        """A FastAGI session is connecting or its server is about to send a command."""
        return False

    def render_media(self, t: float) -> None:
        raise NotImplementedError

    def media_changed(self) -> None:
        raise NotImplementedError

    def stored_recordings(self) -> list[dict[str, str]]:
        raise NotImplementedError

    def bridge_remove(self, bridge: Bridge, ch: Channel) -> None:
        raise NotImplementedError

    def recordings_on_channel_gone(self, ch: Channel) -> None:
        raise NotImplementedError

    def playbacks_on_channel_gone(self, ch: Channel) -> None:
        raise NotImplementedError

    def far_answered(self, ch: Channel) -> None:
        raise NotImplementedError

    def far_forward(self, ch: Channel, target: str) -> None:
        raise NotImplementedError

    def end_bridge_recordings(self, bridge: Bridge) -> None:
        raise NotImplementedError

    def stop_bridge_playbacks(self, bridge: Bridge) -> None:
        raise NotImplementedError
