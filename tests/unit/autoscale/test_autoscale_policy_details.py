"""The ModelReplicaSet policy's details that the decision-level tests left open: which wants the
loading credit caps, the credit note, blind holds with a floor, the words of every hold, and
when goodput counts as pressure.

Each test pins behaviour that a mutmut survivor showed no other autoscale test looked at
(the dated log 2026-11-25-mutation-history in git history, fourth round)."""

from __future__ import annotations

import math
from dataclasses import replace

from agentfleet.autoscale.common import METRICS_AVAILABLE, SCALING_ACTIVE, SCALING_LIMITED
from agentfleet.autoscale.floors import MINIMUM, SCHEDULED, Floor
from agentfleet.autoscale.goodput import TPOT_METRIC, Goodput, goodput, objectives_from_slo
from agentfleet.autoscale.policy import (
    Capacity,
    FleetView,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
)
from agentfleet.autoscale.terms import FAILURE_LEVEL_DECAY


def cfg(**kw: object) -> PolicyConfig:
    base: dict = dict(
        min_replicas=1, max_replicas=20, up_window_seconds=0.0, down_window_seconds=60.0, max_up_step=4, max_down_step=1
    )
    base.update(kw)
    return PolicyConfig(**base)


def samples(
    n: int, waiting: float, running: float = 10.0, kv: float | None = 0.3, age: float = 1.0
) -> tuple[ReplicaSample, ...]:
    return tuple(ReplicaSample(f"r{i}", waiting, running, kv, age) for i in range(n))


def gp(good: int, n: int) -> Goodput:
    return goodput(objectives_from_slo(0, 50, 0), {TPOT_METRIC: [(0.05, float(good)), (math.inf, float(n))]})


def conds(d) -> dict[str, tuple[bool, str, str]]:  # type: ignore[no-untyped-def]
    return {c.type: (c.status, c.reason, c.message) for c in d.conditions}


def test_kv_pressure_is_not_capped_by_the_loading_credit() -> None:
    # Pins the KV term's credited=False: resident histories need the room now, so a replica
    # loading does not stand in for it (ceil(0.99 x 2 / 0.5) = 4, not the credit base 3).
    c = cfg(kv_threshold=0.5)
    fleet = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),))
    d = decide(c, PolicyState.initial(c), fleet, Observation(at=0.0, samples=samples(2, 0.0, kv=0.99))).decision
    assert d.recommendation == 4 and d.desired == 4, d.reason


def test_the_credit_note_is_given_once_and_names_both_kinds() -> None:
    # Pins Evaluation.want's single credit note (queue and goodput both credited) and its
    # two parts, loading and just ready, joined by a comma.
    c = cfg()
    fleet = FleetView(current=4, ready=("r0", "r1", "r2"), starting=(Starting("s0", 10.0),), ready_ages={"r2": 10.0})
    d = decide(
        c, PolicyState.initial(c), fleet, Observation(at=0.0, samples=samples(3, 20.0), goodput=gp(100, 200))
    ).decision
    assert d.reason.count("credited") == 2, d.reason
    assert "1 loading credited (load time 300s), 1 just ready credited" in d.reason


def test_a_blind_hold_rises_to_a_floor_with_a_warning_and_holds_at_max_replicas() -> None:
    # Pins _hold: MetricsAvailable is False, a floor above the count raises it and still warns;
    # at maxReplicas a floor above it changes nothing and is a plain hold, not "3 -> 3".
    c = cfg()
    state = PolicyState.initial(c)
    down = Observation(at=0.0, error="ConnectionError")
    ready = FleetView(current=3, ready=("r0", "r1", "r2"))
    d = decide(c, state, ready, down, floors=(Floor(5, SCHEDULED, "schedule asks for 5"),)).decision
    assert (d.desired, d.term, d.warning) == (5, SCHEDULED, "PrometheusUnavailable")
    assert conds(d)[METRICS_AVAILABLE][0] is False
    assert conds(d)[SCALING_ACTIVE][:2] == (False, "MetricsUnavailable")
    at_max = cfg(max_replicas=3)
    d = decide(
        at_max, PolicyState.initial(at_max), ready, down, floors=(Floor(5, SCHEDULED, "schedule asks for 5"),)
    ).decision
    assert (d.desired, d.warning) == (3, "PrometheusUnavailable")
    assert d.reason == "holding 3: metrics unavailable (ConnectionError)"
    stale = Observation(at=0.0, samples=samples(3, 0.0, age=600.0))
    d = decide(c, state, ready, stale, floors=(Floor(5, SCHEDULED, "schedule asks for 5"),)).decision
    assert (d.desired, d.warning) == (5, "MetricsStale")


def test_each_hold_without_fresh_samples_says_why_word_for_word() -> None:
    # Pins the reasons and condition messages of _without_fresh_samples' three branches.
    c = cfg(min_replicas=0)
    state = PolicyState.initial(c)
    d = decide(
        c,
        state,
        FleetView(current=3, ready=("r0", "r1", "r2")),
        Observation(at=0.0, samples=samples(3, 0.0, age=600.0)),
    ).decision
    assert d.reason == "holding 3: none of 3 ready replicas reported fresh metrics"
    loading = FleetView(current=2, ready=(), starting=(Starting("s0", 10.0), Starting("s1", 10.0)))
    d = decide(c, state, loading, Observation(at=0.0)).decision
    why = "2 replicas loading the model (learned load time 300s), none ready to measure"
    assert d.reason == f"holding 2: {why}"
    assert conds(d) == {
        METRICS_AVAILABLE: (False, "NoReadyReplicas", why),
        SCALING_ACTIVE: (True, "WaitingForReplicas", why),
    }
    d = decide(c, state, FleetView(current=3, ready=()), Observation(at=0.0)).decision
    assert d.reason == "3 -> 2 (reactive): no replicas to measure"
    got = conds(d)
    assert got[METRICS_AVAILABLE] == (False, "NoReadyReplicas", "no replicas to measure")
    assert got[SCALING_ACTIVE] == (True, "ValidMetrics", "no replicas to measure")
    assert got[SCALING_LIMITED][1] == "ScaleDownLimit"
    d = decide(c, state, FleetView(current=1, ready=()), Observation(at=0.0)).decision
    assert (d.reason, d.term) == ("1 -> 0 (minReplicas): no replicas to measure", MINIMUM)


def test_goodput_is_pressure_only_when_significant_and_below_target() -> None:
    # Pins _goodput_pressure's gate: fewer than 20 requests are no evidence, exactly the target
    # is met, and so is a shortfall within chance (949 of 1,000 against 0.95); under it by more
    # than chance, the figure is shown to the digit that makes it fall short.
    c = cfg()
    state = PolicyState.initial(c)

    def decided(g: Goodput):  # type: ignore[no-untyped-def]
        return decide(
            c,
            state,
            FleetView(current=3, ready=("r0", "r1", "r2")),
            Observation(at=0.0, samples=samples(3, 0.0), goodput=g),
        ).decision

    # No pressure: the headroom count. Ten requests teach nothing (30 running fit 2 replicas);
    # 200 within the SLO teach that 10 running per replica is fine (30 / (10 x 0.8) -> 3 kept).
    assert decided(gp(5, 10)).recommendation == 2
    assert decided(gp(190, 200)).recommendation == 3
    assert decided(gp(949, 1000)).recommendation == 3
    d = decided(gp(94750, 100000))
    assert d.recommendation == 4 and "goodput 0.9475 < 0.95" in d.reason


def test_a_rise_in_agent_tasks_lifts_the_credit_only_past_one_replicas_worth_of_tasks() -> None:
    # Pins the per-replica task figure _goodput_pressure gives credit.lift: DOWN_HEADROOM x the
    # fewest tasks per replica seen to fail the SLO (10 -> 8), and the fleet it passes (3, the
    # loading replica included), whose room is 3 x 8 = 24 tasks. Tasks up from 4 to 10 (a rise
    # of 6) keep the order's credit; 14 and 24 (rises of 10 and 20) still fit the fleet ordered
    # and keep it too; 25 lift it and order for the tasks: ceil(3 x 25 / 4) = 19.
    c = cfg()
    state = replace(
        PolicyState.initial(c),
        tight_tasks_per_replica=10.0,
        ordered_for=3,
        ordered_tasks=4.0,
        ordered_at=-10.0,
        ordered_goodput=0.9,
    )
    fleet = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),))

    def recommended(tasks: float) -> int | None:
        obs = Observation(at=0.0, samples=samples(2, 0.0), goodput=gp(180, 200), tasks=tasks)
        return decide(c, state, fleet, obs).decision.recommendation

    assert recommended(10.0) == 3
    assert recommended(14.0) == 3
    assert recommended(24.0) == 3
    assert recommended(25.0) == 19


def test_concurrency_is_learned_from_zero_and_is_pressure_only_past_its_headroom_when_asked() -> None:
    # Pins _concurrency_pressure: the first level learned is the measured one (0.5, not a floor
    # of 1); with concurrency_term off a learned level never orders; with it on, running
    # requests count only strictly past level / DOWN_HEADROOM (not level x DOWN_HEADROOM).
    c = cfg()
    light = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=2, ready=("r0", "r1")),
        Observation(at=0.0, samples=samples(2, 0.0, running=0.5), goodput=gp(200, 200)),
    )
    assert light.state.ok_running_per_replica == 0.5
    learned = replace(PolicyState.initial(c), ok_running_per_replica=5.0)
    queue = Observation(at=0.0, samples=samples(2, 10.0, running=20.0))
    assert (
        decide(c, learned, FleetView(current=2, ready=("r0", "r1")), queue).decision.recommendation == 3
    )  # ceil(20 / 8), no concurrency want
    on = cfg(concurrency_term=True)
    level = replace(PolicyState.initial(on), ok_running_per_replica=10.0)
    at_edge = 10.0 * 0.995 / 0.8
    for running, want in ((10.0, 2), (at_edge, 2)):
        d = decide(
            on,
            level,
            FleetView(current=2, ready=("r0", "r1")),
            Observation(at=0.0, samples=samples(2, 0.0, running=running)),
        ).decision
        assert d.recommendation <= want, (running, d.reason)
        assert "seen within SLO" not in d.reason


def test_the_task_layer_forgets_a_burst_after_a_window_and_learns_from_one_task() -> None:
    # Pins _task_layer: the end of a cancelled burst is remembered for one window (strictly),
    # a burst-sized order (loading as many as serving) is cancelled once the tasks fit half the
    # fleet, without claiming pressure is over when there was none; under pressure with
    # nothing loading, one task per two replicas is learned as the level that fails (0 tasks
    # teach nothing).
    c = cfg()
    ready = FleetView(current=2, ready=("r0", "r1"))
    idle = samples(2, 0.0, running=2.0)
    for ended, now, kept in ((50.0, 80.0, 50.0), (0.0, 60.0, None), (0.0, 100.0, None)):
        st = replace(PolicyState.initial(c), burst_ended_at=ended)
        assert decide(c, st, ready, Observation(at=now, samples=idle)).state.burst_ended_at == kept, (ended, now)
    burst = replace(PolicyState.initial(c), burst_floor=2, tight_tasks_per_replica=10.0)
    loading = FleetView(current=4, ready=("r0", "r1"), starting=(Starting("s0", 10.0), Starting("s1", 10.0)))
    out = decide(c, burst, loading, Observation(at=500.0, samples=idle, tasks=4.0))
    assert out.state.burst_ended_at == 500.0
    assert "the burst is over" not in out.decision.reason
    pressed = Observation(at=0.0, samples=samples(2, 20.0), tasks=1.0)
    assert decide(c, PolicyState.initial(c), ready, pressed).state.tight_tasks_per_replica == 0.5
    assert decide(c, PolicyState.initial(c), ready, replace(pressed, tasks=0.0)).state.tight_tasks_per_replica is None


def test_the_task_term_orders_strictly_past_the_failing_level_and_is_not_credited() -> None:
    # Pins the task term (task_term on): it wants replicas only when the tasks exceed the credit
    # base x the learned failing level (10 / 0.9995 per replica after the slow upward forgetting),
    # strictly; and its want is not capped by the loading credit (40 tasks with 2 serving and
    # 1 loading want ceil(40 / (10.005 x 0.8)) = 5, not the credit base 3).
    c = cfg(task_term=True)
    st = replace(PolicyState.initial(c), tight_tasks_per_replica=10.0)
    two = FleetView(current=2, ready=("r0", "r1"))
    quiet = samples(2, 0.0, running=1.0)

    def rec(fleet: FleetView, tasks: float) -> int | None:
        return decide(c, st, fleet, Observation(at=0.0, samples=quiet, tasks=tasks)).decision.recommendation

    assert rec(two, 10.0) == 1
    assert rec(two, 2 * (10.0 / FAILURE_LEVEL_DECAY)) == 1
    assert rec(two, 30.0) == 4
    assert rec(FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),)), 40.0) == 5


def test_a_goodput_collapse_says_so_and_no_samples_at_rest_teach_no_level() -> None:
    # Pins the collapse clause (goodput 0.30 under half of the 0.90 the order in flight was sized
    # on), the "no traffic" clause, and that an idle fleet learns no concurrency level (0 running
    # is no evidence of what the SLO holds at).
    c = cfg()
    st = replace(PolicyState.initial(c), ordered_for=3, ordered_goodput=0.9, ordered_at=-10.0)
    fleet = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),))
    d = decide(c, st, fleet, Observation(at=0.0, samples=samples(2, 0.0), goodput=gp(60, 200))).decision
    assert "goodput 0.30 < 0.5 x 0.90 the last order was sized on: credit lifted" in d.reason
    idle = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=2, ready=("r0", "r1")),
        Observation(at=0.0, samples=samples(2, 0.0, running=0.0), goodput=gp(200, 200)),
    )
    assert "no traffic" in idle.decision.reason
    assert idle.state.ok_running_per_replica is None


def test_cancelling_a_late_order_keeps_the_burst_floor_a_floors_count_and_small_orders() -> None:
    # Pins _cancel_late_order: the replicas kept are at least the count before the burst (5
    # here, more than the 4 serving) and the recommendation (a schedule asking for 10 keeps
    # all 10, with no warning); an order smaller than the fleet (2 loading beside 4 serving)
    # is never cancelled.
    c = cfg(initial_load_seconds=200.0, window_seconds=60.0)
    tight = PolicyState(
        load_time=PolicyState.initial(c).load_time,
        tight_tasks_per_replica=4.0,
        ordered_for=10,
        ordered_goodput=0.3,
        ordered_tasks=40.0,
    )
    six = tuple(Starting(f"s{i}", 120.0) for i in range(6))
    ready = tuple(f"r{i}" for i in range(4))
    obs = Observation(
        at=0.0, samples=samples(4, 0.0, running=2.0, kv=0.1), goodput=gp(40, 200), completion_rate=2.0, tasks=3.0
    )
    d = decide(c, replace(tight, burst_floor=5), FleetView(current=10, ready=ready, starting=six), obs).decision
    assert (d.desired, d.warning) == (5, "BurstShorterThanModelLoad"), d.reason
    floor = (Floor(10, SCHEDULED, "schedule asks for 10"),)
    d = decide(
        c, replace(tight, burst_floor=2), FleetView(current=10, ready=ready, starting=six), obs, floors=floor
    ).decision
    assert (d.desired, d.warning) == (10, None), d.reason
    small = FleetView(current=6, ready=ready, starting=six[:2])
    d = decide(c, replace(tight, burst_floor=2), small, replace(obs, goodput=None)).decision
    assert (d.desired, d.warning) == (6, None), d.reason


def test_a_scale_down_names_each_figure_it_fits() -> None:
    # Pins the clause of a scale-down: waiting, running, KV cache and goodput, comma-separated
    # (ten requests: a goodput shown, too few to learn a concurrency level from).
    c = cfg()
    d = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=3, ready=("r0", "r1", "r2")),
        Observation(at=0.0, samples=samples(3, 0.0, running=1.0), goodput=gp(10, 10)),
    ).decision
    assert "0 waiting, 3 running, KV cache 0.30, goodput 1.00 fit 2" in d.reason, d.reason


def test_the_state_remembers_an_order_only_when_one_is_placed() -> None:
    # Pins _remember: a hold records no burst floor and no order (nothing loading: every order
    # field None); a scale-up records the goodput it was sized on only when that goodput was
    # significant; while an order's replicas load, its time is kept.
    c = cfg()
    ready = FleetView(current=2, ready=("r0", "r1"))
    held = decide(c, PolicyState.initial(c), ready, Observation(at=0.0, samples=samples(2, 8.0))).state
    assert (held.burst_floor, held.ordered_for, held.ordered_goodput, held.ordered_tasks, held.ordered_at) == (
        None,
        None,
        None,
        None,
        None,
    )
    up = Observation(at=0.0, samples=samples(2, 40.0))
    assert decide(c, PolicyState.initial(c), ready, replace(up, goodput=gp(5, 10))).state.ordered_goodput is None
    assert decide(c, PolicyState.initial(c), ready, replace(up, goodput=gp(100, 200))).state.ordered_goodput == 0.5
    loading = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),))
    st = replace(PolicyState.initial(c), ordered_for=3, ordered_at=-10.0)
    assert decide(c, st, loading, Observation(at=0.0, samples=samples(2, 8.0))).state.ordered_at == -10.0


def test_the_capacity_clamp_counts_the_replicas_starting_as_existing() -> None:
    # Pins _clamp_to_capacity's count of what exists: 2 ready + 1 starting, 1 more placeable:
    # 4 fit, so a KV want of 4 is not cut.
    c = cfg(kv_threshold=0.5)
    fleet = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 10.0),))
    d = decide(
        c,
        PolicyState.initial(c),
        fleet,
        Observation(at=0.0, samples=samples(2, 0.0, kv=0.99)),
        Capacity(placeable_extra=1, message="m"),
    ).decision
    assert d.desired == 4, d.reason
    assert conds(d)[SCALING_LIMITED][1] != "InsufficientCapacity"


def test_reading_edges_a_sample_at_the_stale_limit_a_replica_at_twice_the_load_time_and_one_a_window_ready() -> None:
    # Pins read_fleet's inclusive and strict edges: a sample exactly stale_after old is fresh;
    # a replica loading exactly 2 x the learned load time is still credited; one ready exactly
    # a window ago is measured, not "just ready"; samples count when no ready list is known.
    c = cfg(stale_after_seconds=60.0, window_seconds=60.0)
    st = PolicyState.initial(c)
    ready = FleetView(current=2, ready=("r0", "r1"))
    d = decide(c, st, ready, Observation(at=0.0, samples=samples(2, 0.0, age=60.0))).decision
    assert not d.reason.startswith("holding 2: none of"), d.reason
    slow = FleetView(current=3, ready=("r0", "r1"), starting=(Starting("s0", 600.0),))
    d = decide(c, st, slow, Observation(at=0.0, samples=samples(2, 20.0))).decision
    assert "get no credit" not in d.reason and "1 loading credited" in d.reason, d.reason
    settled = FleetView(current=2, ready=("r0", "r1"), ready_ages={"r1": 60.0})
    d = decide(c, st, settled, Observation(at=0.0, samples=samples(2, 20.0), goodput=gp(100, 200))).decision
    assert "just ready credited" not in d.reason, d.reason
    unknown = FleetView(current=2, ready=())
    d = decide(c, st, unknown, Observation(at=0.0, samples=samples(2, 20.0))).decision
    assert d.desired == 5 and "40 waiting > 2 x 8 target" in d.reason, d.reason


def test_a_decision_reports_its_figures_conditions_and_words() -> None:
    # Pins _outcome and _explain: the observed running and KV figures, the MetricsRead and
    # ValidMetrics conditions, the schema mismatch condition, "holding N (term): within
    # targets", the note naming silent replicas (three, then "..."), and the 1024-character cap.
    c = cfg()
    st = PolicyState.initial(c)
    three = FleetView(current=3, ready=("r0", "r1", "r2"))
    out = decide(c, st, three, Observation(at=0.0, samples=samples(3, 8.0, running=3.0, kv=0.3)))
    assert (out.observed.running, out.observed.kv_cache_usage) == (9, 0.3)
    got = conds(out.decision)
    assert got[METRICS_AVAILABLE] == (True, "MetricsRead", "3 of 3 replicas reporting")
    assert got[SCALING_ACTIVE][:2] == (True, "ValidMetrics")
    assert out.decision.reason == "holding 3 (reactive): within targets"
    bad = decide(
        c, st, three, Observation(at=0.0, samples=samples(3, 4.0), schema_problem="MetricsSchemaMismatch: x")
    ).decision
    assert conds(bad)[METRICS_AVAILABLE] == (False, "MetricsSchemaMismatch", "MetricsSchemaMismatch: x")
    five = FleetView(current=5, ready=tuple(f"r{i}" for i in range(5)))
    d = decide(c, st, five, Observation(at=0.0, samples=samples(1, 4.0))).decision
    assert "4 of 5 replicas not reporting (r1, r2, r3...): others' means used" in d.reason, d.reason
    four = FleetView(current=4, ready=tuple(f"r{i}" for i in range(4)))
    d = decide(c, st, four, Observation(at=0.0, samples=samples(1, 4.0))).decision
    assert "3 of 4 replicas not reporting (r1, r2, r3): others' means used" in d.reason, d.reason
    long = decide(
        c, st, three, Observation(at=0.0, samples=samples(3, 4.0)), floors=(Floor(5, SCHEDULED, "x" * 2000),)
    ).decision
    assert len(long.reason) == 1024


def test_a_limit_is_named_once_in_the_reason_and_min_replicas_is_the_term_only_below_it() -> None:
    # Pins decide()'s note of the limit (a step limit's message in the reason; a capacity cut
    # named once, by its "capacity:" note; nothing when within range) and the minReplicas term
    # (only when the recommendation is under minReplicas and the count lands on it).
    c = cfg(max_up_step=2)
    d = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=2, ready=("r0", "r1")),
        Observation(at=0.0, samples=samples(2, 50.0)),
    ).decision
    assert "wanted 13, at most 2 more per decision" in d.reason, d.reason
    c = cfg()
    cap = Capacity(placeable_extra=1, message="no node has 4 free GPUs")
    d = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=3, ready=("r0", "r1", "r2")),
        Observation(at=0.0, samples=samples(3, 30.0)),
        cap,
    ).decision
    assert d.reason.count("more can be placed") == 1, d.reason
    held = decide(
        c,
        PolicyState.initial(c),
        FleetView(current=3, ready=("r0", "r1", "r2")),
        Observation(at=0.0, samples=samples(3, 0.0, running=1.0)),
    ).decision
    assert (held.desired, held.recommendation) == (3, 2) and "within the limits" not in held.reason, held.reason
    at_min = cfg(min_replicas=2)
    two = FleetView(current=2, ready=("r0", "r1"))
    below = decide(
        at_min, PolicyState.initial(at_min), two, Observation(at=0.0, samples=samples(2, 0.0, running=1.0))
    ).decision
    assert (below.recommendation, below.desired, below.term) == (1, 2, MINIMUM), below.reason
    level = decide(
        at_min, PolicyState.initial(at_min), two, Observation(at=0.0, samples=samples(2, 8.0, running=1.0))
    ).decision
    assert (level.recommendation, level.desired, level.term) == (2, 2, "reactive"), level.reason
