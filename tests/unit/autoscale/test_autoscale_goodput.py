"""Goodput from histogram buckets: shares, SLO rounding and refusal, merging pods."""

from __future__ import annotations

import math

import pytest

from agentfleet.autoscale.goodput import (
    E2E_METRIC,
    TPOT_METRIC,
    TTFT_METRIC,
    Goodput,
    Objective,
    binomial_tail,
    goodput,
    merge_buckets,
    objectives_from_slo,
    share_within,
)
from agentfleet_sim import Histogram
from agentfleet_sim.metrics_spec import INTER_TOKEN_LATENCY_BUCKETS, TIME_TO_FIRST_TOKEN_BUCKETS

INF = math.inf


def hist(bounds: tuple[float, ...], values: list[float]) -> list[tuple[float, float]]:
    h = Histogram(bounds)
    for v in values:
        h.observe(v)
    return [(le, float(c)) for le, c in h.cumulative()]


def test_share_at_a_bucket_edge_is_exact() -> None:
    buckets = hist(TIME_TO_FIRST_TOKEN_BUCKETS, [0.1] * 90 + [3.0] * 10)
    share = share_within(Objective("ttft", TTFT_METRIC, 2.5), buckets)
    assert share.note is None
    assert share.edge == 2.5
    assert share.fraction == pytest.approx(0.9)


def test_slo_between_edges_rounds_down_with_a_note() -> None:
    # 2.0 s is not an edge (1.0, 2.5 are): observations at 1.8 s are in the 2.5 bucket and are
    # NOT counted as good, so goodput is under-estimated (the safe side for scaling).
    buckets = hist(TIME_TO_FIRST_TOKEN_BUCKETS, [0.5] * 50 + [1.8] * 50)
    share = share_within(Objective("ttft", TTFT_METRIC, 2.0), buckets)
    assert share.edge == 1.0
    assert share.fraction == pytest.approx(0.5)
    assert share.note == "ttft SLO 2s is not a bucket edge: counted as 1s"


def test_slo_below_first_edge_is_refused() -> None:
    buckets = hist(INTER_TOKEN_LATENCY_BUCKETS, [0.02] * 10)
    share = share_within(Objective("tpot", TPOT_METRIC, 0.005), buckets)
    assert share.edge is None and share.fraction is None
    assert "below the first bucket edge" in (share.note or "")


def test_prometheus_string_edges_compare_with_tolerance() -> None:
    # Prometheus returns le="0.1" which float() parses to 0.1 exactly, but SLOs come from integer
    # milliseconds (100 / 1000): make sure 0.1 matches without a note.
    buckets = [(0.05, 5.0), (float("0.1"), 8.0), (INF, 10.0)]
    share = share_within(Objective("tpot", TPOT_METRIC, 100 / 1000), buckets)
    assert share.note is None and share.fraction == pytest.approx(0.8)


def test_goodput_is_the_minimum_over_objectives_and_keeps_notes() -> None:
    objectives = objectives_from_slo(2000, 50, 0)
    data = {
        TTFT_METRIC: hist(TIME_TO_FIRST_TOKEN_BUCKETS, [0.2] * 95 + [5.0] * 5),
        TPOT_METRIC: hist(INTER_TOKEN_LATENCY_BUCKETS, [0.02] * 80 + [0.2] * 20),
    }
    gp = goodput(objectives, data)
    assert gp.fraction == pytest.approx(0.8)
    assert gp.requests == 100
    assert gp.significant
    assert any("ttft SLO 2s" in n for n in gp.notes)


def test_no_requests_gives_no_figure() -> None:
    gp = goodput(objectives_from_slo(2500, 0, 0), {TTFT_METRIC: [(1.0, 0.0), (2.5, 0.0), (INF, 0.0)]})
    assert gp.fraction is None and not gp.significant


def test_few_requests_are_not_significant() -> None:
    gp = goodput(objectives_from_slo(2500, 0, 0), {TTFT_METRIC: hist(TIME_TO_FIRST_TOKEN_BUCKETS, [5.0] * 5)})
    assert gp.fraction == 0.0 and not gp.significant


def test_missing_metric_is_skipped() -> None:
    gp = goodput(objectives_from_slo(0, 0, 30_000), {TTFT_METRIC: hist(TIME_TO_FIRST_TOKEN_BUCKETS, [0.1])})
    assert gp.fraction is None and gp.shares == ()
    assert objectives_from_slo(0, 0, 30_000)[0].metric == E2E_METRIC


def test_merge_sums_pods_by_edge_and_drops_nan() -> None:
    a = [(1.0, 3.0), (INF, 4.0)]
    b = [(1.0, 1.0), (INF, float("nan"))]
    assert merge_buckets([a, b]) == [(1.0, 4.0), (INF, 4.0)]


def test_binomial_tail_matches_the_exact_sum() -> None:
    for n, k, p in [(100, 2, 0.015), (100, 5, 0.015), (20, 2, 0.015), (200, 20, 0.05), (10, 3, 0.5)]:
        exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
        assert binomial_tail(n, k, p) == pytest.approx(exact, rel=1e-9)
    assert binomial_tail(100, 0, 0.1) == 1.0 and binomial_tail(5, 6, 0.1) == 0.0 and binomial_tail(5, 1, 0.0) == 0.0
    # Thousands of calls in a window: no overflow, and a 1-point shortfall is then evidence.
    assert binomial_tail(20000, 500, 0.015) < 1e-6


def test_short_of_needs_more_misses_than_chance_gives() -> None:
    def window(good: int, n: int) -> Goodput:
        return goodput(
            (Objective("tpot", TPOT_METRIC, 0.05),), {TPOT_METRIC: [(0.05, float(good)), (math.inf, float(n))]}
        )

    assert not window(98, 100).short_of(0.985)  # 2 misses: 44 % likely at the target
    assert window(95, 100).short_of(0.985)  # 5 misses: 1.8 %
    assert window(9800, 10000).short_of(0.985)  # the same 0.98 over 10,000 calls is a real shortfall
    assert not window(18, 19).short_of(0.985)  # under MIN_REQUESTS: never
    assert not window(100, 100).short_of(1.0)
