"""The call model's state as database rows (recorder.db.rows), written as one snapshot."""

from __future__ import annotations

from typing import Any

from recorder.db.rows import CallRow, LegRow, RecordingRow
from recorder.model.snapshot import encode
from recorder.model.state import Call


def final_snapshot(call: Call) -> dict[str, Any]:
    """An ended call's last state, kept for its page (recorder.web.timeline reads the coverage
    proof's intervals from it); never adopted again. The digits its parties keyed are not kept:
    a card number may have been typed."""
    data = encode(call)
    data.update(dtmf={}, prompts={}, hook_sessions={})
    return data


def rows_of(call: Call) -> tuple[CallRow, tuple[LegRow, ...], tuple[RecordingRow, ...]]:
    call_row = CallRow(
        call_id=call.call_id,
        asterisk_id=call.asterisk_id,
        direction=call.direction,
        caller_number=call.caller_number,
        caller_e164=call.caller_e164,
        callee_number=call.callee_number,
        callee_e164=call.callee_e164,
        extension=call.extension,
        department=call.department,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        outcome=call.outcome if call.status == "ended" else None,
        status=call.status,
        state=encode(call) if call.status != "ended" else final_snapshot(call),
        recorded=call.record if call.decision is not None else None,
        retention_class=call.decision.retention if call.decision else None,
        decided_by=", ".join(call.decision.decided_by if call.decision else ()) or None,
        linked_calls=list(call.linked_calls) or None,
    )
    legs = tuple(
        LegRow(
            asterisk_id=call.asterisk_id,
            channel_id=leg.channel_id,
            call_id=call.call_id,
            channel_name=leg.channel_name,
            role=leg.role,
            caller_name=leg.caller_name or None,
            caller_number=leg.caller_number or None,
            started_at=leg.started_at,
            answered_at=leg.answered_at,
            ended_at=leg.ended_at,
            hangup_cause=leg.hangup_cause,
            outcome=leg.outcome,
            talked_ms=leg.talked_ms,
            covered_ms=leg.covered_ms,
            held_ms=leg.held_ms,
        )
        for leg in call.legs.values()
    )
    recordings = tuple(
        RecordingRow(
            asterisk_id=call.asterisk_id,
            name=rec.name,
            call_id=call.call_id,
            segment=rec.segment,
            target=rec.target,
            format=rec.format,
            status=rec.status,
            requested_at=rec.requested_at,
            started_at=rec.started_at,
            ended_at=rec.ended_at,
            path=rec.path,
            duration_ms=rec.duration_ms,
            bytes=rec.bytes,
            sha256=rec.sha256,
            error=rec.error,
            legs=list(rec.legs) or None,
        )
        for rec in call.recordings.values()
    )
    return call_row, legs, recordings
