"""How fast the daemon reacts: from an ARI event's arrival to the first request its step sends
to Asterisk (after the journal's fsync when the request waits for it). What a caller waits for
their answer and a party for their recording to start; a daemon short of CPU shows here before
anywhere else (issue 15: p99 under 10 ms). Fixed buckets: per step one bisect and two adds, no
memory per event; exported as the histogram verbatim_event_reaction_seconds."""

from __future__ import annotations

import bisect
import math
from typing import Final

# Upper bounds, in seconds, of the buckets (Prometheus' "le"); one more bucket above the last.
# Fine around 10 ms, the figure a daemon is held to.
BOUNDS_S: Final = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
                   0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_LABELS: Final = (*map(str, BOUNDS_S), "+Inf")  # the buckets' "le" labels, in order


class Reactions:
    """Reaction times counted by bucket, since the daemon started."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS_S) + 1)
        self.sum_s = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS_S, seconds)] += 1
        self.sum_s += seconds

    @classmethod
    def of_buckets(cls, cumulative: list[tuple[str, int]]) -> Reactions:
        """From `buckets`' form, as read back from /metrics (bench.load); the sum is not
        kept there and is left 0. ValueError if the bounds are not these."""
        bounds = [str(float(le)) if le != "+Inf" else le for le, _ in cumulative]
        if bounds != list(_LABELS):
            raise ValueError(f"not the reaction buckets: {bounds}")
        r, below = cls(), 0
        for i, (_, total) in enumerate(cumulative):
            r.counts[i], below = total - below, total
        return r

    def since(self, earlier: Reactions) -> Reactions:
        """What was counted after `earlier` was read."""
        r = Reactions()
        r.counts = [a - b for a, b in zip(self.counts, earlier.counts, strict=True)]
        r.sum_s = self.sum_s - earlier.sum_s
        return r

    def within(self, seconds: float) -> int:
        """Reactions counted in buckets whose bound is `seconds` or less."""
        return sum(n for bound, n in zip(BOUNDS_S, self.counts, strict=False) if bound <= seconds)

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative counts by upper bound, "+Inf" last (Prometheus' form)."""
        out, total = [], 0
        for bound, n in zip(_LABELS, self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out

    def quantile(self, q: float) -> float | None:
        """The upper bound of the bucket the q-quantile falls in (math.inf: above the last
        bound); None before the first reaction. An upper bound, not an estimate: "p99 <= 10 ms"
        holds when this returns 0.01 or less."""
        total = self.count
        if not total:
            return None
        rank, seen = q * total, 0
        for bound, n in zip((*BOUNDS_S, math.inf), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return math.inf
