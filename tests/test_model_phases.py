"""The phase table: every change of a call's phase goes through `transition`, and one the
table does not allow is a logged error (the change is still made: no call stuck)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recorder.model import commands as cmd
from recorder.model.flow import Step
from recorder.model.phases import ALLOWED, transition
from recorder.model.settings import CallSettings
from recorder.model.state import (
    BRIDGED,
    CALLEE_CONSENT,
    CONNECTING,
    CONSENT,
    DIALING,
    ENDED,
    ENDING,
    FOLLOWING,
    RECORDING_PENDING,
    Call,
    Phase,
)
from tests.harness import builders as b

PHASES = {CONSENT, DIALING, CALLEE_CONSENT, RECORDING_PENDING, CONNECTING, BRIDGED, FOLLOWING,
          ENDING, ENDED}


def step_in(phase: Phase) -> Step:
    call = Call(call_id="c1", asterisk_id=b.AST, direction="inbound", target="201",
                started_at=b.T0, caller_channel="ch1", bridge_id="c1-b1", phase=phase)
    return Step(call.copy(), b.T0, CallSettings(), stored=call)


def logs(s: Step) -> list[tuple[str, str]]:
    return [(c.event, c.level) for c in s.out if isinstance(c, cmd.Log)]


def test_the_table_names_every_phase_and_only_phases() -> None:
    assert set(ALLOWED) == PHASES
    assert all(targets <= PHASES for targets in ALLOWED.values())
    assert ALLOWED[ENDED] == frozenset()  # nothing follows the end


@pytest.mark.parametrize(("was", "to", "legal"), [
    (CONSENT, DIALING, True),
    (DIALING, CALLEE_CONSENT, True),
    (RECORDING_PENDING, CALLEE_CONSENT, True),
    (CONNECTING, BRIDGED, True),
    (FOLLOWING, ENDING, True),
    (ENDING, ENDED, True),
    (BRIDGED, DIALING, False),
    (ENDED, BRIDGED, False),
    (FOLLOWING, BRIDGED, False),
    (CONSENT, BRIDGED, False),
])  # fmt: skip
def test_a_change_is_made_and_an_illegal_one_is_an_error(was: Phase, to: Phase,
                                                        legal: bool) -> None:
    s = step_in(was)
    transition(s, to)
    assert s.call.phase == to and s.changed()
    expected = [] if legal else [("call.phase_illegal", "error")]
    assert [x for x in logs(s) if x[1] != "debug"] == expected
    assert ("call.phase", "debug") in logs(s)


def test_staying_in_a_phase_is_no_change() -> None:
    s = step_in(BRIDGED)
    transition(s, BRIDGED)
    assert logs(s) == [] and not s.changed()


def test_no_module_sets_the_phase_but_the_phase_module() -> None:
    model = Path(__file__).resolve().parents[1] / "recorder" / "model"
    setters = [p.name for p in model.glob("*.py")
               if re.search(r"\.phase\s*=[^=]", p.read_text()) and p.name != "phases.py"]
    assert setters == []
