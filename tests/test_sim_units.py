"""Units of the simulator: spec checks, audio helpers, virtual clock, dialplan helpers."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import pytest
from arisim.audio import WavWriter, tone_map, tone_samples, tones_per_second, wav_duration
from arisim.clock import VirtualClock, format_timestamp
from arisim.dialplan import Dialplan, parse_callerid, pattern_matches
from arisim.replay import TRACE_DIR, normalize_name
from arisim.spec import check_event, check_request, load_spec


def _trace_lines() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(TRACE_DIR.glob("*.jsonl")):
        out.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    return out


def test_every_captured_event_and_request_passes_the_spec() -> None:
    lines = _trace_lines()
    events = [d["event"] for d in lines if d["kind"] == "event"]
    assert len(events) > 400
    assert [p for e in events for p in check_event(e)] == []
    requests = [d for d in lines if d["kind"] == "request"]
    assert [check_request(r["method"], r["path"], r["params"]) for r in requests] == [
        None] * len(requests)


def test_check_request() -> None:
    assert check_request("POST", "/ari/channels/1.2/dial", {"caller": "x", "timeout": 20}) is None
    assert check_request("GET", "/channels/create", {}) is not None  # 405
    assert check_request("GET", "/nothing", {}) is not None
    assert "not declared" in (check_request("POST", "/channels/1/answer", {"x": 1}) or "")
    assert "required" in (check_request("POST", "/bridges/b/record", {"name": "n"}) or "")
    assert "not in" in (check_request("POST", "/bridges/b/record",
                                      {"name": "n", "format": "wav", "ifExists": "x"}) or "")
    assert "integer" in (check_request("POST", "/channels/1/dial", {"timeout": "soon"}) or "")
    assert "boolean" in (check_request("POST", "/bridges/b/record",
                                       {"name": "n", "format": "wav", "beep": "maybe"}) or "")
    assert check_request("POST", "/bridges/b/addChannel", {"channel": "a,b"}) is None
    assert check_request("GET", "/recordings/stored/a%2Fb/file", {}) is None


def test_check_event() -> None:
    channel = {"id": "1.1", "name": "PJSIP/a-00000000", "state": "Up", "protocol_id": "",
               "caller": {"name": "", "number": ""}, "connected": {"name": "", "number": ""},
               "accountcode": "", "creationtime": "2026-11-25T18:26:35.399+0000",
               "language": "en", "dialplan": {"context": "c", "exten": "s", "priority": 1,
                                              "app_name": "", "app_data": ""}}
    ok = {"type": "StasisEnd", "timestamp": "2026-11-25T18:26:35.399+0000",
          "application": "verbatim", "asterisk_id": "02:fc:00:00:00:01", "channel": channel}
    assert check_event(ok) == []
    assert check_event({**ok, "type": "Nope"}) != []
    no_id = {k: v for k, v in channel.items() if k != "id"}
    assert any("required" in p for p in check_event({**ok, "channel": no_id}))
    assert any("expected string" in p for p in check_event({**ok, "channel": {**channel,
                                                                                "id": None}}))
    assert any("undocumented" in p for p in check_event({**ok, "extra": 1}))
    assert any("Date" in p for p in check_event({**ok, "timestamp": "yesterday"}))
    assert any("not in" in p for p in check_event({**ok, "channel": {**channel, "state": "x"}}))
    assert load_spec().route("GET", "/channels/create").status == 405


def test_tones_and_wav_writer(tmp_path: Path) -> None:
    a = tone_samples([440], 0, 100)
    b = tone_samples([440], 100, 100)
    assert list(a + b) == list(tone_samples([440], 0, 200))  # phase continuous
    assert max(tone_samples([440, 700, 1000], 0, 8000)) <= 32767
    path = tmp_path / "x.wav"
    writer = WavWriter(path)
    assert wav_duration(path) == 0.0
    writer.write(tone_samples([440], 0, 8000))
    with wave.open(str(path)) as w:  # valid after each write, before close
        assert (w.getnframes(), w.getframerate(), w.getnchannels()) == (8000, 8000, 1)
    writer.write(tone_samples([440, 1000], 8000, 4000))
    writer.close()
    appended = WavWriter(path, append=True)
    appended.write(tone_samples([], 0, 4000))
    appended.close()
    assert wav_duration(path) == pytest.approx(2.0)
    assert tone_map(path, [440, 700, 1000], window_s=0.5) == [
        {440}, {440}, {440, 1000}, set()]
    assert tones_per_second(path, [440, 1000]) == [{440}, {440, 1000}]


def test_wav_writer_silence_added_later(tmp_path: Path) -> None:
    """--bench's silence: counted at once, in the file (zeros) at the next write or close."""
    path = tmp_path / "s.wav"
    writer = WavWriter(path)
    writer.add_silence(8000)
    assert writer.samples == 8000
    writer.write(tone_samples([440], 8000, 4000))
    writer.add_silence(4000)
    writer.close()
    assert wav_duration(path) == pytest.approx(2.0)
    assert tone_map(path, [440], window_s=0.5) == [set(), set(), {440}, set()]
    trimmed = WavWriter(path, append=True)
    trimmed.add_silence(8000)
    trimmed.truncate(12000)  # the silence trim at a recording's end
    trimmed.close()
    assert wav_duration(path) == pytest.approx(1.5)


def test_format_timestamp_and_clock() -> None:
    assert format_timestamp(1795631195.3994) == "2026-11-25T18:26:35.399+0000"
    clock = VirtualClock("manual", start_epoch=1795631195.0)
    fired: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: fired.append(("b", clock.now())))
    clock.call_later(1.0, lambda: fired.append(("a", clock.now())))
    t = clock.call_later(1.5, lambda: fired.append(("x", clock.now())))
    t.cancel()
    asyncio.run(clock.advance(3.0))
    assert fired == [("a", 1.0), ("b", 2.0)]
    assert clock.now() == 3.0 and clock.epoch() == 1795631198.0
    with pytest.raises(ValueError):
        asyncio.run(clock.advance(-1))


def test_dialplan_helpers() -> None:
    assert pattern_matches("_X.", "200") and not pattern_matches("_X.", "busy")
    assert pattern_matches("_2[0-4]X", "203") and not pattern_matches("_NXX", "100")
    dp = Dialplan()
    assert dp.lookup("targets", "busy") == [("Busy", "5")]
    assert dp.lookup("inbound-test", "100") == [("Stasis", "verbatim,inbound,100"),
                                               ("Hangup", "")]
    assert dp.lookup("nowhere", "1") is None
    assert parse_callerid('"Client" <+1 (415) 555-0100>') == ("Client", "+14155550100")
    assert parse_callerid("+14155550100") == ("", "+14155550100")
    assert parse_callerid("Reception") == ("Reception", "")
    assert normalize_name("Local/200@targets-00000028;1") == "Local/200@targets;1"
    assert normalize_name("Snoop/1795631216.97-00000002") == "Snoop/*"


@pytest.mark.parametrize(("expr", "value"), [
    ('"FAILED" = "FAILED"', "1"),
    ('"" = "RECORDING"', "0"),
    ('"SUCCESS" != "SUCCESS"', "0"),
    ('"FAILED" != "SUCCESS"', "1"),
    ("2 < 10", "1"),  # numbers compare as numbers
    ('"2" < "10"', "1"),
    ("b < a", "0"),  # words as strings
    ("1 & 0", "0"),
    ("x & y", "x"),
    ('"" | fallback', "fallback"),
    ('(1 = 1) & ("a" = "b")', "0"),
    ("", ""),
])
def test_dialplan_expressions(expr: str, value: str) -> None:
    from arisim.expr import evaluate

    assert evaluate(expr) == value


@pytest.mark.parametrize(("cond", "true"), [
    ("1", True), ("0", False), ("", False), (" ", False), ("00", False), ("yes", True),
])
def test_dialplan_conditions(cond: str, true: bool) -> None:
    from arisim.expr import is_true

    assert is_true(cond) is true


@pytest.mark.parametrize(("allowed", "text", "kept"), [
    ("0-9+", '"Client" +1 (415) 555-0100', "+14155550100"),
    ("0-9+", "", ""),
    ("a-c", "abcdef", "abc"),
])
def test_filter_function(allowed: str, text: str, kept: str) -> None:
    from arisim.pbx import filter_chars

    assert filter_chars(allowed, text) == kept


def test_extensions_conf_contexts_and_labels() -> None:
    from arisim.dialplan import parse_extensions_conf

    conf = parse_extensions_conf(
        "; a comment\n[in]\nexten => _X.,1,NoOp(a\\;b) ; trailing\n"
        " same => n,GotoIf($[\"${X}\" = \"1\"]?out)\n same => n(out),Hangup()\n"
        "exten => s,1,Set(A=1)\n[other]\nexten => 100,1,Dial(PJSIP/100,30)\n"
    )
    assert conf == {
        "in": [("_X.", [("NoOp", "a;b"), ("GotoIf", '$["${X}" = "1"]?out'), ("Hangup", "")],
                {"out": 3}),
               ("s", [("Set", "A=1")], {})],
        "other": [("100", [("Dial", "PJSIP/100,30")], {})],
    }
    d = Dialplan()
    d.load_conf("[in]\nexten => _X.,1,NoOp()\n same => n(end),Hangup()\n")
    assert d.priority_of("in", "201", "end") == 2 and d.priority_of("in", "201", "3") == 3
    assert d.priority_of("in", "201", "nowhere") is None
    for bad in ("exten => _X.,1,NoOp()", "[c]\ninclude => other", "[c]\nexten => s,2,NoOp()"):
        with pytest.raises(ValueError):
            parse_extensions_conf(bad)
