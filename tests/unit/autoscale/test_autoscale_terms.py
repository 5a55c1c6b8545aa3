"""The scaling policy's terms, each on its own: the arithmetic decide composes."""

from __future__ import annotations

import math

import pytest

from agentfleet.autoscale.terms import (
    burst_over,
    capacity_clamp,
    collapse_term,
    concurrency_term,
    goodput_collapsed,
    goodput_term,
    headroom_keep,
    is_idle,
    kv_term,
    loading_credit,
    queue_term,
    slope,
    tasks_in_flight_term,
)


def test_queue_term_asks_for_target_waiting_per_replica_only_past_target() -> None:
    assert queue_term(mean_waiting=8.0, waiting=24.0, target=8) is None  # at target: no pressure
    assert queue_term(mean_waiting=10.0, waiting=30.0, target=8) == 4  # 30 / 8 -> 4 replicas
    assert queue_term(mean_waiting=16.1, waiting=16.1, target=8) == 3


def test_kv_term_brings_the_mean_under_the_threshold() -> None:
    assert kv_term(None, 3, 0.9) is None
    assert kv_term(0.9, 3, 0.9) is None
    assert kv_term(0.95, 3, 0.9) == 4  # 2.85 / 0.9 = 3.17 -> 4
    assert kv_term(1.0, 9, 0.9) == 10


def test_goodput_term_is_proportional_with_one_more_at_least_and_a_floor() -> None:
    assert goodput_term(4, 0.5, 0.95) == 8  # 4 x 0.95 / 0.5 = 7.6 -> 8
    assert goodput_term(4, 0.94, 0.95) == 5  # a slight miss still asks for one more
    assert goodput_term(2, 0.0, 0.95) == 10  # floored at 0.2: 2 x 0.95 / 0.2 = 9.5 -> 10, not infinity
    assert goodput_term(4, 0.05, 0.1) == 5  # a target under the floor: the ratio says 2, one more stands


def test_goodput_collapsed_only_under_half_of_what_the_order_was_sized_on() -> None:
    assert goodput_collapsed(0.3, 0.8, 0.95)  # 0.3 < 0.5 x 0.8
    assert not goodput_collapsed(0.45, 0.8, 0.95)  # lag, not collapse
    assert not goodput_collapsed(0.96, 0.99, 0.95)  # within target is never a collapse
    # Both sides floored at 0.2: an order already sized at the floor does not re-fire.
    assert not goodput_collapsed(0.0, 0.1, 0.95)


def test_collapse_term_sizes_on_the_measured_fleet_and_the_rise_in_tasks() -> None:
    assert collapse_term(2, 4, 0.25, 0.95) == 8  # 2 x 0.95 / 0.25 = 7.6 -> 8
    assert collapse_term(1, 4, 0.9, 0.95) == 5  # at least one more than serving
    # Tasks doubled since an order of 6: at least 12.
    assert collapse_term(2, 4, 0.25, 0.95, tasks=200.0, ordered_tasks=100.0, ordered_for=6) == 12
    # Tasks fell: the goodput sizing stands, however large the last order was.
    assert collapse_term(2, 4, 0.25, 0.95, tasks=50.0, ordered_tasks=100.0, ordered_for=6) == 8
    assert collapse_term(2, 4, 0.25, 0.95, tasks=90.0, ordered_tasks=100.0, ordered_for=20) == 8


def test_concurrency_and_tasks_in_flight_terms() -> None:
    assert concurrency_term(30.0, 7.5) == 4
    assert concurrency_term(31.0, 7.5) == 5
    assert tasks_in_flight_term(40.0, 10.0) == 5  # 40 / (10 x 0.8)
    assert tasks_in_flight_term(41.0, 10.0) == 6


def test_burst_over_when_tasks_fit_half_the_replicas() -> None:
    assert burst_over(10, 40.0, 10.0)  # 2 x 5 <= 10
    assert not burst_over(9, 40.0, 10.0)


LOADING = dict(base=6, in_flight=2, ordered_for=None, growth=None, per_replica_rate=None, serving=4)


def test_loading_credit_caps_a_want_at_the_replicas_serving_and_loading() -> None:
    assert loading_credit(10, **{**LOADING, "in_flight": 0}) == 10  # nothing loading: no credit
    assert loading_credit(5, **LOADING) == 5  # within what serves and loads
    assert loading_credit(10, **LOADING) == 6  # the loading replicas are the answer being awaited


def test_loading_credit_finishes_an_order_cut_by_the_step_limit() -> None:
    assert loading_credit(10, **{**LOADING, "ordered_for": 9}) == 9
    assert loading_credit(7, **{**LOADING, "ordered_for": 9}) == 7


def test_loading_credit_orders_the_measured_deficit_beyond_the_loading_replicas() -> None:
    # Requests in the system grow by 3/s and a replica completes 0.5/s: 6 more replicas needed,
    # more than the 2 loading, so serving + 6 = 10.
    assert loading_credit(12, **{**LOADING, "growth": 3.0, "per_replica_rate": 0.5}) == 10
    # Growth the loading replicas cover: the credit holds.
    assert loading_credit(12, **{**LOADING, "growth": 0.5, "per_replica_rate": 0.5}) == 6
    assert loading_credit(12, **{**LOADING, "growth": -3.0, "per_replica_rate": 0.5}) == 6
    # Two loading and two just ready (in flight 4, not in base): a deficit of 3 replicas is
    # still covered by them, so the credit holds at 6 rather than serving + 3.
    assert loading_credit(12, **{**LOADING, "in_flight": 4, "growth": 1.5, "per_replica_rate": 0.5}) == 6


def test_is_idle_needs_no_completions_too() -> None:
    assert is_idle(0, 0, None)
    assert is_idle(0, 0, 0.0)
    assert not is_idle(0, 0, 0.2)  # agents in tool waits: nothing at the engine, but not idle
    assert not is_idle(1, 0, None)


def test_headroom_keep_is_the_largest_of_queue_kv_and_concurrency_headroom() -> None:
    base = dict(serving=4, mean_kv=None, kv_threshold=0.9, ok_running=None, peak_in_system=0.0)
    assert headroom_keep(0, 8, **base) == 1
    assert headroom_keep(20, 8, **base) == 3
    assert headroom_keep(0, 8, **{**base, "mean_kv": 0.5}) == 3  # 2.0 / (0.9 x 0.8) = 2.8 -> 3
    assert headroom_keep(0, 8, **{**base, "ok_running": 5.0, "peak_in_system": 17.0}) == 5  # 17 / 4 -> 5


def test_capacity_clamp_refuses_only_growth_beyond_what_fits() -> None:
    assert capacity_clamp(5, 3, 3, 4) == (5, None)  # fits
    assert capacity_clamp(8, 3, 3, 2, "InsufficientGPUs") == (
        5,
        "wanted 8, only 2 more can be placed: InsufficientGPUs",
    )
    assert capacity_clamp(8, 6, 3, 0) == (6, "wanted 8, only 0 more can be placed")  # what is asked for stays
    assert capacity_clamp(2, 3, 3, 0) == (2, None)  # shrinking is never limited
    assert capacity_clamp(5, 6, 3, 0) == (5, None)  # below what is already asked for: nothing refused


def test_slope_is_least_squares_per_second() -> None:
    assert slope([(0.0, 1.0)]) is None
    assert slope([(5.0, 1.0), (5.0, 3.0)]) is None
    assert slope([(0.0, 0.0), (10.0, 20.0), (20.0, 40.0)]) == pytest.approx(2.0)
    assert math.isclose(slope([(0.0, 3.0), (1.0, 1.0)]), -2.0)
