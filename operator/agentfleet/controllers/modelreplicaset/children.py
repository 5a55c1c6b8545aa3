"""A ModelReplicaSet's children besides its pods: the Services, the PodDisruptionBudget, the
NetworkPolicy and the generated API key Secret, applied when their rendering changed (and now and
then regardless, which restores one deleted by hand)."""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet
from kubernetes.dynamic.exceptions import ConflictError

from agentfleet.controllers.modelreplicaset.services import PassKube
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.controllers.settings import CONFIG
from agentfleet.placement import Assignment
from agentfleet.render.modelreplicaset import (
    INFERENCE_POOL_API,
    gang_service_name,
    object_key,
    render_api_key_secret,
    render_inference_pool,
    render_network_policy,
    render_pdb,
    render_pod,
    render_services,
)
from agentfleet.replica_rollout import ReplicaView

# Services and the PDB rarely change: re-applied when their rendering changes, and at least this often.
CHILDREN_REAPPLY_SECONDS = 300.0


def obj_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def missing_pods(
    mrs: ModelReplicaSet, a: Assignment, view: ReplicaView | None, *, canary: bool = False
) -> list[dict[str, Any]]:
    """The replica's pods that do not exist yet, rendered at its placement."""
    have = {p.index for p in view.pods} if view else set()
    return [render_pod(mrs, a, i, canary=canary) for i in range(len(a.nodes)) if i not in have]


def ensure_api_key_secret(kube: PassKube, state: ModelReplicaSetState, mrs: ModelReplicaSet) -> None:
    """The replicas' generated API key, before their pods and the fleets' workers (which read it):
    created once with a random value and never regenerated (the workers hold it); none when the
    spec names one."""
    if mrs.spec.engine.api_key_secret_ref is not None or state.api_key_secret:
        return
    try:
        kube.create(render_api_key_secret(mrs, secrets.token_urlsafe(32)))
    except ConflictError:
        pass  # made by an earlier pass (or an operator before a restart): keep it
    state.api_key_secret = True


def inference_pool_problem(kube: PassKube, mrs: ModelReplicaSet) -> str | None:
    """Why the InferencePool the spec asks for cannot be published: its CRD is not installed."""
    if mrs.spec.inference_pool is None:
        return None
    if not kube.serves(INFERENCE_POOL_API, "InferencePool"):
        return (
            f"spec.inferencePool asks for an InferencePool, but the cluster serves no {INFERENCE_POOL_API} "
            "InferencePool: "
            "install the Gateway API Inference Extension's CRDs (config/crd/bases of "
            "sigs.k8s.io/gateway-api-inference-extension "
            "v1.0 or later), or unset spec.inferencePool"
        )
    return None


def picker_labels(kube: Any, mrs: ModelReplicaSet, ns: str) -> dict[str, str] | None:
    """The pod labels of the InferencePool's endpoint picker (its Service's selector in this
    namespace): the picker reads the replicas' /metrics, so their NetworkPolicy admits it."""
    pool = mrs.spec.inference_pool
    if pool is None or pool.endpoint_picker is None:
        return None
    svc = kube.get("v1", "Service", pool.endpoint_picker.service_name, ns) or {}
    return dict((svc.get("spec") or {}).get("selector") or {}) or None


def writes(
    kube: PassKube,
    state: ModelReplicaSetState,
    key: tuple[str, str],
    now: float,
    mrs: ModelReplicaSet,
    *,
    multi_node: bool,
    pool: bool = True,
) -> list[Any]:
    """The writes due: Services, the PDB, the NetworkPolicy and the InferencePool whose rendering
    changed; the gang Service gone single-node and an InferencePool no longer asked for, deleted.
    ``pool``: False while the InferencePool kind is not served (inference_pool_problem)."""
    ns, name = key
    inference_pool = render_inference_pool(mrs) if pool else None
    out: list[Any] = []
    policy = render_network_policy(mrs, CONFIG.peers(), picker_labels(kube, mrs, ns))
    rendered = [*render_services(mrs, gang=multi_node), render_pdb(mrs), policy]
    for obj in [*rendered, *([inference_pool] if inference_pool else [])]:
        k, h = object_key(obj), obj_hash(obj)
        seen = state.applied.get(k)
        if not (seen and seen[0] == h and now - seen[1] < CHILDREN_REAPPLY_SECONDS):
            out.append(functools.partial(_apply, kube, state, now, obj, k, h))
    gang_svc = ("Service", ns, gang_service_name(name))
    if not multi_node and gang_svc in state.applied:
        state.applied.pop(gang_svc, None)
        out.append(functools.partial(kube.delete, "v1", "Service", gang_service_name(name), ns))
    pool_key = ("InferencePool", ns, name)
    if mrs.spec.inference_pool is None and (pool_key in state.applied or not state.inference_pool_swept):
        # Also once per operator start: a pool published before a restart is not in state.applied.
        state.applied.pop(pool_key, None)
        state.inference_pool_swept = True
        if kube.serves(INFERENCE_POOL_API, "InferencePool"):
            out.append(functools.partial(kube.delete, INFERENCE_POOL_API, "InferencePool", name, ns))
    return out


def _apply(
    kube: PassKube, state: ModelReplicaSetState, now: float, obj: dict[str, Any], k: tuple[str, str, str], h: str
) -> None:
    kube.apply(obj)
    state.applied[k] = (h, now)
