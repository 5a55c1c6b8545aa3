"""ModelReplicaSet children beside the pods: Services, the InferencePool, the PodDisruptionBudget, the API key
Secret and the NetworkPolicy.

Pure; agentfleet.render.modelreplicaset re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentfleet_contract.common import CONSENT_LABEL, CONSENT_VALUE
from agentfleet_contract.modelreplicaset import ModelReplicaSet

from agentfleet.placement import MODELREPLICASET_LABEL
from agentfleet.render.common import (
    API_KEY_KEY,
    DEFAULT_PEERS,
    MODEL_CLIENT_LABEL,
    ROUTINE_MODEL_CLIENT_LABEL,
    Peers,
    api_key_secret_name,
)
from agentfleet.render.modelreplicaset_names import (
    CANARY_SERVING,
    HTTP_PORT_NAME,
    RAY_PORT,
    ROLE_LABEL,
    ROLE_LEADER,
    SERVING_LABEL,
    _meta,
    _name,
    canary_service_name,
    common_labels,
    gang_service_name,
    replicas_service_name,
    service_name,
    serving_selector,
)
from agentfleet.render.vllm import MASTER_PORT, multi_node_backend

# --- Services and disruption budget ----------------------------------------------------------


def render_services(mrs: ModelReplicaSet, *, gang: bool = False) -> list[dict[str, Any]]:
    name = _name(mrs)
    port = mrs.spec.engine.port
    labels = common_labels(name)
    http = [
        {"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP", "appProtocol": "http"}
    ]
    out = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(mrs, service_name(name), labels),
            "spec": {"type": "ClusterIP", "selector": serving_selector(name), "ports": http},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(mrs, replicas_service_name(name), labels),
            # Only ready, non-draining replicas: routers read these EndpointSlices (one endpoint per replica).
            "spec": {
                "clusterIP": "None",
                "selector": serving_selector(name),
                "publishNotReadyAddresses": False,
                "ports": http,
            },
        },
    ]
    if gang:
        backend_port = RAY_PORT if multi_node_backend(mrs.spec) == "ray" else MASTER_PORT
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(mrs, gang_service_name(name), labels),
                # Workers must reach a leader that is not ready yet (it waits for them).
                "spec": {
                    "clusterIP": "None",
                    "selector": {MODELREPLICASET_LABEL: name, ROLE_LABEL: ROLE_LEADER},
                    "publishNotReadyAddresses": True,
                    "ports": [
                        {"name": "rendezvous", "port": backend_port, "targetPort": backend_port, "protocol": "TCP"}
                    ],
                },
            }
        )
    return out


def render_canary_service(mrs: ModelReplicaSet) -> dict[str, Any]:
    """The headless Service over the canary replica (its serving label ``canary``), while one runs."""
    name = _name(mrs)
    port = mrs.spec.engine.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(mrs, canary_service_name(name), common_labels(name)),
        "spec": {
            "clusterIP": "None",
            "selector": {MODELREPLICASET_LABEL: name, SERVING_LABEL: CANARY_SERVING},
            "publishNotReadyAddresses": False,
            "ports": [{"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }


INFERENCE_POOL_API = "inference.networking.k8s.io/v1"


def render_inference_pool(mrs: ModelReplicaSet) -> dict[str, Any] | None:
    """The Gateway API Inference Extension InferencePool over the set's serving replicas, or None
    when the spec asks for none. It selects pods as the Services do (a replica's server or leader
    while not draining), so a gateway stops sending to a replica the moment its drain begins and
    sees a new replica once its pod is Ready, with no write of ours in between."""
    pool = mrs.spec.inference_pool
    if pool is None:
        return None
    name = _name(mrs)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": serving_selector(name)},
        "targetPorts": [{"number": mrs.spec.engine.port}],
        "appProtocol": "http",
    }
    if pool.endpoint_picker is not None:
        epp = pool.endpoint_picker
        spec["endpointPickerRef"] = {
            "group": "",
            "kind": "Service",
            "name": epp.service_name,
            "port": {"number": epp.port},
            "failureMode": epp.failure_mode,
        }
    return {
        "apiVersion": INFERENCE_POOL_API,
        "kind": "InferencePool",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": spec,
    }


def render_pdb(mrs: ModelReplicaSet) -> dict[str, Any]:
    name = _name(mrs)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": {
            # Voluntary disruptions (node drains) take one pod at a time; a replica still loading or
            # crash-looping never blocks a drain.
            "maxUnavailable": 1,
            "selector": {"matchLabels": {MODELREPLICASET_LABEL: name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render_api_key_secret(mrs: ModelReplicaSet, value: str) -> dict[str, Any]:
    """The generated API key (no spec.engine.apiKeySecretRef): created once, never re-rendered;
    labelled with the operator's consent since the operator made it."""
    name = _name(mrs)
    labels = {**common_labels(name), CONSENT_LABEL: CONSENT_VALUE}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(mrs, api_key_secret_name(name), labels),
        "type": "Opaque",
        "stringData": {API_KEY_KEY: value},
    }


def render_network_policy(
    mrs: ModelReplicaSet, peers: Peers = DEFAULT_PEERS, picker_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Who may reach the replicas' HTTP port: the workers of this namespace's AgentFleets that
    refer to this set (their pods carry its name in MODEL_CLIENT_LABEL or
    ROUTINE_MODEL_CLIENT_LABEL), the operator (adapter API, in-flight counts from /metrics) and
    Prometheus, each by its namespace's name and its pod labels, and, with spec.inferencePool,
    the gateway's data plane (``peers.gateway``) and the endpoint picker's pods in this namespace
    (``picker_labels``: its Service's selector). A gang's own pods reach each other on every port
    (rendezvous, NCCL). Nothing else, on any path: vLLM requires the API key only on /v1, so
    /metrics, /health, /tokenize and the rest are closed by this policy alone."""
    name = _name(mrs)
    http = [{"protocol": "TCP", "port": mrs.spec.engine.port}]
    clients: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {MODEL_CLIENT_LABEL: name}}},
        {"podSelector": {"matchLabels": {ROUTINE_MODEL_CLIENT_LABEL: name}}},
        peers.operator.selector(),
    ]
    if peers.prometheus is not None:
        clients.append(peers.prometheus.selector())
    if mrs.spec.inference_pool is not None:
        if peers.gateway is not None:
            clients.append(peers.gateway.selector())
        if picker_labels:
            clients.append({"podSelector": {"matchLabels": dict(picker_labels)}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": {
            "podSelector": {"matchLabels": {MODELREPLICASET_LABEL: name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": clients, "ports": http},
                {"from": [{"podSelector": {"matchLabels": {MODELREPLICASET_LABEL: name}}}]},
            ],
        },
    }
