"""What every renderer shares: its error, the owner reference and the metadata of a child."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentfleet_contract.common import CONSENT_LABEL, CONSENT_VALUE

# Labels of the operator's own pods (the chart's): NetworkPolicies let them in where the operator
# reads a child (the managed Redis, the replicas' /metrics for drains).
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "agentfleet", "app.kubernetes.io/component": "operator"}
# Set by the API server on every namespace to its own name: a pod's namespace is told by this label,
# which nobody can give another namespace, while pod labels can be set by anyone who may create a
# pod in any namespace. A NetworkPolicy peer outside the policy's namespace is therefore always
# this label AND pod labels, never pod labels under an empty namespaceSelector.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# Prometheus as the Prometheus Operator labels its pods.
PROMETHEUS_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class Peer:
    """Pods of one namespace with the given labels (a NetworkPolicy ``from`` entry)."""

    namespace: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)

    def selector(self) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: self.namespace}},
            "podSelector": {"matchLabels": dict(self.pod_labels)},
        }


@dataclass(frozen=True)
class Peers:
    """Who besides a namespace's own workloads may reach what the operator runs there: the
    operator itself (replicas' adapter API and /metrics, the managed Redis), the Prometheus that
    scrapes the replicas, and the gateway data plane behind InferencePools (chart
    ``networkPolicy``; AGENTFLEET_OPERATOR_NAMESPACE or POD_NAMESPACE, AGENTFLEET_PROMETHEUS_*,
    AGENTFLEET_GATEWAY_*)."""

    operator: Peer = field(default_factory=lambda: Peer("agentfleet-system", OPERATOR_POD_LABELS))
    prometheus: Peer | None = field(default_factory=lambda: Peer("monitoring", PROMETHEUS_POD_LABELS))
    gateway: Peer | None = None


DEFAULT_PEERS = Peers()

# On an AgentFleet's runtime pods: the ModelReplicaSets they call (primary and routine tier), so a
# replica's NetworkPolicy admits exactly the workers of the fleets that refer to it.
MODEL_CLIENT_LABEL = "agentfleet.io/model"
ROUTINE_MODEL_CLIENT_LABEL = "agentfleet.io/routine-model"
# Key of a generated vLLM API key Secret.
API_KEY_KEY = "apiKey"


def restricted_container() -> dict[str, Any]:
    """A container's securityContext under Pod Security "restricted" with a read-only root: every
    pod the operator renders runs so (what it writes goes to the emptyDirs its renderer mounts)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def api_key_secret_name(mrs: str) -> str:
    """The Secret the operator generates for a ModelReplicaSet without spec.engine.apiKeySecretRef."""
    return f"{mrs}-vllm-api-key"


def api_key_ref(mrs: str, explicit: Any | None) -> dict[str, str]:
    """secretKeyRef of the API key a ModelReplicaSet's replicas require (explicit: its
    spec.engine.apiKeySecretRef)."""
    if explicit is not None:
        return {"name": explicit.name, "key": explicit.key}
    return {"name": api_key_secret_name(mrs), "key": API_KEY_KEY}


class RenderError(ValueError):
    """An object cannot be rendered: missing metadata, a name too long for Kubernetes, a path
    escaping its volume. The message names the field to fix."""


class Owner(Protocol):
    api_version: str
    kind: str
    metadata: dict


def owner_reference(owner: Owner) -> dict[str, Any]:
    """A controller reference: deleting the owner cascades, and foreground deletion waits for the child."""
    meta = owner.metadata or {}
    if not meta.get("name") or not meta.get("uid"):
        raise RenderError(f"the {owner.kind} needs metadata.name and metadata.uid to own children")
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_meta(
    owner: Owner,
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
    *,
    namespace: str | None = None,
) -> dict[str, Any]:
    """metadata of a child: in the owner's namespace (or ``namespace``), owned by it."""
    meta: dict[str, Any] = {"name": name}
    ns = namespace or (owner.metadata or {}).get("namespace")
    if ns:
        meta["namespace"] = ns
    meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def secret_problem(
    secret: dict[str, Any] | None, field: str, name: str, key: str, namespace: str
) -> tuple[str, str] | None:
    """Why a Secret named by a spec may not be used, as (reason, message naming the field and the
    fix), or None when it may. It must exist, hold the key, and carry the consent label: whoever
    may create an AgentFleet, ModelReplicaSet or VectorIndex must not thereby get the operator to
    send or mount any Secret of the namespace."""
    if secret is None or key not in (secret.get("data") or {}):
        return (
            "SecretNotFound",
            f"{field}: Secret {name} with key {key} does not exist in namespace {namespace}: "
            "create it or fix the reference",
        )
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if labels.get(CONSENT_LABEL) != CONSENT_VALUE:
        return (
            "SecretNotConsented",
            f"{field}: Secret {name} lacks the label {CONSENT_LABEL}={CONSENT_VALUE}, so the operator does not use it: "
            "if this object may use it, "
            f"run kubectl label secret -n {namespace} {name} {CONSENT_LABEL}={CONSENT_VALUE}",
        )
    return None


def claim_problem(
    claim: dict[str, Any] | None, field: str, name: str, namespace: str, *, writable: bool
) -> tuple[str, str] | None:
    """Why a PersistentVolumeClaim named by a spec may not be mounted, as (reason, message naming
    the field and the fix), or None when it may: it must exist and carry the consent label, as a
    Secret must (secret_problem). The pods that mount it run an image the spec's author chooses,
    so without consent anyone who may create the object could read (and, ``writable``, change)
    any volume of the namespace: another team's data, or weights other sets load."""
    if claim is None:
        return (
            "PersistentVolumeClaimNotFound",
            f"{field}: PersistentVolumeClaim {name} does not exist in namespace {namespace}: "
            "create it or fix the reference",
        )
    labels = (claim.get("metadata") or {}).get("labels") or {}
    if labels.get(CONSENT_LABEL) != CONSENT_VALUE:
        how = "read-write" if writable else "read-only"
        return (
            "PersistentVolumeClaimNotConsented",
            f"{field}: PersistentVolumeClaim {name} lacks the label {CONSENT_LABEL}={CONSENT_VALUE}, so the operator "
            f"does not mount it ({how}): if this object may use it, "
            f"run kubectl label pvc -n {namespace} {name} {CONSENT_LABEL}={CONSENT_VALUE}",
        )
    return None
