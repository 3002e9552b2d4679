"""Shared by the keeping tests (no tests here): ended calls with filed recordings (real files in
an archive), and a policy with retention classes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, RecordingRow
from recorder.policy.model import Length, Policy, RetentionClass, RetentionPolicy
from recorder.storage.archive import Archive

AST = "pbx1"
T0 = datetime(2024, 1, 10, 9, 0, tzinfo=UTC)


def policy(release_needs_two: bool = False, **classes: RetentionClass | Length | None) -> Policy:
    """Policy(standard=Length(years=2), ...): a Length is the audio's; default class standard."""
    made = {
        name: c if isinstance(c, RetentionClass) else RetentionClass(name, c)
        for name, c in classes.items()
    }
    return Policy(retention_policy=RetentionPolicy(MappingProxyType(made), release_needs_two))


async def seed_call(
    repo: Repository,
    archive: Path,
    call_id: str,
    *,
    started: datetime = T0,
    retention_class: str | None = "standard",
    segments: int = 1,
    asterisk_id: str = AST,
    **facts: str | None,
) -> list[Path]:
    """An ended, answered 2-minute call and its filed recordings; returns the files."""
    ended = started + timedelta(minutes=2)
    call = CallRow(
        call_id=call_id, asterisk_id=asterisk_id, direction="inbound",
        caller_number=facts.get("caller_e164"), caller_e164=facts.get("caller_e164"),
        callee_number=facts.get("extension"), callee_e164=None,
        extension=facts.get("extension"), department=facts.get("department"),
        started_at=started, answered_at=started, ended_at=ended, outcome="answered",
        status="ended", recorded=True, retention_class=retention_class,
        decided_by="rule 'Office hours'",
    )  # fmt: skip
    store = Archive(archive)
    files, rows = [], []
    for seg in range(1, segments + 1):
        name = f"{call_id}-s{seg}"
        path = store.target(call_id=call_id, name=name, started_at=started, fmt="wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        data = f"RIFF {call_id} segment {seg}".encode() * 40
        path.write_bytes(data)
        files.append(path)
        rows.append(RecordingRow(
            asterisk_id=asterisk_id, name=name, call_id=call_id, segment=seg,
            target="bridge:b1", format="wav", status="filed", requested_at=started,
            started_at=started, ended_at=ended, path=str(path), duration_ms=1000,
            bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        ))  # fmt: skip
    await repo.save_call(call, [], rows)
    await repo.add_events([EventRow(call_id, asterisk_id, started, "call.started")])
    return files
