"""Rows the daemon writes: the contract between the call model and the database.

recorder.db.mapping turns the call model's data (its calls, events and gaps) into these rows;
the writer stages them and the repository upserts them. A row is never changed once made (a
changed row is a new one: dataclasses.replace), but the classes are not frozen: a frozen
dataclass sets each field through object.__setattr__, five times the cost of making a row,
and a call's rows are made at every write of it (issue 15). Keeping the rows plain (no asyncpg
types) lets the schema change in one place, never in the model.
Times are timezone-aware UTC datetimes. `asterisk_id` is the Asterisk server's entity id:
channel ids and recording names are unique only per server, and several offices share a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

# Call.status: 'active' while the daemon handles it, 'ended' once every leg and recording is closed.
# Call.outcome: None while in progress, then one of OUTCOMES.
OUTCOMES = (
    "answered",
    "busy",
    "no_answer",
    "abandoned",
    "failed",
    "rejected",
    "interrupted",
    "unknown",
)
LEG_OUTCOMES = (*OUTCOMES[:-1], "cancelled", "hangup", "forwarded")
# Recording.status: requested (name stored, request not yet confirmed) → recording → finished
# (Asterisk closed the file) → filed (in the archive with its hash). Or failed / missing.
RECORDING_STATUSES = ("requested", "recording", "finished", "filed", "failed", "missing")


@dataclass
class CallRow:
    call_id: str
    asterisk_id: str
    direction: str  # inbound | outbound | internal
    caller_number: str | None  # as presented / dialled
    caller_e164: str | None
    callee_number: str | None
    callee_e164: str | None
    extension: str | None  # the firm's extension on the call
    department: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    status: str  # active | ended
    fallback: bool = False  # recorded by the dialplan's MixMonitor fallback, not by the app
    # the call model's snapshot, for adoption after a crash (msgspec.Raw: already JSON)
    state: dict[str, Any] | msgspec.Raw | None = None
    recorded: bool | None = None  # what recording policy decided (False: metadata only)
    retention_class: str | None = None  # from the deciding rule, for retention (later)
    decided_by: str | None = None  # the rule(s) that decided, e.g. "rule 'Litigation'"
    linked_calls: list[str] | None = None  # joined by an attended transfer: one case


@dataclass
class LegRow:
    asterisk_id: str
    channel_id: str
    call_id: str
    channel_name: str
    role: str  # caller | callee
    caller_name: str | None
    caller_number: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    hangup_cause: int | None
    outcome: str | None
    talked_ms: int | None = None  # the coverage proof, once the call has ended
    covered_ms: int | None = None
    held_ms: int | None = None


@dataclass
class RecordingRow:
    asterisk_id: str
    name: str
    call_id: str
    segment: int
    target: str  # e.g. "bridge:<id>"
    format: str
    status: str
    requested_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    path: str | None = None  # in the archive, once filed
    duration_ms: int | None = None  # measured from the audio, not from ARI's whole seconds
    bytes: int | None = None
    sha256: str | None = None
    error: str | None = None
    fallback: bool = False
    legs: list[str] | None = None  # channel ids present in the bridge during this segment


@dataclass
class EventRow:
    call_id: str
    asterisk_id: str
    at: datetime
    kind: str  # e.g. consent.played, recording.started, recording.gap, leg.hangup
    channel_id: str | None = None
    recording_name: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class GapRow:
    """An interval a leg talked that no recording holds (the coverage proof), flagged for ops."""

    call_id: str
    asterisk_id: str
    channel_id: str
    starts_at: datetime
    ends_at: datetime
    duration_ms: int
    reason: str


@dataclass
class CallRows:
    """One snapshot of a call as rows, upserted whole: a later one repairs an earlier that failed
    (what the writer stages and journals for a model's SaveCall)."""

    call_id: str
    call: CallRow
    legs: tuple[LegRow, ...]
    recordings: tuple[RecordingRow, ...]
