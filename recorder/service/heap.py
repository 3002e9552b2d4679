"""The daemon's heap: the cyclic collector set for live state that grows with the calls up, and
memory the C allocator holds free given back to the system.

Full collections: Python runs one when ten younger ones have run and the objects that survived
since the last one are a quarter of those it then kept. Start-up's objects are frozen out of
its sight (`settle`), so in an arrival burst the calls' own state is most of the heap and that
quarter is reached again each time it grows by a quarter: at 1,000 calls arriving at 200/s, 15
full collections of up to 77 ms of CPU each (1.2 s in all, 7 % of the burst's CPU), each a pause
every call waiting on the daemon sits through. Every 100 younger collections instead of 10
leaves one or two; cyclic garbage that reaches the oldest generation waits longer for it.

Young collections: Python's runs one at every 700 objects tracked more than freed. A step
leaves its call's new state, its commands and the rows staged for the journal alive until its
lane and the writer are done with them, a few loop turns later: at every 700 most of what the
collector walks is still in use, survives, and is walked again in the middle generation (at
1,000 calls arriving at 200/s, 380 young and 34 middle collections: 0.7-0.8 s of the loop's
CPU, 0.7 ms a call). Every 10,000 instead, most of it is gone by then: 10 young collections,
none older, 0.08-0.11 s (a young collection ~8 ms, once in every ~100 calls).

Trimming: glibc keeps memory freed inside its heap (call state, event bodies and rows freed
around longer-lived objects) for reuse and gives back only what lies at the heap's top; under
a steady load the free part creeps up for minutes (`bench/load.py --soak --probe`: 6 to 15 MB
over ten minutes with the memory in use flat). `malloc_trim(0)` returns the free pages.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

# Younger (generation 1) collections between two full ones: Python's default is 10.
FULL_COLLECTION_EVERY = 100

# Objects allocated (more than freed) between two young collections: Python's default is 700.
YOUNG_COLLECTION_EVERY = 10_000

# How often memory glibc holds free is given back.
TRIM_EVERY_S = 60.0


def settle() -> None:
    """Before the first call: what start-up loaded (modules, phone number metadata, the
    geocoder) lives as long as the process, so it is moved out of the collector's sight (full
    collections no longer walk it), and young and full collections are made rarer (see the
    module)."""
    gc.collect()
    gc.freeze()
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, middle, FULL_COLLECTION_EVERY)


@functools.cache  # find_library runs `ldconfig -p`: once per process, not at every trim
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def trim() -> bool:
    """Give the free memory of the C heap back to the system; False where that is not
    possible (no glibc) or nothing was given back."""
    malloc_trim = _malloc_trim()
    return malloc_trim is not None and bool(malloc_trim(0))


async def trim_periodically(every_s: float = TRIM_EVERY_S) -> None:
    """`trim` every `every_s`, on a thread (it walks the heap's free chunks: ~ms)."""
    if _malloc_trim() is None:
        return
    while True:
        await asyncio.sleep(every_s)
        await asyncio.to_thread(trim)
