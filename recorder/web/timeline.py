"""A call's timeline for its page: one lane per party, what each did when, what was recorded.

Built from the call's last state (kept with its row, recorder.db.mapping.final_snapshot) with
the coverage proof's own intervals (recorder.model.coverage.leg_spans): talked, covered, held,
not recorded on purpose, missing. A call without a snapshot (recorded before it was kept, or a
fallback import) gets lanes from its rows: legs, recordings and the stored gaps.

Pure: rows in, a Timeline out; recorder.web.svg draws it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from recorder.model.coverage import (
    Span,
    call_end,
    intersect,
    leg_spans,
    merge,
    recording_spans,
    subtract,
)
from recorder.model.state import REC_FAILED, REC_MISSING, Call
from recorder.web.words import Names, seconds

GAP_MS: Final = 250  # as the coverage proof: shorter misses are request round trips
# What each kind of bar means, for the legend and the bars' titles.
KINDS: Final = {
    "ringing": "Ringing",
    "announcement": "Hearing the announcement",
    "connected": "Connected",
    "hold": "On hold",
    "paused": "Paused on purpose (not a gap)",
    "unrecorded": "Not recorded: policy or opt-out",
    "gap": "Not recorded: gap",
    "recorded": "In a recording",
}


@dataclass(frozen=True)
class Bar:
    kind: str  # one of KINDS
    start: datetime
    end: datetime
    label: str  # words for the bar's title: what, and why for what is missing

    @property
    def ms(self) -> int:
        return round((self.end - self.start).total_seconds() * 1000)


@dataclass(frozen=True)
class Lane:
    channel_id: str
    label: str  # "Caller +14155550100", "300 (transfer target)"
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Arrow:
    at: datetime
    source: str  # channel ids (lanes)
    target: str
    label: str


@dataclass(frozen=True)
class Track:
    """One recording file: where its audio lies on the timeline (what the playback places)."""

    name: str
    label: str  # "Segment 1", "Segment 2 (caller's side)"
    lane: str | None  # the party it follows (hook mode's snoops), or None: the conversation
    spans: tuple[Span, ...]
    status: str


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    lanes: tuple[Lane, ...]
    tracks: tuple[Track, ...]
    arrows: tuple[Arrow, ...]
    verdict: str
    connected_ms: int
    covered_ms: int
    missing: tuple[Bar, ...] = field(default=())  # the conversation's gaps, with reasons

    def recorded_span(self) -> Span | None:
        """From the first recorded second to the last: what the whole-call playback spans."""
        spans = [s for t in self.tracks for s in t.spans]
        if not spans:
            return None
        return min(a for a, _ in spans), max(b for _, b in spans)


def _ms(spans: Sequence[Span]) -> int:
    return round(sum((b - a).total_seconds() for a, b in merge(list(spans))) * 1000)


def _endpoint(channel_name: str) -> str:
    """"PJSIP/300-00000002" -> "300"; "" for a trunk's channel or anything else."""
    m = re.match(r"^[A-Za-z]+/([^-@;/]+)", channel_name)
    found = m.group(1) if m else ""
    return "" if found.lower().startswith("trunk") else found


def party_names(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]],
                state: Call | None = None,
                events: Sequence[Mapping[str, Any]] = ()) -> dict[str, str]:  # fmt: skip
    """channel id -> the page's name for the party: the caller with their number, the callee
    dialled, and later parties as a transfer or forward target."""
    names: dict[str, str] = {}
    callees = 0
    for leg in sorted(legs, key=lambda x: x["started_at"]):
        cid, role = str(leg["channel_id"]), leg["role"]
        known = state.legs.get(cid) if state else None
        if role == "local":
            names[cid] = "the transfer's local connection"
            continue
        if role == "caller":
            number = call.get("caller_e164") or call.get("caller_number") or leg.get(
                "caller_number")
            names[cid] = f"the caller {number}" if number else "the caller"
            continue
        callees += 1
        number = (known.number if known and known.number else None) or _endpoint(
            leg["channel_name"]) or (call.get("callee_e164") or call.get("callee_number")
                                     if callees == 1 else None)
        if callees == 1:
            names[cid] = str(number or "the callee")
            continue
        how = _joined_how(leg["started_at"], events)
        names[cid] = f"{number} ({how})" if number else f"the {how}"
    return names


_JOINS: Final = {"transfer.blind": "transfer target", "transfer.attended": "transfer target",
                  "dial.forwarded": "forward target", "dial.ring_group": "ring group member"}


def _joined_how(started: datetime, events: Sequence[Mapping[str, Any]]) -> str:
    """How a party that was not the first callee came in: the last join event before it."""
    how = "joined later"
    for ev in events:
        if ev["at"] > started + timedelta(seconds=0.05):
            break
        how = _JOINS.get(ev["kind"], how)
    return how


def lane_label(name: str) -> str:
    return name[4:].capitalize() if name.startswith("the ") else name


def _clip(spans: list[Span], start: datetime, end: datetime) -> list[Span]:
    return intersect(spans, [(start, end)])


def _gap_reason(gap: Span, recordings: Sequence[Mapping[str, Any]],
                events: Sequence[Mapping[str, Any]], names: Names) -> str:  # fmt: skip
    a, b = gap
    for rec in recordings:
        if rec["status"] in (REC_FAILED, REC_MISSING) and rec.get("started_at"):
            r_end = rec.get("ended_at") or b
            if rec["started_at"] < b and r_end > a:
                why = rec.get("error") or rec["status"]
                return f"{names.segment(rec['name'])} {rec['status']} ({why})"
    for ev in events:
        if ev["kind"] == "recording.gap" and a - timedelta(seconds=1) <= ev["at"] <= b:
            why = (ev.get("detail") or {}).get("reason") or "ended mid-call"
            return f"{names.segment(ev.get('recording_name'))} ended mid-call ({why})"
    return "not in any recording"


def _announcements(consent: Sequence[Mapping[str, Any]]) -> dict[str, list[Bar]]:
    out: dict[str, list[Bar]] = {}
    for row in consent:
        start, end = row.get("started_at"), row.get("ended_at")
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        if isinstance(end, str):
            end = datetime.fromisoformat(end)
        if not isinstance(start, datetime) or not isinstance(end, datetime) or end <= start:
            continue
        how = "heard to the end" if row.get("played") == "finished" else "interrupted"
        out.setdefault(str(row["channel_id"]), []).append(
            Bar("announcement", start, end, f"Announcement {row.get('prompt')}, {how}"))
    return out


def _ringing(leg: Mapping[str, Any], end: datetime) -> list[Bar]:
    if leg["role"] != "callee":
        return []
    stop = leg.get("answered_at") or leg.get("ended_at") or end
    if stop <= leg["started_at"]:
        return []
    return [Bar("ringing", leg["started_at"], stop, "Ringing")]


def _unrecorded_reason(state: Call, names: Names) -> str:
    if state.opted_out:
        who = ", ".join(state.opted_out)
        return f"declined by the {who} (opt-out)"
    reason = state.decision.reason if state.decision else None
    return f"policy: {reason}" if reason else "policy"


def build(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]],
          recordings: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
          consent: Sequence[Mapping[str, Any]], gaps: Sequence[Mapping[str, Any]],
          state: Call | None, names: Names) -> Timeline:  # fmt: skip
    """The timeline of a call from its rows, with its last state when there is one."""
    if state is not None and state.legs:
        return _from_state(call, legs, recordings, events, consent, state, names)
    return _from_rows(call, legs, recordings, events, consent, gaps, names)


def _from_state(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]],
                recordings: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
                consent: Sequence[Mapping[str, Any]], state: Call,
                names: Names) -> Timeline:  # fmt: skip
    start, end = state.started_at, call_end(state)
    spans = leg_spans(state)
    announced = _announcements(consent)
    why_unrecorded = _unrecorded_reason(state, names)
    lanes: list[Lane] = []
    conv: dict[str, list[Span]] = {k: [] for k in ("talked", "covered", "paused", "policy",
                                                   "held")}  # fmt: skip
    missing: list[Bar] = []
    for leg in sorted(legs, key=lambda x: (x["role"] != "caller", x["started_at"])):
        cid = str(leg["channel_id"])
        if leg["role"] == "local":
            continue
        bars = _ringing(leg, end) + announced.get(cid, [])
        mine = spans.get(cid)
        if mine is not None:
            bars += [Bar("connected", a, b, "Connected") for a, b in mine.talked]
            bars += [Bar("hold", a, b, "On hold") for a, b in mine.held]
            for start, stop, kind in state.pauses:
                span = [(start, stop if stop is not None else end)]
                for a, b in intersect(mine.talked, span):
                    if kind == "unrecorded":
                        bars.append(Bar("unrecorded", a, b, f"Not recorded: {why_unrecorded}"))
                        conv["policy"].append((a, b))
                    else:
                        what = "Paused" if kind == "pause" else "Stopped"
                        bars.append(Bar("paused", a, b, f"{what} on purpose (not a gap)"))
                        conv["paused"].append((a, b))
            if state.unrecorded_since is not None:
                for a, b in intersect(mine.talked, [(state.unrecorded_since, end)]):
                    bars.append(Bar("unrecorded", a, b, f"Not recorded: {why_unrecorded}"))
                    conv["policy"].append((a, b))
            for a, b in mine.missing:
                if (b - a) >= timedelta(milliseconds=GAP_MS):
                    reason = _gap_reason((a, b), recordings, events, names)
                    bar = Bar("gap", a, b, f"Not recorded: {reason}")
                    bars.append(bar)
                    missing.append(bar)
            bars += [Bar("recorded", a, b, "In a recording") for a, b in mine.covered]
            conv["talked"] += mine.talked
            conv["covered"] += mine.covered
            conv["held"] += mine.held
        lanes.append(Lane(cid, lane_label(names.party(cid)), tuple(bars)))
    tracks = []
    for rec in sorted(recordings, key=lambda r: (r["segment"], r["name"])):
        model = state.recordings.get(rec["name"])
        placed = recording_spans(state, model, end) if model is not None else []
        target = str(rec.get("target") or "")
        lane = target.removeprefix("snoop:") if target.startswith("snoop:") else None
        tracks.append(Track(rec["name"], names.segment(rec["name"]).capitalize(), lane,
                            tuple(placed), rec["status"]))  # fmt: skip
    connected, covered = _ms(conv["talked"]), _ms(conv["covered"])
    merged_missing = _merge_bars(missing)
    verdict = _verdict(connected, covered, merged_missing, _ms(conv["paused"]),
                       _ms(conv["policy"]), _ms(conv["held"]), why_unrecorded)  # fmt: skip
    return Timeline(start, end, tuple(lanes), tuple(tracks), _arrows(events, legs, names),
                    verdict, connected, covered, tuple(merged_missing))  # fmt: skip


def _merge_bars(bars: list[Bar]) -> list[Bar]:
    """The conversation's gaps: the parties' missing intervals merged, each with its reason."""
    out: list[Bar] = []
    for bar in sorted(bars, key=lambda b: b.start):
        if out and bar.start <= out[-1].end:
            last = out[-1]
            out[-1] = Bar("gap", last.start, max(last.end, bar.end), last.label)
        else:
            out.append(bar)
    return out


def _verdict(connected: int, covered: int, missing: list[Bar], paused: int, policy: int,
             held: int, why_unrecorded: str) -> str:  # fmt: skip
    if connected == 0:
        return "No one was connected: there was nothing to record."
    if covered == 0 and policy > 0 and not missing:
        return (f"Not recorded, on purpose: {why_unrecorded} "
                f"({seconds(connected)} connected).")  # fmt: skip
    whole = seconds(connected).removesuffix(" s")
    parts = [f"Recorded {seconds(covered).removesuffix(' s')} of {whole} connected seconds"]
    if missing:
        lost = sum(b.ms for b in missing)
        reasons = "; ".join(dict.fromkeys(b.label.removeprefix("Not recorded: ")
                                          for b in missing))  # fmt: skip
        parts.append(f"{seconds(lost)} missing ({reasons})")
    if paused:
        parts.append(f"{seconds(paused)} paused on purpose")
    if policy:
        parts.append(f"{seconds(policy)} not recorded: {why_unrecorded}")
    if held:
        parts.append(f"{seconds(held)} on hold")
    return "; ".join(parts) + "."


def _arrows(events: Sequence[Mapping[str, Any]], legs: Sequence[Mapping[str, Any]],
            names: Names) -> tuple[Arrow, ...]:  # fmt: skip
    """Transfers and forwards: from the party who sent the call to the one it reached (the
    first party leg to start at or after the event)."""
    parties = sorted((x for x in legs if x["role"] != "local"), key=lambda x: x["started_at"])
    out = []
    for ev in events:
        kind, detail = ev["kind"], ev.get("detail") or {}
        if kind not in ("transfer.blind", "dial.forwarded") or not ev.get("channel_id"):
            continue
        source = str(ev["channel_id"])
        target = detail.get("followed_by")
        if target is None:
            later = [x for x in parties if x["started_at"] >= ev["at"] - timedelta(seconds=0.05)
                     and str(x["channel_id"]) != source]  # fmt: skip
            target = later[0]["channel_id"] if later else None
        if target is None or str(target) == source:
            continue
        if kind == "transfer.blind":
            label = f"Transferred by {names.party(source)} to {detail.get('exten') or ''}"
        else:
            label = f"Forwarded by {names.party(source)} to {detail.get('forward') or ''}"
        out.append(Arrow(ev["at"], source, str(target), label.strip()))
    return tuple(out)


def _from_rows(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]],
               recordings: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
               consent: Sequence[Mapping[str, Any]], gaps: Sequence[Mapping[str, Any]],
               names: Names) -> Timeline:  # fmt: skip
    """Without a snapshot: each leg connected from its answer to its end, the stored gaps in
    red, the paused intervals from the control events."""
    start = call["started_at"]
    end = call.get("ended_at") or max([x.get("ended_at") or start for x in legs] + [start])
    announced = _announcements(consent)
    pauses: list[Span] = []
    opened: datetime | None = None
    for ev in events:
        if ev["kind"] in ("recording.paused", "recording.stopped"):
            opened = opened or ev["at"]
        elif ev["kind"] in ("recording.resumed", "recording.on_demand") and opened:
            pauses.append((opened, ev["at"]))
            opened = None
    if opened:
        pauses.append((opened, end))
    lanes, missing = [], []
    for leg in sorted(legs, key=lambda x: (x["role"] != "caller", x["started_at"])):
        cid = str(leg["channel_id"])
        if leg["role"] == "local":
            continue
        bars = _ringing(leg, end) + announced.get(cid, [])
        if leg.get("answered_at"):
            up = [(leg["answered_at"], leg.get("ended_at") or end)]
            bars += [Bar("connected", a, b, "Connected") for a, b in up]
            bars += [Bar("paused", a, b, "Paused on purpose (not a gap)")
                     for a, b in intersect(up, pauses)]  # fmt: skip
        for g in gaps:
            if str(g["channel_id"]) == cid:
                bar = Bar("gap", g["starts_at"], g["ends_at"],
                          f"Not recorded: {_gap_reason((g['starts_at'], g['ends_at']), recordings, events, names)}")  # noqa: E501
                bars.append(bar)
                missing.append(bar)
        lanes.append(Lane(cid, lane_label(names.party(cid)), tuple(bars)))
    tracks = []
    for rec in sorted(recordings, key=lambda r: (r["segment"], r["name"])):
        placed: list[Span] = []
        if rec["status"] == "filed" and rec.get("started_at") and rec.get("duration_ms"):
            a = rec["started_at"]
            placed = subtract([(a, a + timedelta(milliseconds=rec["duration_ms"]))], [])
        target = str(rec.get("target") or "")
        lane = target.removeprefix("snoop:") if target.startswith("snoop:") else None
        tracks.append(Track(rec["name"], names.segment(rec["name"]).capitalize(), lane,
                            tuple(placed), rec["status"]))  # fmt: skip
    connected = max((x.get("talked_ms") or 0 for x in legs), default=0)
    covered = max((x.get("covered_ms") or 0 for x in legs), default=0)
    merged = _merge_bars(missing)
    if not any(x.get("talked_ms") is not None for x in legs):
        verdict = "The coverage proof was not computed for this call."
    else:
        verdict = _verdict(connected, covered, merged, _ms(_clip(pauses, start, end)), 0, 0, "")
    return Timeline(start, end, tuple(lanes), tuple(tracks), _arrows(events, legs, names),
                    verdict, connected, covered, tuple(merged))  # fmt: skip
