"""What the daemon costs per call under load, against a minimal ARI recorder (issue 15).

Run: PYTHONPATH=.:asterisk-test .venv/bin/python -m bench.load [--calls 100 1000] [--big]
Prints figures; it is not a test. Each run starts the simulator (`python -m arisim --bench`: no
spec checks, recordings written as silence) and the recorder under test as processes of their
own (the recorder pinned to core 0 with taskset when there is one), against a private
PostgreSQL. N calls arrive at --rate per second; each plays the consent prompt, rings 3 s, talks
20-60 s (virtual, at --speed), one in ten is forwarded (302 to another phone), one in ten is
blind-transferred by the caller to a phone that hangs up 15 s later, the rest end with the
caller hanging up. Per call: recorder CPU, PostgreSQL CPU (postmaster, its children and the
children that exited), PostgreSQL transactions, ARI requests, bytes logged; per run: set-ups/s,
event→request latency (the simulator's time of an event to its time of the recorder's next
request about the same channel/bridge/playback/recording), peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from arisim.control import SimControl
from arisim.spec import load_spec
from prometheus_client.parser import text_string_to_metric_families

from recorder.db.migrate import migrate
from recorder.devtools.config import config_text
from recorder.devtools.pgcluster import PrivateCluster, free_port
from recorder.service.reaction import Reactions

PASSWORD = "bench-secret"  # noqa: S105 - the private simulator's ARI user
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    recorder: str
    calls: int
    cpu_ms: float  # recorder, whole run
    pg_cpu_ms: float
    transactions: int
    requests: int
    log_bytes: int
    setups_per_s: float
    latency_by_type: dict[str, list[float]]
    rss_start_kb: int
    rss_peak_kb: int
    wall_s: float
    rss_end_kb: int
    stuck: int  # calls still up 30 s after they should have ended (hung up by the bench)
    warnings: int  # warning and error lines the recorder logged
    row_writes: dict[str, int]  # rows inserted or updated, by table (the daemon's tables)
    by_kind: dict[str, int]  # ARI requests by "METHOD /template" (the spec's path)
    loop_cpu_ms: float  # of cpu_ms, the main thread's: the event loop
    # The daemon's own reaction times (verbatim_event_reaction_seconds) in this run; none
    # counted for the minimal recorder
    reactions: Reactions

    @property
    def latency_ms(self) -> list[float]:
        return [ms for values in self.latency_by_type.values() for ms in values]

    def row(self) -> str:
        n = self.calls
        lat = sorted(self.latency_ms) or [0.0]
        p50 = lat[len(lat) // 2]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (f"{self.recorder:8} {n:6} {self.cpu_ms / n:8.1f} {self.pg_cpu_ms / n:8.1f} "
                f"{self.transactions / n:7.1f} {self.requests / n:6.1f} {self.log_bytes / n:8.0f} "
                f"{self.setups_per_s:8.1f} {p50:6.1f} {p99:7.1f} {self.rss_peak_kb / 1024:7.1f} "
                f"{(self.rss_peak_kb - self.rss_start_kb) / n:7.1f} "
                f"{(self.rss_end_kb - self.rss_start_kb) / n:7.1f} {self.wall_s:6.0f} "
                f"{self.stuck:5} {self.warnings:5}")

    def threads(self) -> str:
        """CPU per call: the event loop's thread, and the others (the daemon's: the journal's
        fsyncs, the archive's copy, hash and fsyncs; child processes)."""
        n = self.calls
        return (f"event loop {self.loop_cpu_ms / n:.1f} ms, other threads "
                f"{(self.cpu_ms - self.loop_cpu_ms) / n:.1f} ms")

    def reacted(self) -> str:
        """The daemon's own p50 and p99 reaction (an event's arrival to its first request),
        as the bounds of the buckets they fall in: without the simulator's own delays, which
        the event->request figures include."""
        r = self.reactions
        p50, p99 = r.quantile(0.5), r.quantile(0.99)
        if p50 is None or p99 is None:
            return "none measured"
        within = r.within(0.01) / r.count * 100
        return (f"p50 <= {p50 * 1000:g} ms, p99 <= {p99 * 1000:g} ms, "
                f"{within:.1f} % within 10 ms ({r.count} steps)")

    def writes(self) -> str:
        """Rows written per call, by table."""
        return ", ".join(f"{t} {n / self.calls:.1f}" for t, n in self.row_writes.items())

    def slowest(self) -> str:
        """p99 per event type, slowest first."""
        p99 = {k: sorted(v)[min(len(v) - 1, int(len(v) * 0.99))]
               for k, v in self.latency_by_type.items()}
        return ", ".join(f"{k} {ms:.0f}" for k, ms in
                         sorted(p99.items(), key=lambda kv: -kv[1])[:5])


HEADER = ("recorder  calls  cpu ms/c  pg ms/c  xact/c  ari/c  log B/c  setup/s  p50ms   p99ms "
          " peakMB  KB/call  KB/c end  wall s  stuck  warn")


# The recorder's lines at warning and error (the daemon's JSON is compact; older daemons' not).
WARNING_LEVELS = (b'"level":"warning"', b'"level":"error"', b'"level": "warning"',
                  b'"level": "error"')


def warnings(log: Path, offset: int) -> int:
    with log.open("rb") as f:
        f.seek(offset)
        return sum(1 for line in f if any(w in line for w in WARNING_LEVELS))


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _ticks(stat: str, children: bool) -> int:
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    # fields[11..14] are utime, stime, cutime, cstime (stat(5) numbers 14-17)
    used = int(fields[11]) + int(fields[12])
    return used + (int(fields[13]) + int(fields[14]) if children else 0)


def cpu_ticks(pid: int, children: bool = True) -> int:
    return _ticks(f"/proc/{pid}/stat", children)


def main_thread_ticks(pid: int) -> int:
    """CPU ticks of the process's main thread (the thread whose id is the process's)."""
    return _ticks(f"/proc/{pid}/task/{pid}/stat", children=False)


def rss_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pg_ticks(data_dir: Path) -> int:
    """The postmaster with its exited children (cutime/cstime) and its live ones."""
    master = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = cpu_ticks(master)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == master:
                total += int(fields[11]) + int(fields[12])
    return total


WRITTEN_TABLES = ("calls", "legs", "recordings", "call_events", "consent_audit")


def row_writes(cluster: PrivateCluster) -> dict[str, int]:
    """Rows inserted or updated so far, by table (an upsert that updates counts once)."""
    names = ", ".join(repr(t) for t in WRITTEN_TABLES)  # our own names
    out = cluster.psql("SELECT relname, n_tup_ins + n_tup_upd FROM pg_stat_user_tables "  # noqa: S608
                       f"WHERE relname IN ({names})")
    found = dict(line.split("|") for line in out.strip().splitlines() if "|" in line)
    return {t: int(found.get(t, "0")) for t in WRITTEN_TABLES}


def transactions(cluster: PrivateCluster) -> int:
    out = cluster.psql("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                       "WHERE datname = 'verbatim'")
    return int(out.strip().splitlines()[-1].strip())


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env={**os.environ, **env})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_http(url: str, headers: dict[str, str] | None = None,
                    timeout: float = 30) -> None:  # noqa: ASYNC109 - a polling deadline
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url, headers=headers) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer 200 within {timeout} s")
            await asyncio.sleep(0.1)


async def set_endpoints(ctl: SimControl) -> None:
    await ctl.set_endpoint("PJSIP/201", answer_after=3.0, tone_hz=700)
    await ctl.set_endpoint("PJSIP/400", result="forward", forward_to="300", answer_after=3.0)
    await ctl.set_endpoint("PJSIP/300", answer_after=2.0, tone_hz=800)
    await ctl.set_endpoint("PJSIP/301", answer_after=2.0, tone_hz=900, hangup_after=15.0)


async def one_call(ctl: SimControl, i: int, speed: float) -> None:
    """Call number i of the mix, from its arrival to its end."""
    kind = {3: "transfer", 7: "forward"}.get(i % 10, "plain")
    target = "400" if kind == "forward" else "201"
    caller = await ctl.start_call(caller_number=f"+1415555{i % 10000:04d}",
                                  args=["inbound", target], tone_hz=440)
    setup = 3.0 + 3.0 + (2.0 if kind == "forward" else 0.0)  # prompt, ringing, 302
    talk = 20.0 + (i * 7919) % 41
    if kind == "transfer":
        await asyncio.sleep((setup + talk / 2) / speed)
        with contextlib.suppress(aiohttp.ClientError, LookupError):
            if (await ctl.blind_transfer(caller, "301")).get("result") == "Success":
                return  # 301 hangs up 15 s later
    await asyncio.sleep((setup + talk) / speed)
    with contextlib.suppress(aiohttp.ClientError, LookupError):
        await ctl.hangup(caller)


async def place_calls(ctl: SimControl, n: int, rate: float, speed: float) -> None:
    await set_endpoints(ctl)

    async def one(i: int) -> None:
        await asyncio.sleep(i / rate)
        await one_call(ctl, i, speed)

    await asyncio.gather(*(one(i) for i in range(n)))


def ids_of(event: dict[str, Any]) -> set[str]:
    ids = {event.get(k, {}).get("id") for k in ("channel", "peer", "bridge")}
    for k in ("playback", "recording"):
        obj = event.get(k, {})
        ids.add(obj.get("id") or obj.get("name"))
        ids.add(str(obj.get("target_uri", "")).partition(":")[2] or None)
    return {i for i in ids if i}


def latencies(events: list[dict[str, Any]], requests: list[dict[str, Any]],
              speed: float) -> dict[str, list[float]]:
    """Real ms from each event to the recorder's first request about one of its ids, if that
    request came before the next event about that id (else it answered something later)."""
    timeline: dict[str, list[tuple[float, int, int]]] = {}  # id -> (t, 0 event/1 request, n)
    for n, rec in enumerate(events):
        if rec["delivered"]:
            for i in ids_of(rec["event"]):
                timeline.setdefault(i, []).append((rec["at"], 0, n))
    for n, req in enumerate(requests):
        words = set(req["path"].split("/")) | {str(v) for v in req["params"].values()}
        for i in words & timeline.keys():
            timeline[i].append((req["at"], 1, n))
    best: dict[int, float] = {}
    for items in timeline.values():
        items.sort()
        pending: tuple[float, int] | None = None
        for t, kind, n in items:
            if kind == 0:
                pending = (t, n)
            elif pending is not None:
                dt = (t - pending[0]) / speed * 1000
                if dt < 2000:  # a reaction, not a timer of the recorder
                    best[pending[1]] = min(dt, best.get(pending[1], dt))
                pending = None
    by_type: dict[str, list[float]] = {}
    for n, ms in best.items():
        by_type.setdefault(events[n]["event"]["type"], []).append(ms)
    return by_type


async def quiet(pid: int, ctl: SimControl, patience_s: float) -> int:
    """Until the simulator has no channels and the recorder's CPU stands still for 1 s. Channels
    still there after `patience_s` (calls the recorder lost) are hung up; returns how many."""
    deadline = time.monotonic() + patience_s
    stuck = 0
    while channels := (await ctl.state()).get("channels"):
        if time.monotonic() > deadline:
            stuck = len(channels)
            for ch in channels:
                with contextlib.suppress(aiohttp.ClientError, LookupError):
                    await ctl.hangup(ch["id"])
            deadline = time.monotonic() + patience_s
        await asyncio.sleep(0.5)
    last = cpu_ticks(pid)
    while True:
        await asyncio.sleep(1.0)
        now = cpu_ticks(pid)
        if now - last <= 1:
            return stuck
        last = now


@dataclass
class Running:
    """A simulator and a recorder under test, both started and answering."""

    proc: subprocess.Popen[bytes]  # the recorder
    ctl: SimControl
    log: Path  # the recorder's output
    sim_pid: int
    metrics: str | None  # the daemon's /metrics


@contextlib.asynccontextmanager
async def running(kind: str, work: Path, args: argparse.Namespace,
                  cluster: PrivateCluster) -> AsyncIterator[Running]:
    spool, archive = work / "spool", work / "archive"
    spool.mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim_cmd = [sys.executable, "-m", "arisim", "--bench", "--port", str(port), "--spool",
               str(spool), "--speed", str(args.speed), "--password", PASSWORD]
    pinned = shutil.which("taskset") and os.cpu_count() != 1
    pin = ["taskset", "-c", str(args.core)] if pinned else []
    metrics = None
    if kind == "daemon":
        conf = work / "verbatim.yaml"
        metrics_port = free_port()
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        conf.write_text(config_text(url=url, spool=spool, archive=archive,
                                    metrics_port=metrics_port))
        traced = args.trace or args.probe
        daemon = ["bench.traced_daemon", str(work)] if traced else ["recorder.cli"]
        rec_cmd = [*pin, sys.executable, "-m", *daemon, "run", "-c", str(conf)]
    else:
        rec_cmd = [*pin, sys.executable, "-m", "bench.minimal_recorder", "--url", url,
                   "--password", PASSWORD]
    env = {"VERBATIM_ARI_PASSWORD": PASSWORD, "VERBATIM_DATABASE_DSN": cluster.dsn()}
    log = work / "recorder.log"
    with process(sim_cmd, work / "sim.log", env) as sim, contextlib.ExitStack() as stack:
        await wait_http(f"{url}/_sim/clock")
        proc = stack.enter_context(process(rec_cmd, log, env))
        await wait_http(f"{url}/ari/applications/verbatim", basic_auth("verbatim", PASSWORD))
        await asyncio.sleep(1.0)  # the daemon's start-up work (recovery, first writes)
        async with SimControl(url) as ctl:
            yield Running(proc, ctl, log, sim.pid, metrics)


async def run_one(kind: str, n: int, args: argparse.Namespace, root: Path,
                  cluster: PrivateCluster) -> Figures:
    work = root / f"{kind}-{n}"
    async with running(kind, work, args, cluster) as run:
        proc, ctl, log = run.proc, run.ctl, run.log
        ev0, req0 = len(await ctl.events()), len(await ctl.requests())
        cpu0, pg0, x0 = cpu_ticks(proc.pid), pg_ticks(cluster.data_dir), transactions(cluster)
        loop0 = main_thread_ticks(proc.pid)
        rows0 = row_writes(cluster)
        reactions0 = await reactions(run.metrics)
        log0, rss0 = log.stat().st_size, rss_kb(proc.pid, "VmRSS")
        start = time.monotonic()
        await place_calls(ctl, n, args.rate, args.speed)
        stuck = await quiet(proc.pid, ctl, 30.0 / args.speed)
        wall = time.monotonic() - start
        await asyncio.sleep(1.5)  # PostgreSQL publishes its counters at most once a second
        cpu, pg, xacts = cpu_ticks(proc.pid), pg_ticks(cluster.data_dir), transactions(cluster)
        loop = main_thread_ticks(proc.pid)
        rows = {t: n - rows0[t] for t, n in row_writes(cluster).items()}
        reacted = (await reactions(run.metrics)).since(reactions0)
        events, requests = await ctl.events(ev0), await ctl.requests(req0)
        peak, end = rss_kb(proc.pid, "VmHWM"), rss_kb(proc.pid, "VmRSS")
        log_bytes = log.stat().st_size - log0
        if args.trace and kind == "daemon":
            print_slow(await take_probe(run, work, 1))
    callers = {r["event"]["channel"]["id"]: r["at"] for r in events
               if r["event"]["type"] == "StasisStart"
               and r["event"].get("args", [""])[:1] == ["inbound"]}
    first: dict[str, float] = {}
    for r in requests:
        for word in r["path"].split("/"):
            if word in callers:
                first.setdefault(word, r["at"])
    answers = list(first.values())
    span = (max(answers) - min(callers.values())) / args.speed if answers else 0.0
    return Figures(kind, n, (cpu - cpu0) * 1000 / TICK, (pg - pg0) * 1000 / TICK, xacts - x0,
                   len(requests), log_bytes, len(answers) / span if span else 0.0,
                   latencies(events, requests, args.speed), rss0, peak, wall, end, stuck,
                   warnings(log, log0), rows, request_kinds(requests),
                   (loop - loop0) * 1000 / TICK, reacted)


async def reactions(url: str | None) -> Reactions:
    """The daemon's reaction times so far, from its /metrics (none without one)."""
    if url is None:
        return Reactions()
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        text = await r.text()
    return Reactions.of_buckets([
        (s.labels["le"], int(s.value))
        for family in text_string_to_metric_families(text)
        if family.name == "verbatim_event_reaction_seconds"
        for s in family.samples if s.name.endswith("_bucket")])


def request_kinds(requests: list[dict[str, Any]]) -> dict[str, int]:
    """How many requests of each operation (method and the spec's path template), those
    Asterisk refused counted apart with their status."""
    spec = load_spec()
    kinds: dict[str, int] = {}
    for r in requests:
        op = spec.route(r["method"], r["path"]).operation
        key = op.key if op is not None else f"{r['method']} {r['path']} (not in the spec)"
        if r["status"] >= 400:  # refused: a request that did nothing
            key += f" -> {r['status']}"
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def print_kinds(rows: list[Figures]) -> None:
    """Requests per call by operation, one column per recorder, most frequent first."""
    keys = sorted({k for r in rows for k in r.by_kind},
                  key=lambda k: (-sum(r.by_kind.get(k, 0) / r.calls for r in rows), k))
    print(f"ARI requests per call by operation, N={rows[0].calls}:")
    print(f"  {'':48}" + "".join(f"{r.recorder:>9}" for r in rows))
    for k in keys:
        print(f"  {k:48}" + "".join(
            f"{r.by_kind[k] / r.calls:9.2f}" if k in r.by_kind else f"{'-':>9}" for r in rows))
    print(f"  {'total':48}" + "".join(f"{r.requests / r.calls:9.2f}" for r in rows), flush=True)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on x (0 with fewer than two distinct x)."""
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


def print_growth(work: Path) -> None:
    """What the daemon allocated after the ramp and still holds after every call ended."""
    before = tracemalloc.Snapshot.load(str(work / "snapshot-1.bin"))
    after = tracemalloc.Snapshot.load(str(work / "snapshot-2.bin"))
    print("tracemalloc, every call ended against after the ramp (top 12 by growth):")
    for stat in after.compare_to(before, "traceback")[:12]:
        print(f"  {stat.size_diff / 1024:+9.1f} KB {stat.count_diff:+7} blocks")
        for line in stat.traceback.format(limit=4, most_recent_first=True)[:8]:
            print(f"      {line.strip()}")


async def take_probe(run: Running, work: Path, n: int) -> dict[str, Any]:
    """The n-th probe of a daemon run under bench.traced_daemon (SIGUSR2)."""
    run.proc.send_signal(signal.SIGUSR2)
    path = work / f"probe-{n}.json"
    await appeared(path, 0.2)
    found: dict[str, Any] = json.loads(path.read_text())
    return found


async def appeared(path: Path, every: float) -> None:
    """Until another process (the traced daemon) has written `path`."""
    while not path.exists():  # noqa: ASYNC110, ASYNC240 - another process writes it
        await asyncio.sleep(every)


PROBE_HEADER = ("      anon MB  malloc used/free/mmap MB  pymalloc k-blocks  gc k-objects  "
                "threads  caches; objects of 256 KB or more")


def probe_row(p: dict[str, Any]) -> str:
    m = p["malloc_kb"]
    caches = " ".join(f"{k} {v}" for k, v in p["caches"].items() if v)
    return (f"      {p['smaps_rollup_kb']['Anonymous'] / 1024:7.1f}  {m['in_use'] / 1024:9.1f} "
            f"{m['free'] / 1024:6.1f} {m['mmap'] / 1024:6.1f}  "
            f"{p['pymalloc_blocks'] / 1000:17.1f}  "
            f"{p['gc_objects'] / 1000:12.1f}  {p['threads']:7}  {caches}; "
            + ("; ".join(p["large"]) or "none"))


def print_probe_growth(first: dict[str, Any], last: dict[str, Any]) -> None:
    """Objects the collector sees, by type, that grew from the ramp's end to the end."""
    grown = {t: n - first["types"].get(t, 0) for t, n in last["types"].items()}
    top = sorted(((n, t) for t, n in grown.items() if n), reverse=True)[:12]
    print("gc objects by type, after every call ended against the ramp's end: "
          + (", ".join(f"{t} {n:+}" for n, t in top) or "no change"))
    if "rss_after_trim_kb" in last:
        print(f"malloc_trim(0) after every call ended ({last['trim_ms']} ms): RSS "
              f"{last['smaps_rollup_kb']['Rss'] / 1024:.1f} -> "
              f"{last['rss_after_trim_kb'] / 1024:.1f} MB")
    print_slow(last)


def print_slow(p: dict[str, Any]) -> None:
    slow = sorted(p["slow_ms"].items(), key=lambda kv: -kv[1][1])[:12]
    print("loop callbacks / collections over 5 ms of CPU (times, total ms): "
          + (", ".join(f"{k} {n}x {ms} ms" for k, (n, ms) in slow) or "none"), flush=True)


async def soak(args: argparse.Namespace, root: Path, cluster: PrivateCluster) -> None:
    """Calls arriving at --rate for --soak minutes, ending as they do in the mix: the daemon's
    RSS each minute, per active call, and its growth per call ended once the load is steady."""
    if args.ramp is None:
        args.ramp = max(1, round(args.soak / 3))
    work = root / "soak"
    async with running("daemon", work, args, cluster) as run:
        pid, ctl = run.proc.pid, run.ctl
        await set_endpoints(ctl)
        rss0, log0 = rss_kb(pid, "VmRSS"), run.log.stat().st_size
        start = time.monotonic()
        duration = args.soak * 60.0
        calls: set[asyncio.Task[None]] = set()
        started = ended = 0
        steady: list[tuple[float, float]] = []  # (calls ended, RSS KB) after the ramp
        probes = list[dict[str, Any]]()

        def done(task: asyncio.Task[None]) -> None:
            nonlocal ended
            calls.discard(task)
            ended += 1

        async def arrivals() -> None:
            nonlocal started
            while (at := started / args.rate) < duration:
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                task = asyncio.create_task(one_call(ctl, started, args.speed))
                task.add_done_callback(done)
                calls.add(task)
                started += 1

        print(f"soak: {args.rate:g} arrivals/s for {args.soak:g} min; daemon RSS {rss0 / 1024:.1f} "
              "MB at the start", flush=True)
        print(" min  started   ended  active  rss MB  KB/active  sim MB", flush=True)
        if args.probe:
            print(PROBE_HEADER, flush=True)
        feeder = asyncio.create_task(arrivals())
        minute = 0
        while not feeder.done() or calls:
            minute += 1
            await asyncio.sleep(max(0.0, start + 60.0 * minute - time.monotonic()))
            rss, active = rss_kb(pid, "VmRSS"), started - ended
            per = (rss - rss0) / active if active else 0.0
            print(f"{minute:4} {started:8} {ended:7} {active:7} {rss / 1024:7.1f} {per:10.1f} "
                  f"{rss_kb(run.sim_pid, 'VmRSS') / 1024:7.1f}", flush=True)
            if args.probe:
                probes.append(await take_probe(run, work, len(probes) + 1))
                print(probe_row(probes[-1]), flush=True)
            if minute >= args.ramp and not feeder.done():
                steady.append((ended, rss))
                if args.trace and len(steady) == 1:
                    run.proc.send_signal(signal.SIGUSR1)  # tracing from the ramp's end
        await feeder
        stuck = await quiet(pid, ctl, 30.0 / args.speed)
        if args.trace:
            run.proc.send_signal(signal.SIGUSR1)  # snapshot-2.bin: every call ended
            await appeared(work / "snapshot-2.bin", 1.0)
            print_growth(work)
        rss_end = rss_kb(pid, "VmRSS")
        if args.probe:
            (work / "trim").touch()
            last = await take_probe(run, work, len(probes) + 1)
            print(probe_row(last))
            print_probe_growth(probes[min(args.ramp, len(probes)) - 1], last)
        growth = slope(steady) if len(steady) > 1 else 0.0
        grown = rss_end - rss0
        print(f"after the last call: RSS {rss_end / 1024:.1f} MB ({grown / 1024:+.1f} MB over "
              f"the start, {grown * 1024 / max(1, ended):.0f} B per call ended); "
              f"after the warm-up (minute {args.ramp} on): {growth * 1024:.0f} B RSS per call "
              f"ended; "
              f"peak {rss_kb(pid, 'VmHWM') / 1024:.1f} MB; stuck {stuck}; warnings "
              f"{warnings(run.log, log0)}", flush=True)


async def bench(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="verbatim-load-"))
    os.chmod(root, 0o711)  # noqa: S103 - the postgres user must reach its data folder
    sizes = [*args.calls, *([5000] if args.big else [])]
    results: list[Figures] = []
    with PrivateCluster(root / "pg", fsync=False) as cluster:
        await migrate(cluster.dsn())
        if args.soak:
            await soak(args, root, cluster)
            shutil.rmtree(root, ignore_errors=True)
            return
        print(HEADER, flush=True)
        for n in sizes:
            for kind in args.recorders:
                results.append(await run_one(kind, n, args, root, cluster))
                print(results[-1].row(), flush=True)
                print(f"    p99 ms by event type: {results[-1].slowest()}", flush=True)
                print(f"    rows written per call: {results[-1].writes()}", flush=True)
                print(f"    CPU per call by thread: {results[-1].threads()}", flush=True)
                if kind == "daemon":
                    print(f"    the daemon's own reaction: {results[-1].reacted()}", flush=True)
            print_kinds([r for r in results if r.calls == n])
    print("\nper call, daemon / minimal:")
    for n in sizes:
        d = next((r for r in results if r.calls == n and r.recorder == "daemon"), None)
        m = next((r for r in results if r.calls == n and r.recorder == "minimal"), None)
        if d and m and m.cpu_ms:
            print(f"  N={n}: CPU {d.cpu_ms / m.cpu_ms:.1f}x, CPU + PostgreSQL "
                  f"{(d.cpu_ms + d.pg_cpu_ms) / (m.cpu_ms + m.pg_cpu_ms):.1f}x, "
                  f"ARI requests {d.requests / max(1, m.requests):.1f}x")
    for kind in args.recorders:
        rows = [r for r in results if r.recorder == kind]
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            print(f"{kind} growth N={a.calls}->{b.calls}: CPU/call "
                  f"{(b.cpu_ms / b.calls) / max(1e-9, a.cpu_ms / a.calls):.2f}x, PostgreSQL/call "
                  f"{(b.pg_cpu_ms / b.calls) / max(1e-9, a.pg_cpu_ms / a.calls):.2f}x, p99 "
                  f"{statistics.quantiles(b.latency_ms, n=100)[98]:.1f} ms vs "
                  f"{statistics.quantiles(a.latency_ms, n=100)[98]:.1f} ms, peak RSS "
                  f"{b.rss_peak_kb / max(1, a.rss_peak_kb):.2f}x")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--big", action="store_true", help="also N = 5,000")
    p.add_argument("--rate", type=float, default=200.0, help="arrivals per real second")
    p.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second")
    p.add_argument("--core", type=int, default=0, help="the core the recorder is pinned to")
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                   help="instead: the daemon under a steady load for MINUTES (use --rate 10)")
    p.add_argument("--trace", action="store_true",
                   help="soak: the daemon under tracemalloc, print what grew after the ramp; "
                   "--calls: print the daemon's loop callbacks and collections over 5 ms")
    p.add_argument("--probe", action="store_true",
                   help="soak: each minute, what holds the daemon's memory (bench.traced_daemon)")
    p.add_argument("--ramp", type=int, default=None,
                   help="soak: minutes of warm-up, not in the growth figure (default: a third "
                   "of the soak: the calls' own ramp, then the caches and pools filling)")
    p.add_argument("--recorders", nargs="+", default=["daemon", "minimal"],
                   choices=["daemon", "minimal"])
    asyncio.run(bench(p.parse_args()))


if __name__ == "__main__":
    main()
