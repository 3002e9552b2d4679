"""The call model's data as database rows (recorder.db.rows): a call's state as one snapshot
(its call, leg and recording rows), its events and its coverage gaps. The model never sees a row;
the daemon maps what it hands over as it stages it (recorder.service.daemon)."""

from __future__ import annotations

from typing import Any

import msgspec

from recorder.db.rows import CallRow, CallRows, EventRow, GapRow, LegRow, RecordingRow
from recorder.model.commands import CallEvent, SaveGaps
from recorder.model.snapshot import decode, encode
from recorder.model.state import Call

_JSON = msgspec.json.Encoder()


def final_snapshot(call: Call) -> dict[str, Any]:
    """An ended call's last state, kept for its page (recorder.web.timeline reads the coverage
    proof's intervals from it); never adopted again. The digits its parties keyed are not kept:
    a card number may have been typed."""
    data = encode(call)
    data.update(dtmf={}, prompts={})
    data["hook"]["sessions"] = {}
    return data


def call_state(call: Call) -> msgspec.Raw:
    """The call's snapshot as stored (`calls.state`) and journaled, already JSON: encoded once
    for both, without the builtins `encode` makes (a tenth of a step's cost, at every step)."""
    if call.status == "ended":
        return msgspec.Raw(_JSON.encode(final_snapshot(call)))
    return msgspec.Raw(_JSON.encode(call))


def revive(state: Any) -> CallRows:
    """A call's rows from its journaled snapshot (`call_state`, as read back): ValueError if it
    is not one."""
    return call_rows(decode(state))


def event_row(event: CallEvent) -> EventRow:
    return EventRow(event.call_id, event.asterisk_id, event.at, event.kind, event.channel_id,
                    event.recording_name, event.detail)


def gap_rows(save: SaveGaps) -> tuple[GapRow, ...]:
    return tuple(GapRow(save.call_id, save.asterisk_id, g.channel_id, g.start, g.end, g.ms,
                        g.reason) for g in save.gaps)


def call_rows(call: Call, state: msgspec.Raw | None = None) -> CallRows:
    """The call's rows; `state`: its `call_state`, when the caller has it already (without it,
    the snapshot as builtins)."""
    if state is None:
        state_value: dict[str, Any] | msgspec.Raw = (
            encode(call) if call.status != "ended" else final_snapshot(call))
    else:
        state_value = state
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
        state=state_value,
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
    return CallRows(call.call_id, call_row, legs, recordings)
