"""The policy and the PromQL reader against a real Prometheus scraping simulated vLLM replicas.

The loop here is the controller's, minus Kubernetes: every period, read Prometheus, decide, feed
the desired count back as the current one. The simulated replicas are fast (tens of ms per
request) and few sequences fit a replica (max_num_seqs 2), so a burst of concurrent clients
builds a real waiting queue that Prometheus scrapes every second.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentfleet.autoscale.common import METRICS_AVAILABLE
from agentfleet.autoscale.goodput import objectives_from_slo
from agentfleet.autoscale.policy import FleetView, Outcome, PolicyConfig, PolicyState, decide
from agentfleet.promql import PromReader, Target
from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.poll import poll
from e2e.harness.sim import FAST_ENGINE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ENGINE = {**FAST_ENGINE, "max_num_seqs": 2, "decode_base_s": 0.01}
PERIOD = 2.0
OBJECTIVES = objectives_from_slo(2500, 50, 0)


def config(**kw: Any) -> PolicyConfig:
    base: dict[str, Any] = dict(
        min_replicas=1,
        max_replicas=10,
        target_queue_depth=2,
        window_seconds=10.0,
        period_seconds=PERIOD,
        up_window_seconds=0.0,
        down_window_seconds=8.0,
        max_up_step=4,
        max_down_step=1,
        stale_after_seconds=10.0,
    )
    base.update(kw)
    return PolicyConfig(**base)


@contextmanager
def load(fleet: FleetThread, clients: int, **extra: Any) -> Iterator[None]:
    """``clients`` closed-loop HTTP clients spread over the replicas until the block ends; ``extra``
    goes into every request body (``tools=...``)."""
    stop = threading.Event()
    urls = [h.url + "/v1/chat/completions" for h in fleet.replicas]

    def client(i: int) -> None:
        messages = [{"role": "user", "content": f"task {i} " * 40}]
        body = json.dumps({"model": "llama-8b", "messages": messages, "max_tokens": 30, **extra}).encode()
        while not stop.is_set():
            req = urllib.request.Request(urls[i % len(urls)], data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
            except OSError:
                time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(35)


class Loop:
    """The controller's evaluation loop without Kubernetes."""

    def __init__(self, reader: PromReader, fleet: FleetThread, cfg: PolicyConfig, current: int = 1) -> None:
        self.reader = reader
        self.target = Target('job="sim"', replica_label="instance")
        self.ready = tuple(h.url.removeprefix("http://") for h in fleet.replicas)
        self.cfg = cfg
        self.state = PolicyState.initial(cfg)
        self.current = current
        self.history: list[Outcome] = []
        self.times: list[float] = []  # time.monotonic() of each step, beside history

    def step(self) -> Outcome:
        obs = self.reader.observe(self.target, OBJECTIVES, int(self.cfg.window_seconds))
        out = decide(self.cfg, self.state, FleetView(self.current, self.ready), obs)
        self.state, self.current = out.state, out.decision.desired
        self.history.append(out)
        self.times.append(time.monotonic())
        return out

    def held_before_first_down(self, since: int) -> float:
        """Seconds from the last step whose raw recommendation still asked for the count the
        first scale-down at or after step ``since`` left, to that scale-down: what the down
        window promises to hold."""
        i = next(
            i
            for i in range(since, len(self.history))
            if self.history[i].decision.desired < self.history[i].decision.current
        )
        n = self.history[i].decision.current
        high = [
            t for t, o in zip(self.times[:i], self.history[:i], strict=True) if (o.decision.recommendation or 0) >= n
        ]
        assert high, "the count went down without ever being recommended"
        return self.times[i] - high[-1]

    def run(self, n: int) -> list[Outcome]:
        outs = []
        for _ in range(n):
            outs.append(self.step())
            time.sleep(PERIOD)
        return outs


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> None:
    poll(pred, timeout, "the condition", 0.25)


@pytest.fixture
def fleet() -> Iterator[FleetThread]:
    f = start_fleet(2, engine=ENGINE)
    try:
        yield f
    finally:
        f.stop()


def start_prom(prometheus_server: Any, fleet: FleetThread) -> Any:
    prom = prometheus_server([h.url.removeprefix("http://") for h in fleet.replicas])
    prom.wait_for('count(up{job="sim"} == 1)', lambda r: bool(r) and float(r[0]["value"][1]) == len(fleet.replicas))
    return prom


def test_burst_scales_up_within_two_periods_then_down_after_the_window(
    prometheus_server: Any, fleet: FleetThread
) -> None:
    prom = start_prom(prometheus_server, fleet)
    loop = Loop(PromReader(prom.url), fleet, config())
    idle = loop.run(3)
    assert all(o.decision.desired == 1 for o in idle), [o.decision.reason for o in idle]
    assert idle[-1].decision.conditions[0].type == METRICS_AVAILABLE and idle[-1].decision.conditions[0].status

    with load(fleet, clients=24):
        # "After the queue rises": from the first scrape that shows it.
        prom.wait_for('sum(vllm:num_requests_waiting{job="sim"})', lambda r: bool(r) and float(r[0]["value"][1]) > 4)
        first_two = [loop.step(), (time.sleep(PERIOD), loop.step())[1]]
        assert any(o.decision.desired > 1 for o in first_two), [o.decision.reason for o in first_two]
        up = next(o for o in first_two if o.decision.desired > 1)
        assert "waiting >" in up.decision.reason and up.decision.reason.startswith("1 -> ")
        peak_outs = loop.run(3)
    peak = max(o.decision.desired for o in (*first_two, *peak_outs))

    # Load stopped: the count holds during the down window, then steps down to the minimum.
    wait_until(
        lambda: (
            float(
                (
                    prom.query('sum(vllm:num_requests_waiting{job="sim"}) + sum(vllm:num_requests_running{job="sim"})')
                    or [{"value": [0, "1"]}]
                )[0]["value"][1]
            )
            == 0
        )
    )
    quiet_start, quiet_step = time.monotonic(), len(loop.history)
    outs: list[tuple[float, Outcome]] = []
    while loop.current > 1 and time.monotonic() - quiet_start < 90:
        out = loop.step()
        outs.append((time.monotonic() - quiet_start, out))
        time.sleep(PERIOD)
    assert loop.current == 1, [o.decision.reason for _, o in outs]
    # The window runs from the last recommendation for the higher count, not from when the
    # queue drained: waiting for Prometheus to show the drain can itself take most of the
    # window (CI once took 6 s, then stepped down 2 s later, correctly). One period of slack:
    # the policy's clock is the observation's, these times are the test's.
    held = loop.held_before_first_down(quiet_step)
    assert held >= loop.cfg.down_window_seconds - PERIOD, held
    downs = [o for _, o in outs if o.decision.changed]
    assert all(o.decision.desired == o.decision.current - 1 for o in downs)  # max step 1
    assert any("no traffic" in o.decision.reason for o in downs)
    assert peak > 1


def test_steady_load_does_not_flap(prometheus_server: Any, fleet: FleetThread) -> None:
    prom = start_prom(prometheus_server, fleet)
    loop = Loop(PromReader(prom.url), fleet, config(), current=2)
    with load(fleet, clients=3):  # under max_num_seqs x replicas: no queue, steady running
        prom.wait_for('sum(vllm:num_requests_running{job="sim"})', lambda r: bool(r) and float(r[0]["value"][1]) >= 1)
        outs = loop.run(10)
    changes = [o.decision.reason for o in outs if o.decision.changed]
    assert changes == [], changes
    assert all(o.observed.running is not None for o in outs)


def test_prometheus_down_holds_with_a_condition(prometheus_server: Any, fleet: FleetThread) -> None:
    prom = start_prom(prometheus_server, fleet)
    loop = Loop(PromReader(prom.url, timeout_s=2.0), fleet, config(), current=3)
    ok = loop.step()
    assert ok.decision.conditions[0].status
    prom.stop()
    outs = loop.run(3)
    for o in outs:
        d = o.decision
        assert d.desired == 3 and not d.changed and d.recommendation is None
        m = next(c for c in d.conditions if c.type == METRICS_AVAILABLE)
        assert not m.status and m.reason == "PrometheusUnavailable"
        assert d.reason.startswith("holding 3: metrics unavailable")


def test_legacy_metric_names_are_reported_as_schema_mismatch(prometheus_server: Any) -> None:
    legacy = start_fleet(1, engine=ENGINE, metrics_flavor="legacy")
    try:
        prom = start_prom(prometheus_server, legacy)
        loop = Loop(PromReader(prom.url), legacy, config())
        out = loop.step()
        m = next(c for c in out.decision.conditions if c.type == METRICS_AVAILABLE)
        assert not m.status and m.reason == "MetricsSchemaMismatch"
        assert "vllm:gpu_cache_usage_perc" in m.message
        assert out.decision.warning == "MetricsSchemaMismatch"
        assert out.observed.queue_depth == 0  # the queue is still read
    finally:
        legacy.stop()


def test_goodput_from_prometheus_matches_the_replicas_own_histograms(
    prometheus_server: Any, fleet: FleetThread
) -> None:
    prom = start_prom(prometheus_server, fleet)
    reader = PromReader(prom.url)
    with load(fleet, clients=8):
        time.sleep(4)
    time.sleep(2.5)  # two more scrapes after the last request
    target = Target('job="sim"', replica_label="instance")
    promql_share = reader.observe(target, objectives_from_slo(0, 50, 0), 600).goodput
    assert promql_share is not None and promql_share.fraction is not None

    async def shares() -> tuple[float, float]:
        good = total = 0.0
        for h in fleet.replicas:
            hist = h.replica.stats().h_tpot
            good += sum(hist.counts[: hist.bounds.index(0.05) + 1])
            total += hist.count
        return good, total

    good, total = fleet.call(shares)
    # increase() extrapolates to the window's edges, so allow a little; the share must agree.
    assert promql_share.fraction == pytest.approx(good / total, abs=0.03)
    assert promql_share.requests == pytest.approx(total, rel=0.2)


LOOKUP = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"key": {"type": "string"}}}},
}


def test_completion_rate_counts_tool_call_answers_of_an_engine_that_counts_them_apart(
    prometheus_server: Any,
) -> None:
    # Issue 46: llm-d's simulator counts a tool-call answer under finish_reason="tool_calls"; a
    # query for stop|length read about half of an agent's completions (32 of 65 were tool calls).
    quirks = {
        "tool_call_rate": 1.0,
        "tool_calls_finish_reason": True,
        "finish_reason_label": "finish_reason",
        "lazy_series": True,
    }
    peer = start_fleet(1, engine=ENGINE, quirks=quirks)
    try:
        prom = start_prom(prometheus_server, peer)
        with load(peer, clients=4, tools=[LOOKUP]):
            time.sleep(6)
        time.sleep(2.5)  # two more scrapes after the last request
        reader = PromReader(prom.url)
        rate = reader.observe(Target('job="sim"', replica_label="instance"), OBJECTIVES, 60).completion_rate
        # No abort, error or repetition here: every reason is a served answer.
        every = prom.query('sum(rate(vllm:request_success_total{job="sim"}[60s]))')
        counts = peer.call(lambda: _reasons(peer))
    finally:
        peer.stop()
    # Every answer that stopped on its own was a tool call.
    assert counts.get("tool_calls", 0) > 0.3 * sum(counts.values()), counts
    assert rate is not None and rate == pytest.approx(float(every[0]["value"][1]), rel=0.02), (rate, every)


async def _reasons(fleet: FleetThread) -> dict[str, int]:
    return {k: v for k, v in fleet.replicas[0].replica.stats().request_success.items() if v}
