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
