"""`verbatim calls`: what ops staff read to see that calls are recorded."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from recorder.config import Config
from recorder.db.repository import Repository
from recorder.db.rows import CallRow, EventRow, GapRow, LegRow, RecordingRow


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
        # The coverage proof's figure once the call has ended (hook mode's per-leg snoops
        # overlap, so their lengths do not add up); the files' lengths until then.
        covered = [leg.covered_ms for leg in legs if leg.covered_ms is not None]
        seconds = (max(covered) if covered else sum((r.duration_ms or 0) for r in recs)) / 1000
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


def format_story(call: CallRow, events: list[EventRow], legs: list[LegRow] | None = None,
                 recordings: list[RecordingRow] | None = None) -> str:
    """The call event by event: the kind (for grep) and the sentence the call page shows."""
    from recorder.web.words import Names, sentence  # the page's words, not a second set

    parties = {leg.channel_id: _party(leg) for leg in legs or ()}
    segments = {r.name: f"segment {r.segment}" for r in recordings or ()}
    names = Names(parties, segments)
    lines = [f"call {call.call_id} ({call.direction}, {call.outcome or call.status})"]
    for e in events:
        said = sentence({"kind": e.kind, "channel_id": e.channel_id,
                         "recording_name": e.recording_name, "detail": e.detail}, names)
        lines.append(f"  {e.at:%H:%M:%S.%f}"[:-3] + f"  {e.kind:<24} {said}".rstrip())
    return "\n".join(lines)


def _party(leg: LegRow) -> str:
    endpoint = leg.channel_name.split("/", 1)[-1].rsplit("-", 1)[0] if leg.channel_name else ""
    if leg.role == "caller":
        return "the caller" + (f" {leg.caller_number}" if leg.caller_number else "")
    return f"the {leg.role} ({endpoint})" if endpoint else f"the {leg.role}"


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
                print(format_story(calls[0], await repo.events(call_id),
                                   await repo.legs(call_id), await repo.recordings(call_id)))
        return 0
    finally:
        await repo.close()


def parse_since(text: str, now: datetime) -> datetime:
    """'24h', '7d', '90m' or an ISO date/time: how far back `verbatim coverage` looks."""
    units = {"m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"--since: expected like 24h, 7d or an ISO date, got {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_coverage(rows: list[tuple[CallRow, LegRow]], gaps: list[GapRow]) -> str:
    calls = {c.call_id for c, _ in rows}
    talked = sum(leg.talked_ms or 0 for _, leg in rows) / 1000
    covered = sum(leg.covered_ms or 0 for _, leg in rows) / 1000
    lines = [
        f"calls: {len(calls)}  legs: {len(rows)}  talked: {talked:.1f}s  "
        f"covered: {covered:.1f}s  gaps: {len(gaps)}",
        f"{'call_id':<26} {'leg':<34} {'role':<7} {'talked':>8} {'covered':>8} {'held':>7}",
    ]
    for call, leg in rows:
        if leg.talked_ms is None:
            continue
        lines.append(
            f"{call.call_id:<26} {leg.channel_id:<34} {leg.role:<7} "
            f"{(leg.talked_ms or 0) / 1000:7.2f}s {(leg.covered_ms or 0) / 1000:7.2f}s "
            f"{(leg.held_ms or 0) / 1000:6.2f}s"
        )
    for g in gaps:
        lines.append(
            f"GAP {g.call_id} {g.channel_id} {g.starts_at:%Y-%m-%d %H:%M:%S.%f}"[:-3]
            + f" +{g.duration_ms / 1000:.2f}s {g.reason}"
        )
    return "\n".join(lines)


async def print_coverage(config: Config, since_text: str) -> int:
    try:
        since = parse_since(since_text, datetime.now(UTC))
    except ValueError as exc:
        print(f"verbatim: {exc}")
        return 2
    repo = await Repository.connect(config.database.dsn.reveal(), min_size=1, max_size=1)
    try:
        rows = await repo.leg_coverage(since)
        gaps = await repo.gaps(since)
    finally:
        await repo.close()
    print(format_coverage(rows, gaps))
    return 1 if gaps else 0
