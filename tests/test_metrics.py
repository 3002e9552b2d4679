"""Health for ops on the running stack: /metrics scraped and parsed with Prometheus' own text
parser during and after a simulated call, /healthz and /readyz, the `recording.health` line,
the free-space watermarks (refuse_new and keep_recording at the critical mark), and
`verbatim health` reading the running daemon's figures."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from recorder.cli.health import check_health
from recorder.config import S3Config, Secret
from recorder.storage.tiered import bucket_if_configured
from recorder.storage.upload import uploads_if_s3
from recorder.storage.watermarks import CRITICAL, LOW, OK, DiskWatch, level_of
from tests.harness.stack import Stack, running_stack

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(stack: Stack, path: str = "/metrics") -> tuple[int, str]:
    address = stack.running.metrics_address
    assert address is not None
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{address[1]}{path}") as resp:  # fmt: skip
        return resp.status, await resp.text()


async def samples(stack: Stack) -> Samples:
    """Every sample of /metrics, keyed by (name, sorted labels), via Prometheus' parser."""
    status, text = await scrape(stack)
    assert status == 200
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def start_call(stack: Stack) -> Any:
    stack.sim.set_endpoint("PJSIP/201", result="answer", answer_after=2.0)
    caller = stack.sim.start_call(caller_number="+14155550100", args=["inbound", "201"])
    await stack.settle()
    await stack.advance(3.0)  # the consent prompt
    await stack.advance(2.0)  # ringing
    return caller


async def test_metrics_follow_a_call(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn) as stack:
        before = await samples(stack)
        assert value(before, "verbatim_ari_connected") == 1
        assert value(before, "verbatim_calls_in_progress") == 0
        assert value(before, "verbatim_recordings_total", result="filed") == 0
        for name in ("spool", "archive"):
            assert value(before, "verbatim_disk_level", dir=name, level="ok") == 1
            free = [v for (n, labels), v in before.items()
                    if n == "verbatim_disk_free_bytes" and ("dir", name) in labels]  # fmt: skip
            assert len(free) == 1 and free[0] > 0
        assert any(n == "process_resident_memory_bytes" for n, _ in before)
        assert value(before, "verbatim_event_reaction_seconds_count") == 0

        caller = await start_call(stack)
        await stack.until_bridged()
        await stack.advance(4.0)
        during = await samples(stack)
        assert value(during, "verbatim_calls_in_progress") == 1
        assert value(during, "verbatim_recordings_active") == 1
        assert value(during, "verbatim_calls_started_total") == 1
        assert value(during, "verbatim_calls_ended_total") == 0

        stack.sim.hangup(caller.id)
        await stack.settle()
        after = await samples(stack)
        assert value(after, "verbatim_calls_in_progress") == 0
        assert value(after, "verbatim_recordings_active") == 0
        assert value(after, "verbatim_calls_ended_total") == 1
        assert value(after, "verbatim_recordings_total", result="filed") == 1
        assert value(after, "verbatim_recordings_total", result="failed") == 0
        assert value(after, "verbatim_recording_gaps_total") == 0
        assert value(after, "verbatim_db_pending_rows") == 0
        assert value(after, "verbatim_db_writes_failing") == 0
        assert value(after, "verbatim_db_write_seconds_count") > 0
        assert value(after, "verbatim_db_write_seconds_sum") > 0
        assert value(after, "verbatim_hook_timeouts_total") == 0
        assert value(after, "verbatim_journal_bytes") == 0  # PostgreSQL took every row
        assert value(after, "verbatim_journal_max_bytes") == 256 * 1024 * 1024
        assert value(after, "verbatim_event_queue") == value(after, "verbatim_lane_backlog") == 0
        # the caller's arrival (answered), the prompt's end (dialled), the answer (bridged),
        # the hang-up (the other party hung up): each event a request answered was timed
        reactions = value(after, "verbatim_event_reaction_seconds_count")
        assert reactions >= 4
        assert value(after, "verbatim_event_reaction_seconds_bucket", le="+Inf") == reactions
        assert 0 < value(after, "verbatim_event_reaction_seconds_sum") < reactions * 5.0

        # The same figures as one log line.
        assert stack.running.monitor is not None
        with capture_logs() as logs:
            fields = stack.running.monitor.figures().log_fields()
        assert logs == []
        assert fields["calls_ended_total"] == 1 and fields["recordings_filed_total"] == 1
        assert fields["disks"]["archive"]["level"] == "ok"


async def test_health_line_is_logged_periodically(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn, metrics={"health_log_s": 0.2}) as stack:
        with capture_logs() as logs:
            caller = await start_call(stack)
            await stack.until_bridged()
            logs.clear()
            for _ in range(100):
                lines = [e for e in logs if e["event"] == "recording.health"]
                if lines and lines[-1]["calls_in_progress"] == 1:
                    break
                await stack.advance(0.05, step=0.05)
        line = lines[-1]
        assert line["log_level"] == "info" and line["ari_connected"] is True
        assert line["recordings_active"] == 1
        assert set(line["disks"]) == {"spool", "archive"}
        stack.sim.hangup(caller.id)
        await stack.settle()


async def test_failed_upload_rounds_are_counted_in_metrics_and_the_health_line(
    tmp_path: Path, pg_dsn: str
) -> None:
    """storage.backend s3 with the store unreachable (nothing listens on its port): every
    failed round is counted, and /metrics and the health line say so."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections to it are refused
    s3 = S3Config(bucket="recordings", endpoint=f"http://127.0.0.1:{port}",
                  access_key=Secret("k"), secret_key=Secret("s"), retry_max_s=0.2)  # fmt: skip
    async with running_stack(tmp_path, pg_dsn, storage={"backend": "s3", "s3": s3}) as stack:
        monitor = stack.running.monitor
        assert stack.config is not None and monitor is not None
        status = monitor.uploads
        async with (
            bucket_if_configured(stack.config) as bucket,
            uploads_if_s3(stack.config, stack.repo.pool, bucket, stack.daemon.ready,
                          lambda: stack.daemon.asterisk_id, idle_s=0.1, status=status),
        ):  # fmt: skip
            for _ in range(300):
                if status.failed_rounds >= 2:
                    break
                await asyncio.sleep(0.05)
            found = await samples(stack)
        assert value(found, "verbatim_uploads_failed_rounds_total") >= 2
        assert value(found, "verbatim_uploads_failing") == 1
        assert value(found, "verbatim_uploads_moved_total") == 0
        fields = monitor.figures().log_fields()  # the health line's
        assert fields["uploads_failed_rounds_total"] >= 2 and fields["uploads_failing"] is True


async def test_healthz_and_readyz(tmp_path: Path, pg_dsn: str) -> None:
    async with running_stack(tmp_path, pg_dsn, start=False) as stack:
        assert await scrape(stack, "/healthz") == (200, '{"alive": true}')
        status, body = await scrape(stack, "/readyz")
        assert (status, body) == (503, '{"ari": false, "database": true}')  # not connected
    async with running_stack(tmp_path / "b", pg_dsn) as stack:
        assert await scrape(stack, "/readyz") == (200, '{"ari": true, "database": true}')
        await stack.repo.pool.close()  # this daemon's PostgreSQL pool is gone
        status, body = await scrape(stack, "/readyz")
        assert (status, body) == (503, '{"ari": true, "database": false}')


async def test_critical_disk_with_refuse_new_connects_the_call_unrecorded(
    tmp_path: Path, pg_dsn: str
) -> None:
    marks = {"min_free_mb": 10**9, "low_free_mb": 10**9, "on_critical": "refuse_new"}
    with capture_logs() as logs:
        async with running_stack(tmp_path, pg_dsn, storage=marks) as stack:
            caller = await start_call(stack)
            await stack.until_bridged()
            first = len(logs)
            await stack.advance(6.0)  # the call's first retry is due (Asterisk's clock)
            for _ in range(60):  # the periodic task looks every 5 s (real time)
                if any(e["event"] == "recording.refused" for e in logs[first:]):
                    break
                await asyncio.sleep(0.25)
            await stack.settle()
            retried = logs[first:]
            found = await samples(stack)
            call_id = next(iter(stack.daemon.state.calls))
            call, _, recordings, events = await stack.hang_up(caller.id, call_id)
    # the retry is refused again, but that is no news (said once: recording.unavailable):
    # not an error and a warning every minute for every call while the disk is critical
    assert [e["log_level"] for e in retried if e["event"] == "recording.refused"] == ["info"]
    assert not [e["event"] for e in retried if e["log_level"] in ("error", "warning")
                and not e["event"].startswith("disk.")]
    critical = [e for e in logs if e["event"] == "disk.critical"]
    assert {e["dir"] for e in critical} == {"spool", "archive"}
    assert all(e["log_level"] == "error" and "refused" in e["then"] for e in critical)
    refused = [e for e in logs if e["event"] == "recording.refused"]
    assert refused and "below the critical mark" in refused[0]["reason"]
    assert "recording.unavailable" in [e.kind for e in events]
    assert call.outcome == "answered"  # the call went on, unrecorded
    assert all(r.status == "failed" and r.path is None for r in recordings)
    assert not list(stack.spool.glob("*.wav")) and not list(stack.archive.rglob("*.wav"))
    assert value(found, "verbatim_recordings_total", result="refused") == len(refused)
    assert value(found, "verbatim_disk_level", dir="spool", level="critical") == 1


async def test_critical_disk_with_keep_recording_records_and_alerts(
    tmp_path: Path, pg_dsn: str
) -> None:
    marks = {"min_free_mb": 10**9, "low_free_mb": 10**9}  # keep_recording: the default
    with capture_logs() as logs:
        async with running_stack(tmp_path, pg_dsn, storage=marks) as stack:
            caller = await start_call(stack)
            call_id = await stack.until_bridged()
            await stack.advance(2.0)
            _, _, recordings, _ = await stack.hang_up(caller.id, call_id)
    assert [r.status for r in recordings] == ["filed"]
    critical = [e for e in logs if e["event"] == "disk.critical"]
    assert critical and all("go on" in e["then"] for e in critical)
    assert not [e for e in logs if e["event"] == "recording.refused"]


@pytest.mark.parametrize(
    ("free_mb", "level"),
    [(None, CRITICAL), (0, CRITICAL), (499, CRITICAL), (500, LOW), (1999, LOW), (2000, OK)],
)
def test_level_table(free_mb: int | None, level: str) -> None:
    assert level_of(free_mb, 2000, 500) == level


def test_disk_watch_logs_each_change_and_repeats_critical(tmp_path: Path) -> None:
    watch = DiskWatch({"archive": tmp_path}, 0, 0, refuse_new=True, repeat_s=60)
    huge = 10**12  # megabytes: more than any disk has

    def events(at: float) -> list[tuple[str, str]]:
        with capture_logs() as logs:
            watch.check(now=at)
        return [(e["event"], e["log_level"]) for e in logs]

    assert events(0) == [] and watch.refusal() is None
    watch.low_mb = huge
    assert events(1) == [("disk.low", "warning")]
    assert events(2) == []  # still low: said once
    watch.critical_mb = huge
    assert events(3) == [("disk.critical", "error")]
    assert events(30) == []
    assert events(64) == [("disk.critical", "error")]  # a minute on: said again
    reason = watch.refusal()
    assert reason is not None and str(tmp_path) in reason and watch.refused == 1
    watch.refuse_new = False
    assert watch.refusal() is None and watch.refused == 1
    watch.low_mb = watch.critical_mb = 0
    assert events(70) == [("disk.ok", "info")]
    # Not made yet: the space where it will be.
    (state,) = DiskWatch({"archive": tmp_path / "a" / "b"}, 0, 0).check().values()
    assert state.level == OK and state.free_bytes



async def test_verbatim_health_reports_the_running_daemons_figures(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with running_stack(tmp_path, pg_dsn) as stack:
        caller = await start_call(stack)
        await stack.until_bridged()
        assert stack.config is not None and stack.running.metrics_address is not None
        port = stack.running.metrics_address[1]
        config = dataclasses.replace(
            stack.config, metrics=dataclasses.replace(stack.config.metrics, port=port)
        )
        stack.archive.mkdir(exist_ok=True)  # made at the first filing; health wants it
        report = await check_health(config)
        daemon = report["daemon"]
        assert daemon["ok"] is True and daemon["ready"] == {"ari": True, "database": True}
        figures = daemon["figures"]
        assert figures["verbatim_calls_in_progress"] == 1
        assert figures["verbatim_recordings_active"] == 1
        assert figures["verbatim_recordings_total"] == {
            "filed": 0, "failed": 0, "missing": 0, "refused": 0
        }
        assert figures["verbatim_disk_level"] == {"spool": "ok", "archive": "ok"}
        assert report["ok"] is True
        stack.sim.hangup(caller.id)
        await stack.settle()
    report = await check_health(config)  # no daemon (nor Asterisk) any more
    daemon = report["daemon"]
    assert daemon["reachable"] is False and "ok" not in daemon
    assert daemon["url"] == f"http://127.0.0.1:{port}/metrics" and daemon["error"]
