"""Each event kind the call model records, as the sentence the call page shows (a table), and
a check that no kind the model records is left without one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from recorder.model.controls import EVENT_KINDS
from recorder.web.words import SENTENCES, Names, sentence

NAMES = Names(
    parties={"c1": "the caller +14155550100", "l2": "201", "l5": "300 (transfer target)"},
    segments={"r-s1": "segment 1", "r-s2": "segment 2 (the caller's side)"},
)
DECISION = {"action": "never", "record": False, "reason": "never by rule 'Partner' at extension",
            "decided_by": ["rule 'Partner'"], "retention": "standard", "then": None,
            "route_to": None, "do_not_record": None}  # fmt: skip

TABLE: list[tuple[str, str | None, dict[str, Any], str]] = [
    ("call.started", "c1", {"direction": "inbound", "target": "201"}, "Inbound call for 201"),
    ("call.started", "c1", {"direction": "inbound", "target": "201", "mode": "hook"},
     "Inbound call for 201 (the dialplan keeps the call: each party is recorded on its own)"),
    ("call.answered", "l2", {}, "201 answered"),
    ("call.bridged", "l2", {"bridge": "b"}, "201 connected to the conversation"),
    ("call.department", "c1", {"department": "Intake"}, "Department: Intake"),
    ("call.tagged", None, {"tag": "matter:1", "by": "api:crm"},
     "Tagged matter:1 through the API (crm)"),
    ("call.ended", None, {"outcome": "no_answer"}, "The call ended (no answer)"),
    ("leg.found", "l5", {"channel": "PJSIP/300-1"}, "300 (transfer target) joined on the "
     "dialplan's call"),
    ("leg.hold", "l2", {"musicclass": None}, "201 put the call on hold"),
    ("leg.unhold", "l2", {}, "201 took the call off hold"),
    ("leg.hangup", "c1", {"cause": None, "role": "caller"}, "The caller +14155550100 hung up"),
    ("leg.hangup", "l2", {"cause": 0, "role": "callee", "unseen": True},
     "201 was found gone when the recorder reconnected"),
    ("dial.started", "l2", {"target": "201"}, "Dialled 201"),
    ("dial.started", "l5", {"caller": "c1", "dialstring": "300"},
     "Dialled 300 (transfer target) for the caller +14155550100"),
    ("dial.failed", "l2", {"dialstatus": "BUSY"}, "201 was busy"),
    ("dial.failed", "l2", {"dialstatus": "WEIRD"}, "201 was not reached (WEIRD)"),
    ("dial.ring_group", None, {"group": "600", "members": ["201", "202"]},
     "Ring group 600 rang 201, 202"),
    ("dial.forwarded", "l2", {"forward": "+12125550100", "followed_by": "l5"},
     "201 forwarded the call to +12125550100"),
    ("transfer.blind", "l2", {"exten": "300", "result": "Success", "context": "x"},
     "Transferred by 201 to 300"),
    ("transfer.blind", "l2", {"exten": "300", "result": "Fail"},
     "Transferred by 201 to 300 (it failed: Fail)"),
    ("transfer.attended", "l2", {"linked_call": "20261206T1-ab", "result": "Success"},
     "Attended transfer by 201, joining this call with call 20261206T1-ab"),
    ("transfer.dialing", "x", {"exten": "300"}, "The transfer dials 300"),
    ("transfer.replaced", "x", {"replaces": "l2", "role": "callee"},
     "The transfer's connection took the place of 201"),
    ("transfer.answered", "l5", {}, "300 (transfer target) answered the transfer"),
    ("transfer.failed", "l5", {"dialstatus": "NOANSWER"},
     "The transfer to 300 (transfer target) failed (NOANSWER)"),
    ("consent.decision", "c1", DECISION,
     "Policy decided: do not record (never): never by rule 'Partner' at extension"),
    ("consent.decision", "l5", {**DECISION, "why": "transfer"},
     "Policy decided after the transfer: do not record (never): never by rule 'Partner' at "
     "extension"),
    ("consent.finished", "c1", {"mode": "all-party", "party": "caller", "dtmf": None},
     "The caller +14155550100 heard the all-party announcement to the end"),
    ("consent.played", "c1", {"media": "sound:verbatim/consent"},
     "The caller +14155550100 heard the announcement to the end"),
    ("consent.interrupted", "c1", {"mode": "all-party", "dtmf": "9"},
     "The caller +14155550100: the all-party announcement was interrupted by key 9"),
    ("consent.failed", "l2", {"media": "sound:x", "error": "file not found"},
     "The announcement to 201 could not be played (file not found)"),
    ("consent.not_announced", "l5", {"prompts": ["consent-all-party-en"]},
     "300 (transfer target) joined without hearing the announcement due "
     "(consent-all-party-en)"),
    ("consent.not_announced", "l5", {"party": "callee"},
     "300 (transfer target) joined without hearing the announcement due"),
    ("consent.recording_not_started", "l5", {"reason": "the announcement due was not played"},
     "Recording of 300 (transfer target) not started: the announcement due was not played"),
    ("consent.recording_stopped", "l5", {"why": "transfer", "reason": "never by rule 'X'"},
     "Recording stopped by policy after the transfer: never by rule 'X'"),
    ("consent.recording_due", "l5", {"why": "forward"},
     "Policy records the call from now on after the forward: recording starts once the "
     "announcements due have played"),
    ("consent.opted_out", "c1", {"party": "caller"}, "The caller +14155550100 declined to be "
     "recorded"),
    ("recording.started", None, {"segment": 1}, "Recording segment 1 started"),
    ("recording.started", "c1", {"segment": 2},
     "Recording segment 2 started (the caller +14155550100)"),
    ("recording.finished", None, {"recording": "r-s1"}, "Segment 1 ended"),
    ("recording.filed", None, {"recording": "r-s2", "duration_ms": 8000},
     "Segment 2 (the caller's side) stored in the archive (8 s)"),
    ("recording.failed", None, {"recording": "r-s1", "error": "disk full"},
     "Segment 1 failed: disk full"),
    ("recording.gap", None, {"recording": "r-s1", "reason": "disk full"},
     "Segment 1 ended mid-call (disk full); a new segment was started at once"),
    ("recording.unavailable", None, {"attempts": 3},
     "No recording could be started (3 attempts)"),
    ("recording.missing", None, {"recording": "r-s1", "error": "404"},
     "Segment 1 is missing: 404"),
    ("recording.recovered", None, {"recording": "r-s1", "sha256": "ab"},
     "Segment 1 recovered after a restart"),
    ("recording.waiting", None, {"recording": "r-s1", "duration_ms": 4000, "error": "full"},
     "Segment 1 kept safe in Asterisk's spool until the archive has room again (4 s)"),
    ("recording.paused", "l2", {"by": "dtmf", "recordings": ["r-s1"]},
     "Recording paused by 201 with a keypad code"),
    ("recording.resumed", "l2", {"by": "agi"}, "Recording resumed by 201 with the phone's "
     "feature code"),
    ("recording.stopped", None, {"by": "api:crm"}, "Recording stopped through the API (crm)"),
    ("recording.on_demand", None, {"by": "api:crm"},
     "Recording started on demand through the API (crm)"),
    ("recording.pause_failed", None, {"recording": "r-s1"}, "Asterisk refused to pause "
     "segment 1"),
    ("recording.resume_failed", None, {"recording": "r-s1"}, "Asterisk refused to resume "
     "segment 1"),
    ("ari.request_failed", None, {"command": "Dial", "status": 409, "message": "not in app"},
     "Asterisk refused a request (Dial: 409 not in app)"),
    ("some.future_kind", None, {"x": None}, "Some: future kind"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "channel", "detail", "expected"), TABLE)
def test_each_event_is_a_sentence(kind: str, channel: str | None, detail: dict[str, Any],
                                  expected: str) -> None:  # fmt: skip
    row = {"kind": kind, "channel_id": channel, "recording_name": None, "detail": detail}
    assert sentence(row, NAMES) == expected


def _recorded_kinds() -> set[str]:
    """Every kind the call model records (`s.record("kind", …)` in recorder/model), with the
    ones it builds: consent.<played>, the controls' kinds and their failures."""
    model = Path(__file__).resolve().parents[1] / "recorder" / "model"
    found: set[str] = set()
    for path in model.glob("*.py"):
        found |= set(re.findall(r's\.record\(\s*"([a-z_]+\.[a-z_]+)"', path.read_text()))
    found |= {"consent.finished", "consent.interrupted", *EVENT_KINDS.values(),
              "recording.pause_failed", "recording.resume_failed", "recording.recovered"}
    return found


def test_every_kind_the_model_records_has_a_sentence() -> None:
    kinds = _recorded_kinds()
    assert len(kinds) > 30, kinds
    assert kinds <= set(SENTENCES), sorted(kinds - set(SENTENCES))
    tested = {kind for kind, *_ in TABLE}
    assert set(SENTENCES) <= tested, sorted(set(SENTENCES) - tested)
