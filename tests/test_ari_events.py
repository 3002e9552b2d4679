"""Typed events at the edge: every event of every real capture parses; bad ones are named."""

from __future__ import annotations

import json
from typing import Any

import pytest
from arisim.replay import TRACE_DIR

from recorder.ari import events as ev


def trace_events() -> list[dict[str, Any]]:
    found = []
    for path in sorted(TRACE_DIR.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            item = json.loads(line)
            if item["kind"] == "event":
                found.append(item["event"])
    return found


def test_every_captured_event_parses() -> None:
    captured = trace_events()
    assert len(captured) > 500
    parsed = [ev.parse_event(e) for e in captured]
    kinds = {type(p).__name__ for p in parsed if p is not None}
    assert {"StasisStart", "Dial", "RecordingFinished", "ChannelEnteredBridge"} <= kinds


def test_timestamp_as_asterisk_writes_it() -> None:
    ts = ev.parse_timestamp("2026-11-25T18:26:35.399+0000")
    assert ts.isoformat() == "2026-11-25T18:26:35.399000+00:00"
    assert ev.parse_timestamp("2026-11-25T19:26:35.399+0100") == ts


CHANNEL = {
    "id": "1.2",
    "name": "PJSIP/200-1",
    "state": "Up",
    "caller": {"name": "", "number": ""},
    "connected": {"name": "", "number": ""},
    "dialplan": {
        "context": "x",
        "exten": "s",
        "priority": 1,
        "app_name": "Stasis",
        "app_data": "verbatim,inbound,200",
    },
}


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (
            {
                "type": "StasisStart",
                "timestamp": "2026-11-25T18:26:35.399+0000",
                "args": "x",
                "channel": CHANNEL,
            },
            "$.args",
        ),
        (
            {"type": "StasisStart", "timestamp": "yesterday", "args": [], "channel": CHANNEL},
            "$.timestamp",
        ),
        (
            {"type": "Dial", "timestamp": "2026-11-25T18:26:35.399+0000", "peer": CHANNEL},
            "$.dialstatus",
        ),
        (
            {
                "type": "ChannelDestroyed",
                "timestamp": "2026-11-25T18:26:35.399+0000",
                "cause": "16",
                "channel": CHANNEL,
            },
            "$.cause",
        ),
        (
            {
                "type": "StasisEnd",
                "timestamp": "2026-11-25T18:26:35.399+0000",
                "channel": {**CHANNEL, "id": 5},
            },
            "$.channel.id",
        ),
        ({"type": "NoSuchEvent", "timestamp": "2026-11-25T18:26:35.399+0000"}, "$.type"),
        ({"timestamp": "2026-11-25T18:26:35.399+0000"}, "$.type"),
        (["not", "an", "object"], "$"),
    ],
)
def test_malformed_events_name_the_field(raw: Any, where: str) -> None:
    with pytest.raises(ev.EventError) as info:
        ev.parse_event(raw)
    assert info.value.path == where


def test_ignored_types_are_none() -> None:
    raw = {"type": "ChannelVarset", "timestamp": "2026-11-25T18:26:35.399+0000"}
    assert ev.parse_event(raw) is None
