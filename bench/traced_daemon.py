"""The daemon with memory and loop probes, for bench/load.py --soak --trace/--probe.

Run: python -m bench.traced_daemon DIR run -c verbatim.yaml (the daemon's own arguments after
DIR). The first SIGUSR1 starts tracing (not from the start: the daemon's imports under
tracemalloc take minutes); each SIGUSR1 dumps DIR/snapshot-N.bin (N = 1, 2, ...), for
`tracemalloc.Snapshot.load`: snapshot-2 against snapshot-1 is what was allocated in between and
is still held. Each SIGUSR2 writes DIR/probe-N.json: what holds the process's memory (see
`probe`; if DIR/trim exists, the last: frozen objects searched too, then memory glibc holds
free given back), without tracemalloc's cost. Loop callbacks and garbage collections over
SLOW_MS of CPU (the loop thread's: not the time another process had the core) are counted by
what ran, and written with each probe.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from recorder.cli.main import main as daemon_main
from recorder.common import loop
from recorder.service import heap

SLOW_MS = 5.0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.mallinfo2.restype = _Mallinfo2


def _kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            out[key] = int(rest.split()[0])
    return out


def _caches() -> dict[str, int]:
    """Sizes of the bounded caches that fill as distinct numbers and URLs arrive."""
    sizes: dict[str, int] = {}
    from recorder.common import numbers
    from recorder.policy import jurisdiction

    for name, fn in (("normalise", numbers.normalise), ("place_of", jurisdiction._place_of)):
        sizes[name] = fn.cache_info().currsize
    with_yarl = sys.modules.get("yarl._url")
    if with_yarl is not None:
        for name in dir(with_yarl):
            obj = getattr(with_yarl, name)
            if isinstance(obj, functools._lru_cache_wrapper):
                sizes["yarl." + name] = obj.cache_info().currsize
    return sizes


slow: Counter[str] = Counter()  # what ran longer than SLOW_MS -> times
slow_ms: Counter[str] = Counter()  # -> total ms
_gc_started = 0.0


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.thread_time()
        return
    ms = (time.thread_time() - _gc_started) * 1000
    if ms > SLOW_MS:
        key = f"gc generation {info['generation']}"
        slow[key] += 1
        slow_ms[key] += round(ms)


def _time_callbacks() -> None:
    """Handle._run timed: callbacks (a task's step is one) over SLOW_MS of CPU, by name."""
    run = asyncio.events.Handle._run

    def timed(self: asyncio.events.Handle) -> None:
        t = time.thread_time()
        run(self)
        ms = (time.thread_time() - t) * 1000
        if ms > SLOW_MS:
            key = _name(self._callback)  # type: ignore[attr-defined]
            slow[key] += 1
            slow_ms[key] += round(ms)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]


def _name(callback: Any) -> str:
    """A task's coroutine for a task's step (C tasks wrap it: the wrapper refers to the task),
    else the callback's own name."""
    for ref in [getattr(callback, "__self__", None), *gc.get_referents(callback)]:
        if isinstance(ref, asyncio.Task):
            return "task " + str(ref.get_coro().__qualname__)  # type: ignore[union-attr]
    return str(getattr(callback, "__qualname__", type(callback).__qualname__))


def _large(objects: list[Any], limit: int = 256 * 1024) -> list[str]:
    """Objects of `limit` bytes or more (their own size: a list's or dict's table, a str's
    text) among what the collector tracks and what those refer to."""
    found: dict[int, str] = {}
    for o in objects:
        for x in (o, *gc.get_referents(o)):
            if id(x) not in found and sys.getsizeof(x) >= limit:
                size = len(x) if hasattr(x, "__len__") else "-"
                found[id(x)] = (f"{type(x).__qualname__} {sys.getsizeof(x) // 1024} KB "
                                f"len {size} in {type(o).__qualname__}")
    return sorted(found.values())


def probe(trim: bool) -> dict[str, Any]:
    """RSS and its parts, glibc's heap (in use and free), pymalloc's blocks, the collector's
    objects by type, the caches' sizes, the slow callbacks; with `trim`, RSS again after
    malloc_trim(0) (what glibc held free but had not given back)."""
    rollup = _kb("/proc/self/smaps_rollup", ("Rss", "Anonymous", "Private_Dirty", "Shared_Clean",
                                             "Private_Clean"))
    mi = _libc.mallinfo2()
    objects = gc.get_objects()
    types = Counter(type(o).__qualname__ for o in objects)
    out: dict[str, Any] = {
        "smaps_rollup_kb": rollup,
        "malloc_kb": {"arena": mi.arena // 1024, "mmap": mi.hblkhd // 1024,
                      "in_use": mi.uordblks // 1024, "free": mi.fordblks // 1024},
        "pymalloc_blocks": sys.getallocatedblocks(),
        "gc_objects": len(objects),
        "gc_frozen": gc.get_freeze_count(),
        "types": dict(types.most_common(60)),
        "caches": _caches(),
        "threads": threading.active_count(),
        "large": _large(objects),
        "slow_ms": {k: [slow[k], slow_ms[k]] for k in slow},
    }
    del objects
    if trim:  # the last probe: start-up's frozen objects looked through too, then trimmed
        gc.unfreeze()
        out["large"] = _large(gc.get_objects())
        gc.freeze()
        t = time.perf_counter()
        heap.trim()
        out["trim_ms"] = round((time.perf_counter() - t) * 1000, 1)
        out["rss_after_trim_kb"] = _kb("/proc/self/status", ("VmRSS",))["VmRSS"]
    return out


def main() -> int:
    out = Path(sys.argv[1])
    taken = probes = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        if not tracemalloc.is_tracing():
            tracemalloc.start(8)
        part = out / f"snapshot-{taken}.part"
        tracemalloc.take_snapshot().dump(str(part))
        part.rename(out / f"snapshot-{taken}.bin")  # complete when it has its name

    def write_probe(_signum: int, _frame: FrameType | None) -> None:
        nonlocal probes
        probes += 1
        part = out / f"probe-{probes}.part"
        part.write_text(json.dumps(probe(trim=(out / "trim").exists())))
        part.rename(out / f"probe-{probes}.json")

    if every := os.environ.get("BENCH_FULL_COLLECTION_EVERY"):  # to compare: 10 is Python's
        heap.FULL_COLLECTION_EVERY = int(every)
    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGUSR2, write_probe)
    gc.callbacks.append(_on_gc)
    _time_callbacks()
    os.environ[loop.ENV] = "asyncio"  # the probes time asyncio's own Handle._run
    return daemon_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
