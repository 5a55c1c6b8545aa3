"""From and to the ModelReplicaSet API: a spec as the planner's needs, a placement as its
status.placements entry and back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec, ReplicaPlacement

from agentfleet.capacity import MiB, parse_quantity
from agentfleet.placement.inventory import Node, Toleration, TopologyKeys, inventory_from_k8s, slot_inventory_from_k8s
from agentfleet.placement.types import Assignment, ReplicaNeeds, ReplicaRequest


def replica_key(namespace: str, replica: str) -> str:
    return f"{namespace}/{replica}"


def needs_for(namespace: str, name: str, spec: ModelReplicaSetSpec) -> ReplicaNeeds:
    e, g, p = spec.engine, spec.gpu, spec.placement
    return ReplicaNeeds(
        owner=f"{namespace}/{name}",
        gpus=e.gpus_per_replica,
        tensor_parallel=e.tensor_parallel_size,
        product=g.product,
        min_memory_mib=int(parse_quantity(g.memory) // MiB) if g.memory else None,
        node_selector=tuple(sorted(p.node_selector.items())),
        tolerations=tuple(Toleration(t.key, t.operator, t.value, t.effect) for t in p.tolerations),
        spread_across=p.spread_across,
        spread_mode=p.spread_mode,
        keys=TopologyKeys(node=p.node_key, nvlink=p.nvlink_domain_key, block=p.block_key, zone=p.zone_key),
        resource=g.resource_name,
        device=e.device,
        cpu_millis=int(parse_quantity(e.cpu) * 1000) if e.device == "CPU" else 0,
        memory_bytes=int(parse_quantity(e.memory)) if e.device == "CPU" else 0,
    )


def inventory_for(d: ReplicaNeeds, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> list[Node]:
    """The planner's nodes for replicas of these needs: GPUs for a GPU set, slots of the pod's CPU
    and memory requests for a CPU set."""
    if d.on_cpu:
        return slot_inventory_from_k8s(nodes, pods, d.cpu_millis, d.memory_bytes, d.keys.node)
    return inventory_from_k8s(nodes, pods, d.resource, d.keys.node)


def requests_for(namespace: str, name: str, spec: ModelReplicaSetSpec, replicas: Iterable[str]) -> list[ReplicaRequest]:
    d = needs_for(namespace, name, spec)
    return [ReplicaRequest(replica_key(namespace, r), d) for r in replicas]


def assignment_from_status(namespace: str, name: str, p: ReplicaPlacement | Mapping[str, Any]) -> Assignment | None:
    """A placement recorded in status.placements, back as an Assignment (None if it has no nodes yet)."""
    if not isinstance(p, ReplicaPlacement):
        p = ReplicaPlacement.model_validate(p)
    # A CPU replica holds no GPU (gpus 0) but has its node; a replica without nodes has no place.
    if not p.nodes:
        return None
    return Assignment(
        key=replica_key(namespace, p.name),
        owner=f"{namespace}/{name}",
        nodes=tuple(p.nodes),
        gpus_per_node=p.gpus // len(p.nodes),
        block=p.block,
        zone=p.zone,
    )


def placement_status(a: Assignment, **extra: Any) -> ReplicaPlacement:
    """The status.placements entry for a placement (phase, endpoint and restarts passed through)."""
    return ReplicaPlacement(
        name=a.key.split("/", 1)[-1],
        nodes=list(a.nodes),
        gpus=a.gpus,
        gpus_per_node=a.gpus_per_node,
        block=a.block,
        zone=a.zone,
        **extra,
    )
