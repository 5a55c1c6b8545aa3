"""Process-wide settings of the controllers, and their Kubernetes client.

Read from the environment (so that `kopf run -m agentfleet.manager` works unchanged) and
overridden by `python -m agentfleet.manager` flags.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes import config as k8s_config


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
