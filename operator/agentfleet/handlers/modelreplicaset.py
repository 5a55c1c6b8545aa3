"""kopf handlers of the ModelReplicaSet controller (agentfleet.controllers.modelreplicaset): kopf
indices of nodes, GPU pods and placements (the planner's inventory), and events that name the
ModelReplicaSet to reconcile.

Create, update and resume all mean "reconcile it". kopf's change handlers (on.create/update/resume)
would also write diff-base and progress annotations onto every ModelReplicaSet, which a level-based
reconcile has no use for: the event handler sees the initial listing (type None, the resume), ADDED
and MODIFIED, including the autoscaler's status.desiredReplicas. Our own status writes are
recognised by their resourceVersion and skipped.
"""

from __future__ import annotations

import json
from typing import Any

import kopf
from agentfleet_contract.common import GROUP, VERSION

from agentfleet.controllers.modelreplicaset.caches import Caches, placements_of, trim_node, trim_pod
from agentfleet.controllers.modelreplicaset.controller import ModelReplicaSetController
from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.kube import Kube
from agentfleet.placement import MODELREPLICASET_LABEL
from agentfleet.reconcile.controller import serve

# Pod events arrive in bursts (bound, running, ready, a gang's members): one reconcile after a
# short pause instead of one per event.
POD_EVENT_COALESCE_SECONDS = 0.2


def _start(mrs_nodes: Any, mrs_gpu_pods: Any, mrs_placements: Any, **_: Any) -> ModelReplicaSetController:
    caches = Caches(indices={"mrs_nodes": mrs_nodes, "mrs_gpu_pods": mrs_gpu_pods, "mrs_placements": mrs_placements})
    return ModelReplicaSetController(Kube(kube_client()), caches=caches, workers=CONFIG.workers)


RUNNING = serve(_start, "modelreplicaset")


@kopf.index("", "v1", "nodes", id="mrs_nodes")
async def index_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
    return {name: trim_node(body)}


@kopf.index("", "v1", "pods", id="mrs_gpu_pods")
async def index_gpu_pods(body: kopf.Body, **_: Any) -> dict[str, Any]:
    trimmed = trim_pod(body)
    # An empty mapping (not None) removes a pod that stopped holding accelerators from the index.
    return {"gpu": trimmed} if trimmed is not None else {}


@kopf.index(GROUP, VERSION, "modelreplicasets", id="mrs_placements")
async def index_placements(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[tuple[str, str], Any]:
    return {(namespace, name): placements_of(body)}


@kopf.on.event(GROUP, VERSION, "modelreplicasets")
async def modelreplicaset_event(
    type: str | None, namespace: str, name: str, meta: kopf.Meta, body: kopf.Body, **_: Any
) -> None:
    ctl = RUNNING.controller
    if ctl is None:
        return
    key = (namespace, name)
    if type == "DELETED":
        ctl.forget(key)
        return
    ctl.caches.bodies[key] = dict(body)
    if type == "MODIFIED" and ctl.own_write(key, meta.get("resourceVersion")):
        return
    ctl.enqueue(key, urgent=True)


@kopf.on.event("", "v1", "pods", labels={MODELREPLICASET_LABEL: kopf.PRESENT})
async def replica_pod_event(
    type: str | None, namespace: str, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> None:
    # A pod appearing is our own doing (and the initial listing is covered by each object's
    # resume); what it does next (bound, running, ready, failed, gone) is news. Changes the
    # controller does not read (kubelet and kwok heartbeats of container status) are not: under a
    # storm of new objects each spared pass is a GET, a LIST and often a status write.
    ctl = RUNNING.controller
    if ctl is None:
        return
    changed = ctl.caches.pod_changed((namespace, name), None if type == "DELETED" else body)
    if type != "DELETED" and (type in (None, "ADDED") or not changed):
        return
    ctl.enqueue((namespace, labels[MODELREPLICASET_LABEL]), POD_EVENT_COALESCE_SECONDS)


@kopf.on.event("", "v1", "nodes")
async def node_event(type: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    """A node that appears, goes, or changes what the planner reads wakes the ModelReplicaSets
    placed on it or waiting for room (heartbeats change nothing the planner reads)."""
    ctl = RUNNING.controller
    if ctl is None:
        return
    changed, known = ctl.caches.node_changed(name, None if type == "DELETED" else body)
    if not changed or (not known and type is None):
        return  # nothing new, or the initial listing: every ModelReplicaSet is reconciled on its own resume
    for key in ctl.watches_node(name):
        ctl.enqueue(key)


@kopf.on.event(GROUP, VERSION, "agentfleets")
async def gating_fleet_event(type: str | None, namespace: str, name: str, body: kopf.Body, **_: Any) -> None:
    """An AgentFleet with spec.rollout.evaluation gates changes of the sets it uses (the canary,
    controllers/modelreplicaset/canary.py): a set is reconciled when a fleet starts or stops gating
    on it, or its gate moves. Other fleets wake nothing here."""
    ctl = RUNNING.controller
    if ctl is None:
        return
    spec = dict(body.get("spec") or {})
    gates = type != "DELETED" and bool((spec.get("rollout") or {}).get("evaluation"))
    refs = {(spec.get(k) or {}).get("name") for k in ("modelRef", "routineModelRef")} if gates else set()
    sets = frozenset(r for r in refs if isinstance(r, str) and r)
    gate = (body.get("status") or {}).get("gate") or {}
    sig = json.dumps([gate.get("phase"), gate.get("candidate"), gate.get("canaries")], sort_keys=True, default=str)
    for mrs in sorted(ctl.caches.fleet_changed((namespace, name), sets, sig)):
        ctl.enqueue((namespace, mrs), POD_EVENT_COALESCE_SECONDS)
