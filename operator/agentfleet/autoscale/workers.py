"""The AgentFleet workers policy: task-queue backlog and in-flight tasks per worker.

A worker holds many tasks at once (most of a task's life is spent waiting on the model or a
tool), so the unit is tasks per worker, not CPU: ``ceil((queued + in_flight) / target)``. The
age of the oldest undelivered task is the lag a user feels; when it exceeds ``lag_slo_seconds``
while workers are at target the queue is not draining, so at least one worker is added. Same
stabilization, steps and bounds as the ModelReplicaSet policy; missing metrics hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentfleet.autoscale.common import (
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    Bounds,
    ConditionUpdate,
    Decision,
    Recommendation,
    bound,
    prune,
    stabilize,
)


@dataclass(frozen=True)
class WorkerPolicyConfig:
    min_replicas: int = 1
    max_replicas: int = 10
    target_tasks_per_worker: int = 48
    lag_slo_seconds: float = 30.0
    up_window_seconds: float = 0.0  # workers start in seconds: no reason to wait before adding
    down_window_seconds: float = 300.0
    max_up_step: int = 10
    max_down_step: int = 2
    period_seconds: float = 15.0

    @classmethod
    def from_spec(cls, w: object) -> WorkerPolicyConfig:
        """From an ``api.agentfleet.Workers``."""
        return cls(
            min_replicas=w.min_replicas,  # type: ignore[attr-defined]
            max_replicas=w.max_replicas,  # type: ignore[attr-defined]
            target_tasks_per_worker=w.target_tasks_per_worker,  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class WorkerSignals:
    at: float
    queued: float | None  # tasks on the stream not yet delivered (agentfleet_queue_depth)
    in_flight: float | None  # tasks held by workers (sum of agentfleet_tasks_in_flight)
    oldest_age_seconds: float | None = None  # agentfleet_queue_oldest_age_seconds
    error: str | None = None


@dataclass(frozen=True)
class WorkerState:
    recommendations: tuple[Recommendation, ...] = ()


def decide_workers(
    config: WorkerPolicyConfig, state: WorkerState, current: int, sig: WorkerSignals
) -> tuple[Decision, WorkerState]:
    if sig.error is not None or sig.queued is None or sig.in_flight is None:
        why = f"task-queue metrics unavailable ({sig.error or 'no samples'})"
        conds = (
            ConditionUpdate(METRICS_AVAILABLE, False, "PrometheusUnavailable" if sig.error else "MetricsStale", why),
            ConditionUpdate(SCALING_ACTIVE, False, "MetricsUnavailable", f"holding {current} workers: {why}"),
        )
        return Decision(current, current, None, f"holding {current}: {why}", conds, warning="MetricsUnavailable"), state
    target = config.target_tasks_per_worker
    load = sig.queued + sig.in_flight
    raw = math.ceil(load / target)
    clauses: list[str] = []
    if load > current * target:
        clauses.append(f"{sig.queued:.0f} queued + {sig.in_flight:.0f} in flight > {current} x {target} target")
    elif raw < current:
        clauses.append(f"{sig.queued:.0f} queued + {sig.in_flight:.0f} in flight fit {max(raw, config.min_replicas)}")
    if sig.oldest_age_seconds is not None and sig.oldest_age_seconds > config.lag_slo_seconds and sig.queued > 0:
        raw = max(raw, current + 1)
        clauses.append(f"oldest task waited {sig.oldest_age_seconds:.0f}s > {config.lag_slo_seconds:.0f}s")
    if load == 0:
        clauses.append("no tasks")
    recs = prune(state.recommendations, sig.at, max(config.up_window_seconds, config.down_window_seconds)) + (
        (sig.at, raw),
    )
    desired = stabilize(
        recs, sig.at, current, config.up_window_seconds, config.down_window_seconds, slack=config.period_seconds
    )
    desired, limited = bound(
        desired, current, Bounds(config.min_replicas, config.max_replicas, config.max_up_step, config.max_down_step)
    )
    head = f"{current} -> {desired}" if desired != current else f"holding {current}"
    reason = f"{head}: {'; '.join(clauses) or 'within target'}"
    conds = (
        ConditionUpdate(METRICS_AVAILABLE, True, "MetricsRead", f"{load:.0f} tasks queued or in flight"),
        ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", reason),
        limited,
    )
    return Decision(current, desired, raw, reason, conds), replace(state, recommendations=recs)


def fleets_using(agentfleets: Sequence[Mapping[str, Any]], model: str) -> list[str]:
    """Names of the AgentFleets (API objects) whose agents call the ModelReplicaSet ``model``:
    its tasks are the demand that model will see over the next minutes."""
    out = []
    for af in agentfleets:
        meta = af.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        spec = af.get("spec") or {}
        refs = {(spec.get(k) or {}).get("name") for k in ("modelRef", "routineModelRef")}
        if model in refs and meta.get("name"):
            out.append(str(meta["name"]))
    return sorted(out)


def task_demand(signals: Sequence[WorkerSignals]) -> float | None:
    """Tasks queued + in flight over the fleets' signals; None when there are none or any fleet's
    figures are missing: a partial count would read as a drop in demand and release replicas."""
    if not signals:
        return None
    total = 0.0
    for s in signals:
        if s.error is not None or s.queued is None or s.in_flight is None:
            return None
        total += s.queued + s.in_flight
    return total
