"""The daemon's reaction times by bucket (recorder.service.reaction): pure, by table."""

from __future__ import annotations

import math

import pytest

from recorder.service.reaction import BOUNDS_S, Reactions


@pytest.mark.parametrize(("seconds", "bucket"), [
    (0.0, "0.0005"),
    (0.001, "0.001"),  # an upper bound holds its own value (Prometheus' "le")
    (0.0011, "0.002"),
    (0.0099, "0.01"),
    (0.3, "0.5"),
    (5.0, "5.0"),
    (7.5, "+Inf"),
])
def test_each_time_falls_in_the_first_bucket_whose_bound_holds_it(seconds: float,
                                                                  bucket: str) -> None:
    r = Reactions()
    r.observe(seconds)
    cumulative = dict(r.buckets())
    bounds = [*map(str, BOUNDS_S), "+Inf"]
    first = bounds.index(bucket)
    assert [cumulative[b] for b in bounds] == [0] * first + [1] * (len(bounds) - first)
    assert r.count == 1 and r.sum_s == pytest.approx(seconds)


@pytest.mark.parametrize(("times", "q", "bound"), [
    ([], 0.99, None),
    ([0.0005] * 99 + [0.3], 0.99, 0.0005),  # the one slow step is the last 1 %
    ([0.0005] * 98 + [0.3] * 2, 0.99, 0.5),
    ([0.004] * 50 + [0.015] * 50, 0.5, 0.005),
    ([0.004] * 50 + [0.015] * 50, 0.51, 0.015),
    ([9.0], 0.5, math.inf),
])
def test_a_quantile_is_the_upper_bound_of_its_bucket(times: list[float], q: float,
                                                     bound: float | None) -> None:
    r = Reactions()
    for t in times:
        r.observe(t)
    assert r.quantile(q) == bound


def test_buckets_read_back_from_metrics_give_the_same_counts() -> None:
    r = Reactions()
    for t in (0.0002, 0.004, 0.004, 0.012, 0.3, 9.0):
        r.observe(t)
    earlier = Reactions.of_buckets(r.buckets())
    assert earlier.counts == r.counts
    r.observe(0.004)
    assert Reactions.of_buckets(r.buckets()).since(earlier).counts == (
        Reactions.of_buckets([(b, 1 if float(b) >= 0.005 else 0) for b, _ in r.buckets()]).counts)
    assert r.within(0.01) == 4 and r.within(0.0005) == 1


def test_buckets_of_other_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="not the reaction buckets"):
        Reactions.of_buckets([("0.1", 1), ("+Inf", 1)])
