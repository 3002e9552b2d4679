"""The daemon: feeds ARI events through the call model and executes the commands it returns.

One consumer task handles events (and reconciliations) one at a time, in the order Asterisk sent
them, so the pure model never sees concurrent changes. What a step asks for is carried out in a
lane per call: each call's requests and writes in the order the model gave them, and no call ever
waits on another's (an ARI request that takes its full timeout stalls only its own call, not the
next caller's answer). Lanes exist while they have work; at most MAX_BACKLOG steps' commands wait
in all of them together, after which the consumer waits (backpressure, not an unbounded queue).
Work that may be slow and touches no call state — filing a recording into the archive — runs in
its own task and reports back as an event.

What happens to a call in flight when a part fails:
- Asterisk unreachable / WebSocket dropped: Asterisk keeps bridging and recording. On reconnect
  the daemon reads channels, bridges and each live recording's fate, and `reconcile` turns every
  difference into the event it missed (a hangup, an answer, a finished recording → new segment).
- PostgreSQL down: calls go on and are recorded; writes wait in memory (the newest snapshot of
  each call, and every event row) and in the write-ahead journal, and are retried every few
  seconds (recorder.service.writer).
- The daemon crashes: each call's model state, as of its last change, is journaled before
  Asterisk hears of anything it names (and reaches its row in PostgreSQL in the background); at
  start the journal is replayed, and the daemon adopts open calls of this Asterisk server and
  reconciles them, files recordings left in the spool, and imports the dialplan's fallback
  (MixMonitor) recordings.

Fallback recordings (the dialplan recorded a call itself: the app or a hook was away) are
imported at start and on every spool sweep; in hook mode, where the daemon sees every channel,
also `spool_settle_s` after the ChannelDestroyed of the channel a fallback file belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from recorder.ari.client import AriClient, AriError
from recorder.ari.connection import EventStream, StreamFactory
from recorder.ari.events import (
    IGNORED,
    BridgeInfo,
    ChannelDestroyed,
    ChannelInfo,
    Event,
    EventError,
    PlaybackFinished,
    parse_bridge,
    parse_channel,
)
from recorder.common import logs
from recorder.db import mapping
from recorder.db.controls import DEFAULT_EXPIRY_S, ControlQueue
from recorder.model import commands as cmd
from recorder.model import snapshot
from recorder.model.calls import step
from recorder.model.failures import line_unavailable, party_gone, snoop_in_doubt
from recorder.model.inputs import (
    ChannelChecked,
    CommandFailed,
    ControlRequested,
    RecordingFiled,
    RecordingFileFailed,
    RecordingRetryDue,
)
from recorder.model.reconcile import (
    ABSENT,
    LIVE,
    QUEUED,
    STORED,
    AriSnapshot,
    playbacks_to_check,
    reconcile,
    recordings_to_check,
)
from recorder.model.segments import filing_asked, is_retry
from recorder.model.settings import CallSettings
from recorder.model.state import ModelState
from recorder.service.hookserver import HookBroker
from recorder.service.lines import RefusedLines
from recorder.service.reaction import Reactions
from recorder.service.recovery import SpoolSweeper
from recorder.service.writer import Writer
from recorder.storage.archive import Archive, ArchiveFull

log = structlog.get_logger("verbatim.daemon")


class AsteriskClock:
    """Asterisk's time, for what the daemon itself observes (a file filed, a request failed).

    Event rows must sort with the events Asterisk stamped, and Asterisk's clock may differ from
    ours: so our observations are stamped with the last event's time plus the time elapsed here
    since it arrived.
    """

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self._base: datetime | None = None
        self._at = 0.0
        self._source = source  # Asterisk's own clock, when it can be read (the simulator's)

    def seen(self, when: datetime) -> None:
        # Only an event later than our estimate moves it: so `now` never goes back (a consent
        # row's end before its start, an interval closed before it opened).
        if self._base is None or when > self.now():
            self._base, self._at = when, time.monotonic()

    def now(self) -> datetime:
        if self._source is not None:
            return self._source()
        if self._base is None:
            return datetime.now(UTC)
        return self._base + timedelta(seconds=time.monotonic() - self._at)


# Steps whose commands may wait in the call lanes at once before the consumer stops taking events.
MAX_BACKLOG = 10_000

# Reconciliations asked for by requests whose answers were lost (`Daemon._look_again`) are due
# at least this far apart: each asks Asterisk about every call.
LOOK_AGAIN_EVERY_S = 5.0

# How long a reconciliation that found a playback gone waits for its PlaybackFinished, which may
# come on the events connection just after the GET's 404 (`Daemon._not_lost`).
LOST_PLAYBACK_GRACE_S = 0.2


# When a step's event arrived (time.monotonic), until its first request takes it: shared by the
# step's lanes (one step may touch two calls), empty once taken or for a step of no event.
_Clock = list[float]


class _Reconcile:
    """Queue marker: the WebSocket (re)connected; compare the model with Asterisk."""


class Daemon:
    def __init__(
        self,
        *,
        client: AriClient,
        stream_factory: StreamFactory,
        writer: Writer,
        archive: Archive,
        settings: CallSettings,
        spool_dir: Path | None,
        sweeper: SpoolSweeper | None = None,
        hook_timeout_s: float = 10.0,
        controls: ControlQueue | None = None,
        recording_refusal: Callable[[], str | None] | None = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.archive = archive
        self.settings = settings
        self.spool_dir = spool_dir
        self.sweeper = sweeper
        self.state = ModelState()
        self.asterisk_id = ""
        self.adopted = False
        self.ready = asyncio.Event()  # set once the first reconciliation has run
        self.queue: asyncio.Queue[Event | _Reconcile] = asyncio.Queue()
        # Playbacks whose PlaybackFinished arrived since the events connection came back, while
        # a reconciliation is due (None otherwise): not lost, whatever their GET answered. Kept
        # until the last due one has run (a playback's id is never used again).
        self._finished: set[str] | None = None
        self._reconciles_due = 0
        self._look_queued = False  # a reconciliation asked for by a lost answer, not begun
        self._last_look: float | None = None  # when the last `_look_again` was due (monotonic)
        self.stream: EventStream = stream_factory(self._on_connected, self._on_event)
        self._tasks: set[asyncio.Task[None]] = set()
        # call id ("" for commands of no call) -> the batches its lane has yet to carry out,
        # each with its step's reaction clock (a deque: only the lane's task takes from it, so
        # an asyncio.Queue's waiters and loop binding would be paid per step for nothing)
        self._lanes: dict[str, deque[tuple[list[cmd.Command], _Clock]]] = {}
        # When each ARI event arrived, while it is queued (by id: the queue keeps it alive
        # until its step pops it), and how long steps took to send their first request.
        self._arrived: dict[int, float] = {}
        self.reactions = Reactions()
        self.lines = RefusedLines()
        self._backlog = asyncio.Semaphore(MAX_BACKLOG)
        self._drained = asyncio.Event()  # set while no lane has work
        self._drained.set()
        self.idle = asyncio.Event()  # set whenever the queue is drained (tests wait on it)
        self.clock = AsteriskClock()
        # FastAGI sessions (hook mode) in, their answers out: see recorder.service.hookserver.
        self.hooks = HookBroker(self.queue.put, lambda: self.clock.now(),
                                lambda: self.asterisk_id, hook_timeout_s,
                                ready=self.ready.is_set)
        self.controls = controls  # HTTP API control requests (control_requests rows)
        self.archive_full = False  # archive.full was logged; cleared when a filing succeeds
        # Why no new recording may start now (storage.on_critical: refuse_new and a directory
        # below its critical mark: storage/watermarks.py), or None.
        self.recording_refusal = recording_refusal

    @property
    def backlog(self) -> int:
        """Steps' commands waiting in the calls' lanes (MAX_BACKLOG: the consumer waits)."""
        return sum(len(lane) for lane in self._lanes.values())

    @property
    def quiet(self) -> bool:
        """Nothing queued, nothing being handled, no file being filed (tests and the demo wait
        on this before moving the simulator's clock)."""
        return (self.queue.empty() and self.idle.is_set() and not self._tasks
                and self.writer.settled)

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        helpers = [
            asyncio.create_task(self._consume(), name="verbatim-consumer"),
            asyncio.create_task(self._periodic(), name="verbatim-periodic"),
            asyncio.create_task(self.writer.run(), name="verbatim-writer"),
        ]
        if self.controls is not None:
            helpers.append(asyncio.create_task(self._control_feed(), name="verbatim-controls"))
        try:
            await self.stream.run()
        finally:
            consumer = helpers[0]
            consumer.cancel()  # no new steps, so no new lanes
            await asyncio.gather(consumer, return_exceptions=True)
            # Lanes and filing tasks are let finish (a file half-moved is worse than a slower
            # stop), then what they staged is written (or journaled).
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=30)
            await self.writer.flush()
            for task in helpers[1:]:
                task.cancel()
            await asyncio.gather(*helpers[1:], return_exceptions=True)

    async def stop(self) -> None:
        await self.stream.stop()

    async def _look_again(self, c: cmd.Command) -> None:
        """A request whose answer was lost (its connection cut, or no answer in time):
        Asterisk may or may not have carried it out. What it holds is looked up, as after a
        reconnection (reconcile: the events missed, and what the calls asked that did not
        happen is asked again: a callee still outside its bridge is added), once for all the
        losses until that look begins. Not while the events connection is down: its own
        reconnection looks."""
        if self._look_queued or not self.stream.connected.is_set():
            return
        self._look_queued = True
        log.info("ari.reconcile_asked", call_id=c.call_id or None, command=type(c).__name__)
        now = time.monotonic()
        wait = 0.0 if self._last_look is None else self._last_look + LOOK_AGAIN_EVERY_S - now
        self._last_look = now + max(wait, 0.0)
        if wait > 0:  # an Asterisk losing answers by the hundred is not asked for everything
            self._spawn(self._look_later(wait))
        else:
            await self._on_connected()

    async def _look_later(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        await self._on_connected()

    async def _on_connected(self) -> None:
        if self._finished is None:
            self._finished = set()
        self._reconciles_due += 1
        await self.queue.put(_Reconcile())

    async def _on_event(self, event: Event) -> None:
        if not event.asterisk_id and self.asterisk_id:
            event = dataclasses.replace(event, asterisk_id=self.asterisk_id)
        self.clock.seen(event.timestamp)
        self._arrived[id(event)] = time.monotonic()
        if self._finished is not None and isinstance(event, PlaybackFinished):
            self._finished.add(event.playback.id)
        await self.queue.put(event)

    async def _consume(self) -> None:
        while True:
            if self.queue.empty():
                self.idle.set()
            item = await self.queue.get()
            self.idle.clear()
            arrived = self._arrived.pop(id(item), None)
            try:
                if isinstance(item, _Reconcile):
                    await self._reconcile()
                else:
                    self.state, commands = step(self.state, item, self.settings)
                    await self._dispatch(commands, [] if arrived is None else [arrived])
                    if isinstance(item, ChannelDestroyed) and self.client.subscribe_all:
                        self._spawn(self._import_fallback(item.channel.id))
            except Exception:  # one bad event or bug must not stop every other call
                log.exception("daemon.event_failed", item=type(item).__name__)

    # --- reconciliation ------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        # What the model has asked of Asterisk is carried out first: a snapshot taken while a
        # lane still holds a request would miss what that request makes (a recording taken
        # for absent, replaced, and then started all the same where nothing can stop it).
        await self._lanes_drained()
        self._look_queued = False  # an answer lost from now on is looked for again
        try:
            info = await self.client.info()
            self.asterisk_id = str(info.get("system", {}).get("entity_id") or self.asterisk_id)
            if self.client.subscribe_all:
                try:
                    await self.client.subscribe_everything()
                except AriError as exc:  # hook mode would miss its calls' Dial/bridge events
                    log.error("ari.subscribe_failed", error=str(exc))
            refile = [] if self.adopted else await self._adopt_open_calls()
            snapshot = await self._snapshot()
            if snapshot.lost_playbacks:
                snapshot = await self._not_lost(snapshot)
        except AriError as exc:
            log.error("ari.reconcile_failed", error=str(exc))
            return
        finally:
            self._reconciles_due -= 1
            if self._reconciles_due <= 0:
                self._finished, self._reconciles_due = None, 0
        self.state, commands = reconcile(self.state, snapshot, self.settings, self.clock.now())
        await self._dispatch(refile + commands)
        self.ready.set()
        # After the snapshot, not before: a cost saving must not widen the window in which
        # calls arrive between the connection and the snapshot (they are then adopted).
        try:
            await self.client.filter_events(IGNORED)
        except AriError as exc:  # the daemon skips them itself: only their cost remains
            log.warning("ari.filter_failed", error=str(exc))
        if self.sweeper is not None:
            await self.sweeper.sweep(self.asterisk_id, set(self.state.by_recording),
                                     self._channel_gone)

    async def _channel_gone(self, uniqueid: str) -> bool | None:
        """Whether Asterisk's channel `uniqueid` is gone (a fallback file is complete then)."""
        try:
            await self.client.channel(uniqueid)
        except AriError as exc:
            if exc.status == 404:
                return True
            log.info("spool.fallback_waits", uniqueid=uniqueid, error=str(exc))
            return None
        return False

    async def _import_fallback(self, uniqueid: str, tries: int = 3) -> None:
        """Hook mode: a channel was destroyed; if the dialplan's fallback recorded it, import
        the file once it is settled (MixMonitor closes it just after the channel is gone)."""
        sweeper = self.sweeper
        if sweeper is None or not await asyncio.to_thread(sweeper.has_fallback, uniqueid):
            return
        for _ in range(tries):
            await asyncio.sleep(sweeper.settle_s)
            try:
                if await sweeper.sweep(self.asterisk_id, set(self.state.by_recording),
                                       self._channel_gone, uniqueid):
                    return
            except Exception:  # the periodic sweep will try again
                log.exception("spool.sweep_failed", uniqueid=uniqueid)
                return

    async def _adopt_open_calls(self) -> list[cmd.Command]:
        """After a crash: take back the calls this server's rows say were in progress; the
        filing they had asked for (its result died with the previous run) is asked again."""
        refile: list[cmd.Command] = []
        for row in await self.writer.open_calls(self.asterisk_id):
            if row.state is None:
                await self.writer.close_orphan(row)
                continue
            try:
                call = snapshot.decode(row.state)
                call.hook.sessions = {}  # the AGI sessions of the previous run are gone
            except (TypeError, ValueError, KeyError) as exc:
                log.error("call.adopt_failed", call_id=row.call_id, error=str(exc))
                await self.writer.close_orphan(row)
                continue
            self.state = self.state.with_call(call)
            log.info("call.adopted", call_id=call.call_id, phase=call.phase)
            refile += filing_asked(call)
        self.adopted = True
        return refile

    async def _snapshot(self) -> AriSnapshot:
        channels: dict[str, ChannelInfo] = {}
        for raw in await self.client.channels():
            try:
                info = parse_channel(raw)
            except EventError as exc:  # one odd channel must not stop the reconciliation
                log.error("ari.bad_channel", error=str(exc))
                continue
            channels[info.id] = info
        bridges: dict[str, BridgeInfo] = {}
        for raw in await self.client.bridges():
            try:
                bridge = parse_bridge(raw)
            except EventError as exc:
                log.error("ari.bad_bridge", error=str(exc))
                continue
            bridges[bridge.id] = bridge
        fates: dict[str, str] = {}
        for name in recordings_to_check(self.state):
            fates[name] = await self._recording_fate(name)
        lost = frozenset([p for p in playbacks_to_check(self.state)
                          if await self._playback_gone(p)])
        return AriSnapshot(self.asterisk_id, channels, bridges, fates, lost)

    async def _not_lost(self, snapshot: AriSnapshot) -> AriSnapshot:
        """A playback that ended after the events connection came back is gone (404) too, yet
        its PlaybackFinished is on its way, or queued behind this reconciliation: it is not
        played again (the caller would hear it twice). The event and the answer come on two
        connections, so the event is given LOST_PLAYBACK_GRACE_S to arrive."""
        await asyncio.sleep(LOST_PLAYBACK_GRACE_S)
        ended = self._finished or set()
        return dataclasses.replace(snapshot, lost_playbacks=snapshot.lost_playbacks - ended)

    async def _playback_gone(self, playback_id: str) -> bool:
        """Whether Asterisk has no such playback (404). Unknown (an error) counts as still
        playing: the rest of the reconciliation must not wait on it, and its end may come."""
        try:
            await self.client.playback(playback_id)
        except AriError as exc:
            if exc.status == 404:
                return True
            log.warning("ari.playback_unknown", playback=playback_id, error=str(exc))
        return False

    async def _recording_fate(self, name: str) -> str:
        try:
            live = await self.client.live_recording(name)
            return QUEUED if live.get("state") == "queued" else LIVE
        except AriError as exc:
            if exc.status != 404:
                raise
        try:
            await self.client.stored_recording(name)
            return STORED
        except AriError as exc:
            if exc.status != 404:
                raise
        return ABSENT

    # --- executing commands ------------------------------------------------------------------

    async def _lanes_drained(self, limit_s: float = 30.0) -> None:
        """Until every lane has carried out its commands (a request that never returns is cut
        by the client's own timeout; `limit_s` is a last resort, logged)."""
        try:
            async with asyncio.timeout(limit_s):
                await self._drained.wait()
        except TimeoutError:
            log.error("daemon.lanes_busy", calls=sorted(k for k in self._lanes if k)[:20])

    async def _dispatch(self, commands: list[cmd.Command], clock: _Clock | None = None) -> None:
        """Hand a step's commands to their calls' lanes (one step may touch two calls: an
        attended transfer; a reconciliation, many), each call's in the model's order. `clock`:
        when the step's event arrived, taken by whichever lane sends the step's first request.
        A call's commands that only store rows and log, with no lane of its own waiting, are
        carried out at once: nothing of the call's is queued to go before them, and nothing
        in them waits (most steps: a leg's state, a bridge entered or left)."""
        clock = [] if clock is None else clock
        by_call: dict[str, list[cmd.Command]] = {}
        for command in commands:
            by_call.setdefault(command.call_id, []).append(command)
        for call_id, batch in by_call.items():
            if call_id not in self._lanes and all(isinstance(c, _STORED) for c in batch):
                # in a context of their own: what they stage is no lane's to wait for
                # (recorder.service.writer's mark of the rows a lane staged)
                contextvars.copy_context().run(self._store_now, call_id, batch)
                continue
            await self._backlog.acquire()
            lane = self._lanes.get(call_id)
            if lane is None:
                lane = self._lanes[call_id] = deque()
                self._drained.clear()
                self._spawn(self._run_lane(call_id, lane))
            lane.append((batch, clock))

    async def _run_lane(self, call_id: str,
                        lane: deque[tuple[list[cmd.Command], _Clock]]) -> None:
        try:
            while lane:
                batch, clock = lane.popleft()
                try:
                    await self._execute(batch, clock)
                except Exception:  # a bug in one call's effects must not stop its lane
                    log.exception("daemon.commands_failed", call_id=call_id or None)
                finally:
                    self._backlog.release()
        finally:
            if self._lanes.get(call_id) is lane:  # empty: nothing was added since the check
                del self._lanes[call_id]
            if not self._lanes:
                self._drained.set()

    async def _execute(self, commands: list[cmd.Command], clock: _Clock) -> None:
        refused: list[str] = []  # ARI requests of this step Asterisk refused
        for command in commands:
            if isinstance(command, _STORED):
                self._store(command)
            elif isinstance(command, cmd.HookReply):
                await self.writer.durable()  # what the dialplan is told is stored first
                self.hooks.deliver(command)
            elif isinstance(command, cmd.ControlDone):
                if command.status == "done" and refused:
                    # What the control asked of Asterisk did not happen: never answer "done"
                    # (a CRM would believe a card number was not kept).
                    command = dataclasses.replace(
                        command, status="failed",
                        detail=f"Asterisk refused: {'; '.join(refused)}"[:500])
                await self.writer.flush()  # the API shows what the control did once "done"
                self._spawn(self._control_done(command))
            elif isinstance(command, cmd.CheckChannel):
                await self.queue.put(await self._check_channel(command))
            elif isinstance(command, cmd.FileRecording):
                await self.writer.durable()
                self._spawn(self._file(command))
            else:
                if isinstance(command, cmd.Answer) and self._answers_caller(command):
                    # Answering the caller names nothing: a crash before its new call is
                    # journaled leaves a caller in the app that no call knows, Up or not, taken
                    # on as an orphan either way (recorder.model.reconcile). So the answer does
                    # not wait for the fsync; it overlaps it, and the next request waits for it.
                    self.writer.durable_begin()
                else:  # names and ids are stored before Asterisk hears them
                    await self.writer.durable()
                problem = await self._request(command, clock)
                if problem is not None:
                    refused.append(problem)
        # Rows no request of this step waited on: journaled with the next lane's (or within
        # 20 ms); PostgreSQL gets them in the background (Writer.run).
        self.writer.durable_soon()

    def _store_now(self, call_id: str, batch: list[cmd.Command]) -> None:
        try:
            for command in batch:
                self._store(command)
        except Exception:  # as in a lane: a bug in one call's effects stops no other
            log.exception("daemon.commands_failed", call_id=call_id or None)
        self.writer.durable_soon()

    def _store(self, c: cmd.Command) -> None:
        """One of the commands in _STORED: rows staged for the writer, or a log line."""
        if isinstance(c, cmd.SaveCall):
            self.writer.stage_snapshot(c.call_id, c.call)
        elif isinstance(c, cmd.RecordEvent):
            self.writer.stage_event(mapping.event_row(c.event))
        elif isinstance(c, cmd.Log):
            _write_log(c)
        elif isinstance(c, cmd.SaveGaps):
            self.writer.stage_gaps(mapping.gap_rows(c))
        elif isinstance(c, cmd.SaveConsent):
            self.writer.stage_consent(c.rows)
        elif isinstance(c, cmd.SaveTags):
            self.writer.stage_tags(c.call_id, c.tags, c.by)

    def _answers_caller(self, c: cmd.Answer) -> bool:
        call = self.state.calls.get(c.call_id)
        return call is not None and call.caller_channel == c.channel_id

    async def _request(self, c: cmd.Command, clock: _Clock) -> str | None:
        """Run one ARI request; None, or what Asterisk answered when it refused. The step's
        first request sent takes its `clock`: the event's reaction time."""
        refusal = self._refusal(c)
        if refusal is not None:
            return await self._failed(c, 507, refusal)  # 507: Insufficient Storage
        if clock:
            self.reactions.observe(time.monotonic() - clock.pop())
        ari = self.client
        try:
            match c:
                case cmd.Answer():
                    await ari.answer(c.channel_id)
                case cmd.CreateBridge():
                    await ari.create_bridge(c.bridge_id, c.name)
                case cmd.AddChannel():
                    await ari.add_channel(c.bridge_id, c.channel_id)
                case cmd.DestroyBridge():
                    await ari.destroy_bridge(c.bridge_id)
                case cmd.Play():
                    await ari.play(c.channel_id, c.playback_id, c.media)
                case cmd.StopPlayback():
                    await ari.stop_playback(c.playback_id)
                case cmd.CreateChannel():
                    await ari.create_channel(c.channel_id, c.endpoint, c.app_args, c.originator)
                    self.lines.made_one()
                case cmd.Originate():
                    await ari.originate(c.channel_id, c.endpoint, c.app_args, c.originator,
                                        c.timeout_s)
                    self.lines.made_one()
                case cmd.DialChannel():
                    await ari.dial(c.channel_id, c.caller_id, c.timeout_s)
                case cmd.StartRecording():
                    await ari.record_bridge(c.bridge_id, c.name, c.format)
                case cmd.Snoop():
                    await ari.snoop(c.channel_id, c.snoop_id, c.app_args)
                case cmd.RecordChannel():
                    await ari.record_channel(c.channel_id, c.name, c.format)
                case cmd.PauseRecording():
                    await ari.pause_recording(c.name, c.pause)
                case cmd.StopRecording():
                    await ari.stop_recording(c.name)
                case cmd.Hangup():
                    await ari.hangup(c.channel_id, c.reason)
                case cmd.ContinueInDialplan():
                    await ari.continue_in_dialplan(c.channel_id, c.context, c.extension,
                                                   c.priority)
                case _:
                    log.error("daemon.unknown_command", command=type(c).__name__)
        except AriError as exc:
            # a request racing a hang-up is no fault (recorder.model.failures.party_gone), nor
            # is a phone that cannot be called now (line_unavailable)
            gone = (exc.status == 404 or party_gone(c, exc.status, exc.message)
                    or snoop_in_doubt(c, exc.status))  # the model asks whether its leg lives
            unavailable = line_unavailable(c, exc.status)
            if unavailable and isinstance(c, cmd.CreateChannel | cmd.Originate):
                self.lines.refused_one(c.endpoint)  # many in a row: an outage, warned
            level = "info" if gone or unavailable or self._retry(c) else "warning"
            getattr(log, level)(
                "ari.request_failed",
                call_id=c.call_id or None,
                command=type(c).__name__,
                status=exc.status,
                error=exc.message,
            )
            failed = await self._failed(c, exc.status, exc.message)
            if exc.status == 0:  # no answer at all: whether it was carried out is unknown
                await self._look_again(c)
            return failed
        return None

    async def _check_channel(self, c: cmd.CheckChannel) -> ChannelChecked:
        """Whether the channel is still linked (AriClient.channel_linked). A 404 is an answer
        (the channel is being hung up or gone), not a failure; when Asterisk cannot say, the
        channel is taken to live on (re-recording a channel that is gone costs a refused
        request; not re-recording one that lives, audio)."""
        exists = True
        try:
            await self.client.channel_linked(c.channel_id)
        except AriError as exc:
            if exc.status == 404:
                exists = False
            else:
                log.warning("ari.request_failed", call_id=c.call_id or None,
                            command=type(c).__name__, status=exc.status, error=exc.message)
        return ChannelChecked(timestamp=self.clock.now(), asterisk_id=self.asterisk_id,
                              call_id=c.call_id, channel_id=c.channel_id, exists=exists)

    async def _failed(self, c: cmd.Command, status: int, message: str) -> str:
        """The model hears that request `c` was refused; what to tell a control about it."""
        await self.queue.put(CommandFailed(timestamp=self.clock.now(),
                                           asterisk_id=self.asterisk_id, command=c,
                                           status=status, message=message))  # fmt: skip
        return f"{type(c).__name__} {status} {message}".strip()

    def _refusal(self, c: cmd.Command) -> str | None:
        """Why recording `c` must not be started (None: go ahead). Refused: a Stasis call's
        recording while none of it has started (its later segments never: it is being
        recorded) and hook mode's snoop recordings. The model treats it as Asterisk refusing
        it: a few tries, then the call goes on unrecorded (`recording.unavailable`) and is
        tried again later, or the hook answers FAILED."""
        if self.recording_refusal is None:
            return None
        if isinstance(c, cmd.StartRecording):
            call = self.state.calls.get(c.call_id)
            # a call not yet recorded: its first segment, or one tried again later
            # (recorder.model.segments.retry_later) after none could start
            if call is None or any(r.started_at is not None for r in call.recordings.values()):
                return None
        elif not isinstance(c, cmd.RecordChannel):
            return None
        reason = self.recording_refusal()
        if reason is not None:
            level = "info" if self._retry(c) else "error"  # a retry's: said before
            getattr(log, level)("recording.refused", call_id=c.call_id or None,
                                recording=c.name, reason=reason)
        return reason

    def _retry(self, c: cmd.Command) -> bool:
        """Whether `c` starts a recording the model asked for as a retry, after it said
        `recording.unavailable` (recorder.model.segments.is_retry): its refusal is no news."""
        if not isinstance(c, cmd.StartRecording | cmd.RecordChannel):
            return False
        call = self.state.calls.get(c.call_id)
        rec = call.recordings.get(c.name) if call is not None else None
        return call is not None and rec is not None and is_retry(call, rec, self.settings)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _file(self, c: cmd.FileRecording) -> None:
        started_at = datetime.fromisoformat(c.started_at_iso)
        now = self.clock.now()
        try:
            if self.spool_dir is not None:
                src = self.spool_dir / f"{c.name}.{c.format}"
                before = None if src.exists() else await self.archive.already_filed(
                    call_id=c.call_id, name=c.name, started_at=started_at, fmt=c.format)
                filed = before or await self.archive.file(
                    src, call_id=c.call_id, name=c.name, started_at=started_at, fmt=c.format
                )
            else:
                filed = await self.archive.file_bytes(
                    self.client.stored_file(c.name),
                    call_id=c.call_id,
                    name=c.name,
                    started_at=started_at,
                    fmt=c.format,
                )
                await self._delete_stored(c)
            if self.archive_full:
                self.archive_full = False
                log.info("archive.space_back", archive=str(self.archive.root))
            event: Event = RecordingFiled(
                timestamp=now,
                asterisk_id=self.asterisk_id,
                name=c.name,
                path=str(filed.path),
                sha256=filed.sha256,
                bytes=filed.bytes,
                duration_ms=filed.duration_ms,
                audio_error=filed.audio_error,
            )
        except ArchiveFull as exc:  # safe in the spool: filed by a sweep once space returns
            if not self.archive_full:
                self.archive_full = True
                log.error("archive.full", archive=str(self.archive.root), error=str(exc),
                          action="recordings wait in the spool; each is filed when space returns")
            m = exc.filed
            event = RecordingFileFailed(
                timestamp=now, asterisk_id=self.asterisk_id, name=c.name, error=str(exc),
                waiting=True, duration_ms=m.duration_ms if m else None,
                sha256=m.sha256 if m else None, bytes=m.bytes if m else None)
        except Exception as exc:  # any failure is reported on the recording, never dropped
            log.error("recording.file_failed", call_id=c.call_id, recording=c.name, error=str(exc))
            event = RecordingFileFailed(
                timestamp=now, asterisk_id=self.asterisk_id, name=c.name, error=str(exc)
            )
        await self.queue.put(event)

    async def _delete_stored(self, c: cmd.FileRecording) -> None:
        """Asterisk's copy of a recording now safe in the archive is not needed: deleted. A
        refusal leaves the recording filed (the archive has it, hashed) and Asterisk's copy
        on its disk, which is said: nothing deletes it later."""
        try:
            await self.client.delete_stored(c.name)
        except AriError as exc:
            if exc.status == 404:  # gone already (another client, or a lost answer's retry)
                log.info("recording.stored_gone", call_id=c.call_id, recording=c.name)
                return
            log.warning("recording.stored_not_deleted", call_id=c.call_id, recording=c.name,
                        status=exc.status, error=exc.message,
                        action="Asterisk keeps its copy of a filed recording: remove it there")

    async def _control_feed(self, every_s: float = 3.0) -> None:
        """HTTP API controls (control_requests rows) for this server's calls, into the model:
        woken by NOTIFY, and every few seconds anyway (a notification is lost while the
        listening connection is down). A request for a call we do not hold is rejected."""
        controls = self.controls
        assert controls is not None
        await self.ready.wait()  # our asterisk_id is known and open calls are adopted
        wake = asyncio.Event()
        listener = None
        try:
            with contextlib.suppress(Exception):  # best effort; the next poll fails them anyway
                await controls.abandon_taken(self.asterisk_id)
            while True:
                try:
                    if listener is None or listener.closed:
                        listener = await controls.listen(self.asterisk_id, wake.set)
                    # taken but never answered (the answer was lost): failed, not left hanging
                    await controls.abandon_taken(
                        self.asterisk_id, "no outcome was recorded for it",
                        older_than_s=DEFAULT_EXPIRY_S)
                    for req in await controls.pending(self.asterisk_id):
                        log.info("control.requested", call_id=req.call_id, action=req.action,
                                 control_id=req.id, by=req.requested_by)
                        await self.queue.put(ControlRequested(
                            timestamp=self.clock.now(), asterisk_id=self.asterisk_id,
                            request_id=req.id, call_id=req.call_id, action=req.action,
                            tag=req.tag, by=req.requested_by,
                        ))
                except Exception as exc:  # the database is down: calls go on, controls wait
                    log.warning("control.poll_failed", error=f"{type(exc).__name__}: {exc}")
                    if listener is not None:
                        with contextlib.suppress(Exception):
                            await controls.unlisten(listener)
                        listener = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), every_s)
                wake.clear()
        finally:
            if listener is not None and not listener.closed:
                with contextlib.suppress(Exception):
                    await controls.unlisten(listener)

    async def _control_done(self, c: cmd.ControlDone, tries: int = 5) -> None:
        log.info("control.done", call_id=c.call_id or None, control_id=c.request_id,
                 status=c.status, detail=c.detail)
        if self.controls is None:
            return
        for attempt in range(tries):  # the database may be away for a moment
            try:
                await self.controls.complete(c.request_id, c.status, c.detail)
                return
            except Exception as exc:  # never a crash here: the row expires if all tries fail
                # an error once every try failed (the control's caller then waits in vain);
                # a try the next one may mend is the database's blip, said by the writer
                level = "error" if attempt + 1 == tries else "info"
                getattr(log, level)("control.complete_failed", control_id=c.request_id,
                                    attempt=attempt + 1, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(min(2.0**attempt, 10.0))

    async def _retries_due(self) -> None:
        """Calls whose recordings could not run and whose `retry_at` has passed are told so
        (recorder.model.segments.retry_later): from the state, so a restart keeps them."""
        if not self.ready.is_set():  # Asterisk away: tried once the daemon is back
            return
        now = self.clock.now()
        for call in list(self.state.calls.values()):
            if call.retry_at is not None and call.retry_at <= now:
                await self.queue.put(RecordingRetryDue(timestamp=now, call_id=call.call_id,
                                                       asterisk_id=call.asterisk_id))

    async def _periodic(self, every_s: float = 5.0) -> None:
        """Write what waits for PostgreSQL every `every_s` (Writer.tick; retried while it is
        away); every `spool_sweep_s`, file what the spool holds (fallback recordings written
        while the app was away keep arriving)."""
        loop = asyncio.get_running_loop()
        sweep_s = self.sweeper.sweep_s if self.sweeper is not None else every_s
        tick = min(every_s, sweep_s)
        last_sweep = loop.time()
        while True:
            await asyncio.sleep(tick)
            await self._retries_due()
            await self.writer.tick()
            if self.sweeper is None or not self.ready.is_set():
                continue
            if loop.time() - last_sweep >= sweep_s - tick / 2:
                last_sweep = loop.time()
                try:
                    await self.sweeper.sweep(self.asterisk_id, set(self.state.by_recording),
                                             self._channel_gone)
                except Exception:  # the sweep is a safety net: it must not stop the daemon
                    log.exception("spool.sweep_failed")


# Commands that store rows or log a line: nothing in them waits (Daemon._store)
_STORED = (cmd.SaveCall, cmd.RecordEvent, cmd.Log, cmd.SaveGaps, cmd.SaveConsent, cmd.SaveTags)


def _write_log(c: cmd.Log) -> None:
    logger = logs.bound("verbatim.daemon")
    method = getattr(logger, c.level, logger.info)
    if c.call_id and "call_id" not in c.fields:
        method(c.event, call_id=c.call_id, **c.fields)
    else:
        method(c.event, **c.fields)
