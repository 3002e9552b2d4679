"""Typed events at the edge: every event of every real capture parses; bad ones are named."""

from __future__ import annotations

import json
from datetime import UTC
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


def test_the_text_decodes_as_its_json_parses() -> None:
    """decode_event (the WebSocket's text, the daemon's path) agrees with parse_event."""
    captured = trace_events()
    assert [ev.decode_event(json.dumps(e)) for e in captured] == [
        ev.parse_event(e) for e in captured
    ]


def test_a_hang_up_requests_cause_is_a_q850_cause_or_none() -> None:
    """In the captures, ARI's DELETE gives ChannelHangupRequest cause 32 with soft: true, the
    AST_SOFTHANGUP flag (main/channel.c ast_softhangup), not a Q.850 cause: it is kept as none;
    a far end's hang-up (no `soft`) keeps its cause (16, 17...)."""
    requests = [e for e in trace_events() if e["type"] == "ChannelHangupRequest"]
    soft = [e for e in requests if e.get("soft")]
    assert soft and all(e["cause"] == 32 for e in soft)
    assert {ev.parse_event(e).cause for e in soft} == {None}  # type: ignore[union-attr]
    hard = [e for e in requests if not e.get("soft") and e.get("cause") is not None]
    assert hard and [ev.parse_event(e).cause for e in hard] == [  # type: ignore[union-attr]
        e["cause"] for e in hard]


def test_timestamp_as_asterisk_writes_it() -> None:
    ts = ev.parse_timestamp("2026-11-25T18:26:35.399+0000")
    assert ts.isoformat() == "2026-11-25T18:26:35.399000+00:00"
    assert ev.parse_timestamp("2026-11-25T19:26:35.399+0100") == ts
    assert ev.parse_timestamp(" 2026-11-25T19:26:35.399+0100\n") == ts
    assert ev.parse_timestamp("2026-11-25T18:26:35.399") == ts  # no offset: taken as UTC
    assert ev.parse_timestamp("2026-11-25T19:26:35.399+01:00").tzinfo is UTC


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
    with pytest.raises(ev.EventError) as decoded:
        ev.decode_event(json.dumps(raw))
    assert str(decoded.value) == str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"type": "StasisEnd", "timestamp": ', "?: $: not JSON: "),
        ("[1, 2]", "?: $: event is not a JSON object"),
        ('{"type": 7}', "?: $.type: missing or not a string"),
        (
            '{"type": "Dial", "timestamp": "2026-11-25T18:26:35.399+0000", "dialstatus": "",'
            ' "peer": {"id": "1.2", "name": "PJSIP/200-1"}}',
            "Dial: $.peer.state: missing",
        ),
        (
            '{"type": "RecordingFinished", "timestamp": "2026-11-25T18:26:35.399+0000",'
            ' "recording": {"name": "r", "format": "wav", "state": "done", "duration": true}}',
            "RecordingFinished: $.recording.duration: Expected `int | null`, got `bool`",
        ),
        (
            '{"type": "ChannelEnteredBridge", "timestamp": "2026-11-25T18:26:35.399+0000",'
            ' "bridge": {"id": "b", "channels": ["1.2", 3]}}',
            "ChannelEnteredBridge: $.bridge.channels[1]: Expected `str`, got `int`",
        ),
    ],
)
def test_bad_text_is_named(text: str, message: str) -> None:
    with pytest.raises(ev.EventError) as info:
        ev.decode_event(text)
    assert str(info.value).startswith(message)


def test_ignored_types_are_none() -> None:
    raw = {"type": "ChannelVarset", "timestamp": "2026-11-25T18:26:35.399+0000"}
    assert ev.parse_event(raw) is None
    assert ev.decode_event('{"type": "ChannelVarset", "variable": "X", "value": 5}') is None
