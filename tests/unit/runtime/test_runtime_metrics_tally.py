"""Per-step metrics go through tallies (metrics.py): a collection of the registry sees them all,
with the same bucket, sum and count semantics as prometheus_client's own observe/inc."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from agentfleet_runtime.core import metrics


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_scrape_sees_every_tallied_update():
    before_in = sample("agentfleet_tokens_total", {"direction": "input"})
    before_count = sample("agentfleet_step_overhead_seconds_count")
    before_le = sample("agentfleet_step_overhead_seconds_bucket", {"le": "0.001"})
    metrics.TOKENS_IN.inc(7)
    metrics.TOKENS_IN.inc(5)
    metrics.STEP_OVERHEAD.observe(0.0007)
    metrics.STEP_OVERHEAD.observe(0.001)  # on a bound: counted in that bucket, as observe does
    metrics.STEP_OVERHEAD.observe(3.0)  # past every bound: +Inf only
    text = generate_latest(REGISTRY).decode()  # what /metrics serves
    assert "agentfleet_step_overhead_seconds_count" in text
    assert sample("agentfleet_tokens_total", {"direction": "input"}) == before_in + 12
    assert sample("agentfleet_step_overhead_seconds_count") == before_count + 3
    assert sample("agentfleet_step_overhead_seconds_bucket", {"le": "0.001"}) == before_le + 2
    assert sample("agentfleet_step_overhead_seconds_bucket", {"le": "+Inf"}) >= before_count + 3


def test_tallies_match_prometheus_client_exactly():
    reg = CollectorRegistry()
    bounds = (0.01, 0.1, 1.0)
    direct = Histogram("h_direct", "d", buckets=bounds, registry=reg)
    tallied_h = Histogram("h_tallied", "t", buckets=bounds, registry=reg)
    tally = metrics._HistogramTally(tallied_h)
    counter_direct = Counter("c_direct", "d", registry=reg)
    counter_tally = metrics._CounterTally(Counter("c_tallied", "t", registry=reg))
    values = [0.0, 0.005, 0.01, 0.0100001, 0.1, 0.5, 1.0, 7.0, 0.05]
    for v in values:
        direct.observe(v)
        tally.observe(v)
        counter_direct.inc(v)
        counter_tally.inc(v)
    tally.flush()
    counter_tally.flush()
    for le in ("0.01", "0.1", "1.0", "+Inf"):
        assert reg.get_sample_value("h_tallied_bucket", {"le": le}) == reg.get_sample_value(
            "h_direct_bucket", {"le": le}
        ), le
    assert reg.get_sample_value("h_tallied_sum") == pytest.approx(reg.get_sample_value("h_direct_sum"))
    assert reg.get_sample_value("c_tallied_total") == pytest.approx(reg.get_sample_value("c_direct_total"))
    tally.flush()  # nothing pending: no change
    assert reg.get_sample_value("h_tallied_count") == len(values)
    with pytest.raises(ValueError):
        counter_tally.inc(-1)


def test_tool_and_model_call_helpers_reach_their_metrics():
    before = sample("agentfleet_tool_calls_total", {"tool": "tally-test", "outcome": "ok"})
    metrics.tool_called("tally-test", "ok", 0.02)
    metrics.tool_called("tally-test", "breaker_open", 0.0)  # counted, no latency observed
    observer = metrics.ModelObserver()
    before_model = sample("agentfleet_model_call_duration_seconds_count", {"outcome": "timeout"})
    observer("timeout", 1.5)
    assert sample("agentfleet_tool_calls_total", {"tool": "tally-test", "outcome": "ok"}) == before + 1
    assert sample("agentfleet_tool_calls_total", {"tool": "tally-test", "outcome": "breaker_open"}) == 1
    assert sample("agentfleet_tool_call_duration_seconds_count", {"tool": "tally-test"}) == 1
    assert sample("agentfleet_model_call_duration_seconds_count", {"outcome": "timeout"}) == before_model + 1
