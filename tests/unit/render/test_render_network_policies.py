"""Who the NetworkPolicies the operator renders admit (issue 57, finding 7).

A peer outside the policy's namespace is admitted by its namespace's name
(``kubernetes.io/metadata.name``, which only the API server sets) AND its pod labels. On the code
before, the replicas' policy admitted ``namespaceSelector: {}`` plus the operator's or
Prometheus's pod labels, and the managed Redis's the operator's labels the same way: any pod of
any namespace carrying those labels was let in, to /metrics, /tokenize and every other route vLLM
does not guard with the API key, and the InferencePool's gateway was not admitted at all.

``admits`` evaluates a policy's ingress as the NetworkPolicy API defines it, so each test says
which pod (namespace, labels) reaches which port."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from agentfleet_contract import AgentFleet, ModelReplicaSet

from agentfleet.render import agentfleet as af_render
from agentfleet.render.common import (
    DEFAULT_PEERS,
    NAMESPACE_NAME_LABEL,
    OPERATOR_POD_LABELS,
    PROMETHEUS_POD_LABELS,
    Peer,
    Peers,
)
from agentfleet.render.modelreplicaset import render_network_policy

NS = "serving"
PEERS = Peers(
    operator=Peer("agentfleet-system", OPERATOR_POD_LABELS),
    prometheus=Peer("monitoring", PROMETHEUS_POD_LABELS),
    gateway=Peer("gateway-system", {"app.kubernetes.io/name": "envoy", "gateway": "inference"}),
)
PICKER = {"app": "llama-epp"}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"only matchLabels is evaluated here: {selector}")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admits(policy: dict[str, Any], pod_ns: str, pod_labels: Mapping[str, str], port: int) -> bool:
    """Whether ``policy`` (in NS) lets a pod of ``pod_ns`` with ``pod_labels`` in on ``port``."""
    ns_labels = {NAMESPACE_NAME_LABEL: pod_ns, "team": "anything-an-owner-sets"}
    for rule in policy["spec"]["ingress"]:
        if "ports" in rule and port not in [p["port"] for p in rule["ports"]]:
            continue
        for peer in rule.get("from", []):
            if "namespaceSelector" in peer:
                ok_ns = _selects(peer["namespaceSelector"], ns_labels)
            else:
                ok_ns = pod_ns == policy["metadata"]["namespace"]
            if ok_ns and _selects(peer.get("podSelector", {}), pod_labels):
                return True
    return False


def mrs(pool: bool = False) -> ModelReplicaSet:
    spec: dict[str, Any] = {"model": {"name": "org/llama"}}
    if pool:
        spec["inferencePool"] = {"endpointPicker": {"serviceName": "llama-epp"}}
    return ModelReplicaSet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": "llama", "namespace": NS, "uid": "u1"},
            "spec": spec,
        }
    )


def every_peer(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for rule in policy["spec"]["ingress"] for p in rule.get("from", [])]


def test_pods_in_other_namespaces_with_forged_labels_are_not_admitted_to_the_replicas() -> None:
    policy = render_network_policy(mrs(), PEERS)
    port = 8000
    # The hole: labels anyone can set, in a namespace the attacker owns.
    for forged in (OPERATOR_POD_LABELS, PROMETHEUS_POD_LABELS, {"agentfleet.io/model": "llama"}):
        assert not admits(policy, "attacker", forged, port), forged
    # Who is meant to get in does.
    assert admits(policy, "agentfleet-system", OPERATOR_POD_LABELS, port)
    assert admits(policy, "monitoring", PROMETHEUS_POD_LABELS, port)
    assert admits(policy, NS, {"agentfleet.io/model": "llama"}, port)
    assert admits(policy, NS, {"agentfleet.io/routine-model": "llama"}, port)
    # Not the operator's namespace with other labels, nor Prometheus's labels in the operator's.
    assert not admits(policy, "agentfleet-system", {"app": "other"}, port)
    assert not admits(policy, "agentfleet-system", PROMETHEUS_POD_LABELS, port)
    # No gateway without an InferencePool.
    assert not admits(policy, "gateway-system", dict(PEERS.gateway.pod_labels), port)


def test_every_peer_outside_the_namespace_names_its_namespace_and_its_pods() -> None:
    policies = [
        render_network_policy(mrs(), PEERS),
        render_network_policy(mrs(pool=True), PEERS, PICKER),
        render_network_policy(mrs(), DEFAULT_PEERS),
        *[o for o in af_render.render_redis(fleet(), PEERS) if o["kind"] == "NetworkPolicy"],
    ]
    for policy in policies:
        for peer in every_peer(policy):
            if "namespaceSelector" in peer:
                names = peer["namespaceSelector"].get("matchLabels", {})
                assert set(names) == {NAMESPACE_NAME_LABEL} and names[NAMESPACE_NAME_LABEL], peer
                assert peer.get("podSelector", {}).get("matchLabels"), f"a whole namespace is admitted: {peer}"
            assert "ipBlock" not in peer, peer


def test_the_inference_pools_gateway_and_endpoint_picker_are_admitted() -> None:
    policy = render_network_policy(mrs(pool=True), PEERS, PICKER)
    assert admits(policy, "gateway-system", dict(PEERS.gateway.pod_labels), 8000)
    assert admits(policy, NS, PICKER, 8000)
    # Its labels elsewhere are not; a set without a pool admits neither.
    assert not admits(policy, "attacker", dict(PEERS.gateway.pod_labels), 8000)
    assert not admits(policy, "attacker", PICKER, 8000)
    plain = render_network_policy(mrs(), PEERS, PICKER)
    assert not admits(plain, NS, PICKER, 8000)


@pytest.mark.parametrize("path", ["/metrics", "/tokenize", "/health", "/v1/load_lora_adapter"])
def test_routes_outside_v1_are_closed_to_everyone_not_admitted(path: str) -> None:
    """vLLM requires the API key only under /v1; NetworkPolicy is per port, so a route is exactly
    as closed as the port: a forged pod reaches none of them, whatever the path."""
    policy = render_network_policy(mrs(pool=True), PEERS, PICKER)
    assert [r.get("ports") for r in policy["spec"]["ingress"]] == [[{"protocol": "TCP", "port": 8000}], None]
    assert not admits(policy, "attacker", {**OPERATOR_POD_LABELS, **PROMETHEUS_POD_LABELS}, 8000), path


def fleet() -> AgentFleet:
    return AgentFleet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "AgentFleet",
            "metadata": {"name": "support", "namespace": NS, "uid": "u2"},
            "spec": {"modelRef": {"name": "llama"}, "redis": {"deploy": {"storageSize": "1Gi"}}},
        }
    )


def test_the_managed_redis_admits_the_operator_only_from_its_namespace() -> None:
    (policy,) = [o for o in af_render.render_redis(fleet(), PEERS) if o["kind"] == "NetworkPolicy"]
    assert admits(policy, "agentfleet-system", OPERATOR_POD_LABELS, 6379)
    assert admits(policy, NS, {af_render.FLEET_LABEL: "support"}, 6379)
    assert not admits(policy, "attacker", OPERATOR_POD_LABELS, 6379)
    assert not admits(policy, "attacker", {af_render.FLEET_LABEL: "support"}, 6379)
