"""recorder.service.heap: the collector's settings at start and the C heap given back."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.service import heap


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_start_up_and_makes_collections_rarer(collector: None) -> None:
    _, middle, _ = gc.get_threshold()
    kept = [object() for _ in range(10)]  # start-up's: from now on out of the collector's sight
    assert any(o is kept for o in gc.get_objects())  # in its sight until then
    heap.settle()
    assert gc.get_threshold() == (heap.YOUNG_COLLECTION_EVERY, middle, heap.FULL_COLLECTION_EVERY)
    assert not any(o is kept for o in gc.get_objects())  # frozen


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_gives_back_memory_freed_below_the_heap_top() -> None:
    # 40 MB of 2-KB blocks (glibc's heap, not Python's small-object arenas), then all but one
    # in 64 freed: the survivors pin the heap's top, so free() alone gives nothing back.
    blocks = [bytes(2048) for _ in range(20_000)]
    kept = blocks[::64]
    del blocks
    before = _rss_kb()
    assert heap.trim()
    assert before - _rss_kb() > 20_000, "trim gave back less than half the freed 40 MB"
    assert len(kept) == 313
