"""Health for ops: the daemon's figures as Prometheus metrics, /healthz and /readyz on their own
listener (`metrics:`), the free-space watermarks checked, and a `recording.health` log line.

Every figure is read when asked, from what the daemon keeps anyway: its model state (calls and
their recordings), the writer (rows waiting for PostgreSQL, event rows staged by kind, time spent
writing, its journal's size), the event queue and the calls' lanes, the ARI event stream
(connected), the hook broker and the FastAGI server, the disk watch, and with storage.backend
s3 the uploads' status (recorder.storage.upload, counted once per upload round). So the
daemon's event path does no extra work for them.

/metrics  Prometheus text format; `verbatim_*` as listed in README "When a part fails", and the
          process' own (`process_*`).
/healthz  200 while the process answers (liveness).
/readyz   200 when ARI is connected (the first reconciliation done) and PostgreSQL answers a
          query within 2 s; 503 otherwise. JSON {"ari": bool, "database": bool} either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Final

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector

from recorder.agi import AgiServer
from recorder.config import Config
from recorder.db.repository import Repository
from recorder.model.state import REC_LIVE
from recorder.service.daemon import Daemon
from recorder.storage.upload import UploadStatus
from recorder.storage.watermarks import LEVELS, DiskState, DiskWatch

log = structlog.get_logger("verbatim.health")

READY_DB_TIMEOUT_S: Final = 2.0
DISK_CHECK_S: Final = 10.0  # how often the watermarks are checked (at most)


@dataclass(frozen=True)
class Figures:
    """One reading of the daemon's health. Counts named *_total are since the process started."""

    calls_in_progress: int
    recordings_active: int
    ari_connected: bool
    db_pending_rows: int
    db_writes_failing: bool
    db_write_seconds_total: float
    db_writes_total: int
    journal_bytes: int
    journal_max_bytes: int
    event_queue: int
    lane_backlog: int
    agi_sessions: int
    hook_sessions_waiting: int
    hook_timeouts_total: int
    calls_started_total: int
    calls_ended_total: int
    recording_gaps_total: int
    recordings_filed_total: int
    recordings_failed_total: int
    recordings_missing_total: int
    recordings_refused_total: int
    uploads_waiting: int  # storage.backend s3 (recorder.storage.upload); 0 with local
    uploads_failing: bool
    uploads_moved_total: int
    uploads_failed_rounds_total: int  # rounds that failed: each retry while the store is away
    disks: tuple[DiskState, ...]
    # From an ARI event's arrival to its step's first request (recorder.service.reaction):
    # cumulative counts by upper bound in seconds, "+Inf" last, and their sum
    reaction_buckets: tuple[tuple[str, int], ...]
    reaction_seconds_sum: float

    def log_fields(self) -> dict[str, Any]:
        """The figures as one JSON log line's fields."""
        fields = asdict(self)
        fields["db_write_seconds_total"] = round(self.db_write_seconds_total, 3)
        # a histogram since start reads as noise in a line: /metrics has it
        del fields["reaction_buckets"], fields["reaction_seconds_sum"]
        fields["disks"] = {d.name: {"path": str(d.path), "free_mb": d.free_mb, "level": d.level}
                           for d in self.disks}  # fmt: skip
        return fields


def read_figures(daemon: Daemon, agi: AgiServer | None, watch: DiskWatch,
                 uploads: UploadStatus | None = None) -> Figures:  # fmt: skip
    uploads = uploads or UploadStatus()
    calls = daemon.state.calls.values()
    staged, writer = daemon.writer.staged, daemon.writer
    return Figures(
        calls_in_progress=len(calls),
        recordings_active=sum(
            1 for c in calls for r in c.recordings.values() if r.status in REC_LIVE
        ),
        ari_connected=daemon.stream.connected.is_set(),
        db_pending_rows=writer.pending_rows,
        db_writes_failing=writer.failing,
        db_write_seconds_total=writer.write_seconds,
        db_writes_total=writer.writes,
        journal_bytes=0 if writer.journal is None else writer.journal.size,
        journal_max_bytes=0 if writer.journal is None else writer.journal.max_bytes,
        event_queue=daemon.queue.qsize(),
        lane_backlog=daemon.backlog,
        agi_sessions=0 if agi is None else agi.sessions,
        hook_sessions_waiting=daemon.hooks.waiting,
        hook_timeouts_total=daemon.hooks.timeouts,
        calls_started_total=staged["call.started"],
        calls_ended_total=staged["call.ended"],
        recording_gaps_total=staged["recording.gap"],
        recordings_filed_total=staged["recording.filed"],
        recordings_failed_total=staged["recording.failed"],
        recordings_missing_total=staged["recording.missing"],
        recordings_refused_total=watch.refused,
        uploads_waiting=uploads.waiting,
        uploads_failing=uploads.failing,
        uploads_moved_total=uploads.moved_total,
        uploads_failed_rounds_total=uploads.failed_rounds,
        disks=tuple(watch.states.values()),
        reaction_buckets=tuple(daemon.reactions.buckets()),
        reaction_seconds_sum=daemon.reactions.sum_s,
    )


def metric_families(f: Figures) -> Iterator[Metric]:
    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"verbatim_{name}", doc, value=value)

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(f"verbatim_{name}", doc, value=value)

    yield gauge("calls_in_progress", "Calls the daemon is handling now", f.calls_in_progress)
    yield gauge("recordings_active", "Recordings requested or running now", f.recordings_active)
    yield gauge("ari_connected", "1 while the ARI WebSocket is connected", f.ari_connected)
    yield gauge("db_pending_rows", "Rows waiting in memory for PostgreSQL", f.db_pending_rows)
    yield gauge("db_writes_failing", "1 while writes to PostgreSQL fail (rows wait in memory)",
                f.db_writes_failing)  # fmt: skip
    yield SummaryMetricFamily(
        "verbatim_db_write_seconds", "Time the writes that reached PostgreSQL took",
        count_value=f.db_writes_total, sum_value=f.db_write_seconds_total,
    )  # fmt: skip
    yield gauge("journal_bytes", "Size of the write-ahead journal (rows PostgreSQL has not "
                "taken)", f.journal_bytes)  # fmt: skip
    yield gauge("journal_max_bytes", "The journal's bound (storage.journal_max_mb)",
                f.journal_max_bytes)  # fmt: skip
    yield gauge("event_queue", "ARI events and results waiting for the call model",
                f.event_queue)  # fmt: skip
    yield gauge("lane_backlog", "Steps' commands waiting in the calls' lanes", f.lane_backlog)
    yield HistogramMetricFamily(
        "verbatim_event_reaction_seconds", "From an ARI event's arrival to the first request "
        "its step sent to Asterisk (the journal's fsync included when it waits for one)",
        buckets=list(f.reaction_buckets), sum_value=f.reaction_seconds_sum,
    )  # fmt: skip
    yield gauge("agi_sessions", "FastAGI connections being served (hook mode)", f.agi_sessions)
    yield gauge("hook_sessions_waiting", "Hooks waiting for the recorder's answer",
                f.hook_sessions_waiting)  # fmt: skip
    yield counter("hook_timeouts", "Hooks answered FAILED: the recorder did not answer in time",
                  f.hook_timeouts_total)  # fmt: skip
    yield counter("calls_started", "Calls started", f.calls_started_total)
    yield counter("calls_ended", "Calls ended", f.calls_ended_total)
    yield counter("recording_gaps", "Recordings that ended while their call was up",
                  f.recording_gaps_total)  # fmt: skip
    recordings = CounterMetricFamily(
        "verbatim_recordings", "Recordings by result: filed into the archive, failed, missing "
        "(no file), refused (a directory below its critical mark)", labels=["result"],
    )  # fmt: skip
    for result, value in (("filed", f.recordings_filed_total),
                          ("failed", f.recordings_failed_total),
                          ("missing", f.recordings_missing_total),
                          ("refused", f.recordings_refused_total)):  # fmt: skip
        recordings.add_metric([result], value)
    yield recordings
    yield gauge("uploads_waiting", "Filed recordings waiting in the archive to be moved to the "
                "object store (storage.backend s3)", f.uploads_waiting)  # fmt: skip
    yield gauge("uploads_failing", "1 while moving recordings to the object store fails",
                f.uploads_failing)  # fmt: skip
    yield counter("uploads_moved", "Recordings moved to the object store, hash confirmed",
                  f.uploads_moved_total)  # fmt: skip
    yield counter("uploads_failed_rounds", "Upload rounds that failed (the object store or the "
                  "database away; each is retried)", f.uploads_failed_rounds_total)  # fmt: skip
    free = GaugeMetricFamily("verbatim_disk_free_bytes", "Free space for recordings",
                             labels=["dir", "path"])  # fmt: skip
    level = GaugeMetricFamily(
        "verbatim_disk_level", "1 for the directory's level against the watermarks "
        "(ok, low, critical)", labels=["dir", "level"],
    )  # fmt: skip
    for disk in f.disks:
        if disk.free_bytes is not None:
            free.add_metric([disk.name, str(disk.path)], disk.free_bytes)
        for name in LEVELS:
            level.add_metric([disk.name, name], float(disk.level == name))
    yield free
    yield level


class _Collector:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterable[Metric]:
        return metric_families(self.monitor.figures())


class Monitor:
    """Runs beside the daemon: the disk watch and the health line always, the listener when
    metrics.enabled. `start()` returns where it listens (None when it does not)."""

    def __init__(self, config: Config, daemon: Daemon, repo: Repository,
                 agi: AgiServer | None, watch: DiskWatch) -> None:  # fmt: skip
        self.config = config.metrics
        self.daemon, self.repo, self.agi, self.watch = daemon, repo, agi, watch
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.uploads = UploadStatus()  # filled by the uploads when storage.backend is s3

    def figures(self) -> Figures:
        return read_figures(self.daemon, self.agi, self.watch, self.uploads)

    async def start(self) -> tuple[str, int] | None:
        await asyncio.to_thread(self.watch.check)  # levels known before the first call
        self._task = asyncio.create_task(self._periodic(), name="verbatim-health")
        if not self.config.enabled:
            return None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        except OSError as exc:  # recording matters more than its metrics: go on without them
            log.error("metrics.listen_failed", host=self.config.host, port=self.config.port,
                      error=str(exc))  # fmt: skip
            return None
        host, port = self._runner.addresses[0][:2]  # the port chosen, when 0 was asked
        log.info("metrics.listening", url=f"http://{host}:{port}/metrics")
        return host, port

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()

    async def _periodic(self) -> None:
        loop = asyncio.get_running_loop()
        every = self.config.health_log_s
        tick = min(DISK_CHECK_S, every)
        last_line = loop.time()
        while True:
            await asyncio.sleep(tick)
            try:
                await asyncio.to_thread(self.watch.check)  # statvfs may block on a bad mount
                if loop.time() - last_line >= every - tick / 2:
                    last_line = loop.time()
                    log.info("recording.health", **self.figures().log_fields())
            except Exception:  # the health line must never stop the daemon
                log.exception("health.failed")

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        ari = self.daemon.stream.connected.is_set() and self.daemon.ready.is_set()
        try:
            async with asyncio.timeout(READY_DB_TIMEOUT_S):
                await self.repo.ping()
            database = True
        except Exception:  # unreachable, refusing, too slow: not ready, whatever the cause
            database = False
        ready = ari and database
        return web.json_response({"ari": ari, "database": database},
                                 status=200 if ready else 503)  # fmt: skip


def disk_watch(config: Config) -> DiskWatch:
    storage = config.storage
    dirs = {"archive": storage.archive_dir}
    if storage.spool_dir is not None:
        dirs["spool"] = storage.spool_dir
    return DiskWatch(dirs, storage.low_free_mb, storage.min_free_mb,
                     refuse_new=storage.on_critical == "refuse_new")  # fmt: skip
