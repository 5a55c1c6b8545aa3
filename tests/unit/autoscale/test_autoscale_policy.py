"""The ModelReplicaSet policy, decision by decision, on hand-made observations."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from agentfleet_contract.modelreplicaset import Autoscaling

from agentfleet.autoscale.common import METRICS_AVAILABLE, SCALING_ACTIVE, SCALING_LIMITED, stabilize
from agentfleet.autoscale.floors import MINIMUM, REACTIVE, SCHEDULED, Floor
from agentfleet.autoscale.goodput import TPOT_METRIC, Goodput, goodput, objectives_from_slo
from agentfleet.autoscale.policy import (
    Capacity,
    FleetView,
    LoadTime,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
)

INF = math.inf


def cfg(**kw: object) -> PolicyConfig:
    base = dict(
        min_replicas=1,
        max_replicas=20,
        target_queue_depth=8,
        up_window_seconds=0.0,
        down_window_seconds=60.0,
        period_seconds=15.0,
        max_up_step=4,
        max_down_step=1,
    )
    base.update(kw)
    return PolicyConfig(**base)  # type: ignore[arg-type]


def samples(
    n: int, waiting: float, running: float = 10.0, kv: float | None = 0.3, age: float = 1.0
) -> tuple[ReplicaSample, ...]:
    return tuple(ReplicaSample(f"r{i}", waiting, running, kv, age) for i in range(n))


def fleet(n: int, starting: tuple[Starting, ...] = (), current: int | None = None) -> FleetView:
    return FleetView(
        current=n + len(starting) if current is None else current,
        ready=tuple(f"r{i}" for i in range(n)),
        starting=starting,
    )


def gp(fraction: float, n: int = 200) -> Goodput:
    good = round(fraction * n)
    return goodput(objectives_from_slo(0, 50, 0), {TPOT_METRIC: [(0.05, float(good)), (INF, float(n))]})


def cond(decision, type_):  # type: ignore[no-untyped-def]
    return next(c for c in decision.conditions if c.type == type_)


def test_config_from_the_api_defaults() -> None:
    c = PolicyConfig.from_spec(Autoscaling())
    assert (c.min_replicas, c.max_replicas, c.target_queue_depth, c.kv_threshold) == (1, 4, 8, 0.9)
    assert (c.up_window_seconds, c.down_window_seconds, c.period_seconds, c.stale_after_seconds) == (
        30.0,
        300.0,
        15.0,
        60.0,
    )


def test_queue_above_target_scales_up_with_the_explanation() -> None:
    c = cfg()
    out = decide(
        c, PolicyState.initial(c), fleet(3), Observation(at=100.0, samples=samples(3, 41 / 3), goodput=gp(0.81))
    )
    d = out.decision
    assert d.desired == 6  # ceil(41 / 8)
    assert d.reason.startswith("3 -> 6 (reactive): 41 waiting > 3 x 8 target; goodput 0.81 < 0.95")
    assert cond(d, SCALING_ACTIVE).status and cond(d, METRICS_AVAILABLE).status
    assert out.observed.queue_depth == 41 and out.observed.goodput == pytest.approx(0.81)


def test_goodput_below_target_corrects_upward_without_a_queue() -> None:
    c = cfg()
    d = decide(
        c, PolicyState.initial(c), fleet(4), Observation(at=0.0, samples=samples(4, 0.0, 30.0), goodput=gp(0.70))
    ).decision
    # add ceil(4 x (0.95 - 0.70) / 0.95) = 2
    assert d.desired == 6
    assert "goodput 0.70 < 0.95" in d.reason


def test_a_shortfall_within_chance_orders_nothing() -> None:
    # 3 misses in 100 calls read 0.97 against a 0.985 target, but a fleet exactly at the target
    # shows that many one window in five: no order, and no failure level learned from it.
    c = cfg(target_fraction=0.985)
    out = decide(
        c,
        PolicyState.initial(c),
        fleet(2),
        Observation(at=0.0, samples=samples(2, 0.0, 3.0), goodput=gp(0.97, n=100), tasks=2.0),
    )
    assert out.decision.desired == 2 and "goodput" not in out.decision.reason
    assert out.state.tight_tasks_per_replica is None
    # 6 misses in 100 are under 5 % likely at the target: the same fleet orders one more.
    d = decide(
        c,
        PolicyState.initial(c),
        fleet(2),
        Observation(at=0.0, samples=samples(2, 0.0, 3.0), goodput=gp(0.94, n=100), tasks=2.0),
    ).decision
    assert d.desired == 3 and "goodput 0.94 < 0.985" in d.reason


def test_kv_cache_above_threshold_scales_up() -> None:
    c = cfg()
    d = decide(
        c, PolicyState.initial(c), fleet(2), Observation(at=0.0, samples=samples(2, 0.0, 30.0, kv=0.99))
    ).decision
    assert d.desired == 3 and "KV cache 0.99 > 0.90" in d.reason


def test_max_step_limits_and_says_so() -> None:
    c = cfg(max_up_step=2)
    d = decide(c, PolicyState.initial(c), fleet(2), Observation(at=0.0, samples=samples(2, 50.0))).decision
    assert d.desired == 4
    lim = cond(d, SCALING_LIMITED)
    assert lim.status and lim.reason == "ScaleUpLimit"


def test_max_replicas_caps() -> None:
    c = cfg(max_replicas=5)
    d = decide(c, PolicyState.initial(c), fleet(4), Observation(at=0.0, samples=samples(4, 100.0))).decision
    assert d.desired == 5 and cond(d, SCALING_LIMITED).reason == "TooManyReplicas"


def test_capacity_limit_sets_scaling_limited_with_the_planner_reason() -> None:
    c = cfg()
    cap = Capacity(placeable_extra=1, message="no node has 4 free GPUs of NVIDIA-H100")
    d = decide(c, PolicyState.initial(c), fleet(3), Observation(at=0.0, samples=samples(3, 30.0)), cap).decision
    assert d.desired == 4
    lim = cond(d, SCALING_LIMITED)
    assert lim.status and lim.reason == "InsufficientCapacity"
    assert "only 1 more can be placed: no node has 4 free GPUs" in lim.message
    assert "capacity:" in d.reason


def test_loading_replicas_are_credited_so_a_growing_queue_does_not_order_twice() -> None:
    c = cfg(initial_load_seconds=180.0)
    state = PolicyState.initial(c)
    # t=0: burst, 3 ready with 60 waiting -> 8 replicas, cut to 7 by maxScaleUpStep 4.
    out = decide(c, state, fleet(3), Observation(at=0.0, samples=samples(3, 20.0), completion_rate=3.0))
    assert out.decision.desired == 7
    # t=15: the queue grew while 4 replicas load; the cut order is finished (8), nothing more:
    # ceil(72 / 8) = 9 would be ordering again for the same backlog.
    starting = tuple(Starting(f"s{i}", 15.0) for i in range(4))
    out = decide(
        c, out.state, fleet(3, starting, current=7), Observation(at=15.0, samples=samples(3, 24.0), completion_rate=3.0)
    )
    assert out.decision.desired == 8, out.decision.reason
    assert "4 loading credited (load time 180s)" in out.decision.reason
    starting = (*starting, Starting("s4", 0.0))
    out = decide(c, out.state, fleet(3, starting), Observation(at=30.0, samples=samples(3, 28.0), completion_rate=3.0))
    # Growth 0.8 requests/s at 1 completion/s per replica: a deficit of 1 replica, 5 loading cover it.
    assert out.decision.desired == 8, out.decision.reason
    # The queue explodes and completions drop: least-squares growth 4.9 requests/s over the
    # window at 1/3 completion/s per replica = 15 replicas of deficit > 5 loading: 3 + 15 = 18
    # are wanted (not ceil(300 / 8) = 38), 4 more per decision.
    out = decide(c, out.state, fleet(3, starting), Observation(at=45.0, samples=samples(3, 100.0), completion_rate=1.0))
    assert out.decision.recommendation == 18, out.decision.reason
    assert out.decision.desired == 12


def test_credit_holds_when_the_loading_replicas_cover_the_deficit() -> None:
    c = cfg(initial_load_seconds=180.0)
    state = PolicyState.initial(c)
    starting = tuple(Starting(f"s{i}", 20.0) for i in range(4))
    out = decide(c, state, fleet(3, starting), Observation(at=0.0, samples=samples(3, 20.0), completion_rate=30.0))
    out = decide(c, out.state, fleet(3, starting), Observation(at=15.0, samples=samples(3, 21.0), completion_rate=30.0))
    # growth 3 waiting/s / 10 req/s per replica = 1 replica of deficit, 4 loading: hold at 7.
    assert out.decision.desired == 7


def test_replicas_just_ready_are_credited_while_the_window_still_measures_the_old_fleet() -> None:
    c = cfg(window_seconds=60.0, target_fraction=0.95)
    state = PolicyState.initial(c)
    # 2 replicas served a burst badly; 3 more became ready 20 s ago and the burst is over (the
    # requests in the system are falling). The 60 s goodput still shows the 2-replica fleet:
    # ordering ceil(5 x 0.95 / 0.25) = 19 now would buy GPUs for a backlog already being served.
    ready = FleetView(
        current=5, ready=tuple(f"r{i}" for i in range(5)), ready_ages={"r2": 20.0, "r3": 20.0, "r4": 20.0}
    )
    out = decide(
        c,
        state,
        ready,
        Observation(at=0.0, samples=samples(5, 0.0, running=12.0), goodput=gp(0.25), completion_rate=5.0),
    )
    out = decide(
        c,
        out.state,
        ready,
        Observation(at=15.0, samples=samples(5, 0.0, running=8.0), goodput=gp(0.25), completion_rate=5.0),
    )
    assert out.decision.desired == 5, out.decision.reason
    assert "3 just ready credited" in out.decision.reason
    # Once they have served a whole window, bad goodput is the new fleet's and scales it up.
    settled = FleetView(
        current=5, ready=tuple(f"r{i}" for i in range(5)), ready_ages=dict.fromkeys(("r2", "r3", "r4"), 90.0)
    )
    out = decide(
        c,
        out.state,
        settled,
        Observation(at=30.0, samples=samples(5, 0.0, running=8.0), goodput=gp(0.25), completion_rate=5.0),
    )
    assert out.decision.desired == 9, out.decision.reason  # ceil(5 x 0.95 / 0.25) = 19, 4 per decision


def test_a_collapse_after_a_small_order_lifts_the_credit_and_orders_for_the_burst() -> None:
    c = cfg(initial_load_seconds=200.0)
    # t=0: a burst's first seconds show as a slight miss; 1 replica orders 1 more.
    obs = Observation(
        at=0.0, samples=samples(1, 0.0, running=20.0, kv=0.5), goodput=gp(0.90), completion_rate=1.0, tasks=5.0
    )
    out = decide(c, PolicyState.initial(c), fleet(1), obs)
    assert out.decision.desired == 2
    # t=15: the burst. Agents are closed loops and the KV cache is full, so the requests in
    # the system stay flat (no growth to override the credit), but goodput collapses and the
    # agent tasks quadruple. Holding 2 until the loading replica has served a window (minutes)
    # is the stuck credit; the order goes out now, scaled by the tasks since the last order.
    starting = (Starting("s0", 15.0),)
    obs = Observation(
        at=15.0, samples=samples(1, 0.0, running=20.0, kv=0.5), goodput=gp(0.10), completion_rate=1.0, tasks=20.0
    )
    out = decide(c, out.state, fleet(1, starting, current=2), obs)
    assert out.decision.recommendation == 8, out.decision.reason  # 2 ordered x 20 / 5 tasks
    assert out.decision.desired == 6  # 2 + maxScaleUpStep 4
    assert "credit lifted" in out.decision.reason
    # Without the task layer the step is sized on the measured fleet at the goodput floor.
    obs = replace(obs, tasks=None)
    first = decide(c, PolicyState.initial(c), fleet(1), replace(obs, at=0.0, goodput=gp(0.90), tasks=None))
    out = decide(c, first.state, fleet(1, starting, current=2), obs)
    assert out.decision.desired == 5, out.decision.reason  # ceil(1 x 0.95 / 0.2)


def test_goodput_lag_behind_an_order_in_flight_still_orders_nothing_twice() -> None:
    c = cfg(initial_load_seconds=200.0, max_up_step=8)
    obs = Observation(
        at=0.0, samples=samples(4, 0.0, running=20.0, kv=0.5), goodput=gp(0.50), completion_rate=4.0, tasks=40.0
    )
    out = decide(c, PolicyState.initial(c), fleet(4), obs)
    assert out.decision.desired == 8  # ceil(4 x 0.95 / 0.5)
    # The window fills with the burst the order was for: goodput sinks further (0.30 would want
    # 13 on its own) and the tasks rise, but not to half of what the order was sized on: hold.
    starting = tuple(Starting(f"s{i}", 15.0) for i in range(4))
    obs = Observation(
        at=15.0, samples=samples(4, 0.0, running=20.0, kv=0.5), goodput=gp(0.30), completion_rate=4.0, tasks=60.0
    )
    out = decide(c, out.state, fleet(4, starting), obs)
    assert out.decision.desired == 8, out.decision.reason
    assert "4 loading credited" in out.decision.reason and "lifted" not in out.decision.reason
    # They become ready; the window still measures the old fleet: still no second order.
    ready = FleetView(
        current=8, ready=tuple(f"r{i}" for i in range(8)), ready_ages={f"r{i}": 10.0 for i in range(4, 8)}
    )
    obs = Observation(
        at=215.0, samples=samples(8, 0.0, running=10.0, kv=0.5), goodput=gp(0.30), completion_rate=8.0, tasks=60.0
    )
    out = decide(c, out.state, ready, obs)
    assert out.decision.desired == 8, out.decision.reason


def test_a_collapse_measured_at_the_goodput_floor_does_not_refire_every_period() -> None:
    c = cfg(initial_load_seconds=200.0, max_up_step=8)
    obs = Observation(
        at=0.0, samples=samples(2, 0.0, running=20.0, kv=0.5), goodput=gp(0.10), completion_rate=2.0, tasks=30.0
    )
    out = decide(c, PolicyState.initial(c), fleet(2), obs)
    assert out.decision.desired == 10  # ceil(2 x 0.95 / 0.2)
    starting = tuple(Starting(f"s{i}", 15.0) for i in range(8))
    obs = Observation(
        at=15.0, samples=samples(2, 0.0, running=20.0, kv=0.5), goodput=gp(0.0), completion_rate=2.0, tasks=30.0
    )
    out = decide(c, out.state, fleet(2, starting), obs)
    assert out.decision.desired == 10, out.decision.reason


def test_replicas_still_loading_for_a_burst_that_has_ended_are_cancelled() -> None:
    c = cfg(initial_load_seconds=200.0, window_seconds=60.0)
    # A burst took 2 replicas to 10; 4 are ready, 6 still load. The agent tasks have fallen to 3
    # (at most 4 per replica was seen to fail: they fit 1 replica, half the 4 ready twice over),
    # while the 60 s goodput still shows the burst. The 6 loading would arrive for nothing.
    state = PolicyState(
        load_time=LoadTime(200.0, 1),
        tight_tasks_per_replica=4.0,
        burst_floor=2,
        ordered_for=10,
        ordered_goodput=0.3,
        ordered_tasks=40.0,
    )
    starting = tuple(Starting(f"s{i}", 120.0) for i in range(6))
    obs = Observation(
        at=0.0, samples=samples(4, 0.0, running=2.0, kv=0.1), goodput=gp(0.20), completion_rate=2.0, tasks=3.0
    )
    out = decide(c, state, fleet(4, starting), obs)
    assert out.decision.desired == 4, out.decision.reason  # all 6 at once: they hold no work
    assert "cancelling 6 replicas still loading" in out.decision.reason
    # The user is told why, and what would serve such bursts.
    assert out.decision.warning == "BurstShorterThanModelLoad"
    assert "load time 200s" in out.decision.reason and "minReplicas" in out.decision.reason
    # With the counts that bracket a minReplicas for such bursts: what stood, and what it asked for.
    assert "met the 2 replicas the fleet had when it began and ordered up to 10" in out.decision.reason
    # The next period the window still shows the burst: that is its past, no order again.
    obs = replace(obs, at=15.0)
    out = decide(c, out.state, fleet(4), obs)
    assert out.decision.desired == 4, out.decision.reason
    assert out.decision.warning is None


def test_loading_replicas_are_kept_while_the_tasks_still_need_them_or_for_a_small_order() -> None:
    c = cfg(initial_load_seconds=200.0, window_seconds=60.0)
    state = PolicyState(
        load_time=LoadTime(200.0, 1),
        tight_tasks_per_replica=4.0,
        burst_floor=2,
        ordered_for=10,
        ordered_goodput=0.3,
        ordered_tasks=40.0,
    )
    starting = tuple(Starting(f"s{i}", 120.0) for i in range(6))
    # Mid-burst: 30 tasks need 10 replicas; nothing is cancelled.
    obs = Observation(
        at=0.0, samples=samples(4, 0.0, running=20.0, kv=0.8), goodput=gp(0.20), completion_rate=2.0, tasks=30.0
    )
    d = decide(c, state, fleet(4, starting), obs).decision
    assert d.desired == 10 and d.warning is None
    # A +1 order on a fleet of 4 is no burst: a lull in the tasks does not cancel it (that
    # would flap: order, cancel, order again at the next slight miss).
    obs = Observation(
        at=0.0, samples=samples(4, 0.0, running=2.0, kv=0.1), goodput=gp(0.90), completion_rate=2.0, tasks=1.0
    )
    state = replace(state, ordered_for=5)
    assert decide(c, state, fleet(4, starting[:1]), obs).decision.desired == 5


def test_stuck_loading_replicas_get_no_credit() -> None:
    c = cfg(initial_load_seconds=100.0)
    starting = (Starting("s0", 500.0),)
    d = decide(c, PolicyState.initial(c), fleet(2, starting), Observation(at=0.0, samples=samples(2, 40.0))).decision
    assert d.desired == 7  # ceil(80 / 8) = 10 uncredited, from 3 by at most 4
    assert "get no credit" in d.reason


def test_learned_load_time_is_an_ewma_of_new_pods_only() -> None:
    lt = LoadTime(300.0).observe({"a": 120.0})
    assert lt.seconds == 120.0 and lt.samples == 1
    lt = lt.observe({"a": 120.0, "b": 220.0})  # a is not counted twice
    assert lt.seconds == pytest.approx(0.7 * 120 + 0.3 * 220) and lt.samples == 2


def test_prometheus_down_holds_with_conditions() -> None:
    c = cfg()
    state = PolicyState.initial(c)
    out = decide(c, state, fleet(3, current=5), Observation(at=0.0, error="ConnectionError: refused"))
    d = out.decision
    assert d.desired == 5 and not d.changed and d.recommendation is None
    assert d.reason.startswith("holding 5: metrics unavailable")
    m = cond(d, METRICS_AVAILABLE)
    assert not m.status and m.reason == "PrometheusUnavailable"
    assert not cond(d, SCALING_ACTIVE).status
    assert out.state is state  # nothing recorded: stale numbers cannot act later


def test_all_samples_stale_holds_and_never_scales_to_zero() -> None:
    c = cfg(min_replicas=0)
    d = decide(
        c, PolicyState.initial(c), fleet(3), Observation(at=0.0, samples=samples(3, 0.0, 0.0, age=600.0))
    ).decision
    assert d.desired == 3 and cond(d, METRICS_AVAILABLE).reason == "MetricsStale"


def test_one_silent_replica_does_not_block_the_others() -> None:
    c = cfg()
    obs = Observation(at=0.0, samples=samples(3, 20.0)[:2])  # r2 missing
    d = decide(c, PolicyState.initial(c), fleet(3), obs).decision
    assert d.desired == 7  # 3 x 20 waiting (mean of the two that report) / 8 -> 8, step 4 -> 7
    assert "1 of 3 replicas not reporting (r2)" in d.reason


def test_schema_mismatch_is_loud_but_queue_still_scales() -> None:
    c = cfg()
    problem = "MetricsSchemaMismatch: engine exposes removed vLLM names vllm:gpu_cache_usage_perc"
    d = decide(
        c,
        PolicyState.initial(c),
        fleet(2),
        Observation(at=0.0, samples=samples(2, 20.0, kv=None), schema_problem=problem),
    ).decision
    assert d.desired == 5
    m = cond(d, METRICS_AVAILABLE)
    assert not m.status and m.reason == "MetricsSchemaMismatch"
    assert d.warning == "MetricsSchemaMismatch"


def test_zero_traffic_scales_down_to_min_after_the_window_one_step_at_a_time() -> None:
    c = cfg(min_replicas=1, down_window_seconds=60.0, max_down_step=2)
    state = PolicyState.initial(c)
    current = 5
    seen = []
    for t in range(0, 301, 15):
        out = decide(c, state, fleet(current), Observation(at=float(t), samples=samples(current, 0.0, 0.0, kv=0.0)))
        state = out.state
        if out.decision.changed:
            seen.append((t, out.decision.desired))
            assert "no traffic" in out.decision.reason
        current = out.decision.desired
    assert seen[0][0] >= 60 - 15  # not before the down window is covered
    assert current == 1


def test_steady_load_does_not_flap() -> None:
    c = cfg(down_window_seconds=120.0)
    state = PolicyState.initial(c)
    current = 4
    changes = 0
    for i, t in enumerate(range(0, 1800, 15)):
        # Queue oscillates around but below target, goodput fine: nothing to do.
        w = 5.0 + (3.0 if i % 2 else -3.0)
        out = decide(
            c,
            state,
            fleet(current),
            Observation(at=float(t), samples=samples(current, w, 40.0, kv=0.7), goodput=gp(0.97)),
        )
        state = out.state
        changes += out.decision.changed
        current = out.decision.desired
    assert changes == 0 and current == 4


def test_scale_down_keeps_the_concurrency_at_which_the_slo_held() -> None:
    c = cfg(down_window_seconds=30.0)
    state = PolicyState.initial(c)
    # Learn: 40 running per replica with goodput fine.
    out = decide(c, state, fleet(4), Observation(at=0.0, samples=samples(4, 0.0, 40.0, kv=0.2), goodput=gp(0.99)))
    assert out.state.ok_running_per_replica == pytest.approx(40.0)
    # Load halves: 4 x 20 running = 80 -> keep ceil(80 / (40 x 0.995 x 0.8)) = 3, not 1.
    state = out.state
    current = 4
    for t in (15.0, 30.0, 45.0, 60.0, 75.0):
        out = decide(
            c,
            state,
            fleet(current),
            Observation(at=t, samples=samples(current, 0.0, 80.0 / current, kv=0.1), goodput=gp(0.99)),
        )
        state, current = out.state, out.decision.desired
    assert current == 3


def test_scale_down_sizes_for_the_busiest_moment_of_the_window_not_a_lull() -> None:
    c = cfg(down_window_seconds=30.0, window_seconds=60.0)
    state = PolicyState.initial(c)
    out = decide(
        c,
        state,
        fleet(4),
        Observation(at=0.0, samples=samples(4, 0.0, 10.0, kv=0.1), goodput=gp(0.99), completion_rate=4.0),
    )
    state = out.state  # 10 per replica was fine
    # Agents between calls: one sample in four catches 32 requests in the system, the others a
    # lull of 8 that outlasts the 30 s down window but not the 60 s metrics window. Sizing on
    # the lull (ceil(8 / 8) = 1) would shed replicas that the next busy moment needs.
    current = 4
    for i, t in enumerate(range(15, 300, 15)):
        total = 32.0 if i % 4 == 0 else 8.0
        obs = Observation(
            at=float(t), samples=samples(current, 0.0, total / current, kv=0.1), goodput=gp(0.99), completion_rate=4.0
        )
        out = decide(c, state, fleet(current), obs)
        state, current = out.state, out.decision.desired
    assert current == 4, out.decision.reason  # ceil(32 / (10 x 0.8)) = 4


def test_no_ready_replicas_but_loading_waits() -> None:
    c = cfg()
    d = decide(c, PolicyState.initial(c), fleet(0, (Starting("s0", 10.0),)), Observation(at=0.0)).decision
    assert not d.changed and cond(d, METRICS_AVAILABLE).reason == "NoReadyReplicas"


def test_up_window_takes_the_minimum_and_down_window_the_maximum() -> None:
    hist = ((0.0, 8), (15.0, 3), (30.0, 6))
    assert stabilize(hist, 30.0, 4, up_window=31.0, down_window=31.0) == 4  # min 3 < 4 < max 8: hold
    assert stabilize(hist, 30.0, 4, up_window=10.0, down_window=0.0) == 6
    assert stabilize(((0.0, 2), (15.0, 2)), 15.0, 4, up_window=0.0, down_window=15.0) == 2
    # History shorter than the down window: hold (just (re)started).
    assert stabilize(((15.0, 2),), 15.0, 4, up_window=0.0, down_window=300.0, slack=15.0) == 4


def test_concurrency_past_the_level_seen_within_slo_scales_up_before_goodput_knows() -> None:
    c = cfg(concurrency_term=True)
    out = decide(
        c, PolicyState.initial(c), fleet(2), Observation(at=0.0, samples=samples(2, 0.0, 6.0, kv=0.2), goodput=gp(0.99))
    )
    assert out.state.ok_running_per_replica == pytest.approx(6.0)
    # A burst: 15 running per replica, no queue yet, goodput window still fine-looking (too few).
    obs = Observation(at=15.0, samples=samples(2, 0.0, 15.0, kv=0.4), goodput=gp(0.99, n=5))
    d = decide(c, out.state, fleet(2), obs).decision
    assert d.desired == 6  # ceil(30 / (6 x 0.995))
    assert "30 running > 2 x 6.0 seen within SLO" in d.reason


def test_scale_down_keeps_kv_headroom() -> None:
    # Pins the KV term of scale-down: no queue, little running, no SLO level learned, but each of 4
    # replicas is half full of KV cache. Fewer replicas must stay under 80 % of the 0.9
    # threshold: ceil(0.5 x 4 / (0.9 x 0.8)) = ceil(2.78) = 3, not the 1 the queue alone allows.
    # The fleet's KV in use stays the same, so fewer replicas each hold more of it.
    c = cfg(down_window_seconds=30.0, max_down_step=4)
    state = PolicyState.initial(c)
    current = 4
    sizes = []
    for t in range(0, 301, 15):
        obs = Observation(at=float(t), samples=samples(current, 0.0, 2.0, kv=0.5 * 4 / current), completion_rate=2.0)
        out = decide(c, state, fleet(current), obs)
        state, current = out.state, out.decision.desired
        sizes.append(current)
    # Once down to 3 it stays there: never below, so never a KV-pressure bounce back up.
    assert sizes[-1] == 3 and min(sizes) == 3, (sizes, out.decision.reason)


def test_agents_waiting_on_tools_are_not_idle_while_tasks_complete() -> None:
    # Pins the idle check: zero waiting and zero running at the engine is "no traffic" only when
    # nothing completed over the window either. Here the agents spend 45 s of each minute in
    # tool waits (longer than the 30 s down window, shorter than the 60 s metrics window) while
    # tasks keep completing: the fleet keeps the 4 replicas its busy moments need
    # (ceil(32 / (10 x 0.8)) = 4), never minReplicas.
    c = cfg(down_window_seconds=30.0, window_seconds=60.0, max_down_step=4)
    state = PolicyState.initial(c)
    out = decide(
        c,
        state,
        fleet(4),
        Observation(at=0.0, samples=samples(4, 0.0, 10.0, kv=0.1), goodput=gp(0.99), completion_rate=4.0),
    )
    state = out.state
    current = 4
    for i, t in enumerate(range(15, 600, 15)):
        running = 32.0 / current if i % 4 == 0 else 0.0
        obs = Observation(
            at=float(t), samples=samples(current, 0.0, running, kv=0.0), goodput=gp(0.99), completion_rate=4.0
        )
        out = decide(c, state, fleet(current), obs)
        state, current = out.state, out.decision.desired
        assert "no traffic" not in out.decision.reason
    assert current == 4, out.decision.reason


# --- without fresh samples: each branch (mutants the mutation report found unpinned) ----------


def test_stale_samples_hold_but_a_floor_still_lifts_the_count() -> None:
    # Stale numbers never act, but a schedule or the learned profile needs none: up to the floor.
    c = cfg()
    state = PolicyState.initial(c)
    floor = Floor(5, SCHEDULED, "schedule asks for 5")
    out = decide(c, state, fleet(3), Observation(at=0.0, samples=samples(3, 0.0, 0.0, age=600.0)), floors=(floor,))
    d = out.decision
    assert (d.current, d.desired, d.recommendation, d.term) == (3, 5, None, SCHEDULED)
    assert "schedule asks for 5" in d.reason
    assert (cond(d, SCALING_ACTIVE).status, cond(d, SCALING_ACTIVE).reason) == (False, "MetricsUnavailable")
    assert out.state is state


def test_only_loading_replicas_hold_and_wait() -> None:
    c = cfg()
    state = PolicyState.initial(c)
    out = decide(c, state, fleet(0, (Starting("s0", 10.0), Starting("s1", 10.0))), Observation(at=0.0))
    d = out.decision
    assert (d.current, d.desired, d.recommendation) == (2, 2, None)
    assert (cond(d, METRICS_AVAILABLE).status, cond(d, METRICS_AVAILABLE).reason) == (False, "NoReadyReplicas")
    assert (cond(d, SCALING_ACTIVE).status, cond(d, SCALING_ACTIVE).reason) == (True, "WaitingForReplicas")
    assert out.state is state


def test_nothing_to_measure_goes_to_min_replicas_a_step_at_a_time() -> None:
    # No replica ready or loading: minReplicas is all it can justify, within the step limits.
    c = cfg(min_replicas=0)
    state = PolicyState.initial(c)
    out = decide(c, state, FleetView(current=3, ready=(), starting=()), Observation(at=0.0))
    d = out.decision
    assert (d.current, d.desired, d.recommendation, d.term) == (3, 2, 0, REACTIVE)  # max_down_step 1
    assert (cond(d, METRICS_AVAILABLE).status, cond(d, METRICS_AVAILABLE).reason) == (False, "NoReadyReplicas")
    assert (cond(d, SCALING_ACTIVE).status, cond(d, SCALING_ACTIVE).reason) == (True, "ValidMetrics")
    assert cond(d, SCALING_LIMITED).reason == "ScaleDownLimit"
    assert d.reason.startswith("3 -> 2 (reactive): no replicas to measure")
    assert out.state is state
    at_min = decide(c, state, FleetView(current=1, ready=(), starting=()), Observation(at=0.0)).decision
    assert (at_min.desired, at_min.recommendation, at_min.term) == (0, 0, MINIMUM)


def test_nothing_to_measure_rises_to_a_floor() -> None:
    c = cfg(min_replicas=0)
    floor = Floor(3, SCHEDULED, "schedule asks for 3")
    d = decide(
        c, PolicyState.initial(c), FleetView(current=0, ready=(), starting=()), Observation(at=0.0), floors=(floor,)
    ).decision
    assert (d.desired, d.recommendation, d.term) == (3, 3, SCHEDULED)
    assert "no replicas to measure; schedule asks for 3" in d.reason
