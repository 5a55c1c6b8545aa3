"""The ModelReplicaSet's status as this controller writes it: figures and placements by a merge
patch of what changed, then its own condition types by server-side apply (the autoscaler applies
its types under its own manager; conditions are a list-map keyed by type, so neither drops the
other's)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.capacity import Assessment
from agentfleet.controllers.modelreplicaset.services import PassKube
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.kube import FIELD_MANAGER
from agentfleet.placement import Unplaced
from agentfleet.reconcile.status import StatusWriter, changed_fields
from agentfleet.render.modelreplicaset import selector_string
from agentfleet.render.vllm import served_name
from agentfleet.replica_rollout import (
    ACTIVE,
    DRAINING,
    READY_PHASE,
    ConditionCause,
    Desired,
    Summary,
    compose_conditions,
    rfc3339,
)

log = logging.getLogger("agentfleet.modelreplicaset")
KIND = "ModelReplicaSet"


def base(generation: int, name: str, spec: ModelReplicaSetSpec | None) -> dict[str, Any]:
    st: dict[str, Any] = {"observedGeneration": generation, "selector": selector_string(name)}
    if spec is not None:
        gpus = spec.engine.gpus_per_replica
        # A CPU replica holds no GPU: the GPUs/Replica column says 0, not the 1 of TP x PP.
        st["gpusPerReplica"] = 0 if spec.engine.device == "CPU" else gpus
        st["servedModelName"] = served_name(spec)
    return st


@dataclass(frozen=True)
class Outcome:
    """What a pass ends with, as its status reads it."""

    name: str
    generation: int
    now: float
    spec: ModelReplicaSetSpec
    assessment: Assessment  # capacity.assess of the spec
    capacity_error: str | None
    desired: Desired
    records: Mapping[str, Mapping[str, Any]]  # replica -> status.placements record
    terminating: frozenset[str]  # replicas on their way out: not counted
    current: Mapping[str, bool]  # replica -> runs the current spec (new ones do)
    status_in: Mapping[str, Any]  # status as the pass read it
    conditions_before: list[dict[str, Any]]  # the conditions last written
    unplaced: list[Unplaced]  # of this object
    failures: list[ConditionCause]
    waiting: str  # what the rollout waits for
    model_cache: Mapping[str, Any] | None = None  # status.modelCache (modelcache.py); None: no fill applies


def compose(o: Outcome) -> dict[str, Any]:
    staying = {r: rec.get("phase") for r, rec in o.records.items() if r not in o.terminating}
    active = [r for r, ph in staying.items() if ph in ACTIVE]
    draining = [r for r, ph in staying.items() if ph == DRAINING]
    current = [r for r in active if o.current.get(r, True)]
    ready = [r for r in active if staying[r] == READY_PHASE]
    desired, unplaced = o.desired, o.unplaced
    summary = Summary(
        desired=desired.count,
        replicas=len(active) + len(draining),
        ready=len(ready),
        current=len(current),
        outdated=len(active) - len(current),
        draining=len(draining),
        starting=len(active) - len(ready),
        capacity_error=o.capacity_error,
        unplaced=ConditionCause(unplaced[0].reason, unplaced[0].message) if unplaced else None,
        unplaced_count=len(unplaced),
        limited=ConditionCause(desired.limited_reason, desired.limited_message) if desired.limited_reason else None,
        failures=o.failures,
        waiting=o.waiting,
    )
    conds = compose_conditions(o.conditions_before, summary, o.generation)
    # Every figure, null when unknown: a merge patch then also removes figures that went away.
    cap = dict.fromkeys(
        (
            "weightsBytes",
            "kvBytesPerToken",
            "kvTokensPerReplica",
            "concurrentSequences",
            "contextTokens",
            "gpuMemoryBytes",
        )
    )
    cap.update(o.assessment.status().wire())
    st = {
        **base(o.generation, o.name, o.spec),
        "replicas": summary.replicas,
        "readyReplicas": summary.ready,
        "placements": [{k: v for k, v in o.records[r].items() if v is not None} for r in sorted(o.records)],
        "capacity": cap,
        # Null removes a fill's record once the spec no longer asks for one (a merge patch).
        "modelCache": dict(o.model_cache) if o.model_cache is not None else None,
        "conditions": conds,
    }
    if not o.spec.autoscaling.enabled:
        # While autoscaling is off the target is spec.replicas; with it on, desiredReplicas and
        # the scale reason belong to the autoscaler and are left alone.
        st["desiredReplicas"] = desired.count
        before = o.status_in.get("desiredReplicas")
        if before != desired.count:
            st["lastScaleTime"] = rfc3339(o.now)
            st["lastScaleReason"] = (
                f"{desired.source} {before} -> {desired.count}"
                if before is not None
                else f"{desired.source} {desired.count}"
            )
    return st


@dataclass
class StatusTarget:
    """Where a pass writes status, and what it has written so far (``written``, kept up to date)."""

    kube: PassKube
    ns: str
    name: str
    state: ModelReplicaSetState  # our writes' resourceVersions
    written: dict[str, Any]
    foreign_conditions: frozenset[str]  # condition types another writer owns: never applied here


def write(t: StatusTarget, status: dict[str, Any]) -> None:
    """The figures first, then the conditions that summarize them: a reader that sees the new
    Ready also sees what it is based on."""
    status = dict(status)
    conds = status.pop("conditions", None)
    writer = StatusWriter(t.kube, API_VERSION, KIND, FIELD_MANAGER)
    changed = changed_fields(t.written, status)
    if changed:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s/%s status: %s", t.ns, t.name, ", ".join(sorted(changed)))
        _own(t, writer.patch(t.ns, t.name, changed))
        t.written.update(changed)
    if conds is not None:
        mine = [c for c in conds if c.get("type") not in t.foreign_conditions]
        before = [c for c in t.written.get("conditions") or [] if c.get("type") not in t.foreign_conditions]
        out = writer.apply(t.ns, t.name, {"conditions": mine}, before={"conditions": before})
        if out is not None:
            _own(t, out)
            t.written["conditions"] = list((out.get("status") or {}).get("conditions") or mine)


def _own(t: StatusTarget, out: dict[str, Any] | None) -> None:
    t.state.remember_write(((out or {}).get("metadata") or {}).get("resourceVersion"))
