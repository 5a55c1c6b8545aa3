"""A ModelReplicaSet's InferencePool (spec.inferencePool) on the real control plane, with the
Gateway API Inference Extension's own CRD (inference.networking.k8s.io/v1, from its Go module at
the version e2e/cluster/thirdparty.sh pins).

What a gateway (or llm-d's router) reads of the pool is the set of pods its selector matches and
their readiness; the test checks that set against the replicas the operator keeps serving through a
scale-up, a drain and a scale-down, and that the pool goes when the spec no longer asks for it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.harness import operator as fx
from e2e.harness.neighbours import contains, install_thirdparty_crds, strict_apply
from e2e.harness.operator import eventually
from e2e.tests.test_modelreplicaset import mrs_manifest, pod_ready, settled

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PICKER = {"serviceName": "vllm-epp", "port": 9002, "failureMode": "FailOpen"}


@pytest.fixture(scope="module")
def pool_crd(cluster, crds):
    install_thirdparty_crds(cluster)
    return cluster


def get_pool(cluster, ns: str, name: str) -> dict[str, Any] | None:
    out = cluster.run("-n", ns, "get", "inferencepools.inference.networking.k8s.io", name, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def pool_members(cluster, ns: str, pool: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods the pool's selector matches, as a gateway reads them: ready ones only."""
    selector = ",".join(f"{k}={v}" for k, v in pool["spec"]["selector"]["matchLabels"].items())
    pods = cluster.json("-n", ns, "get", "pods", "-l", selector)["items"]
    return [p for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]


def members_are(cluster, ns: str, name: str, n: int):
    def check() -> list[dict[str, Any]] | None:
        pool = get_pool(cluster, ns, name)
        if pool is None:
            return None
        members = pool_members(cluster, ns, pool)
        return members if len(members) == n else None

    return check


def test_the_pool_follows_the_serving_replicas_and_goes_with_the_spec(
    pool_crd, operator, gpu_pool, namespace, cluster
) -> None:
    ns = namespace
    gpu_pool.add("h100", count=3)
    manifest = mrs_manifest("qwen", gpu_pool, replicas=2, inferencePool={"endpointPicker": PICKER})
    cluster.apply(manifest, ns)
    eventually(cluster, operator, settled(cluster, ns, "qwen", 2), timeout=45, desc="2 replicas Ready")
    pool = eventually(
        cluster, operator, lambda: get_pool(cluster, ns, "qwen"), timeout=30, desc="the InferencePool published"
    )

    # Accepted by the project's own schema as the operator rendered it (its CEL rules included).
    assert contains(
        pool["spec"],
        {
            "targetPorts": [{"number": 8000}],
            "endpointPickerRef": {
                "name": "vllm-epp",
                "kind": "Service",
                "port": {"number": 9002},
                "failureMode": "FailOpen",
            },
        },
    )
    assert pool["metadata"]["ownerReferences"][0]["kind"] == "ModelReplicaSet"
    mine = {k: v for k, v in pool.items() if k in ("apiVersion", "kind", "spec")}
    mine["metadata"] = {"name": "strict-copy"}
    assert strict_apply(cluster, [mine], ns).returncode == 0
    mine["spec"] = {**mine["spec"], "targetPort": 8000}
    refused = strict_apply(cluster, [mine], ns, check=False)
    assert refused.returncode != 0 and "targetPort" in refused.stderr, "strict validation is what lets this test fail"
    assert len(eventually(cluster, operator, members_are(cluster, ns, "qwen", 2), timeout=30, desc="2 members")) == 2

    cluster.run("-n", ns, "patch", "mrs", "qwen", "--type=merge", "-p", json.dumps({"spec": {"replicas": 3}}))
    eventually(cluster, operator, settled(cluster, ns, "qwen", 3), timeout=45, desc="scaled up to 3")
    eventually(
        cluster, operator, members_are(cluster, ns, "qwen", 3), timeout=30, desc="the new replica joins the pool"
    )

    # A drain takes the replica out of the pool at once (serving=false), before its pods go.
    cluster.run("-n", ns, "scale", "mrs/qwen", "--replicas=1")
    members = eventually(
        cluster, operator, members_are(cluster, ns, "qwen", 1), timeout=30, desc="drained replicas leave the pool"
    )
    assert all(p["metadata"]["labels"]["agentfleet.io/serving"] == "true" for p in members)
    eventually(cluster, operator, settled(cluster, ns, "qwen", 1), timeout=60, desc="scaled down to 1")

    cluster.run(
        "-n",
        ns,
        "patch",
        "mrs",
        "qwen",
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/spec/inferencePool"}]),
    )
    eventually(
        cluster,
        operator,
        lambda: get_pool(cluster, ns, "qwen") is None,
        timeout=30,
        desc="the pool deleted with the spec field",
    )
