"""What the ModelReplicaSet controller keeps of nodes, GPU pods and placements between events.

kopf's indices hold these trimmed copies (agentfleet.handlers.modelreplicaset); a reconcile takes
a Snapshot of them on the event loop. Trimming keeps only what the planner reads, so heartbeats
do not change a cached value, and a signature says whether an event changed anything a
reconcile reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.placement import MODELREPLICASET_LABEL, REPLICA_LABEL
from agentfleet.replica_rollout import observe_pod

Key = tuple[str, str]
EXTENDED_RESOURCE_HINTS = ("gpu",)


def trim_node(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the planner reads of a Node. Heartbeat timestamps are left out so the cached value
    (and kopf's index) only changes when something the planner cares about changes."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    ready = [
        {"type": "Ready", "status": c.get("status")} for c in status.get("conditions") or [] if c.get("type") == "Ready"
    ]
    return {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "spec": {
            "taints": [dict(t) for t in spec.get("taints") or []],
            "unschedulable": bool(spec.get("unschedulable")),
        },
        "status": {"allocatable": dict(status.get("allocatable") or {}), "conditions": ready},
    }


def _requests_accelerators(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if any(any(h in r for h in EXTENDED_RESOURCE_HINTS) for r in (res.get(part) or {})):
                return True
    return False


def trim_pod(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the inventory reads of a Pod (placement.inventory_from_k8s), or None for pods that hold
    no accelerators and are no replica of ours."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    labels = meta.get("labels") or {}
    if not (REPLICA_LABEL in labels or _requests_accelerators(body)):
        return None
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity")) or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": {k: v for k, v in labels.items() if k in (REPLICA_LABEL, MODELREPLICASET_LABEL)},
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": node_affinity.get(
                        "requiredDuringSchedulingIgnoredDuringExecution"
                    )
                }
            }
            if node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
            else {},
            "containers": [{"resources": c.get("resources") or {}} for c in spec.get("containers") or []],
            "initContainers": [
                {"resources": c.get("resources") or {}, "restartPolicy": c.get("restartPolicy")}
                for c in spec.get("initContainers") or []
            ],
        },
        "status": {"phase": status.get("phase")},
    }


def placements_of(body: Mapping[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    return {
        "uid": (body.get("metadata") or {}).get("uid"),
        "placements": [dict(p) for p in status.get("placements") or []],
    }


def node_signature(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(trim_node(body), sort_keys=True).encode()).hexdigest()


def pod_signature(body: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What a reconcile reads of a pod (its PodView) together with its restart counts."""
    view = observe_pod(body)
    restarts = tuple(c.get("restartCount", 0) for c in (body.get("status") or {}).get("containerStatuses") or [])
    return (dataclasses.astuple(view), restarts) if view is not None else None


@dataclass(frozen=True)
class Snapshot:
    """The inventory as the caches held it when a reconcile started."""

    nodes: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    placements: dict[Key, list[dict[str, Any]]]  # every ModelReplicaSet's status.placements
    body: dict[str, Any] | None = None  # the object as its last watch event showed it
    gated: bool = False  # an AgentFleet with spec.rollout.evaluation uses this set (canary.py)

    def has_pods(self, namespace: str, name: str) -> bool:
        return any(
            (p["metadata"].get("namespace"), p["metadata"]["labels"].get(MODELREPLICASET_LABEL)) == (namespace, name)
            for p in self.pods
        )


@dataclass
class Caches:
    """kopf's indices and the signatures of what the last events showed, kept on the event loop."""

    indices: dict[str, Any] = dataclasses.field(default_factory=dict)
    node_sig: dict[str, str] = dataclasses.field(default_factory=dict)
    pod_sig: dict[Key, tuple[Any, ...] | None] = dataclasses.field(default_factory=dict)
    bodies: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # (namespace, AgentFleet) -> (the sets it gates on, a signature of its status.gate)
    gating: dict[Key, tuple[frozenset[str], str]] = dataclasses.field(default_factory=dict)

    def snapshot(self, key: Key | None = None) -> Snapshot:
        """Copies of the caches, taken on the event loop (where kopf updates them) for a worker thread."""
        nodes = [n for store in self.indices["mrs_nodes"].values() for n in store]
        pods = [p for store in self.indices["mrs_gpu_pods"].values() for p in store]
        placements: dict[Key, list[dict[str, Any]]] = {}
        for k, store in self.indices["mrs_placements"].items():
            for v in store:
                placements[k] = v["placements"]
        gated = key is not None and any(f[0] == key[0] and key[1] in sets for f, (sets, _) in list(self.gating.items()))
        return Snapshot(nodes, pods, placements, self.bodies.get(key) if key is not None else None, gated)

    def fleet_changed(self, fleet: Key, sets: frozenset[str], gate_sig: str) -> frozenset[str]:
        """Records which sets an AgentFleet gates on now (empty: none, or it is gone) and its gate's
        signature; returns the sets to reconcile: those it gated on before or gates on now, when
        either changed."""
        before = self.gating.get(fleet, (frozenset(), ""))
        if sets:
            self.gating[fleet] = (sets, gate_sig)
        else:
            self.gating.pop(fleet, None)
        return frozenset() if before == (sets, gate_sig if sets else "") else before[0] | sets

    def pod_changed(self, pod: Key, body: Mapping[str, Any] | None) -> bool:
        """Records a pod's signature; True when it differs from the last one (None: deleted)."""
        if body is None:
            self.pod_sig.pop(pod, None)
            return True
        sig = pod_signature(body)
        unchanged = self.pod_sig.get(pod) == sig
        self.pod_sig[pod] = sig
        return not unchanged

    def node_changed(self, name: str, body: Mapping[str, Any] | None) -> tuple[bool, bool]:
        """Records a node's signature; (changed, known before). None: deleted."""
        sig = "" if body is None else node_signature(body)
        known = name in self.node_sig
        if known and self.node_sig[name] == sig:
            return False, known
        if body is None:
            self.node_sig.pop(name, None)
        else:
            self.node_sig[name] = sig
        return True, known
