"""The autoscalers' inputs and small terms, field by field: the pod view of a fleet, the config
from the spec, the learned load time, the workers' decision and its conditions, the terms'
boundaries and the bucket merge.

Each test pins behaviour that a mutmut survivor showed no other autoscale test looked at
(the dated log 2026-11-25-mutation-history in git history, fourth round)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from agentfleet_contract.agentfleet import Workers
from agentfleet_contract.modelreplicaset import Autoscaling, GoodputSLO

from agentfleet.autoscale.common import (
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    Bounds,
    ConditionUpdate,
    bound,
    prune,
    stabilize,
)
from agentfleet.autoscale.goodput import (
    E2E_METRIC,
    TPOT_METRIC,
    TTFT_METRIC,
    Objective,
    Share,
    goodput,
    merge_buckets,
    objectives_from_slo,
    share_within,
)
from agentfleet.autoscale.pods import fleet_from_pods
from agentfleet.autoscale.state import MAX_SEEN, LoadTime, PolicyConfig
from agentfleet.autoscale.terms import capacity_clamp, collapse_term, goodput_collapsed, loading_credit
from agentfleet.autoscale.workers import (
    WorkerPolicyConfig,
    WorkerSignals,
    WorkerState,
    decide_workers,
    fleets_using,
    task_demand,
)

NOW = datetime.fromisoformat("2026-01-01T00:10:00+00:00").timestamp()


def _pod(
    name: str,
    *,
    ready: bool | None,
    created: str | None = "2026-01-01T00:00:00Z",
    since: str | None = None,
    phase: str = "Running",
    **meta: Any,
) -> dict:
    md: dict[str, Any] = {"name": name, "labels": meta.pop("labels", {}), **meta}
    if created is not None:
        md["creationTimestamp"] = created
    status: dict[str, Any] = {"phase": phase}
    if ready is not None:
        cond: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
        if since is not None:
            cond["lastTransitionTime"] = since
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}, cond]
    return {"metadata": md, "status": status}


def test_fleet_from_pods_skips_pods_on_their_way_out_and_keeps_reading_after_them() -> None:
    # Pins fleet_from_pods' filters: a worker pod, a terminating pod and a finished (Succeeded
    # or Failed) pod are neither ready nor loading, and each is skipped, not the end of the list.
    pods = [
        _pod("w-1", ready=True, since="2026-01-01T00:01:00Z", labels={"agentfleet.io/role": "worker"}),
        _pod("gone", ready=True, since="2026-01-01T00:01:00Z", deletionTimestamp="2026-01-01T00:09:00Z"),
        _pod("done", ready=False, phase="Succeeded"),
        _pod("crashed", ready=False, phase="Failed"),
        _pod("m-0", ready=True, since="2026-01-01T00:04:00Z"),
        _pod("m-1", ready=False),
    ]
    pf = fleet_from_pods(pods, NOW)
    assert pf.ready == ("m-0",)
    assert [s.name for s in pf.starting] == ["m-1"]


def test_fleet_from_pods_ready_ages_load_times_and_missing_timestamps() -> None:
    # Pins the ages and load times: seconds since Ready per ready pod (0 at the instant), a
    # load time of at least one second (Ready within the second of creation), none without
    # either timestamp, a pod without conditions or creation time as loading for 0 s, and the
    # loading pods sorted by name.
    pods = [
        _pod("m-b", ready=None, created=None),
        _pod("m-a", ready=None, created="2026-01-01T00:10:00Z"),
        _pod("fast", ready=True, created="2026-01-01T00:05:00Z", since="2026-01-01T00:05:00Z"),
        _pod("now", ready=True, created="2026-01-01T00:07:00Z", since="2026-01-01T00:10:00Z"),
        _pod("no-since", ready=True),
        _pod("no-created", ready=True, created=None, since="2026-01-01T00:02:00Z"),
    ]
    pf = fleet_from_pods(pods, NOW)
    assert pf.ready == ("fast", "no-created", "no-since", "now")
    assert [(s.name, s.age_seconds) for s in pf.starting] == [("m-a", 0.0), ("m-b", 0.0)]
    assert pf.ready_ages == {"fast": 300.0, "now": 0.0, "no-created": 480.0}
    assert pf.load_seconds == {"fast": 1.0, "now": 180.0}


def test_policy_config_reads_every_field_of_the_spec() -> None:
    # Pins PolicyConfig.from_spec field by field (values unlike the defaults), the stale
    # limit's 30 s floor, and the load-time prior (300 s unless given).
    a = Autoscaling(
        min_replicas=2,
        max_replicas=9,
        target_queue_depth_per_replica=5,
        kv_cache_usage_threshold_percent=75,
        window_seconds=45,
        evaluation_period_seconds=5,
        scale_up_stabilization_seconds=10,
        scale_down_stabilization_seconds=120,
        max_scale_up_step=3,
        max_scale_down_step=2,
        goodput=GoodputSLO(target_fraction=0.9),
    )
    c = PolicyConfig.from_spec(a)
    assert (c.min_replicas, c.max_replicas, c.target_queue_depth, c.kv_threshold, c.target_fraction) == (
        2,
        9,
        5,
        0.75,
        0.9,
    )
    assert (c.window_seconds, c.period_seconds, c.up_window_seconds, c.down_window_seconds) == (45.0, 5.0, 10.0, 120.0)
    assert (c.max_up_step, c.max_down_step, c.stale_after_seconds, c.initial_load_seconds) == (3, 2, 30.0, 300.0)
    assert PolicyConfig.from_spec(a, initial_load_seconds=120.0).initial_load_seconds == 120.0
    w = WorkerPolicyConfig.from_spec(Workers(min_replicas=2, max_replicas=7, target_tasks_per_worker=20))
    assert (w.min_replicas, w.max_replicas, w.target_tasks_per_worker) == (2, 7, 20)


def test_load_time_learns_shortest_first_from_one_second_and_remembers_a_bounded_set() -> None:
    # Pins LoadTime.observe: samples in order of duration (the first replaces the prior), a
    # 1 s load is a sample and 0 s is not, and the replicas seen are trimmed to MAX_SEEN.
    lt = LoadTime(300.0).observe({"a": 100.0, "b": 10.0})
    assert lt.seconds == pytest.approx(0.7 * 10.0 + 0.3 * 100.0) and lt.samples == 2
    assert LoadTime(300.0).observe({"zero": 0.0}) == LoadTime(300.0)
    assert LoadTime(300.0).observe({"warm": 1.0}).seconds == 1.0
    many = LoadTime(300.0).observe({f"p{i:04d}": 60.0 for i in range(MAX_SEEN + 1)})
    assert len(many.seen) == MAX_SEEN and "p0000" not in many.seen and f"p{MAX_SEEN:04d}" in many.seen


def _conds(d) -> dict[str, tuple[bool, str, str]]:  # type: ignore[no-untyped-def]
    return {c.type: (c.status, c.reason, c.message) for c in d.conditions}


def test_workers_decision_reason_and_conditions_in_full() -> None:
    # Pins decide_workers' reason and conditions word for word: a load exactly at target holds
    # "within target", no tasks says so, a hold without samples names why.
    c = WorkerPolicyConfig(target_tasks_per_worker=48, min_replicas=1, max_replicas=10)
    d, st = decide_workers(c, WorkerState(), 2, WorkerSignals(at=0.0, queued=46.0, in_flight=50.0))
    assert (d.current, d.desired, d.recommendation, d.reason) == (2, 2, 2, "holding 2: within target")
    assert d.conditions == (
        ConditionUpdate(METRICS_AVAILABLE, True, "MetricsRead", "96 tasks queued or in flight"),
        ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", "holding 2: within target"),
        ConditionUpdate(SCALING_LIMITED, False, "DesiredWithinRange", "the desired count 2 is within the limits"),
    )
    assert st.recommendations == ((0.0, 2),)
    d, _ = decide_workers(c, WorkerState(), 2, WorkerSignals(at=0.0, queued=0.0, in_flight=0.0))
    assert d.reason == "holding 2: 0 queued + 0 in flight fit 1; no tasks"
    d, _ = decide_workers(c, WorkerState(), 3, WorkerSignals(at=0.0, queued=None, in_flight=4.0))
    assert d.reason == "holding 3: task-queue metrics unavailable (no samples)"
    assert _conds(d) == {
        METRICS_AVAILABLE: (False, "MetricsStale", "task-queue metrics unavailable (no samples)"),
        SCALING_ACTIVE: (False, "MetricsUnavailable", "holding 3 workers: task-queue metrics unavailable (no samples)"),
    }


def test_task_demand_needs_every_fleets_two_figures_and_skips_deleted_fleets() -> None:
    # Pins task_demand (a fleet missing either figure, or in error, makes the sum unknown) and
    # fleets_using (a fleet being deleted is skipped, the ones after it still count).
    assert task_demand([WorkerSignals(0.0, 2.0, 3.0), WorkerSignals(0.0, 1.0, 1.0)]) == 7.0
    assert task_demand([WorkerSignals(0.0, None, 5.0)]) is None
    assert task_demand([WorkerSignals(0.0, 5.0, None)]) is None
    assert task_demand([WorkerSignals(0.0, 5.0, 5.0, error="ConnectionError")]) is None
    fleets = [
        {"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"modelRef": {"name": "m"}}},
        {"metadata": {"name": "live"}, "spec": {"routineModelRef": {"name": "m"}}},
    ]
    assert fleets_using(fleets, "m") == ["live"]


def test_term_boundaries() -> None:
    # Pins the strict comparisons of the terms: a collapse is goodput strictly under half the
    # ordered figure; the task-layer collapse scales only on a rise in tasks; growth under one
    # request per second still orders; growth that only covers the replicas in flight orders
    # nothing more; the capacity clamp leaves a target at the cap or at the current count.
    assert not goodput_collapsed(0.25, 0.5, 0.95) and goodput_collapsed(0.24, 0.5, 0.95)
    assert collapse_term(2, 2, 0.9, 0.95, tasks=10.0, ordered_tasks=10.0, ordered_for=6) == 3
    assert collapse_term(2, 2, 0.9, 0.95, tasks=11.0, ordered_tasks=10.0, ordered_for=6) == 7
    assert loading_credit(10, base=3, in_flight=1, ordered_for=None, growth=0.5, per_replica_rate=0.1, serving=2) == 7
    # 2 serving, 1 loading, 1 just ready (in flight 2): growth worth 2 replicas is covered.
    assert loading_credit(10, base=3, in_flight=2, ordered_for=None, growth=0.2, per_replica_rate=0.1, serving=2) == 3
    assert capacity_clamp(5, 3, 3, 2) == (5, None)
    assert capacity_clamp(4, 4, 2, 1) == (4, None)


def test_merge_buckets_skips_a_nan_bucket_not_the_rest_of_the_pod() -> None:
    # Pins merge_buckets' NaN skip (continue, not break), and the goodput note's unit under 1 s.
    merged = merge_buckets([[(0.1, math.nan), (math.inf, 5.0)], [(0.1, 1.0), (math.inf, 2.0)]])
    assert merged == [(0.1, 1.0), (math.inf, 7.0)]
    (obj,) = objectives_from_slo(0, 30, 0)
    assert (
        share_within(obj, [(0.025, 1.0), (0.05, 2.0), (math.inf, 3.0)]).note
        == "tpot SLO 30ms is not a bucket edge: counted as 25ms"
    )
    assert obj.metric == TPOT_METRIC


@pytest.mark.parametrize(
    ("history", "now", "current", "up", "down", "expected", "why"),
    [
        (
            [(30.0, 1), (60.0, 4)],
            60.0,
            2,
            30.0,
            300.0,
            4,
            "a recommendation exactly up_window old is out of the up window",
        ),
        (
            [(60.0, 5), (61.0, 2), (120.0, 2)],
            120.0,
            5,
            0.0,
            60.0,
            2,
            "one exactly down_window old is out of the down window",
        ),
        (
            [(50.0, 5), (61.0, 4), (120.0, 2)],
            120.0,
            5,
            0.0,
            60.0,
            4,
            "the down window's maximum, not the last recommendation",
        ),
        (
            [(1.0, 2), (60.0, 2)],
            60.0,
            3,
            0.0,
            60.0,
            3,
            "a history one second short of the down window holds (no slack by default)",
        ),
        ([(10.0, 1)], 10.0, 3, 0.0, 1.0, 3, "a down window of one second still needs covering"),
        ([], 0.0, 3, 30.0, 300.0, 3, "no history: hold"),
    ],
)
def test_stabilize_window_edges(
    history: list, now: float, current: int, up: float, down: float, expected: int, why: str
) -> None:
    # Pins common.stabilize's strict window edges, the down window's maximum, the coverage rule
    # with its default slack of 0, and an empty history; and prune's strict edge.
    assert stabilize(history, now, current, up, down) == expected, why


def test_prune_drops_a_recommendation_exactly_keep_seconds_old() -> None:
    assert prune([(0.0, 1), (1.0, 2)], 60.0, 60.0) == ((1.0, 2),)


@pytest.mark.parametrize(
    ("target", "current", "bounds", "expected"),
    [
        (6, 2, (1, 10, 4, 1), (6, False, "DesiredWithinRange", "the desired count 6 is within the limits")),
        (1, 2, (0, 10, 4, 1), (1, False, "DesiredWithinRange", "the desired count 1 is within the limits")),
        (10, 9, (1, 10, 4, 1), (10, False, "DesiredWithinRange", "the desired count 10 is within the limits")),
        (0, 3, (0, 10, 4, 1), (2, True, "ScaleDownLimit", "wanted 0, at most 1 fewer per decision")),
        (20, 9, (1, 10, 4, 1), (10, True, "TooManyReplicas", "wanted 20, capped at maxReplicas 10")),
        (0, 3, (2, 10, 4, 5), (2, True, "TooFewReplicas", "wanted 0, kept at minReplicas 2")),
        (5, 0, (5, 10, 4, 1), (5, True, "ScaleUpLimit", "wanted 5, at most 4 more per decision")),
    ],
)
def test_bound_edges_and_conditions(target: int, current: int, bounds: tuple, expected: tuple) -> None:
    # Pins common.bound: a count exactly at a step or at maxReplicas is within range, each limit's
    # condition word for word, and minReplicas lifting a step-limited count keeps ScaleUpLimit.
    out, limited = bound(target, current, Bounds(*bounds))
    assert (out, limited.status, limited.reason, limited.message) == expected
    assert limited.type == SCALING_LIMITED


def test_goodput_reads_past_a_missing_metric_and_totals_without_an_inf_bucket() -> None:
    # Pins goodput(): an objective whose histogram is missing is skipped, not the end; no shares
    # is 0 requests; share_within's total is the last bucket when there is no +Inf one (and 0
    # for no buckets).
    objs = objectives_from_slo(2000, 50, 0)
    g = goodput(objs, {TPOT_METRIC: [(0.05, 180.0), (math.inf, 200.0)]})
    assert g.fraction == 0.9 and g.requests == 200.0
    assert goodput(objs, {}).requests == 0.0
    (obj,) = objectives_from_slo(0, 50, 0)
    assert share_within(obj, [(0.025, 1.0), (0.05, 2.0), (0.1, 3.0)]).total == 3.0
    assert share_within(obj, []).total == 0.0


def test_objectives_and_shares_word_for_word() -> None:
    # Pins objectives_from_slo (each enabled from 1 ms, its name, metric and seconds; 0 disables)
    # and share_within's results: an SLO exactly at an edge counts that bucket with no note, one
    # under the first edge is refused with a note naming that edge (or "none").
    assert objectives_from_slo(1, 1, 1) == (
        Objective("ttft", TTFT_METRIC, 0.001),
        Objective("tpot", TPOT_METRIC, 0.001),
        Objective("e2e", E2E_METRIC, 0.001),
    )
    assert objectives_from_slo(0, 0, 2500) == (Objective("e2e", E2E_METRIC, 2.5),)
    assert objectives_from_slo(0, 0, 0) == ()
    (tpot,) = objectives_from_slo(0, 50, 0)
    buckets = [(0.025, 100.0), (0.05, 180.0), (math.inf, 200.0)]
    assert share_within(tpot, buckets) == Share(tpot, 180.0, 200.0, 0.05, None)
    (fast,) = objectives_from_slo(0, 10, 0)
    note = f"tpot SLO 10ms is below the first bucket edge (25ms) of {TPOT_METRIC}: objective ignored"
    assert share_within(fast, buckets) == Share(fast, 0.0, 200.0, None, note)
    assert (
        share_within(fast, [(math.inf, 5.0)]).note
        == f"tpot SLO 10ms is below the first bucket edge (none) of {TPOT_METRIC}: objective ignored"
    )
