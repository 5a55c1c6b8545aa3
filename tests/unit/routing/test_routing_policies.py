"""Backoff bounds, the ejection state machine, the hedge budget and the quantile estimator."""

from __future__ import annotations

import random

import pytest

from agentfleet_runtime.routing.backoff import full_jitter
from agentfleet_runtime.routing.ejection import Health, OutlierDetector
from agentfleet_runtime.routing.hedging import HedgeBudget, loser_cost
from agentfleet_runtime.routing.quantile import P2Quantile, WindowedQuantile


def test_full_jitter_stays_within_its_window_and_uses_it() -> None:
    rng = random.Random(3)
    for attempt in range(12):
        ceiling = min(2.0, 0.05 * 2**attempt)
        draws = [full_jitter(attempt, 0.05, 2.0, rng) for _ in range(400)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling and min(draws) < 0.2 * ceiling  # full, not equal, jitter
    assert full_jitter(10_000, 0.05, 2.0, rng) <= 2.0
    with pytest.raises(ValueError):
        full_jitter(-1)


def test_ejection_after_consecutive_errors_then_probe_back() -> None:
    d = OutlierDetector(consecutive_errors=3, ejection_seconds=10)
    d.on_failure(0)
    d.on_failure(1)
    d.on_success(2)  # a success resets the streak
    assert not d.on_failure(3) and not d.on_failure(4)
    assert d.on_failure(5) and d.state is Health.EJECTED
    assert not d.admits(14.9)
    assert d.admits(15.0)
    d.on_send(15.0)
    assert d.state is Health.PROBING
    assert not d.admits(15.1)  # one probe at a time
    d.on_success(16)
    assert d.state is Health.HEALTHY and d.admits(16)


def test_failed_probe_ejects_for_longer_capped() -> None:
    d = OutlierDetector(consecutive_errors=1, ejection_seconds=10, max_ejection_factor=4)
    d.on_failure(0)
    assert d.until == 10
    ends = []
    now = 10.0
    for _ in range(4):
        d.on_send(now)
        d.on_failure(now)
        ends.append(d.until - now)
        now = d.until
    assert ends == [20, 40, 40, 40]
    d.on_send(now)
    d.on_success(now)
    d.on_failure(now + 1)
    assert d.until - (now + 1) == 10  # a good probe forgets the history


def test_lost_probe_does_not_block_the_replica_forever() -> None:
    d = OutlierDetector(consecutive_errors=1, ejection_seconds=5)
    d.on_failure(0)
    d.on_send(5)  # the probe's caller is cancelled and never reports
    assert not d.admits(9)
    assert d.admits(10)


def test_late_errors_of_calls_sent_before_ejection_do_not_extend_it() -> None:
    d = OutlierDetector(consecutive_errors=2, ejection_seconds=5)
    d.on_failure(0)
    d.on_failure(0)
    assert not d.on_failure(1) and d.until == 5


def test_hedge_budget_caps_hedges_to_the_ratio_of_calls() -> None:
    b = HedgeBudget(0.05, burst_calls=10)
    granted = 0
    for i in range(10_000):
        b.on_call(100, i * 0.01)
        advance = b.try_spend()  # a pathological fleet: every call wants a hedge
        if advance is not None:
            granted += 1
            b.settle(advance, 100)  # its loser cost a whole call
    assert granted <= 0.05 * 10_000 and granted >= 0.05 * 10_000 - 1
    assert HedgeBudget(0.05).try_spend() is None  # starts empty
    with pytest.raises(ValueError):
        HedgeBudget(1.5)


def test_hedge_budget_banks_at_least_the_burst_when_quiet() -> None:
    b = HedgeBudget(0.5, burst_calls=3, bank_s=60)
    for i in range(100):
        b.on_call(100, i * 30.0)  # two calls a minute earn one hedge
    assert sum(b.try_spend() is not None for _ in range(10)) == 3


def busy_budget(aborting: bool) -> HedgeBudget:
    b = HedgeBudget(0.05, burst_calls=10, bank_s=60)
    for i in range(3000):
        b.on_call(100, i * 0.1, aborting=aborting)  # 10 calls a second for 5 minutes
    return b


def test_hedge_budget_banks_a_minute_of_a_busy_pods_earnings() -> None:
    """A stalled replica strands every call the pod sent there: at 10 calls a second, on engines
    seen to abort the losers, the budget holds the 30 hedges a minute of them earned, not a fixed
    10, and no more than that."""
    b = busy_budget(aborting=True)
    assert sum(b.try_spend() is not None for _ in range(100)) == 30
    assert b.hedges <= 0.05 * b.calls


def test_hedge_budget_lets_out_at_most_burst_mean_calls_of_loser_work_where_losers_run_on() -> None:
    """Where the engine runs a cancelled loser to its end, each hedge of a burst lands on the
    fleet as a whole call: the token balance holds 10 mean calls however busy the pod."""
    b = busy_budget(aborting=False)
    assert sum(b.try_spend() is not None for _ in range(100)) == 10


def test_hedge_budget_charges_losers_what_they_cost_not_a_call_each() -> None:
    """The hedged calls are the long ones (20x a short one's tokens), and their losers run to
    the end: the tokens spent on losers stay within the ratio of all calls' tokens, where a
    budget of 5% of calls would let them reach about half of them."""
    b = HedgeBudget(0.05, burst_calls=10)
    for i in range(10_000):
        long = i % 10 == 0
        b.on_call(2000 if long else 100, i * 0.01)
        if long:
            advance = b.try_spend()
            if advance is not None:
                b.settle(advance, loser_cost(1000, 1000, aborted=False))
    assert (
        b.hedges >= 70 and b.charged <= 0.05 * b.call_tokens + 2000
    )  # a budget in calls: ~500 hedges, 34% of the tokens
    # A loser the engine aborted at the winner's first token wrote nothing (its prefill is the
    # call the calls bucket charged); one aborted halfway through a whole-call race, half of it.
    assert loser_cost(1000, 300, aborted=True, share=0.0) == 0 and loser_cost(1000, 300, aborted=True, share=0.5) == 150
    assert loser_cost(1000, 300, aborted=False, share=0.0) == 1300


@pytest.mark.parametrize("p", [0.5, 0.95, 0.99])
def test_p2_tracks_the_quantile_of_a_heavy_tailed_stream(p: float) -> None:
    rng = random.Random(11)
    xs = [rng.lognormvariate(0, 0.8) for _ in range(20_000)]
    q = P2Quantile(p)
    for x in xs:
        q.add(x)
    exact = sorted(xs)[int(p * len(xs))]
    est = q.value()
    assert est is not None and abs(est - exact) / exact < 0.05


def test_p2_small_samples_and_bounds() -> None:
    q = P2Quantile(0.95)
    assert q.value() is None
    for x in (3.0, 1.0, 2.0):
        q.add(x)
    assert q.value() == 3.0
    with pytest.raises(ValueError):
        P2Quantile(1.0)


def test_windowed_quantile_follows_drift_and_waits_for_samples() -> None:
    w = WindowedQuantile(0.95, window=1000, min_samples=50)
    for _ in range(49):
        w.add(1.0)
    assert w.value() is None
    for _ in range(3000):
        w.add(1.0)
    for i in range(2000):
        w.add(10.0 + (i % 10) * 0.1)  # latency regime change
    value = w.value()
    assert value is not None and value > 9.0


# --- found unpinned by the mutation report (docs/mutation-testing.md) ------------------------


def test_full_jitter_defaults_bounds_and_its_own_random_source() -> None:
    rng = random.Random(5)
    assert all(full_jitter(0, rng=rng) <= 0.05 for _ in range(200))  # default base 0.05
    draws = [full_jitter(100, rng=rng) for _ in range(400)]
    assert max(draws) <= 2.0 and max(draws) > 1.6  # default cap 2 s, and the window is used
    assert full_jitter(3, base=0.0, rng=rng) == 0.0  # no backoff is allowed
    assert full_jitter(3, 0.05, 0.5, rng) <= 0.5 and full_jitter(3, 0.05, 0.0, rng) == 0.0  # a small or zero cap too
    with pytest.raises(ValueError):
        full_jitter(1, base=-0.1)
    with pytest.raises(ValueError):
        full_jitter(1, cap=-1.0)
    # Draws come from the given source: a seeded run repeats exactly.
    assert [full_jitter(4, rng=random.Random(9)) for _ in range(3)] == [
        full_jitter(4, rng=random.Random(9)) for _ in range(3)
    ]


def test_a_failed_probe_reports_the_ejection() -> None:
    d = OutlierDetector(consecutive_errors=1, ejection_seconds=10)
    assert d.on_failure(0)
    d.on_send(10)
    assert d.state is Health.PROBING
    assert d.on_failure(10) and d.state is Health.EJECTED


def test_hedge_budget_counts_each_hedge_it_grants() -> None:
    b = HedgeBudget(1.0, burst_calls=5)
    for i in range(3):
        b.on_call(100, float(i))
    assert [b.try_spend() is not None for _ in range(4)] == [True, True, True, False]
    assert (b.calls, b.hedges) == (3, 3)


def test_windowed_quantile_answers_from_exactly_min_samples() -> None:
    w = WindowedQuantile(0.5, window=1000, min_samples=50)
    for _ in range(50):
        w.add(2.0)
    assert w.value() == 2.0
