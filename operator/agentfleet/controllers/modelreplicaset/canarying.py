"""The canary as part of a ModelReplicaSet pass (canary.py decides what it is; this module reads
what it needs and turns the decision into replicas): observe reads the gated fleets and
MRS-promoted; ``split`` keeps the canary replica out of the replicas the rollout judges (it is
not one of spec.replicas); canary.canary_step (pure) says whether to create, keep or delete it; act
places and creates it (its pods' serving label ``canary``), applies its Service, keeps the
promoted fields, and gives a replica whose canary ended its ordinary label; once status is written,
the override annotation it applied (or found nothing to decide for) is removed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from agentfleet_contract.common import API_VERSION, GROUP, VERSION
from agentfleet_contract.conditions import set_condition
from agentfleet_contract.modelreplicaset import CanaryStatus, ModelReplicaSet, ModelReplicaSetSpec, ReplicaPlacement
from pydantic import ValidationError

from agentfleet.controllers.modelreplicaset.adapters import read_api_key, sync_replica
from agentfleet.controllers.modelreplicaset.caches import Snapshot
from agentfleet.controllers.modelreplicaset.canary import (
    CANARY_CONDITION,
    CanaryObserved,
    CanaryStep,
    decide_canary,
    fleet_gates,
    promoted_config_name,
    read_promoted,
    render_promoted,
)
from agentfleet.controllers.modelreplicaset.children import missing_pods
from agentfleet.controllers.modelreplicaset.placing import plan_one
from agentfleet.controllers.modelreplicaset.records import Post
from agentfleet.controllers.modelreplicaset.replica_pods import ReplicaPods
from agentfleet.controllers.modelreplicaset.services import PassKube, PassServices
from agentfleet.gate import OVERRIDE_ANNOTATION
from agentfleet.placement import Assignment, assignment_from_status, placement_status
from agentfleet.render.modelreplicaset import canary_service_name, render_canary_service
from agentfleet.replica_rollout import (
    HASH_IN_NAME,
    PENDING,
    ReplicaView,
    parse_replica_name,
    replica_phase,
)


def read(
    kube: PassKube, written: ModelReplicaSet, raw_spec: Mapping[str, Any], status_in: Mapping[str, Any], now: str
) -> CanaryObserved | None:
    """None when no AgentFleet of the namespace gates on this set and none did (no status.canary):
    the pass then runs as it always did, and reads nothing more than the fleets."""
    ns, name = written.metadata.get("namespace", "default"), written.metadata["name"]
    fleets = fleet_gates(name, kube.list(f"{GROUP}/{VERSION}", "AgentFleet", ns))
    said = status_in.get("canary")
    if not fleets and not said:
        return None
    try:
        before = CanaryStatus.model_validate(said) if said else None
    except ValidationError:
        before = None
    promoted = read_promoted(kube.get("v1", "ConfigMap", promoted_config_name(name), ns)) if fleets else None
    plan = decide_canary(name, raw_spec, promoted, fleets, before, now, annotations=written.metadata.get("annotations"))
    record = before.replica.wire() if before is not None and before.replica is not None else None
    return CanaryObserved(plan, written, {}, record)


def serving_set(c: CanaryObserved | None, written: ModelReplicaSet) -> ModelReplicaSet:
    """The ModelReplicaSet as its replicas run it: written, or with the promoted model and adapters."""
    if c is None:
        return written
    spec = ModelReplicaSetSpec.model_validate(c.plan.serving)
    return written if spec == written.spec else written.model_copy(update={"spec": spec})


def split(
    name: str, views: Mapping[str, ReplicaView], c: CanaryObserved | None
) -> tuple[dict[str, ReplicaView], CanaryObserved | None]:
    """The views without the canary replica (while a canary runs), and the canary step's record
    with it and its readiness."""
    if c is None or c.plan.status is None or not c.plan.status.spec_hash:
        return dict(views), c
    if c.plan.same_pods:
        # Its pods are the others': the serving label alone tells the canary apart.
        mine = {r: v for r, v in views.items() if any(p.canary for p in v.live)}
        if c.plan.canary is None and c.plan.status.phase != "Held":
            return dict(views), c  # promoted (or nothing on trial): it joins the Services
    elif c.plan.canary is None:
        return dict(views), c  # held: an outdated replica, drained by the rollout
    else:
        prefix = c.plan.status.spec_hash[:HASH_IN_NAME]
        mine = {r: v for r, v in views.items() if (parse_replica_name(name, r) or ("", 0))[0] == prefix}
    rest = {r: v for r, v in views.items() if r not in mine}
    if c.plan.canary is None:
        return rest, replace(c, views=mine)
    # Ready: its engine answers and it holds the adapters of the spec as written (act loads them).
    wanted = sorted(a.get("name") for a in c.plan.canary.get("adapters") or [] if isinstance(a, Mapping))
    held = sorted((c.record or {}).get("adapters") or [])
    ready = any(v.ready for v in mine.values()) and held == wanted
    status = c.plan.status.model_copy(update={"ready": ready})
    return rest, replace(c, plan=replace(c.plan, status=status), views=mine)


def replica_record(
    c: CanaryObserved, step: CanaryStep, placed: Assignment | None, port: int
) -> ReplicaPlacement | None:
    """status.canary.replica: the placement made now, or the one recorded, with its phase."""
    if placed is not None:
        return placement_status(placed, phase=PENDING)
    if step.keep is None or c.record is None or c.record.get("name") != step.keep:
        return None
    v = c.views[step.keep]
    rec = ReplicaPlacement.model_validate(c.record)
    lead = v.leader
    endpoint = f"{lead.ip}:{port}" if lead and lead.ip and v.ready else None
    return rec.model_copy(update={"phase": replica_phase(v) if v.live else PENDING, "endpoint": endpoint})


def kept_assignment(ns: str, name: str, c: CanaryObserved | None) -> Assignment | None:
    """The canary's recorded placement, for the ledger (its GPUs are taken)."""
    if c is None or c.record is None or c.plan.canary is None:
        return None
    return assignment_from_status(ns, name, c.record)


def relabel(views: Mapping[str, ReplicaView], current: Mapping[str, bool]) -> list[str]:
    """Replicas still labelled canary whose canary ended and that run the serving spec (promoted):
    they join the set's Services. An outdated one (held) is drained by the rollout as any other."""
    return [r for r, v in sorted(views.items()) if current.get(r) and any(p.canary for p in v.live)]


@dataclass(frozen=True)
class CanaryActed:
    """What act did for the canary, for write: its pods to create, its record and placement."""

    pods: tuple[dict[str, Any], ...] = ()
    record: ReplicaPlacement | None = None
    assignment: Assignment | None = None


class _Pass(Protocol):
    """What ``act`` uses of the pass (reconcile.ModelReplicaSetPass)."""

    ns: str
    name: str
    key: tuple[str, str]
    kube: PassKube
    status_in: dict[str, Any]
    ctl: PassServices
    snap: Snapshot
    pods: ReplicaPods

    def post(self, p: Post) -> None: ...

    def warn(self, reason: str, message: str) -> None: ...


def act(
    p: _Pass,
    c: CanaryObserved | None,
    step: CanaryStep | None,
    mrs: ModelReplicaSet,
    views: Mapping[str, ReplicaView],
    current: Mapping[str, bool],
    own: list[Assignment],
) -> CanaryActed:
    """The canary's part of act, after the rollout's: keep the promoted fields, say what changed,
    give an ended canary's replica its ordinary label, delete, place and start the canary replica,
    apply or delete its Service. ``mrs``: as the replicas run it; ``own``: the set's placements."""
    if c is None or step is None:
        return CanaryActed()
    plan = c.plan
    if plan.keep is not None:
        p.kube.apply(render_promoted(c.written, plan.keep))
    for post in plan.posts:
        p.post(post)
    for r in relabel(views, current):
        p.pods.set_draining(views[r], False)  # the serving label "true": in the set's Services now
    for r in step.delete:
        p.pods.delete(c.views[r])
    was_running = (p.status_in.get("canary") or {}).get("phase") == "Running"
    if plan.canary is None:
        if was_running:
            p.kube.delete("v1", "Service", canary_service_name(p.name), p.ns)
        return CanaryActed()
    port = c.written.spec.engine.port
    kept = kept_assignment(p.ns, p.name, c) if step.keep is not None else None
    if step.create is not None:
        placed = plan_one(p.ctl.ledger, p.key, p.snap, c.written.spec, step.create, own)
        if placed is None:
            p.warn("CanaryUnplaced", f"the canary replica {step.create} cannot be placed: no room for one more replica")
            return CanaryActed()
        p.kube.apply(render_canary_service(mrs))
        pods = missing_pods(c.written, placed, None, canary=True)
        return CanaryActed(tuple(pods), replica_record(c, step, placed, port), placed)
    if kept is None:
        return CanaryActed()
    pods = missing_pods(c.written, kept, c.views.get(step.keep or ""), canary=True)
    record = replica_record(c, step, None, port)
    if record is not None and record.endpoint:
        record = _sync_adapters(p, c.written, record)
    return CanaryActed(tuple(pods), record, kept)


def _sync_adapters(p: _Pass, written: ModelReplicaSet, record: ReplicaPlacement) -> ReplicaPlacement:
    """The canary replica holds the adapters of the spec as written (the others the promoted ones)."""
    desired = {a.name: a.source for a in written.spec.adapters}
    if not desired and not record.adapters:
        return record  # no adapters asked for and none known loaded: the replica is asked nothing
    assert record.endpoint is not None
    key = read_api_key(p.kube, p.ns, p.name, written)
    held, error = sync_replica(p.ctl.adapter_client(record.endpoint, key), desired)
    if error:
        p.warn("AdapterSyncFailed", f"canary replica {record.name} holds {held or 'no adapters'}: {error}")
    return record.model_copy(update={"adapters": held})


def status_of(c: CanaryObserved | None, acted: CanaryActed) -> dict[str, Any]:
    """status.canary for write's status (empty: the pass writes none, as without a gated fleet)."""
    if c is None:
        return {}
    if c.plan.status is None:
        return {"canary": None}
    return {"canary": c.plan.status.model_copy(update={"replica": acted.record}).wire()}


def with_condition(c: CanaryObserved | None, conditions: list[dict[str, Any]], generation: int) -> list[dict[str, Any]]:
    """The Canary condition set from the decision, or removed when no gated fleet is left."""
    if c is None:
        return conditions
    if c.plan.condition is None:
        return [x for x in conditions if x.get("type") != CANARY_CONDITION]
    status, reason, message = c.plan.condition
    return set_condition(conditions, CANARY_CONDITION, status, reason, message, generation)


def unannotate(kube: PassKube, c: CanaryObserved | None, ns: str, name: str) -> None:
    """Remove the override annotation the decision applied or ignored, by a merge patch under the
    operator's field manager (as the AgentFleet's), after status is written: a pass that dies
    before says nothing and leaves it for the next pass to apply again."""
    if c is not None and c.plan.unannotate:
        kube.merge_patch_metadata(API_VERSION, "ModelReplicaSet", name, ns, {}, {OVERRIDE_ANNOTATION: None})
