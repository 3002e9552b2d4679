"""Database rows (calls, legs, recordings) with defaults, for the repository and journal tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recorder.db.rows import CallRow, LegRow, RecordingRow

T0 = datetime(2026, 11, 25, 19, 14, 25, 123456, tzinfo=UTC)

SHA = "ab" * 32


def call_row(call_id: str = "20261125T191425-3fa9c2d1", **kw: Any) -> CallRow:
    base: dict[str, Any] = dict(
        call_id=call_id, asterisk_id="pbx1", direction="inbound",
        caller_number="030 1234567", caller_e164="+49301234567",
        callee_number="214", callee_e164=None, extension="214", department="litigation",
        started_at=T0, answered_at=T0 + timedelta(seconds=3), ended_at=None,
        outcome=None, status="active",
        state={"legs": ["a"], "n": 1, "nested": {"ok": True}},
    )  # fmt: skip
    base.update(kw)
    return CallRow(**base)


def leg_row(channel_id: str, call_id: str = "20261125T191425-3fa9c2d1", **kw: Any) -> LegRow:
    base: dict[str, Any] = dict(
        asterisk_id="pbx1", channel_id=channel_id, call_id=call_id,
        channel_name=f"PJSIP/{channel_id}-0001", role="caller", caller_name="Ms. Client",
        caller_number="+49301234567", started_at=T0, answered_at=None, ended_at=None,
        hangup_cause=None, outcome=None,
    )  # fmt: skip
    base.update(kw)
    return LegRow(**base)


def rec_row(
    name: str = "20261125T191425-3fa9c2d1-s1", status: str = "requested", **kw: Any
) -> RecordingRow:
    base: dict[str, Any] = dict(
        asterisk_id="pbx1", name=name, call_id="20261125T191425-3fa9c2d1", segment=1,
        target="bridge:b1", format="wav", status=status, requested_at=T0,
    )  # fmt: skip
    if status == "filed":
        base.update(path=f"/archive/{name}.wav", sha256=SHA, bytes=1000, duration_ms=62)
    base.update(kw)
    return RecordingRow(**base)
