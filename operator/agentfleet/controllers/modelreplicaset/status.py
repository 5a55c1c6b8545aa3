"""The ModelReplicaSet's status as this controller writes it: figures and placements by a merge
patch of what changed, then its own condition types by server-side apply (the autoscaler applies
its types under its own manager; conditions are a list-map keyed by type, so neither drops the
other's)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.kube import FIELD_MANAGER
from agentfleet.reconcile.status import StatusWriter, changed_fields
from agentfleet.render.modelreplicaset import selector_string
from agentfleet.render.vllm import served_name
from agentfleet.rollout import ACTIVE, DRAINING, READY_PHASE, ConditionCause, Summary, compose_conditions, rfc3339

if TYPE_CHECKING:
    from agentfleet.controllers.modelreplicaset.reconcile import ModelReplicaSetPass

log = logging.getLogger("agentfleet.modelreplicaset")
KIND = "ModelReplicaSet"


def base(generation: int, name: str, spec: ModelReplicaSetSpec | None) -> dict[str, Any]:
    st: dict[str, Any] = {"observedGeneration": generation, "selector": selector_string(name)}
    if spec is not None:
        st["gpusPerReplica"] = spec.engine.tensor_parallel_size * spec.engine.pipeline_parallel_size
        st["servedModelName"] = served_name(spec)
    return st


def compose(p: ModelReplicaSetPass, records: dict[str, dict[str, Any]], *, unplaced: list[Any], failures: list[ConditionCause], waiting: str) -> dict[str, Any]:
    staying = {r: rec.get("phase") for r, rec in records.items() if r not in p.terminating}
    active = [r for r, ph in staying.items() if ph in ACTIVE]
    draining = [r for r, ph in staying.items() if ph == DRAINING]
    current = [r for r in active if p.current.get(r, True)]
    ready = [r for r in active if staying[r] == READY_PHASE]
    desired = p.desired
    summary = Summary(
        desired=desired.count,
        replicas=len(active) + len(draining),
        ready=len(ready),
        current=len(current),
        outdated=len(active) - len(current),
        draining=len(draining),
        starting=len(active) - len(ready),
        capacity_error=p.capacity_error,
        unplaced=ConditionCause(unplaced[0].reason, unplaced[0].message) if unplaced else None,
        unplaced_count=len(unplaced),
        limited=ConditionCause(desired.limited_reason, desired.limited_message) if desired.limited_reason else None,
        failures=failures,
        waiting=waiting,
    )
    conds = compose_conditions(p.written.get("conditions") or [], summary, p.generation)
    # Every figure, null when unknown: a merge patch then also removes figures that went away.
    cap = dict.fromkeys(("weightsBytes", "kvBytesPerToken", "kvTokensPerReplica", "concurrentSequences", "contextTokens", "gpuMemoryBytes"))
    cap.update(p.assessment.status().wire())
    st = {
        **base(p.generation, p.name, p.spec),
        "replicas": summary.replicas,
        "readyReplicas": summary.ready,
        "placements": [{k: v for k, v in records[r].items() if v is not None} for r in sorted(records)],
        "capacity": cap,
        "conditions": conds,
    }
    if not p.spec.autoscaling.enabled:
        # While autoscaling is off the target is spec.replicas; with it on, desiredReplicas and
        # the scale reason belong to the autoscaler and are left alone.
        st["desiredReplicas"] = desired.count
        before = p.status_in.get("desiredReplicas")
        if before != desired.count:
            st["lastScaleTime"] = rfc3339(p.now)
            st["lastScaleReason"] = f"{desired.source} {before} -> {desired.count}" if before is not None else f"{desired.source} {desired.count}"
    return st


def write(p: ModelReplicaSetPass, status: dict[str, Any]) -> None:
    """The figures first, then the conditions that summarize them: a reader that sees the new
    Ready also sees what it is based on."""
    status = dict(status)
    conds = status.pop("conditions", None)
    writer = StatusWriter(p.kube, API_VERSION, KIND, FIELD_MANAGER)
    changed = changed_fields(p.written, status)
    if changed:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s/%s status: %s", p.ns, p.name, ", ".join(sorted(changed)))
        _own(p, writer.patch(p.ns, p.name, changed))
        p.written.update(changed)
    if conds is not None:
        mine = [c for c in conds if c.get("type") not in p.foreign_conditions]
        before = [c for c in p.written.get("conditions") or [] if c.get("type") not in p.foreign_conditions]
        out = writer.apply(p.ns, p.name, {"conditions": mine}, before={"conditions": before})
        if out is not None:
            _own(p, out)
            p.written["conditions"] = list((out.get("status") or {}).get("conditions") or mine)


def _own(p: ModelReplicaSetPass, out: dict[str, Any] | None) -> None:
    p.state.remember_write(((out or {}).get("metadata") or {}).get("resourceVersion"))
