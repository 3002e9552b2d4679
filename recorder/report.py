"""`verbatim calls`: what ops staff read to see that calls are recorded."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from recorder.config import Config
from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, LegRow, RecordingRow


def _t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def format_calls(rows: list[tuple[CallRow, list[LegRow], list[RecordingRow]]]) -> str:
    lines = [
        f"{'call_id':<26} {'started (UTC)':<19} {'dir':<8} {'from':<14} {'to':<14} "
        f"{'ext':<6} {'department':<12} {'outcome':<10} legs  recorded"
    ]
    for call, legs, recs in rows:
        seconds = sum((r.duration_ms or 0) for r in recs) / 1000
        lines.append(
            f"{call.call_id:<26} {_t(call.started_at):<19} {call.direction:<8} "
            f"{(call.caller_e164 or call.caller_number or '-'):<14} "
            f"{(call.callee_e164 or call.callee_number or '-'):<14} {(call.extension or '-'):<6} "
            f"{(call.department or '-'):<12} {(call.outcome or call.status):<10} "
            f"{len(legs):>4}  {seconds:7.2f}s{' (fallback)' if call.fallback else ''}"
        )
        for rec in recs:
            lines.append(
                f"    {rec.name:<30} {rec.status:<9} {(rec.duration_ms or 0) / 1000:7.2f}s "
                f"{rec.path or rec.error or ''}"
            )
    return "\n".join(lines)


def format_story(call: CallRow, events: list[EventRow]) -> str:
    lines = [f"call {call.call_id} ({call.direction}, {call.outcome or call.status})"]
    for e in events:
        detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
        who = e.channel_id or e.recording_name or ""
        lines.append(f"  {e.at:%H:%M:%S.%f}"[:-3] + f"  {e.kind:<22} {who} {detail}".rstrip())
    return "\n".join(lines)


async def print_calls(config: Config, limit: int, call_id: str | None, as_json: bool) -> int:
    repo = await Repository.connect(config.database.dsn.reveal(), min_size=1, max_size=1)
    try:
        if call_id:
            call = await repo.call(call_id)
            if call is None:
                print(f"no call {call_id!r}")
                return 1
            calls = [call]
        else:
            calls = await repo.recent_calls(limit)
        rows = [(c, await repo.legs(c.call_id), await repo.recordings(c.call_id)) for c in calls]
        if as_json:
            out = [
                {
                    **asdict(c),
                    "state": None,
                    "legs": [asdict(leg) for leg in legs],
                    "recordings": [asdict(r) for r in recs],
                }
                for c, legs, recs in rows
            ]
            print(json.dumps(out, default=_json, indent=2))
        else:
            print(format_calls(rows))
            if call_id:
                print(format_story(calls[0], await repo.events(call_id)))
        return 0
    finally:
        await repo.close()
