"""A ModelReplicaSet's children besides its pods: the Services, the PodDisruptionBudget, the
NetworkPolicy and the generated API key Secret, applied when their rendering changed (and now and
then regardless, which restores one deleted by hand)."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet
from kubernetes.dynamic.exceptions import ConflictError

from agentfleet.placement import Assignment
from agentfleet.render.modelreplicaset import (
    gang_service_name,
    object_key,
    render_api_key_secret,
    render_network_policy,
    render_pdb,
    render_pod,
    render_services,
)
from agentfleet.rollout import ReplicaView

if TYPE_CHECKING:
    from agentfleet.controllers.modelreplicaset.reconcile import ModelReplicaSetPass

# Services and the PDB rarely change: re-applied when their rendering changes, and at least this often.
CHILDREN_REAPPLY_SECONDS = 300.0


def obj_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def missing_pods(mrs: ModelReplicaSet, a: Assignment, view: ReplicaView | None) -> list[dict[str, Any]]:
    """The replica's pods that do not exist yet, rendered at its placement."""
    have = {p.index for p in view.pods} if view else set()
    return [render_pod(mrs, a, i) for i in range(len(a.nodes)) if i not in have]


def ensure_api_key_secret(p: ModelReplicaSetPass, mrs: ModelReplicaSet) -> None:
    """The replicas' generated API key, before their pods and the fleets' workers (which read it):
    created once with a random value and never regenerated (the workers hold it); none when the
    spec names one."""
    if mrs.spec.engine.api_key_secret_ref is not None or p.state.api_key_secret:
        return
    try:
        p.kube.create(render_api_key_secret(mrs, secrets.token_urlsafe(32)))
    except ConflictError:
        pass  # made by an earlier pass (or an operator before a restart): keep it
    p.state.api_key_secret = True


def writes(p: ModelReplicaSetPass, mrs: ModelReplicaSet, *, multi_node: bool) -> list[Any]:
    """The writes due: Services and the PDB whose rendering changed, the gang Service gone single-node."""
    out: list[Any] = []
    for obj in [*render_services(mrs, gang=multi_node), render_pdb(mrs), render_network_policy(mrs)]:
        k, h = object_key(obj), obj_hash(obj)
        seen = p.state.applied.get(k)
        if not (seen and seen[0] == h and p.now - seen[1] < CHILDREN_REAPPLY_SECONDS):
            out.append(functools.partial(_apply, p, obj, k, h))
    gang_svc = ("Service", p.ns, gang_service_name(p.name))
    if not multi_node and gang_svc in p.state.applied:
        p.state.applied.pop(gang_svc, None)
        out.append(functools.partial(p.kube.delete, "v1", "Service", gang_service_name(p.name), p.ns))
    return out


def _apply(p: ModelReplicaSetPass, obj: dict[str, Any], k: tuple[str, str, str], h: str) -> None:
    p.kube.apply(obj)
    p.state.applied[k] = (h, p.now)
