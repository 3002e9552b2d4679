"""The coverage proof: for each leg, was every second it spent talking in a recording?

Pure: computed from the call's state once its files are filed. A leg *talks* while it is in a
bridge with at least one other party (a Local half is a conduit to whoever is behind its other
half, not a party). A recording *covers* what its file really holds: Asterisk's
bridge recorder writes frames only while the bridge mixes media (two or more parties; see
asterisk-test/traces/README.md: a lone silent party gives an empty file), so the file's audio length
is laid, in order, over the times its bridge had two or more parties between RecordingStarted and
its end. Event timestamps bound the search, but never count as recorded time by themselves, and
ARI's whole-second `duration` is not used at all: an empty or short file is a gap.

Bridges joined by a Local pair (a transfer) are one conversation: a recording of either covers
talk in both, so the conversation is neither missed nor counted twice.
A party of another recorded call in the same bridge (hook mode, after an attended transfer)
counts as someone to talk with: the leg's own snoop covers that talk.

Time a leg spent on hold is reported as held, not as a gap. A recording Asterisk reported failed
is kept as evidence but covers nothing: what it spanned is a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from recorder.model.records import Stay
from recorder.model.state import REC_FAILED, REC_MISSING, Call, Leg, Recording

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Gap:
    channel_id: str
    start: datetime
    end: datetime
    reason: str

    @property
    def ms(self) -> int:
        return round((self.end - self.start).total_seconds() * 1000)


@dataclass(frozen=True)
class LegCoverage:
    channel_id: str
    talked_ms: int
    covered_ms: int
    held_ms: int
    gaps: tuple[Gap, ...] = ()


@dataclass(frozen=True)
class CallCoverage:
    call_id: str
    legs: dict[str, LegCoverage] = field(default_factory=dict)

    @property
    def gaps(self) -> list[Gap]:
        return [g for leg in self.legs.values() for g in leg.gaps]

    @property
    def talked_ms(self) -> int:
        return max((c.talked_ms for c in self.legs.values()), default=0)

    @property
    def covered_ms(self) -> int:
        return max((c.covered_ms for c in self.legs.values()), default=0)


def _ms(spans: list[Span]) -> int:
    return round(sum((b - a).total_seconds() for a, b in spans) * 1000)


def merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersect(xs: list[Span], ys: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in merge(xs):
        for c, d in merge(ys):
            lo, hi = max(a, c), min(b, d)
            if hi > lo:
                out.append((lo, hi))
    return merge(out)


def subtract(xs: list[Span], ys: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in merge(xs):
        cur = a
        for c, d in merge(ys):
            if d <= cur or c >= b:
                continue
            if c > cur:
                out.append((cur, c))
            cur = max(cur, d)
        if cur < b:
            out.append((cur, b))
    return out


def _closed(stay: Stay, end: datetime) -> tuple[str, datetime, datetime]:
    return stay.bridge, stay.entered, stay.left if stay.left is not None else end


def mixing_spans(call: Call, bridge_id: str, end: datetime) -> list[Span]:
    """When `bridge_id` held two or more parties: when Asterisk mixes and writes frames."""
    edges: list[tuple[datetime, int]] = []
    for leg in call.legs.values():
        for raw in leg.spans:
            span = _closed(raw, leg.ended_at or end)
            if span and span[0] == bridge_id:
                edges += [(span[1], 1), (span[2], -1)]
    for peer in call.hook.peers:  # another recorded call's party there (recorder.model.sharing)
        span = _closed(Stay(peer.bridge, peer.entered, peer.left), end)
        if span and span[0] == bridge_id:
            edges += [(span[1], 1), (span[2], -1)]
    out: list[Span] = []
    count, since = 0, None
    for at, delta in sorted(edges, key=lambda x: (x[0], x[1])):
        before = count
        count += delta
        if before < 2 <= count:
            since = at
        elif before >= 2 > count and since is not None:
            out.append((since, at))
    return merge(out)


def talk_spans(call: Call, leg: Leg, end: datetime) -> list[Span]:
    """When `leg` was in a bridge with at least one other party."""
    spans: list[Span] = []
    for raw in leg.spans:
        bridge, a, b = _closed(raw, leg.ended_at or end)
        spans += _others_in(call, bridge, [(a, b)], end, {leg.channel_id})
    return merge(spans)


def _others_in(call: Call, bridge: str, window: list[Span], end: datetime,
               seen: set[str]) -> list[Span]:
    """When, within `window`, `bridge` held a party other than the legs in `seen`. A Local half
    whose other half the call knows is no party itself: through it, whoever is then in the
    other half's bridge is (a forward's or transfer's target behind ;2 → ;1 — until both halves
    are in their bridges, the target talks to no one)."""
    out: list[Span] = []
    for other in call.legs.values():
        if other.channel_id in seen:
            continue
        partner = _other_half(call, other)
        for raw in other.spans:
            where, a, b = _closed(raw, other.ended_at or end)
            if where != bridge:
                continue
            there = intersect(window, [(a, b)])
            if partner is None:
                out += there
                continue
            if not there:
                continue
            for far in partner.spans:
                reach, c, d = _closed(far, partner.ended_at or end)
                out += _others_in(call, reach, intersect(there, [(c, d)]), end,
                                  seen | {other.channel_id, partner.channel_id})
    for peer in call.hook.peers:  # another recorded call's party there (recorder.model.sharing)
        where, a, b = _closed(Stay(peer.bridge, peer.entered, peer.left), end)
        if where == bridge:
            out += intersect(window, [(a, b)])
    return merge(out)


def _other_half(call: Call, leg: Leg) -> Leg | None:
    """The other half of a Local pair, when the call knows what is behind it: the half was in
    a bridge where a leg of the call (or a peer) was too. Otherwise None, and `leg` counts as a
    party itself — reporting too much talk rather than hiding talk the model cannot see."""
    if not leg.local_base:
        return None
    other = next((x for x in call.legs.values()
                  if x.local_base == leg.local_base and x.channel_id != leg.channel_id), None)
    if other is None:
        return None
    far = {stay.bridge for stay in other.spans}
    known = any(stay.bridge in far for x in call.legs.values() if x is not other and x is not leg
                for stay in x.spans) or any(p.bridge in far for p in call.hook.peers)
    return other if known else None


def recording_spans(call: Call, rec: Recording, end: datetime) -> list[Span]:
    """What a recording's file covers: its audio length laid over its bridge's mixing time."""
    if rec.status in (REC_FAILED, REC_MISSING):
        return []  # a failed recording's file is kept as evidence, never counted as covered
    if rec.started_at is None or not rec.duration_ms:
        return []
    window = [(rec.started_at, rec.ended_at or end)]
    if rec.target.startswith("bridge:"):
        written = intersect(mixing_spans(call, rec.target.removeprefix("bridge:"), end), window)
    elif rec.target.startswith("snoop:"):
        written = window  # a snoop makes frames all along, silence included
    else:
        return []
    left = timedelta(milliseconds=rec.duration_ms)
    out: list[Span] = []
    # Asterisk writes no frames while the recording is paused (an in-call control).
    for a, b in subtract(written, pause_spans(call, end)):
        if left <= timedelta(0):
            break
        take = min(b - a, left)
        out.append((a, a + take))
        left -= take
    return out


def unseen_end(call: Call, leg: Leg) -> datetime | None:
    """When a leg found gone by reconciliation (`Leg.end_unseen`; `ended_at` is when it was
    found so) most likely ended: when the audio of the recordings that heard it up to then
    stops, as their files measure it (a hook-mode snoop ends with its leg; a bridge's
    recording when its parties go), never before what was seen of the leg. Counting it as
    talking until it was found gone would report the time the daemon was away as a gap in
    audio that is all there. Only recordings whose own end was found at the reconnection
    count, and none paused at its end (a stop, a pause, or a recording that ended while the
    daemon still watched says nothing of when a party left: a gap it saw stays a gap). (A
    recording that failed while the daemon was away, its party talking on, looks the same
    as a hang-up: that gap cannot be seen.) None: nothing says better when it ended."""
    found = leg.ended_at
    if found is None:
        return None
    heard = [b for rec in call.recordings.values()
             if leg.channel_id in rec.legs and rec.ended_at is not None
             and rec.ended_at >= found and not _paused_at(call, rec.ended_at)
             for _a, b in recording_spans(call, rec, found)]
    if not heard:
        return None
    seen = max([leg.started_at, *[x for x in (leg.answered_at,) if x is not None],
                *[stay.entered for stay in leg.spans], *[h.start for h in leg.holds]])
    return max(seen, min(found, max(heard)))


def _paused_at(call: Call, at: datetime) -> bool:
    return any(p.start <= at and (p.end is None or p.end >= at) for p in call.pauses)


def pause_spans(call: Call, end: datetime) -> list[Span]:
    """Not recorded on purpose by an in-call control (pause, stop) or by policy."""
    return [(p.start, p.end if p.end is not None else end) for p in call.pauses]


def hold_spans(leg: Leg, end: datetime) -> list[Span]:
    spans: list[Span] = []
    for start, stop in leg.holds:
        spans.append((start, stop if stop is not None else (leg.ended_at or end)))
    return merge(spans)


def linked_bridges(call: Call) -> dict[str, set[str]]:
    """Bridges joined by a Local pair hear each other (a blind transfer's target is heard in
    the recorded call bridge through ;2 → ;1), so a recording of one covers talk in the other."""
    group: dict[str, set[str]] = {b: {b} for b in call.all_bridges()}
    halves: dict[str, set[str]] = {}
    for leg in call.legs.values():
        if leg.local_base:  # both halves of a pair, whatever their role in the call
            halves.setdefault(leg.local_base, set()).update(x.bridge for x in leg.spans)
    for bridges in halves.values():
        joined = set().union(*(group.get(b, {b}) for b in bridges))
        for b in joined:
            group[b] = joined
    return group


@dataclass(frozen=True)
class LegSpans:
    """The coverage proof's intervals for one leg (what `coverage` sums): when it talked, what
    of that a file holds, what was on hold, what was not recorded on purpose, what is missing."""

    talked: list[Span]
    covered: list[Span]
    held: list[Span]
    unrecorded: list[Span]
    missing: list[Span]


def call_end(call: Call) -> datetime:
    return call.ended_at or max(
        (leg.ended_at for leg in call.legs.values() if leg.ended_at), default=call.started_at
    )


def leg_spans(call: Call) -> dict[str, LegSpans]:
    """Per party leg that talked (Local halves are conduits, not parties): its intervals."""
    end = call_end(call)
    recorded: dict[str, list[Span]] = {}
    for rec in call.recordings.values():
        spans = recording_spans(call, rec, end)
        snooped = call.legs.get(rec.target.removeprefix("snoop:"))
        if snooped is None:
            recorded.setdefault(rec.target.removeprefix("bridge:"), []).extend(spans)
            continue
        # A snoop hears its leg's bridge, whichever it is: it covers that bridge while the
        # leg is in it (a transfer moves the leg, and the snoop with it).
        for raw in snooped.spans:
            stay = _closed(raw, snooped.ended_at or end)
            if stay:
                recorded.setdefault(stay[0], []).extend(intersect(spans, [stay[1:]]))
    group = linked_bridges(call)
    # A party on hold puts the conversation on hold: for everyone, not only for that party.
    on_hold = merge([h for leg in call.legs.values() for h in hold_spans(leg, end)])
    # Not recorded on purpose (policy said no, or a party refused): neither covered nor a gap.
    unrecorded = [(call.unrecorded_since, end)] if call.unrecorded_since else []
    # Paused or stopped by an in-call control (a card number read out): never a gap.
    unrecorded += pause_spans(call, end)
    result: dict[str, LegSpans] = {}
    for leg in call.legs.values():
        if leg.role == "local":  # Local halves are conduits, not parties
            continue
        talked = talk_spans(call, leg, end)
        if not talked:
            continue
        bridges = {b for span in leg.spans for b in group.get(str(span[0]), {str(span[0])})}
        covered = intersect(talked, [s for b in bridges for s in recorded.get(b, [])])
        held = intersect(talked, on_hold)
        missing = subtract(subtract(subtract(talked, covered), held), unrecorded)
        result[leg.channel_id] = LegSpans(
            talked, covered, held, intersect(talked, unrecorded), missing
        )
    return result


def coverage(call: Call, threshold_ms: int = 250) -> CallCoverage:
    result: dict[str, LegCoverage] = {}
    for channel_id, spans in leg_spans(call).items():
        gaps = tuple(
            Gap(channel_id, a, b, "not in any recording")
            for a, b in spans.missing
            if (b - a) >= timedelta(milliseconds=threshold_ms)
        )
        result[channel_id] = LegCoverage(
            channel_id, _ms(spans.talked), _ms(spans.covered), _ms(spans.held), gaps
        )
    return CallCoverage(call.call_id, result)
