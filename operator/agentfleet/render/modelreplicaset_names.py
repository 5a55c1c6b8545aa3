"""ModelReplicaSet children: their names, labels, ports and paths, the spec hash that marks a replica's
pods, and the tolerations every pod of the set carries.

Pure, like the rest of agentfleet.render.modelreplicaset, which re-exports every public name here.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.placement import MODELREPLICASET_LABEL, Toleration
from agentfleet.render.common import RenderError, child_meta
from agentfleet.render.vllm import lora_rank

ROLE_LABEL = "agentfleet.io/role"
SERVING_LABEL = "agentfleet.io/serving"  # "false" takes a draining replica out of every Service
# The serving label of a canary replica (docs/evaluation-gate.md): in no Service of the set but its
# canary Service, which only the gated fleets' candidates watch.
CANARY_SERVING = "canary"
SPEC_HASH_LABEL = "agentfleet.io/spec-hash"
GANG_SIZE_LABEL = "agentfleet.io/gang-size"
MANAGED_BY = "agentfleet"

ROLE_SERVER = "server"
ROLE_LEADER = "leader"
ROLE_WORKER = "worker"

CONTAINER = "vllm"
HTTP_PORT_NAME = "http"
RAY_PORT = 6379
SHM_PATH = "/dev/shm"
CACHE_PATH = "/models-cache"
TMP_PATH = "/tmp"  # HOME, Ray's session files, Triton and torch scratch: the root filesystem is read-only
HEALTH_PATH = "/health"
# A deleted pod's endpoints leave Services while preStop sleeps, before SIGTERM reaches vLLM:
# kube-proxy and routers need a few seconds to observe the removal, or calls routed there are
# refused. The controller drains before it deletes; this covers evictions and node drains.
PRE_STOP_SLEEP_SECONDS = 15
TERMINATION_GRACE_SECONDS = 60


# --- Names and labels ------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _check(value: str, what: str, pattern: re.Pattern[str] = _DNS_LABEL, limit: int = 63) -> str:
    if len(value) > limit or not pattern.match(value):
        raise RenderError(f"{what} {value!r} must be a DNS label of at most {limit} characters")
    return value


def service_name(mrs: str) -> str:
    """ClusterIP Service over ready replicas: http://<mrs>.<namespace>.svc:<port>/v1."""
    return mrs


def replicas_service_name(mrs: str) -> str:
    """Headless Service whose EndpointSlices list each ready replica's endpoint, for sticky routing."""
    return f"{mrs}-replicas"


def canary_service_name(mrs: str) -> str:
    """Headless Service over the set's canary replica only: what a gated fleet's candidate watches."""
    return f"{mrs}-canary"


def gang_service_name(mrs: str) -> str:
    """Headless Service that resolves gang leaders before they are ready, for workers to join."""
    return f"{mrs}-gang"


def pod_name(replica: str, index: int, gang: bool) -> str:
    return f"{replica}-{index}" if gang else replica


def common_labels(mrs: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": mrs,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODELREPLICASET_LABEL: mrs,
    }


def serving_selector(mrs: str) -> dict[str, str]:
    """Pods that take requests: a replica's server or leader pod while it is not draining."""
    return {MODELREPLICASET_LABEL: mrs, SERVING_LABEL: "true"}


def selector_string(mrs: str) -> str:
    """status.selector for the scale subresource: one pod per replica (server or leader).

    Set-based `notin`, not `!=`: the API server converts this string to a LabelSelector for every
    /scale reader (kubectl scale, the HPA, the disruption controller), and that conversion
    (metav1.ParseToLabelSelector) refuses `!=`."""
    return f"{MODELREPLICASET_LABEL}={mrs},{ROLE_LABEL} notin ({ROLE_WORKER})"


def spec_hash(spec: ModelReplicaSetSpec) -> str:
    """Hash of the spec fields that shape a pod; a replica whose pods carry another hash is out of date.

    Replica count, autoscaling, routing and drain timing are left out: changing them must not roll pods.
    """
    engine = spec.engine.wire()
    # Whether a Job fills the cache changes no pod: toggling it (or adding the field) rolls nothing.
    engine.get("modelCache", {}).pop("fill", None)
    # The device field arrived with GPU as its default: adding it must not roll every existing replica.
    if engine.get("device") == "GPU":
        engine.pop("device")
    shaping = {
        "model": spec.model.wire(),
        "engine": engine,
        "gpu": spec.gpu.wire(),
        "placement": {
            "nodeSelector": spec.placement.node_selector,
            "tolerations": [t.wire() for t in spec.placement.tolerations],
            "priorityClassName": spec.placement.priority_class_name,
        },
        "startupTimeoutSeconds": spec.lifecycle.startup_timeout_seconds,
    }
    if spec.adapters:
        # Whether LoRA is on and the largest rank shape the pod; which adapters are loaded does not.
        shaping["lora"] = {"maxRank": lora_rank(spec)}
    else:
        engine.pop("maxLoras", None)
    if spec.pod_template is not None:
        # Only when set: the hash of every set without one stays what it was (no rollout on upgrade).
        shaping["podTemplate"] = spec.pod_template.wire()
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]


def _meta(
    mrs: ModelReplicaSet, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return child_meta(mrs, name, labels, annotations, namespace=mrs.metadata.get("namespace", "default"))


def _name(mrs: ModelReplicaSet) -> str:
    name = mrs.metadata.get("name", "")
    # The longest derived name, "<name>-replicas", must stay a DNS-1035 label (Service names).
    _check(replicas_service_name(name), "Service name", _DNS1035)
    return name


def _tolerations(spec: ModelReplicaSetSpec) -> list[dict[str, Any]]:
    # The GPU taint (keyed by the GPU resource) is tolerated always on GPU, never on CPU (a CPU replica
    # has no business on a GPU node); the spec's own follow.
    out: list[dict[str, Any]] = []
    if spec.engine.device == "GPU":
        out.append(Toleration(key=spec.gpu.resource_name, operator="Exists", effect="NoSchedule").wire())
    for t in spec.placement.tolerations:
        w: dict[str, Any] = Toleration(t.key, t.operator, t.value, t.effect).wire()
        if t.toleration_seconds is not None:
            w["tolerationSeconds"] = t.toleration_seconds
        if w not in out:
            out.append(w)
    return out
