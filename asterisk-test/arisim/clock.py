"""Virtual time for the simulator.

Manual mode (tests): time moves only through `advance`, which fires timers in time order and,
after each, lets the client react (`settle`) so its requests land at the right virtual time.
Auto mode (demo): virtual time follows the event loop's clock × speed; a task fires the timers.
Timestamps are formatted as Asterisk does ("2026-11-25T18:26:35.399+0000", ast_json_timeval).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

ClockMode = Literal["manual", "auto"]


def format_timestamp(epoch: float) -> str:
    """Asterisk's event/creationtime format: millisecond precision, "+0000" zone."""
    ms = round(epoch * 1000)
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}+0000"


class Timer:
    """A scheduled callback; `cancel()` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "due", "name", "seq")

    def __init__(self, due: float, seq: int, callback: Callable[[], None], name: str) -> None:
        self.due = due
        self.seq = seq
        self.callback = callback
        self.name = name
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.due, self.seq) < (other.due, other.seq)

    def __repr__(self) -> str:
        return f"Timer({self.name!r} at {self.due:.3f}{' cancelled' if self.cancelled else ''})"


class VirtualClock:
    """Timers on virtual seconds since the simulator started (`now()`), plus an epoch origin."""

    def __init__(
        self, mode: ClockMode = "manual", speed: float = 1.0, start_epoch: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.mode: ClockMode = mode
        self.speed = speed
        self.start_epoch = time.time() if start_epoch is None else start_epoch
        self._now = 0.0
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._loop_t0: float | None = None
        self._offset = 0.0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._pump_scheduled = False
        self._advance_lock: asyncio.Lock | None = None
        # Set by the simulator: runs a fired timer (wrapping it in an action), and waits for
        # the client to react.
        self.runner: Callable[[Timer], None] = lambda t: t.callback()
        self.settle: Callable[[], Awaitable[None]] = _no_settle
        self.before_time_change: Callable[[float], None] = lambda t: None

    # ------------------------------------------------------------------ reading
    def now(self) -> float:
        if self.mode == "auto" and self._loop_t0 is not None:
            loop_now = asyncio.get_running_loop().time()
            self._now = max(self._now, (loop_now - self._loop_t0) * self.speed + self._offset)
        return self._now

    def epoch(self) -> float:
        return self.start_epoch + self.now()

    def timestamp(self) -> str:
        return format_timestamp(self.epoch())

    def cancel_all(self) -> None:
        """Every timer dropped (the process they belonged to is gone)."""
        for timer in self._heap:
            timer.cancel()
        self._heap.clear()

    def pending(self) -> list[Timer]:
        return sorted(t for t in self._heap if not t.cancelled)

    # --------------------------------------------------------------- scheduling
    def call_later(self, delay: float, callback: Callable[[], None], name: str = "") -> Timer:
        return self.call_at(self.now() + max(0.0, delay), callback, name)

    def call_at(self, due: float, callback: Callable[[], None], name: str = "") -> Timer:
        timer = Timer(due, next(self._seq), callback, name or getattr(callback, "__name__", ""))
        heapq.heappush(self._heap, timer)
        if due <= self._now:
            self._schedule_pump()
        if self._wake is not None:
            self._wake.set()
        return timer

    def _schedule_pump(self) -> None:
        """Due-now timers run soon even in manual mode (outside `advance`)."""
        if self._pump_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._pump_scheduled = True
        loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        self.run_due(self.now())

    def run_due(self, upto: float) -> int:
        """Fire every timer due at or before `upto` (without moving time past `now`)."""
        fired = 0
        while self._heap and self._heap[0].due <= upto:
            timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            fired += 1
            self.runner(timer)
        return fired

    def _pop_next(self, upto: float) -> Timer | None:
        while self._heap and self._heap[0].due <= upto:
            timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                return timer
        return None

    # ------------------------------------------------------------------- manual
    async def advance(self, seconds: float) -> float:
        """Move virtual time forward, firing timers in order and settling after each."""
        if seconds < 0:
            raise ValueError("cannot go back in time")
        if self._advance_lock is None:
            self._advance_lock = asyncio.Lock()
        async with self._advance_lock:
            target = self.now() + seconds
            await self.settle()
            while True:
                timer = self._pop_next(target)
                if timer is None:
                    break
                if timer.due > self._now:
                    self.before_time_change(timer.due)
                    self._set_now(timer.due)
                self.runner(timer)
                await self.settle()
            self.before_time_change(target)
            self._set_now(target)
            await self.settle()
            return self._now

    def _set_now(self, t: float) -> None:
        if self.mode == "auto" and self._loop_t0 is not None:
            self._offset += t - self.now()
        self._now = max(self._now, t)

    # --------------------------------------------------------------------- auto
    def start(self) -> None:
        """Start following real time (auto mode); no-op in manual mode."""
        if self.mode != "auto" or self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop_t0 = loop.time()
        self._offset = self._now
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._auto_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _auto_loop(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            now = self.now()
            self.run_due(now)
            nxt = self.pending()
            delay = 0.2 if not nxt else min(0.2, max(0.0, (nxt[0].due - now) / self.speed))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self.before_time_change(self.now())


async def _no_settle() -> None:
    await asyncio.sleep(0)
