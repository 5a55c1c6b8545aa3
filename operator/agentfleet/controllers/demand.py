"""The autoscaler's demand memory: the learned profile in a ConfigMap, the floors, and their status.

The profile (autoscale/forecast.py) is days of history: it must outlive the operator's process.
Status would do for a few fields, but the curve is ~100 numbers a day and the onsets a list, so
it lives in a ConfigMap ``<modelreplicaset>-demand-profile`` that the autoscaler owns (server-side
apply, ownerReference to the ModelReplicaSet, deleted with it). It is
read once per operator process (first evaluation) and written when a time-of-day bin closes or
an onset is recorded: at most every bin (15 min by default), not every evaluation.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agentfleet_contract import conditions as cond
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.forecast import ForecastConfig, Lookahead, Profile, look_ahead, within_slo
from agentfleet.autoscale.policy import Observation, PolicyState
from agentfleet.autoscale.schedule import Window
from agentfleet.autoscale.terms import DOWN_HEADROOM
from agentfleet.render.common import owner_reference

log = logging.getLogger("agentfleet.autoscaler")

KEY = "profile.json"


class ProfileStore(Protocol):
    """Where the profile's ConfigMap is read and written (ClusterReads in the controller)."""

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def write_profile(self, owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None: ...


@dataclass
class DemandMemory:
    """The controller's per-object memory of the profile between evaluations."""

    profile: Profile | None = None  # None: not read from the ConfigMap yet (this process)
    saved: tuple[Any, ...] | None = None  # what was last written (bin, onsets)
    schedule_error: str | None = None  # the last one reported, so it is one Warning per change


def configmap_name(name: str) -> str:
    return f"{name}-demand-profile"


@dataclass(frozen=True)
class _Owner:
    api_version: str
    kind: str
    metadata: dict[str, Any]


def configmap(owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """The profile's ConfigMap, owned by the ModelReplicaSet (deleted with it)."""
    ref = owner_reference(_Owner(owner["apiVersion"], owner["kind"], owner["metadata"]))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "ownerReferences": [ref],
            "labels": {"app.kubernetes.io/managed-by": "agentfleet"},
        },
        "data": data,
    }


def forecast_config(spec: ModelReplicaSetSpec) -> ForecastConfig:
    a = spec.autoscaling
    return ForecastConfig(
        coverage=a.burst_coverage_percent / 100.0,
        predictive=a.predictive,
        gpus_per_replica=spec.engine.gpus_per_replica,
    )


def windows(spec: ModelReplicaSetSpec) -> tuple[Window, ...]:
    return tuple(
        Window(w.name, w.start, w.duration_seconds, w.replicas, w.time_zone) for w in spec.autoscaling.schedules
    )


def load(memory: DemandMemory, store: ProfileStore, namespace: str, name: str, config: ForecastConfig) -> Profile:
    """The profile this process holds, read from the ConfigMap on the first evaluation."""
    if memory.profile is not None:
        return memory.profile
    profile = Profile()
    try:
        data = store.read_profile(namespace, configmap_name(name))
        if data and data.get(KEY):
            profile = Profile.from_json(json.loads(data[KEY]), config)
    except Exception as exc:  # noqa: BLE001 - an unreadable profile is relearned, never a blocker
        log.warning(f"{namespace}/{name}: reading the demand profile failed, learning afresh: {exc}")
    memory.profile = profile
    return profile


def evaluate(
    memory: DemandMemory,
    store: ProfileStore,
    spec: ModelReplicaSetSpec,
    namespace: str,
    name: str,
    state: PolicyState,
    obs: Observation,
    ready: int,
    period_s: float,
    window_s: float = 0.0,
) -> tuple[Lookahead, PolicyState]:
    """Learn from this evaluation and compute the floors (``load`` then ``plan``), remembering the
    learned profile."""
    profile = load(memory, store, namespace, name, forecast_config(spec))
    planned, state = plan(profile, spec, state, obs, ready, period_s, window_s)
    memory.profile = planned.profile
    return planned, state


def plan(
    profile: Profile,
    spec: ModelReplicaSetSpec,
    state: PolicyState,
    obs: Observation,
    ready: int,
    period_s: float,
    window_s: float = 0.0,
) -> tuple[Lookahead, PolicyState]:
    """Pure: the floors from the profile and this evaluation; the failure level the reactive task
    term uses comes back from the profile after a restart. The learned profile is ``planned.profile``."""
    config = forecast_config(spec)
    if state.tight_tasks_per_replica is None and profile.capacity:
        state = replace(state, tight_tasks_per_replica=profile.capacity / DOWN_HEADROOM)
    tight = state.tight_tasks_per_replica
    g = obs.goodput
    ok = within_slo(
        obs.tasks, ready, g.fraction if g else None, bool(g and g.significant), spec.autoscaling.goodput.target_fraction
    )
    planned = look_ahead(
        config,
        profile,
        windows(spec),
        obs.at,
        obs.tasks,
        tight * DOWN_HEADROOM if tight else None,
        state.load_time.seconds,
        period_s,
        ok,
        window_s,
    )
    return planned, state


def save_if_changed(
    memory: DemandMemory, store: ProfileStore, owner: dict[str, Any], namespace: str, name: str
) -> None:
    """Write the profile when a bin closed or an onset was recorded since the last write."""
    profile = memory.profile
    if profile is None or profile.started_at is None and profile.capacity is None:
        return
    mark = (
        profile.bin_index,
        len(profile.onsets),
        profile.onsets[-1].at if profile.onsets else None,
        profile.capacity is None,
    )
    if memory.saved == mark:
        return
    try:
        store.write_profile(
            owner, namespace, configmap_name(name), {KEY: json.dumps(profile.to_json(), separators=(",", ":"))}
        )
        memory.saved = mark
    except Exception as exc:  # noqa: BLE001 - retried at the next evaluation
        log.warning(f"{namespace}/{name}: writing the demand profile failed: {exc}")


def schedule_warning(memory: DemandMemory, planned: Lookahead) -> tuple[str, str, str] | None:
    """A Warning Event when the schedule's error appears or changes: one per cause, not per period."""
    before, memory.schedule_error = memory.schedule_error, planned.schedule_error
    return schedule_event(before, planned)


def schedule_event(before: str | None, planned: Lookahead) -> tuple[str, str, str] | None:
    """Pure: the Warning for a schedule error that is new since ``before`` (the last one reported)."""
    if planned.schedule_error is None or planned.schedule_error == before:
        return None
    return (
        "Warning",
        "ScheduleInvalid",
        f"spec.autoscaling.schedules: {planned.schedule_error}; the schedule is ignored until fixed",
    )


def status(name: str, planned: Lookahead, config: ForecastConfig, at: float) -> dict[str, Any]:
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
        "standbyReleasedAt": None if f.released_at is None else cond.timestamp(f.released_at),
        "standbyGPUHoursPerDay": None
        if f.standby_gpu_hours_per_period is None
        else round(f.standby_gpu_hours_per_period * 86400.0 / config.period_seconds, 1),
    }
    return {k: v for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
