"""The AgentFleet workers policy, the pod view of a fleet, and the metric-schema check."""

from __future__ import annotations

from typing import Any

import pytest
from agentfleet_contract.agentfleet import Workers

from agentfleet.autoscale.common import METRICS_AVAILABLE, SCALING_ACTIVE
from agentfleet.autoscale.pods import fleet_from_pods
from agentfleet.autoscale.workers import WorkerPolicyConfig, WorkerSignals, WorkerState, decide_workers
from agentfleet.promql import schema_problem
from agentfleet_sim import Flavor, exposed_names
from tests.builders import Pod


def test_workers_scale_on_queued_plus_in_flight() -> None:
    c = WorkerPolicyConfig.from_spec(Workers(min_replicas=1, max_replicas=10, target_tasks_per_worker=48))
    d, _ = decide_workers(c, WorkerState(), 2, WorkerSignals(at=0.0, queued=130.0, in_flight=60.0))
    assert d.desired == 4
    assert d.reason == "2 -> 4: 130 queued + 60 in flight > 2 x 48 target"


def test_workers_lag_adds_one_even_under_target() -> None:
    c = WorkerPolicyConfig(target_tasks_per_worker=48)
    d, _ = decide_workers(
        c, WorkerState(), 3, WorkerSignals(at=0.0, queued=10.0, in_flight=100.0, oldest_age_seconds=90.0)
    )
    assert d.desired == 4 and "oldest task waited 90s > 30s" in d.reason


def test_workers_scale_down_after_window_to_min_and_hold_blind() -> None:
    c = WorkerPolicyConfig(min_replicas=1, down_window_seconds=60.0, max_down_step=2)
    state, current = WorkerState(), 5
    for t in range(0, 200, 15):
        d, state = decide_workers(c, state, current, WorkerSignals(at=float(t), queued=0.0, in_flight=0.0))
        current = d.desired
    assert current == 1
    d, _ = decide_workers(
        c, state, current, WorkerSignals(at=300.0, queued=None, in_flight=None, error="ConnectionError")
    )
    assert d.desired == 1 and not d.changed
    assert next(x for x in d.conditions if x.type == METRICS_AVAILABLE).reason == "PrometheusUnavailable"


def test_workers_hold_when_either_figure_is_missing() -> None:
    # A queue depth without the in-flight sum (or the reverse) is no basis for a count: hold.
    c = WorkerPolicyConfig()
    for queued, in_flight in ((5.0, None), (None, 5.0)):
        d, state = decide_workers(c, WorkerState(), 3, WorkerSignals(at=0.0, queued=queued, in_flight=in_flight))
        assert (d.desired, d.recommendation, d.warning) == (3, None, "MetricsUnavailable")
        by_type = {x.type: (x.status, x.reason) for x in d.conditions}
        assert by_type == {METRICS_AVAILABLE: (False, "MetricsStale"), SCALING_ACTIVE: (False, "MetricsUnavailable")}
        assert state == WorkerState()


def test_workers_lag_adds_one_only_past_the_slo_with_a_task_queued() -> None:
    c = WorkerPolicyConfig(target_tasks_per_worker=48, lag_slo_seconds=30.0)

    def desired(queued: float, age: float) -> int:
        return decide_workers(
            c, WorkerState(), 3, WorkerSignals(at=0.0, queued=queued, in_flight=100.0, oldest_age_seconds=age)
        )[0].desired

    assert desired(1.0, 31.0) == 4  # one task waiting too long is enough
    assert desired(1.0, 30.0) == 3  # exactly the SLO is within it
    assert desired(0.0, 90.0) == 3  # nothing queued: the age is a stale reading


def pod(name: str, *, ready: bool, created: str, ready_at: str | None = None, **labels: str) -> dict[str, Any]:
    return Pod(name).created(created).labels(labels).phase("Running").ready(ready, since=ready_at or created).obj()


def test_fleet_from_pods_splits_ready_starting_and_learns_load_time() -> None:
    from datetime import datetime

    now = datetime.fromisoformat("2026-01-01T00:10:00+00:00").timestamp()
    pods = [
        pod(
            "m-0",
            ready=True,
            created="2026-01-01T00:00:00Z",
            ready_at="2026-01-01T00:03:00Z",
            **{"agentfleet.io/serving": "true"},
        ),
        pod("m-1", ready=False, created="2026-01-01T00:08:00Z"),
        pod("m-2", ready=True, created="2026-01-01T00:00:00Z", **{"agentfleet.io/serving": "false"}),  # draining
        pod("m-3-1", ready=True, created="2026-01-01T00:00:00Z", **{"agentfleet.io/role": "worker"}),
        # a gate's canary: neither capacity nor demand of the set's users, ready or not
        pod("m-4", ready=True, created="2026-01-01T00:00:00Z", **{"agentfleet.io/serving": "canary"}),
        pod("m-5", ready=False, created="2026-01-01T00:09:00Z", **{"agentfleet.io/serving": "canary"}),
    ]
    pf = fleet_from_pods(pods, now)
    assert pf.ready == ("m-0",)
    assert [(s.name, s.age_seconds) for s in pf.starting] == [("m-1", 120.0)]
    assert pf.load_seconds == {"m-0": pytest.approx(180.0)}


def test_schema_check_flags_legacy_vllm_names_and_accepts_current_ones() -> None:
    assert (
        schema_problem(exposed_names(Flavor.CURRENT) | {n + "_bucket" for n in exposed_names(Flavor.CURRENT)}) is None
    )
    problem = schema_problem(exposed_names(Flavor.LEGACY))
    assert problem is not None and problem.startswith("MetricsSchemaMismatch")
    assert "vllm:gpu_cache_usage_perc (now vllm:kv_cache_usage_perc)" in problem
    assert "missing vllm:kv_cache_usage_perc" in problem
    assert schema_problem(set()) is None
