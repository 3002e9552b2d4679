"""The simulator's event bus: how its parts tell each other what happened.

A part publishes a fact ("this channel hung up", "this bridge emptied") as one of the messages
below; the parts that care subscribed to its type when they were built. Subscribers run at once,
in the order they subscribed (the Simulator builds its parts in a fixed order), so the ARI events
they send come out in Asterisk's order. Nothing here is ARI: these are the simulator's own
internal notices; ARI events go out through `World.emit`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .model import Bridge, Channel

M = TypeVar("M")


class Bus:
    def __init__(self) -> None:
        self._subscribers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, topic: type[M], handler: Callable[[M], None]) -> None:
        self._subscribers.setdefault(topic, []).append(handler)

    def publish(self, message: object) -> None:
        for handler in list(self._subscribers.get(type(message), ())):
            handler(message)


@dataclass(frozen=True)
class Render:
    """Virtual time is about to pass `until`, or a change is about to apply: whatever writes
    audio catches up to `until` first (sample-accurate files)."""

    until: float


@dataclass(frozen=True)
class MediaChanged:
    """A change applied: what each party sends and hears may differ now."""


@dataclass(frozen=True)
class HangupStarted:
    """`channel` is hanging up, still in its bridge: its control queue is flushed."""

    channel: Channel


@dataclass(frozen=True)
class ChannelHungUp:
    """`channel` left its bridge on hanging up, before its StasisEnd."""

    channel: Channel


@dataclass(frozen=True)
class ChannelGone:
    """`channel`'s ChannelDestroyed was published: its audiohooks are gone."""

    channel: Channel


@dataclass(frozen=True)
class BridgeEmptied:
    """The last party left `bridge` (not by a swap): its lonely Recorder is kicked out."""

    bridge: Bridge


@dataclass(frozen=True)
class LeftBridge:
    """`channel` left `bridge`, not by a swap (after `BridgeEmptied` if it was the last)."""

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True)
class BridgeDestroying:
    """`bridge` is being destroyed: its parties left, BridgeDestroyed comes next."""

    bridge: Bridge
