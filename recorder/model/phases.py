"""The call's phase: every change goes through `transition`, checked against the table.

Stasis mode, as a connected call passes through it:
    consent → dialing → [callee_consent →] recording_pending → connecting → bridged
    → ending → ended
with the shortcuts a call can take (no recording due: dialing → ... → connecting; a hang-up or a
failed dial in any phase: → ending). Hook mode: following → ending → ended. A change the table
does not have is a logged error (`call.phase_illegal`), never a silent state; it is still made,
so a call is never stuck in a phase its events have left.
"""

from __future__ import annotations

from typing import Final

from recorder.model.flow import Step
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
    Phase,
)

# phase -> the phases it may change to
ALLOWED: Final[dict[Phase, frozenset[Phase]]] = {
    CONSENT: frozenset({DIALING, ENDING}),
    DIALING: frozenset({RECORDING_PENDING, CALLEE_CONSENT, ENDING}),
    CALLEE_CONSENT: frozenset({RECORDING_PENDING, ENDING}),
    RECORDING_PENDING: frozenset({CONNECTING, CALLEE_CONSENT, ENDING}),  # (the answer's prompts)
    CONNECTING: frozenset({BRIDGED, ENDING}),
    BRIDGED: frozenset({ENDING}),
    FOLLOWING: frozenset({ENDING}),
    ENDING: frozenset({ENDED}),
    ENDED: frozenset(),
}


def transition(s: Step, to: Phase) -> None:
    """Move the call to phase `to` (nothing if it is there already)."""
    call = s.call
    was = call.phase
    if to == was:
        return
    if to not in ALLOWED.get(was, frozenset()):
        s.log("call.phase_illegal", "error", was=was, to=to)
    call.phase = to
    s.log("call.phase", "debug", was=was, to=to)
