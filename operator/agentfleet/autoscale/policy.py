"""The ModelReplicaSet scaling policy: queue depth and goodput, with credit for loading replicas.

Pure: ``decide(config, state, fleet, observation, capacity)`` returns a ``Decision`` and the next
``PolicyState``; the controller (controllers/autoscaler/) reads Prometheus and the pods and
writes status, and the simulated-clock benchmark drives the same function. ``decide`` reads the
fleet, adds the pressure terms (autoscale.terms), recommends, stabilizes, clamps and remembers;
how and why each step works, with the measurements behind it: docs/autoscaling.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

# credit: when the credit for loading replicas is lifted; floors: the learned and scheduled
# floors merged by max with the reactive recommendation (the "merged by max" step in decide).
from agentfleet.autoscale import credit
from agentfleet.autoscale.common import (
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    Bounds,
    ConditionUpdate,
    Decision,
    Recommendation,
    bound,
    prune,
    stabilize,
)
from agentfleet.autoscale.floors import MINIMUM, REACTIVE, Floor, Hold, merge_floors
from agentfleet.autoscale.reading import STUCK_FACTOR, Reading, read_fleet, reading_notes
from agentfleet.autoscale.signals import Capacity, FleetView, Observation, ReplicaSample, Starting
from agentfleet.autoscale.state import LoadTime, PolicyConfig, PolicyState
from agentfleet.autoscale.terms import (
    COLLAPSE_RATIO,
    DOWN_HEADROOM,
    FAILURE_LEVEL_DECAY,
    OK_RUNNING_DECAY,
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
    tasks_in_flight_term,
)


@dataclass(frozen=True)
class Observed:
    queue_depth: int | None = None
    running: int | None = None
    goodput: float | None = None
    kv_cache_usage: float | None = None


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    state: PolicyState
    observed: Observed = field(default_factory=Observed)


@dataclass
class Evaluation:
    """What one evaluation concluded so far: the wants of the pressure terms and the clauses and
    notes that explain the decision."""

    notes: list[str] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)
    wants: list[int] = field(default_factory=list)
    pressure: bool = False
    released: bool = False  # a burst's replicas are released (_stabilized)

    def want(self, r: Reading, raw: int, clause: str, *, credited: bool = True) -> int:
        """Add a pressure term's want (after the loading credit, if it applies); returns it."""
        self.pressure = True
        want = _credited(r, raw) if credited else raw
        self.clauses.append(clause)
        if want < raw and not any("credited" in c for c in self.clauses):
            self.clauses.append(_credit_note(r))
        self.wants.append(want)
        return want


@dataclass(frozen=True)
class TaskLayer:
    """The task layer's memory after this evaluation (see _task_layer)."""

    tight: float | None  # fewest agent tasks per replica seen to fail the SLO
    floor: int | None  # the replica count before the current scale-up began
    ended_at: float | None  # when replicas still loading for a burst were cancelled
    cancel: bool  # cancel replicas still loading for a burst that is over


def decide(
    config: PolicyConfig,
    state: PolicyState,
    fleet: FleetView,
    obs: Observation,
    capacity: Capacity | None = None,
    floors: Sequence[Floor] = (),
    hold: Hold | None = None,
) -> Outcome:
    """One evaluation: read -> pressure terms -> recommend -> hold -> merge the floors ->
    stabilize -> clamp -> remember. ``floors``: replica counts from the learned profile and the
    schedule (autoscale/floors.py), merged with the reactive recommendation by max; ``hold``: the
    profile expects the burst now on to end before new replicas load, so the reactive rise waits."""
    if obs.error is not None:
        return _hold(
            config, state, fleet, f"metrics unavailable ({obs.error})", obs.error_reason, "MetricsUnavailable", floors
        )
    r = read_fleet(config, state, fleet, obs)
    if not r.fresh:
        return _without_fresh_samples(config, state, fleet, r, floors)
    ev = Evaluation(notes=reading_notes(r, obs))

    # Pressure terms, in the order their clauses are reported: each may add a want. A new term
    # is one more function here (it reads the Reading and the state, and calls ev.want).
    _queue_pressure(config, r, ev)
    _kv_pressure(config, r, ev)
    _goodput_pressure(config, state, r, ev)
    ok_running = _concurrency_pressure(config, state, r, ev)
    tl = _task_layer(config, state, r, ev)

    raw = _recommend(config, r, ev, ok_running, obs.completion_rate)
    raw = _held(r, ev, raw, obs.at, hold)
    # Merged by max: the learned (predictive, standing) and scheduled floors.
    raw, term, won = merge_floors(raw, floors)
    if won is not None:
        ev.clauses.append(won.why)
    if r.stuck:
        ev.notes.append(f"{r.stuck} replicas loading longer than {STUCK_FACTOR:g} x {r.load_s:.0f}s get no credit")
    recs, target = _stabilized(config, state, r, ev, raw, tl)
    target, bounds, late_order = _cancel_late_order(config.bounds, r, ev, raw, target, tl)
    if ev.released:
        bounds = replace(bounds, max_down_step=max(bounds.max_down_step, r.current - target))
    target, limited = bound(target, r.current, bounds)
    target, limited = _clamp_to_capacity(r, fleet, ev, capacity, target, limited)
    if limited.status and limited.reason not in ("InsufficientCapacity",) and target != raw:
        ev.notes.append(limited.message)
    new_state = _remember(state, r, recs, raw, target, ok_running, tl)
    if target == config.min_replicas and raw < config.min_replicas:
        term = MINIMUM
    return _outcome(obs, r, ev, raw, target, limited, late_order, new_state, term)


def _held(r: Reading, ev: Evaluation, raw: int, at: float, hold: Hold | None) -> int:
    """A rise the reactive terms ask for in a burst the profile expects to be over before the
    replicas load is not ordered; the floors still apply. Past ``hold.until`` the burst has
    outlived the ones seen, and the rise goes ahead."""
    if hold is None or raw <= r.current or at > hold.until:
        return raw
    ev.clauses.append(f"not ordering {raw - r.current} more for {hold.until - at:.0f}s: {hold.why}")
    return r.current


def _hold(
    config: PolicyConfig,
    state: PolicyState,
    fleet: FleetView,
    why: str,
    reason: str,
    status_reason: str,
    floors: Sequence[Floor] = (),
) -> Outcome:
    conds = (
        ConditionUpdate(METRICS_AVAILABLE, False, reason, why),
        ConditionUpdate(SCALING_ACTIVE, False, status_reason, f"holding {fleet.current} replicas: {why}"),
    )
    # A schedule or the learned profile needs no live metrics: blind, the count may still rise to
    # a floor (never fall), and no recommendation is recorded.
    rec, term, won = merge_floors(fleet.current, floors)
    if won is not None:
        target, _ = bound(rec, fleet.current, config.bounds)
        if target > fleet.current:
            d = Decision(
                fleet.current,
                target,
                None,
                f"{fleet.current} -> {target} ({term}): {won.why}; {why}",
                conds,
                warning=reason,
                term=term,
            )
            return Outcome(d, state)
    d = Decision(fleet.current, fleet.current, None, f"holding {fleet.current}: {why}", conds, warning=reason)
    return Outcome(d, state)


def _without_fresh_samples(
    config: PolicyConfig, state: PolicyState, fleet: FleetView, r: Reading, floors: Sequence[Floor] = ()
) -> Outcome:
    """No ready replica reports fresh samples: hold (stale numbers never act later), wait for the
    loading ones, or, with nothing to measure at all, go to minReplicas (0 is allowed)."""
    current = r.current
    if r.ready:
        return _hold(
            config,
            state,
            fleet,
            f"none of {len(r.ready)} ready replicas reported fresh metrics",
            "MetricsStale",
            "MetricsUnavailable",
            floors,
        )
    if r.pending:
        why = f"{len(r.pending)} replicas loading the model (learned load time {r.load_s:.0f}s), none ready to measure"
        conds = (
            ConditionUpdate(METRICS_AVAILABLE, False, "NoReadyReplicas", why),
            ConditionUpdate(SCALING_ACTIVE, True, "WaitingForReplicas", why),
        )
        return Outcome(Decision(current, current, None, f"holding {current}: {why}", conds), state)
    # Nothing exists to measure: minReplicas (0 is allowed) and the floors are all it can justify.
    rec, term, won = merge_floors(config.min_replicas, floors)
    target, limited = bound(rec, current, config.bounds)
    why = "no replicas to measure" + (f"; {won.why}" if won else "")
    conds = (
        ConditionUpdate(METRICS_AVAILABLE, False, "NoReadyReplicas", why),
        ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", why),
        limited,
    )
    term = MINIMUM if won is None and target == config.min_replicas else term
    return Outcome(Decision(current, target, rec, _explain(current, target, [why], [], term), conds, term=term), state)


# --- pressure terms --------------------------------------------------------------------------


def _credited(r: Reading, want: int) -> int:
    return loading_credit(
        want,
        base=r.credit_base,
        in_flight=r.in_flight,
        ordered_for=r.ordered_for,
        growth=r.growth,
        per_replica_rate=r.per_replica_rate,
        serving=r.serving,
    )


def _credit_note(r: Reading) -> str:
    parts = []
    if r.pending:
        parts.append(f"{len(r.pending)} loading credited (load time {r.load_s:.0f}s)")
    if r.settling:
        parts.append(f"{len(r.settling)} just ready credited")
    return ", ".join(parts)


def _queue_pressure(config: PolicyConfig, r: Reading, ev: Evaluation) -> None:
    target_q = config.target_queue_depth
    raw = queue_term(r.mean_wait, r.waiting, target_q)
    if raw is not None:
        ev.want(r, raw, f"{r.waiting:.0f} waiting > {r.serving} x {target_q} target")


def _kv_pressure(config: PolicyConfig, r: Reading, ev: Evaluation) -> None:
    raw = kv_term(r.mean_kv, r.serving, config.kv_threshold)
    if raw is not None:
        ev.want(r, raw, f"KV cache {r.mean_kv:.2f} > {config.kv_threshold:.2f}", credited=False)


def _goodput_pressure(config: PolicyConfig, state: PolicyState, r: Reading, ev: Evaluation) -> None:
    """Goodput under target; and when it has collapsed under the order in flight, that order's
    credit is lifted (docs/autoscaling.md: credit and collapse)."""
    gp = r.gp
    if gp is None or gp.fraction is None or not gp.short_of(config.target_fraction):
        return
    tf = config.target_fraction
    shown = f"{gp.fraction:.2f}" if float(f"{gp.fraction:.2f}") < tf else f"{gp.fraction:.4f}".rstrip("0")
    want_g = ev.want(r, goodput_term(r.serving, gp.fraction, tf), f"goodput {shown} < {tf:g}")
    og = r.ordered_goodput
    collapsed = og is not None and goodput_collapsed(gp.fraction, og, tf)
    # Also lifted by a surge of agent tasks or a whole window of zero goodput since the order
    # (credit.py): cases the collapse test cannot see.
    tight = state.tight_tasks_per_replica
    lifted = (
        credit.lift(
            credit.OrderInFlight(state.ordered_at, state.ordered_tasks),
            r.now,
            config.window_seconds,
            r.tasks,
            tight * DOWN_HEADROOM if tight else None,
            gp.fraction,
            r.current,
        )
        if r.in_flight
        else None
    )
    if not collapsed and lifted is None:
        return
    want_x = collapse_term(
        r.measured,
        r.serving,
        gp.fraction,
        tf,
        tasks=r.tasks,
        ordered_tasks=state.ordered_tasks,
        ordered_for=r.ordered_for,
    )
    if want_x > want_g:
        if collapsed and og is not None:
            ev.clauses.append(
                f"goodput {gp.fraction:.2f} < {COLLAPSE_RATIO:g} x {og:.2f} the last order was sized on: credit lifted"
            )
        else:
            ev.clauses.append(str(lifted))
        ev.wants.append(want_x)


def _concurrency_pressure(config: PolicyConfig, state: PolicyState, r: Reading, ev: Evaluation) -> float | None:
    """Learn the highest concurrency per replica at which the SLO held (fading slowly); with
    concurrency_term on, running requests well past it are pressure. Returns the learned level."""
    ok_running = state.ok_running_per_replica
    if ok_running is not None:
        ok_running *= OK_RUNNING_DECAY
    if not ev.pressure and r.good and r.mean_run > 0:
        ok_running = max(ok_running or 0.0, r.mean_run)
    elif ok_running and config.concurrency_term and r.mean_run > ok_running / DOWN_HEADROOM:
        ev.want(
            r,
            concurrency_term(r.running, ok_running),
            f"{r.running:.0f} running > {r.serving} x {ok_running:.1f} seen within SLO",
        )
    return ok_running


def _task_layer(config: PolicyConfig, state: PolicyState, r: Reading, ev: Evaluation) -> TaskLayer:
    """The agent tasks queued and in flight: learn the fewest per replica at which the SLO
    failed; tell when a burst is over (cancel replicas still loading for it, and ignore the
    window's memory of it); with task_term on, order for the tasks (docs/autoscaling.md)."""
    tasks = r.tasks
    tight = state.tight_tasks_per_replica
    if tight is not None:
        tight /= FAILURE_LEVEL_DECAY  # forgotten slowly upward: the tasks may have become lighter
    floor = state.burst_floor
    tasks_fit = bool(
        config.task_fast_down
        and floor is not None
        and tasks is not None
        and tight
        and burst_over(r.serving, tasks, tight)
    )
    ended_at = (
        state.burst_ended_at
        if state.burst_ended_at is not None and r.now - state.burst_ended_at < config.window_seconds
        else None
    )
    # Only a burst-sized order is cancelled (at least as many loading as serving): a +1 for a
    # slight miss stays, or a lull between calls would flap it.
    cancel = tasks_fit and bool(r.pending) and r.current >= 2 * r.serving
    if tasks_fit and ev.pressure and (cancel or ended_at is not None):
        ev.pressure = False
        ev.clauses.append(
            f"{tasks:.0f} agent tasks fit half the {r.serving} ready replicas: the burst is over, the window "
            "still shows it"
        )
    if cancel:
        ended_at = r.now
    if tasks is not None and tasks > 0:
        if ev.pressure and not r.in_flight:
            # The window's goodput was measured under the window's load: as a burst drains, it
            # still shows the burst's misses while a few tasks remain, and the count now would
            # teach a failure level of a fraction of a task per replica.
            tight = min(tight if tight is not None else math.inf, r.peak_task_load or tasks / r.serving)
        elif tight and config.task_term and tasks > r.credit_base * tight:
            # Replicas loading are in credit_base already: this term is not credited again.
            ev.want(
                r,
                tasks_in_flight_term(tasks, tight),
                f"{tasks:.0f} agent tasks > {r.credit_base} x {tight:.1f} at which the SLO failed",
                credited=False,
            )
    return TaskLayer(tight, floor, ended_at, cancel)


# --- recommend, stabilize, clamp -------------------------------------------------------------


def _recommend(
    config: PolicyConfig, r: Reading, ev: Evaluation, ok_running: float | None, completion_rate: float | None
) -> int:
    """The raw recommendation: under pressure the largest want (never shrinking: replicas already
    loading are the answer being awaited); idle, minReplicas; else the fewest with headroom."""
    if ev.pressure:
        return max(*ev.wants, r.credit_base)
    if is_idle(r.waiting, r.running, completion_rate):
        ev.clauses.append("no traffic")
        return config.min_replicas
    keep = headroom_keep(
        r.waiting,
        config.target_queue_depth,
        serving=r.serving,
        mean_kv=r.mean_kv,
        kv_threshold=config.kv_threshold,
        ok_running=ok_running,
        peak_in_system=max([r.running, *(v for _, v in r.history)]),
    )
    raw = min(keep, r.credit_base)
    if raw < r.current:
        parts = [f"{r.waiting:.0f} waiting", f"{r.running:.0f} running"]
        if r.mean_kv is not None:
            parts.append(f"KV cache {r.mean_kv:.2f}")
        if r.gp is not None and r.gp.fraction is not None:
            parts.append(f"goodput {r.gp.fraction:.2f}")
        ev.clauses.append(", ".join(parts) + f" fit {raw}")
    return raw


def _stabilized(
    config: PolicyConfig, state: PolicyState, r: Reading, ev: Evaluation, raw: int, tl: TaskLayer
) -> tuple[tuple[Recommendation, ...], int]:
    """Stabilization windows (common.stabilize); once the task layer says the burst's tasks fit
    half the fleet, the replicas that burst ordered go after one window, never below the count
    before it, and in one decision (``ev.released``: maxScaleDownStep does not apply to them)."""
    now, current, tasks, tight = r.now, r.current, r.tasks, tl.tight
    recs = prune(state.recommendations, now, max(config.up_window_seconds, config.down_window_seconds)) + ((now, raw),)
    target = stabilize(
        recs, now, current, config.up_window_seconds, config.down_window_seconds, slack=config.period_seconds
    )
    if (
        config.task_fast_down
        and tl.floor is not None
        and tasks is not None
        and tight
        and not ev.pressure
        and burst_over(current, tasks, tight)
    ):
        short = max(config.window_seconds, config.period_seconds)
        quick = max(
            tl.floor, stabilize(recs, now, current, config.up_window_seconds, short, slack=config.period_seconds)
        )
        if quick < target:
            target = quick
            ev.released = True
            ev.notes.append(
                f"{tasks:.0f} agent tasks fit {tasks_in_flight_term(tasks, tight)}: releasing the burst's "
                f"replicas after {config.window_seconds:.0f}s"
            )
    return recs, target


def _cancel_late_order(
    bounds: Bounds, r: Reading, ev: Evaluation, raw: int, target: int, tl: TaskLayer
) -> tuple[int, Bounds, bool]:
    """Cancel replicas still loading for a burst that is over (a Warning Event says why)."""
    if not tl.cancel or tl.floor is None:
        return target, bounds, False
    keep_n = max(tl.floor, r.serving, raw, r.current - len(r.pending))
    if keep_n >= target:
        return target, bounds, False
    ev.notes.append(f"cancelling {target - keep_n} replicas still loading")
    # What the user can do about it: no order can serve a burst shorter than the load.
    # The two counts bracket the minReplicas that would have served it.
    ev.notes.append(
        f"the burst ended before the replicas ordered for it loaded (load time {r.load_s:.0f}s): it met the "
        f"{tl.floor} replicas "
        f"the fleet had when it began and ordered up to {r.current}; bursts this short are served only by replicas "
        "already running, "
        f"and spec.autoscaling.minReplicas holds such capacity"
    )
    # Not-ready replicas hold no work (the ModelReplicaSet deletes them first, at once).
    return keep_n, replace(bounds, max_down_step=max(bounds.max_down_step, len(r.pending))), True


def _clamp_to_capacity(
    r: Reading, fleet: FleetView, ev: Evaluation, capacity: Capacity | None, target: int, limited: ConditionUpdate
) -> tuple[int, ConditionUpdate]:
    if capacity is None or capacity.placeable_extra is None:
        return target, limited
    target, message = capacity_clamp(
        target, r.current, len(r.ready) + len(fleet.starting), capacity.placeable_extra, capacity.message
    )
    if message is None:
        return target, limited
    ev.notes.append(f"capacity: {message}")
    return target, ConditionUpdate(SCALING_LIMITED, True, "InsufficientCapacity", message)


# --- remember and report ---------------------------------------------------------------------


def _remember(
    state: PolicyState,
    r: Reading,
    recs: tuple[Recommendation, ...],
    raw: int,
    target: int,
    ok_running: float | None,
    tl: TaskLayer,
) -> PolicyState:
    """The next state: recommendations, learned levels, and the order in flight (kept while its
    replicas load, so that a collapse since can be told from lag)."""
    floor = tl.floor
    if target > r.current and floor is None:
        floor = r.current  # the count before this burst's orders
    elif floor is not None and target <= floor:
        floor = None
    ordered_at: float | None
    if target > r.current:
        ordered = raw
        ordered_gp = r.gp.fraction if r.good and r.gp is not None else None
        ordered_tasks = r.tasks
        ordered_at = r.now
    elif r.in_flight:
        ordered, ordered_gp, ordered_tasks = state.ordered_for, state.ordered_goodput, state.ordered_tasks
        ordered_at = state.ordered_at
    else:
        ordered, ordered_gp, ordered_tasks = None, None, None  # nothing loading any more: the order is complete
        ordered_at = None
    return replace(
        state,
        recommendations=recs,
        waiting_history=r.history,
        task_load_history=r.task_load,
        ok_running_per_replica=ok_running,
        tight_tasks_per_replica=tl.tight,
        burst_floor=floor,
        ordered_for=ordered,
        ordered_goodput=ordered_gp,
        ordered_tasks=ordered_tasks,
        burst_ended_at=tl.ended_at,
        ordered_at=ordered_at,
    )


def _outcome(
    obs: Observation,
    r: Reading,
    ev: Evaluation,
    raw: int,
    target: int,
    limited: ConditionUpdate,
    late_order: bool,
    new_state: PolicyState,
    term: str = REACTIVE,
) -> Outcome:
    metrics_cond = (
        ConditionUpdate(METRICS_AVAILABLE, False, "MetricsSchemaMismatch", obs.schema_problem)
        if obs.schema_problem
        else ConditionUpdate(
            METRICS_AVAILABLE, True, "MetricsRead", f"{len(r.fresh)} of {r.serving} replicas reporting"
        )
    )
    reason = _explain(r.current, target, ev.clauses, ev.notes, term)
    conds = (metrics_cond, ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", reason), limited)
    observed = Observed(
        queue_depth=round(r.waiting),
        running=round(r.running),
        goodput=r.gp.fraction if r.gp is not None else None,
        kv_cache_usage=r.mean_kv,
    )
    warning = "MetricsSchemaMismatch" if obs.schema_problem else "BurstShorterThanModelLoad" if late_order else None
    return Outcome(Decision(r.current, target, raw, reason, conds, warning=warning, term=term), new_state, observed)


def _explain(current: int, target: int, clauses: list[str], notes: list[str], term: str = REACTIVE) -> str:
    head = f"{current} -> {target} ({term})" if target != current else f"holding {current} ({term})"
    body = "; ".join([*clauses, *notes]) or "within targets"
    return f"{head}: {body}"[:1024]  # status.lastScaleReason's maxLength


__all__ = [
    "Capacity",
    "FleetView",
    "LoadTime",
    "Observation",
    "Observed",
    "Outcome",
    "PolicyConfig",
    "PolicyState",
    "Reading",
    "ReplicaSample",
    "Starting",
    "burst_over",
    "decide",
    "read_fleet",
]
