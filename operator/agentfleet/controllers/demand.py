"""The autoscaler's demand memory: the learned profile in a ConfigMap, the floors, and their status.

The profile (autoscale/forecast.py) is days of history: it must outlive the operator's process.
Status would do for a few fields, but the curve is ~100 numbers a day and the onsets a list, so
it lives in a ConfigMap ``<modelreplicaset>-demand-profile`` that the autoscaler owns (server-side
apply under its field manager, ownerReference to the ModelReplicaSet, deleted with it). It is
read once per operator process (first evaluation) and written when a time-of-day bin closes or
an onset is recorded: at most every bin (15 min by default), not every evaluation.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentfleet.api.modelreplicaset import ModelReplicaSetSpec
from agentfleet.autoscale.forecast import ForecastConfig, Planned, Profile, plan, within_slo
from agentfleet.autoscale.policy import DOWN_HEADROOM, Observation, PolicyState
from agentfleet.autoscale.schedule import Window

KEY = "profile.json"
MANAGER = "agentfleet-autoscaler"


def configmap_name(name: str) -> str:
    return f"{name}-demand-profile"


def _kube() -> Any:
    from agentfleet.controllers.settings import kube_client
    from agentfleet.kube import Kube

    return Kube(kube_client())


def read_configmap(namespace: str, name: str) -> dict[str, Any] | None:
    cm = _kube().get("v1", "ConfigMap", name, namespace)
    return None if cm is None else dict(cm.get("data") or {})


def apply_configmap(owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None:
    from agentfleet.kube import owner_reference

    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [owner_reference(owner)],
            "labels": {"app.kubernetes.io/managed-by": "agentfleet"},
        },
        "data": data,
    }
    k = _kube()
    k._apply(k._resource("v1", "ConfigMap"), body, MANAGER, True)


def forecast_config(spec: ModelReplicaSetSpec) -> ForecastConfig:
    a = spec.autoscaling
    return ForecastConfig(
        coverage=a.burst_coverage_percent / 100.0,
        predictive=a.predictive,
        gpus_per_replica=spec.engine.tensor_parallel_size * spec.engine.pipeline_parallel_size,
    )


def windows(spec: ModelReplicaSetSpec) -> tuple[Window, ...]:
    return tuple(Window(w.name, w.start, w.duration_seconds, w.replicas, w.time_zone) for w in spec.autoscaling.schedules)


def load(memo: Any, namespace: str, name: str, config: ForecastConfig, logger: Any) -> Profile:
    """The profile this process holds, read from the ConfigMap on the first evaluation."""
    profile = getattr(memo, "demand_profile", None)
    if profile is not None:
        return profile
    profile = Profile()
    try:
        data = read_configmap(namespace, configmap_name(name))
        if data and data.get(KEY):
            profile = Profile.from_json(json.loads(data[KEY]), config)
    except Exception as exc:  # noqa: BLE001 - an unreadable profile is relearned, never a blocker
        logger.warning(f"reading the demand profile failed, learning afresh: {exc}")
    memo.demand_profile = profile
    return profile


def evaluate(
    memo: Any, spec: ModelReplicaSetSpec, namespace: str, name: str, state: PolicyState, obs: Observation, ready: int, period_s: float, logger: Any
) -> tuple[Planned, PolicyState]:
    """Learn from this evaluation and compute the floors; the failure level the reactive task
    term uses comes back from the profile after a restart."""
    from dataclasses import replace

    config = forecast_config(spec)
    profile = load(memo, namespace, name, config, logger)
    if state.tight_tasks_per_replica is None and profile.capacity:
        state = replace(state, tight_tasks_per_replica=profile.capacity / DOWN_HEADROOM)
    tight = state.tight_tasks_per_replica
    g = obs.goodput
    ok = within_slo(obs.tasks, ready, g.fraction if g else None, bool(g and g.significant), spec.autoscaling.goodput.target_fraction)
    planned = plan(config, profile, windows(spec), obs.at, obs.tasks, tight * DOWN_HEADROOM if tight else None, state.load_time.seconds, period_s, ok)
    memo.demand_profile = planned.profile
    return planned, state


def save_if_changed(memo: Any, owner: dict[str, Any], namespace: str, name: str, profile: Profile, logger: Any) -> None:
    """Write the profile when a bin closed or an onset was recorded since the last write."""
    mark = (profile.bin_index, len(profile.onsets), profile.onsets[-1].at if profile.onsets else None)
    if getattr(memo, "demand_saved", None) == mark or profile.started_at is None:
        return
    try:
        apply_configmap(owner, namespace, configmap_name(name), {KEY: json.dumps(profile.to_json(), separators=(",", ":"))})
        memo.demand_saved = mark
    except Exception as exc:  # noqa: BLE001 - retried at the next evaluation
        logger.warning(f"writing the demand profile failed: {exc}")


def status(name: str, planned: Planned, config: ForecastConfig, at: float) -> dict[str, Any]:
    """status.forecast: what was learned and what it holds now (camelCase, CRD schema)."""
    p, f = planned.profile, planned.forecast
    out: dict[str, Any] = {
        "profileConfigMap": configmap_name(name),
        "daysObserved": round(p.periods_seen(at, config), 2),
        "tasksPerReplica": None if p.capacity is None else round(p.capacity, 2),
        "onsetsSeen": len(p.onsets),
        "typicalOnsetTasks": None if f.typical_onset is None else round(f.typical_onset, 1),
        "predictedReplicas": f.predictive,
        "standingReplicas": f.standing,
        "scheduledReplicas": planned.scheduled.replicas if planned.scheduled else None,
        "standbyGPUHoursPerDay": None if f.standby_gpu_hours_per_period is None else round(f.standby_gpu_hours_per_period * 86400.0 / config.period_seconds, 1),
    }
    return {k: v for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
