"""Our objects as tests write them and what tests read of them (status, conditions, the children the
operator renders, Warning Events), shared by the e2e tier and the integration tier's operator tests:
AgentFleets, among them fleets that can never run (a model no node can place), and VectorIndexes."""

from __future__ import annotations

from typing import Any

from e2e.harness.operator import eventually
from tests.builders import MRS

FLEET_LABEL = "agentfleet.io/agentfleet"


def af_status(cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.json("get", "-n", ns, "agentfleet", name).get("status") or {}


def cond(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


CHILD_KINDS = ",".join(
    ["deployments", "services", "configmaps", "secrets", "serviceaccounts", "roles", "rolebindings"]
    + ["poddisruptionbudgets", "statefulsets", "networkpolicies"]
)


def children(cluster, ns: str, fleet: str) -> list[dict[str, Any]]:
    return cluster.json("get", "-n", ns, CHILD_KINDS, "-l", f"{FLEET_LABEL}={fleet}")["items"]


def warning_events(cluster, ns: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
        if e["type"] == "Warning"
    ]


def apply_stuck_model(cluster, namespace: str) -> None:
    """A ModelReplicaSet that exists but is never Ready: no node matches its selector."""
    cluster.apply(MRS("stuck").placement(nodeSelector={"no-such": "node"}).obj(), namespace)


def bad_fleet(name: str, redis_url: str, **spec: Any) -> dict[str, Any]:
    body = {"modelRef": {"name": "nowhere"}, "redis": {"url": redis_url}, **spec}
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AgentFleet", "metadata": {"name": name}, "spec": body}


def vi(name: str, uri: str | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"collection": name.replace("-", "_"), "dimension": 384, **spec}
    body.setdefault("milvus", {"uri": uri})
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "VectorIndex", "metadata": {"name": name}, "spec": body}


def vi_status(cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.json("get", "-n", ns, "vi", name).get("status") or {}


def wait_warning_event(cluster, operator, ns: str, name: str, reason: str) -> None:
    """A Warning Event of REASON on object NAME (kopf posts Events asynchronously)."""
    selector = f"involvedObject.name={name}"
    eventually(
        cluster,
        operator,
        lambda: any(
            e["reason"] == reason and e["type"] == "Warning"
            for e in cluster.json("get", "events", "-n", ns, "--field-selector", selector)["items"]
        ),
        timeout=30,
        desc=f"a {reason} Warning Event",
    )
