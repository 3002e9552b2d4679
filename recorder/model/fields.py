"""The call state's records (recorder.model.state) copied and compared fast: the reducer copies
the call it changes at every step and compares it with the one stored, the model's hottest path
(issue 15)."""

from __future__ import annotations

from dataclasses import fields
from typing import TypeVar

T = TypeVar("T")


class Fields:
    """Equality of two records of one class by their fields' values, as the dataclass's own
    `__eq__`, but compared as the instances' dicts: in C, and a value a copy shares with its
    original (most are) is equal by identity at once. Step.changed compares whole calls at
    every step (issue 15)."""

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__


def fresh(obj: T) -> T:
    """A shallow copy of a dataclass with its own lists and maps: the per-step copy is the
    model's hottest path (dataclasses.replace, re-running __init__ over 50 fields, was most of
    it, issue 15)."""
    cls = type(obj)
    names = _CONTAINERS.get(cls)
    if names is None:
        names = _CONTAINERS[cls] = tuple(
            f.name for f in fields(cls)  # type: ignore[arg-type]
            if f.default_factory in (list, dict))
    new = object.__new__(cls)
    values = obj.__dict__.copy()
    for name in names:
        values[name] = values[name].copy()
    new.__dict__ = values
    return new


_CONTAINERS: dict[type, tuple[str, ...]] = {}  # a dataclass's list and map fields
