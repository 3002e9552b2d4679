"""The demo's time before the parties could talk, from a call's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recorder.db.rows import EventRow
from recorder.devtools.demo import talk_after

T0 = datetime(2026, 11, 25, 18, 30, tzinfo=UTC)


def events(*kinds_at: tuple[str, float]) -> list[EventRow]:
    return [EventRow("c1", "ast", T0 + timedelta(seconds=s), kind) for kind, s in kinds_at]


@pytest.mark.parametrize(
    ("rows", "seconds"),
    [
        (events(("call.started", 0), ("consent.finished", 6.49), ("call.bridged", 8.49)), 8.49),
        # bridged again after a transfer: the first bridge counts
        (events(("call.started", 1), ("call.bridged", 4), ("call.bridged", 20)), 3.0),
        (events(("call.started", 0), ("call.ended", 9)), None),  # never connected
        (events(("call.bridged", 3)), None),  # no start seen (an adopted call's rows)
        ([], None),
    ],
)
def test_talk_after(rows: list[EventRow], seconds: float | None) -> None:
    assert talk_after(rows) == seconds
