"""Process-wide settings of the controllers, and their Kubernetes client.

Read from the environment (so that `kopf run -m agentfleet.manager` works unchanged) and
overridden by `python -m agentfleet.manager` flags.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from agentfleet.render.agentfleet import DEFAULT_EGRESS_DENY, Egress
from agentfleet.render.common import OPERATOR_POD_LABELS, PROMETHEUS_POD_LABELS, Peer, Peers


def _env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = os.environ.get(name)
    return default if raw is None else tuple(e.strip() for e in raw.split(",") if e.strip())


def _env_labels(name: str, default: dict[str, str]) -> dict[str, str]:
    """k=v,k2=v2 (the chart's join of a label map)."""
    raw = os.environ.get(name)
    if raw is None:
        return dict(default)
    return dict(p.strip().split("=", 1) for p in raw.split(",") if "=" in p)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class OperatorConfig:
    # Reconciles run in threads (the kubernetes client is synchronous) and mostly wait on the API,
    # so there are more of them than cores (docs/operator-tuning.md has the measurement).
    workers: int = int(_env_float("AGENTFLEET_WORKERS", 16))
    # Every ModelReplicaSet is reconciled at least this often, events or not.
    resync_seconds: float = _env_float("AGENTFLEET_RESYNC_SECONDS", 60.0)
    # The agentfleet image that runs ingestion Jobs and agent workers when a spec names none.
    runtime_image: str = os.environ.get("AGENTFLEET_RUNTIME_IMAGE", "ghcr.io/agentfleet/agentfleet:0.1.0")
    # Writes per second to the API server (client-go's QPS/burst); 0 turns the limit off. It caps
    # runaway loops without slowing an apply storm; API Priority and Fairness guards the server.
    api_qps: float = _env_float("AGENTFLEET_API_QPS", 200.0)
    api_burst: int = int(_env_float("AGENTFLEET_API_BURST", 400))
    # The workers' egress NetworkPolicy (the chart's workerEgress): on, the ranges it denies, and
    # the API server's addresses (denied where a fleet sets spec.workers.allowAPIServer false).
    worker_egress: bool = os.environ.get("AGENTFLEET_WORKER_EGRESS", "true").lower() != "false"
    worker_egress_denied: tuple[str, ...] = _env_list("AGENTFLEET_WORKER_EGRESS_DENY", DEFAULT_EGRESS_DENY)
    api_server_cidrs: tuple[str, ...] = _env_list("AGENTFLEET_API_SERVER_CIDRS")
    # The fleets (NAMESPACE/NAME) whose keys of the old layout (af:NAME:, before issue 57) the
    # administrator claims for them: only their processes move those keys (the chart's legacyKeyClaims).
    legacy_key_claims: tuple[str, ...] = _env_list("AGENTFLEET_LEGACY_KEY_CLAIMS")

    # Who the NetworkPolicies admit from outside a namespace, each by its namespace's name and its
    # pod labels (render.common.Peers): the operator's own pods, Prometheus, the gateway data plane.
    operator_namespace: str = os.environ.get("AGENTFLEET_OPERATOR_NAMESPACE") or os.environ.get(
        "POD_NAMESPACE", "agentfleet-system"
    )
    prometheus_namespace: str = os.environ.get("AGENTFLEET_PROMETHEUS_NAMESPACE", "monitoring")
    prometheus_pod_labels: dict[str, str] = field(
        default_factory=lambda: _env_labels("AGENTFLEET_PROMETHEUS_POD_LABELS", PROMETHEUS_POD_LABELS)
    )
    gateway_namespace: str = os.environ.get("AGENTFLEET_GATEWAY_NAMESPACE", "")
    gateway_pod_labels: dict[str, str] = field(default_factory=lambda: _env_labels("AGENTFLEET_GATEWAY_POD_LABELS", {}))

    def peers(self) -> Peers:
        prometheus = Peer(self.prometheus_namespace, self.prometheus_pod_labels) if self.prometheus_namespace else None
        gateway = Peer(self.gateway_namespace, self.gateway_pod_labels) if self.gateway_namespace else None
        return Peers(Peer(self.operator_namespace, OPERATOR_POD_LABELS), prometheus, gateway)

    def egress(self) -> Egress | None:
        return Egress(self.worker_egress_denied, self.api_server_cidrs) if self.worker_egress else None


CONFIG = OperatorConfig()

_client_lock = threading.Lock()
_client: k8s.ApiClient | None = None


def kube_client() -> k8s.ApiClient:
    """One ApiClient per process: in-cluster credentials when running in a pod, else KUBECONFIG."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                k8s_config.load_incluster_config()
            except k8s_config.ConfigException:
                k8s_config.load_kube_config()
            conf = k8s.Configuration.get_default_copy()
            # Reconcile workers and metric reads share the pool; the default is sized for one thread.
            conf.connection_pool_maxsize = max(conf.connection_pool_maxsize or 0, CONFIG.workers * 2 + 16)
            _client = k8s.ApiClient(conf)
        return _client
