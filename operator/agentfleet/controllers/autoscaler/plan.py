"""The decide step of an evaluation, pure: sleep, the policy (autoscale.policy / autoscale.workers),
the demand floors (controllers/demand.py) and the status fields and Events that follow. It reads
only the observation it is given and returns a plan, or what it still needs read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agentfleet_contract import conditions as cond

from agentfleet.autoscale.common import (
    AUTOSCALER_CONDITIONS,
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    ConditionUpdate,
    Decision,
)
from agentfleet.autoscale.floors import MINIMUM
from agentfleet.autoscale.policy import Observation, Outcome, decide
from agentfleet.autoscale.sleep import Activity, SleepConfig, SleepDecision, decide_sleep, to_status
from agentfleet.autoscale.workers import WorkerPolicyConfig, WorkerState, decide_workers
from agentfleet.controllers import demand
from agentfleet.controllers.autoscaler.records import (
    ModelFields,
    ModelObserved,
    ModelPlan,
    NeedsCapacity,
    NeedsDemand,
    NeedsSignals,
    Post,
    Subject,
    WorkersFields,
    WorkersObserved,
    WorkersPlan,
    sleep_posts,
)
from agentfleet.reconcile.shape import Wants


def merged_conditions(old: list[dict[str, Any]], decision: Decision, generation: int) -> list[dict[str, Any]]:
    """The autoscaler's condition types after a decision (the one condition helper, per type)."""
    out = list(old)
    for c in decision.conditions:
        out = cond.set_condition(out, c.type, c.status, c.reason, c.message[:1024], generation)
    return [c for c in out if c["type"] in AUTOSCALER_CONDITIONS]


def scale_events(decision: Decision, old_conditions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, reason, message) to post: every change of count, and a Warning per change of the
    cause it cannot scale (not one per period)."""
    out = []
    if decision.changed:
        out.append(("Normal", "ScaledUp" if decision.desired > decision.current else "ScaledDown", decision.reason))
    if decision.warning:
        prev = cond.get_condition(old_conditions, METRICS_AVAILABLE)
        if prev is None or prev.get("reason") != decision.warning or prev.get("status") != "False":
            out.append(("Warning", decision.warning, decision.reason))
    return out


def combined_work(parts: list[float | None]) -> float | None:
    """Work seen anywhere is work (a fleet with tasks wakes the model even when another fleet's
    Redis cannot be read); no work is known only when every part was read."""
    known = [p for p in parts if p is not None]
    if any(p > 0 for p in known):
        return sum(known)
    return None if len(known) < len(parts) else 0.0


def at_least(d: Decision, floor: int, why: str) -> Decision:
    """A decision raised to the sleep machine's floor: a waking object gets its first replica even
    while the policy, with nothing to measure yet, would hold at zero."""
    if d.desired >= floor:
        return d
    return replace(d, desired=floor, reason=f"{d.current} -> {floor}: {why}")


def model_fields(out: Outcome, metrics: Observation | None, s: Subject) -> tuple[ModelFields, tuple[Post, ...]]:
    """The status fields and Events of a ModelReplicaSet decision."""
    d = out.decision
    observed = None
    if d.recommendation is not None:
        o = out.observed
        assert metrics is not None  # the policy recommends only from a measurement
        observed = {
            "queueDepth": o.queue_depth,
            "running": o.running,
            "goodput": o.goodput,
            "kvCacheUsage": o.kv_cache_usage,
            "observedAt": cond.timestamp(metrics.at),
        }
    old = [dict(c) for c in s.conditions]
    fields = ModelFields(
        desired_replicas=d.desired,
        # Only the autoscaler's condition types: the ModelReplicaSet controller's (Ready,
        # Progressing, Degraded) are none of its business.
        conditions=tuple(merged_conditions(old, d, s.generation)),
        observed=observed,
        last_scale=(cond.timestamp(s.now), d.reason, d.term) if d.changed else None,
        learned_load_seconds=round(out.state.load_time.seconds) if out.state.load_time.samples else None,
    )
    return fields, tuple(Post.of(p) for p in scale_events(d, old))


def asleep_plan(o: ModelObserved, sd: SleepDecision, desired: int = 0) -> ModelPlan:
    """Going to sleep, asleep, or waking just now (``desired``: the wake's first replica): the
    policy not asked (nothing to measure)."""
    current = o.fleet.current
    conds = (ConditionUpdate(SCALING_ACTIVE, True, "Waking" if desired else "Sleeping", sd.why),)
    head = f"{current} -> {desired}" if current != desired else f"holding {desired}"
    d = Decision(current, desired, None, f"{head} ({MINIMUM}): {sd.why}", conds, term=MINIMUM)
    fields, posts = model_fields(Outcome(d, o.policy), None, o.subject)
    fields = replace(fields, sleep=to_status(sd.state))
    return ModelPlan(d, fields, posts + sleep_posts(sd), sd.state, o.policy)


def decide_model(o: ModelObserved) -> ModelPlan | Wants:
    """Sleep first; awake, the policy with the demand floors, the planner asked only when growing."""
    sd = decide_sleep(o.sleep_config, o.slept, o.activity, o.subject.now)
    if sd.override is not None:
        return asleep_plan(o, sd)
    if o.metrics is None:
        # Woke just now: the first replica is ordered at once. With no replica there is nothing to
        # measure, and the policy's reads (Prometheus, the task layer, the planner's list of every
        # node and pod) would only delay it; the policy decides from the next evaluation on (1 s).
        return asleep_plan(o, sd, desired=sd.floor)
    if not o.demand_read:
        return NeedsDemand(tasks=o.metrics.error is None)
    assert o.profile is not None
    config = replace(o.config, min_replicas=max(o.config.min_replicas, sd.floor))
    # The learned (predictive, standing) and scheduled floors (controllers/demand.py).
    planned, policy = demand.plan(
        o.profile, o.spec, o.policy, o.metrics, o.ready, config.period_seconds, config.window_seconds
    )
    out: Outcome = decide(config, policy, o.fleet, o.metrics, floors=planned.floors, hold=planned.hold)
    if out.decision.desired > o.fleet.current:
        # Only ask the planner when growing; a failure to read the cluster must not block scaling.
        if not o.capacity_asked:
            return NeedsCapacity(out.decision.desired - o.ready - o.starting)
        if o.capacity is not None:
            out = decide(config, policy, o.fleet, o.metrics, o.capacity, floors=planned.floors, hold=planned.hold)
    state = out.state
    out = replace(out, decision=at_least(out.decision, sd.floor, sd.why))
    fields, posts = model_fields(out, o.metrics, o.subject)
    forecast = demand.status(o.subject.name, planned, demand.forecast_config(o.spec), o.metrics.at)
    sleep = to_status(sd.state) if o.sleep_config.enabled or o.subject.status.get("sleep") else None
    fields = replace(fields, forecast=forecast, sleep=sleep)
    warning = demand.schedule_event(o.schedule_error, planned)
    posts = posts + ((Post.of(warning),) if warning else ()) + sleep_posts(sd)
    return ModelPlan(out.decision, fields, posts, sd.state, state, planned)


def decide_fleet_workers(o: WorkersObserved) -> WorkersPlan | Wants:
    """An AgentFleet's workers: its own Redis stream is the wake signal (no worker reports at zero)."""
    s = o.subject
    sd = decide_sleep(o.sleep_config, o.slept, Activity(o.work, o.ready), s.now)
    workers: WorkerState | None = None
    if sd.override is not None:
        head = f"{o.current} -> 0" if o.current else "holding 0"
        asleep = (ConditionUpdate(SCALING_ACTIVE, True, "Sleeping", sd.why),)
        d = Decision(o.current, 0, None, f"{head}: {sd.why}", asleep)
    else:
        if not o.signals_read:
            return NeedsSignals()
        assert o.signals is not None
        wcfg = WorkerPolicyConfig.from_spec(o.workers)
        wcfg = replace(wcfg, min_replicas=max(wcfg.min_replicas, sd.floor))
        d, workers = decide_workers(wcfg, o.remembered or WorkerState(), o.current, o.signals)
        d = at_least(d, sd.floor, sd.why)
    old = [dict(c) for c in s.conditions]
    # Queue figures are the AgentFleet controller's (read from the fleet's Redis); this manager
    # applies only desiredWorkers, status.sleep and its own condition types (see af_status_apply).
    fields = WorkersFields(
        desired_workers=d.desired,
        conditions=tuple(merged_conditions(old, d, s.generation)),
        sleep=to_status(sd.state) if o.sleep_config.enabled or s.status.get("sleep") else None,
    )
    posts = tuple(Post.of(p) for p in scale_events(d, old)) + sleep_posts(sd)
    return WorkersPlan(d, fields, posts, sd.state, workers)


def sleep_config(min_replicas: int, after_idle_seconds: float) -> SleepConfig:
    return SleepConfig(min_replicas == 0, float(after_idle_seconds))
