"""The event loop the long-running commands (run, serve, demo) run on: uvloop's (libuv) by
default. The daemon's hot path is many small steps (an ARI event, a request, a journal append),
each a few loop iterations, socket reads and timers; on uvloop the loop's own share of them
costs a fraction of the stdlib loop's (bench/history.md, session 8). VERBATIM_EVENT_LOOP=asyncio
selects the stdlib loop (a tool that instruments asyncio's internals, or to rule the loop out
while chasing a bug)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

ENV = "VERBATIM_EVENT_LOOP"
DEFAULT = "uvloop"
_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": None,  # asyncio.Runner's default: the stdlib loop
}


class LoopChoiceError(ValueError):
    """VERBATIM_EVENT_LOOP names no loop this build has."""


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The chosen loop's factory (None: asyncio's default)."""
    choice = os.environ.get(ENV, DEFAULT)
    if choice not in _FACTORIES:
        raise LoopChoiceError(
            f"{ENV}={choice!r}: expected one of {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[choice]


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    try:
        factory = loop_factory()
    except LoopChoiceError:
        main.close()  # never awaited: no "coroutine was never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def name_of(loop: asyncio.AbstractEventLoop) -> str:
    """Which loop runs (the daemon's start line says it)."""
    return "uvloop" if isinstance(loop, uvloop.Loop) else "asyncio"
