"""The Simulator's base: the World (world.py) plus what belongs to it as a server.

`Core` adds to the world what is the simulator's rather than Asterisk's state: credentials, the
request log, `settle` (letting the client react), the `state()` snapshot, and the parts, which
server.Simulator builds (see asterisk-test/README.md, "Parts and the bus"). engine.py adds the
control actions tests use, server.py the HTTP side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from .agi import Agi
from .appdial import DialApp
from .attended import AttendedTransfers
from .bridges import Bridging
from .channels import ChannelLife
from .dialing import Dialling
from .media import Media
from .mixmonitor import Monitor
from .pbx import Pbx
from .playbacks import Player
from .recordings import Recorder
from .transfers import Transfers
from .world import World


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


class Core(World):
    # The parts, built by server.Simulator (README: "Parts and the bus").
    media: Media
    bridging: Bridging
    life: ChannelLife
    recorder: Recorder
    monitor: Monitor
    player: Player
    transfers: Transfers
    attended: AttendedTransfers
    agi: Agi
    pbx: Pbx
    dialling: Dialling
    dial_app: DialApp

    def __init__(
        self,
        *,
        username: str = "verbatim",
        password: str = "verbatim-secret",  # noqa: S107 - ari.conf of the traces
        settle_real_s: float = 0.01,
        create_stasis_delay: float = 0.0,
        agi_patience_s: float = 0.5,
        **world: Any,
    ) -> None:
        """`world`: World's options (apps, spool_dir, sounds, dialplan, clock_mode, speed,
        start_epoch, asterisk_id, spec_dir, checks, render_audio)."""
        super().__init__(**world)
        self.username = username
        self.password = password
        # `settle` (after each timer in `advance`) waits until nothing happened for this long
        # (real seconds): raise it for a client that takes longer to react to an event.
        self.settle_real_s = settle_real_s
        # Virtual delay between a /channels/create reply and the channel's StasisStart; while
        # it runs, /dial answers 409 "Channel not in Stasis application".
        self.create_stasis_delay = create_stasis_delay
        # `settle` also waits (real seconds, at most this long after its last reply) for a
        # FastAGI server to send its next command: virtual time stands still while it thinks.
        self.agi_patience_s = agi_patience_s  # the Agi part's (built by server.Simulator)
        self.inflight = 0
        self.stalled = 0  # requests held by `stall` (server.py)
        self._stalls: list[tuple[str, str, asyncio.Event, bool]] = []
        # (method, ARI path, carried out): the next such request's connection is cut (`sever`)
        self._severs: list[tuple[str, str, bool]] = []
        self.requests: list[RequestRecord] = []
        self.clock.settle = self.settle

    async def settle(self) -> None:
        """Let the client react: wait until no request is in flight, no event is queued and
        nothing happened for `settle_real_s` (real time; gives up after 2 s of chatter)."""
        loop = asyncio.get_running_loop()
        for _ in range(3):
            await asyncio.sleep(0)
        started = loop.time()
        while loop.time() - started < 2.0:
            busy = self.inflight > 0 or self.hub.pending() > 0 or self.agi.waiting_on_agi()
            if not busy and loop.time() - self._last_activity >= self.settle_real_s:
                return
            await asyncio.sleep(min(0.002, self.settle_real_s / 2))

    # ------------------------------------------------------------ state reads
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
            "stored_recordings": self.recorder.stored_recordings(),
            "playbacks": [p.json() for p in self.playbacks.values()],
            "apps": sorted(a for a in self.hub.apps if self.hub.active(a)),
        }
