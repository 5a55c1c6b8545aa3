"""The VectorIndex controller on the real control plane, against a real Milvus Lite server.

The operator runs as a subprocess on this machine, so it reaches the Milvus Lite server on
127.0.0.1; the ingestion Job's pods run on kwok nodes, which start no containers (kwok marks a Job's
pods Succeeded), so ingestion itself is covered by tests/integration/ingest and
test_vectorindex_milvus_server, and here only the Job's shape and bookkeeping are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness import operator as fx
from e2e.harness.milvus import MilvusLiteServer, milvus_lite
from e2e.harness.operator import eventually

pytestmark = pytest.mark.e2e

crds = fx.crds
operator = fx.operator

# The Milvus Operator's kind, as the VectorIndex controller writes it. Its real CRD is large and
# not reachable from here; this one has the same group, version, kind and status subresource and
# keeps every field, which is what rendering and the MilvusReady hand-off need.
MILVUS_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "milvuses.milvus.io"},
    "spec": {
        "group": "milvus.io",
        "scope": "Namespaced",
        "names": {"kind": "Milvus", "plural": "milvuses", "singular": "milvus", "listKind": "MilvusList"},
        "versions": [
            {
                "name": "v1beta1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@pytest.fixture(scope="module")
def milvus(tmp_path_factory) -> Iterator[MilvusLiteServer]:
    with milvus_lite(tmp_path_factory.mktemp("vi-milvus") / "data") as server:
        yield server


def vi(name: str, uri: str | None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"collection": name.replace("-", "_"), "dimension": 384, **spec}
    body.setdefault("milvus", {"uri": uri})
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "VectorIndex", "metadata": {"name": name}, "spec": body}


def status(cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.json("get", "-n", ns, "vi", name).get("status") or {}


def cond(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


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


def test_collection_and_ingestion_job(cluster, operator, namespace, milvus) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "corpus"},
            "data": {"a.md": "Alpha. " * 40, "b.md": "Beta. " * 40},
        },
        namespace,
    )
    cluster.apply(
        vi(
            "docs",
            milvus.uri,
            shards=2,
            index={"type": "HNSW", "params": {"M": 16}},
            source={"configMap": {"name": "corpus"}},
            ingestion={"parallelism": 2},
        ),
        namespace,
    )

    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "docs")).get("ingestion", {}).get("jobName") and s,
        timeout=60,
        desc="ingestion Job in status",
    )
    assert st["loadState"] == "Loaded" and st["indexType"] == "HNSW" and st["endpoint"] == milvus.uri
    assert cond(st, "MilvusReady")["status"] == "True" and cond(st, "Degraded")["status"] == "False"
    # kwok runs no containers, but its stock pod-complete stage marks a Job's pods Succeeded at once,
    # so the index reports Ingesting only until it sees the Job Complete (a race the first status
    # write lost in CI): what holds is that Ready follows the Job.
    if st["phase"] == "Ingesting":
        assert cond(st, "Ready")["reason"] == "Ingesting" and cond(st, "Ready")["status"] == "False"
    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "docs"))["phase"] == "Ready" and s,
        timeout=60,
        desc="Ready once kwok completes the Job",
    )
    job = cluster.json("get", "-n", namespace, "job", st["ingestion"]["jobName"])
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"]["conditions"]), job["status"]
    assert cond(st, "Ingested")["reason"] == "IngestionSucceeded"
    assert cond(st, "Ready")["status"] == "True" and st["ingestion"]["completedAt"]
    assert st["observedGeneration"] == 1

    job = cluster.json("get", "-n", namespace, "job", st["ingestion"]["jobName"])
    assert (
        job["spec"]["completionMode"] == "Indexed"
        and job["spec"]["parallelism"] == 2
        and job["spec"]["completions"] == 2
    )
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("VectorIndex", "docs", True)

    from pymilvus import MilvusClient

    client = MilvusClient(uri=milvus.uri, dedicated=True)
    assert "docs" in client.list_collections()

    # A changed source is a new revision: a new Job, and the superseded one goes.
    first = st["ingestion"]
    cluster.run(
        "patch",
        "-n",
        namespace,
        "configmap",
        "corpus",
        "--type=merge",
        "-p",
        json.dumps({"data": {"c.md": "Gamma. " * 40}}),
    )
    st2 = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "docs"))["ingestion"]["jobName"] != first["jobName"] and s,
        timeout=60,
        desc="a new Job",
    )
    assert st2["ingestion"]["revision"] != first["revision"]
    eventually(
        cluster,
        operator,
        lambda: cluster.run("get", "-n", namespace, "job", first["jobName"], check=False).returncode != 0,
        timeout=60,
        desc="old Job deleted",
    )

    # Retain (the default) needs no finalizer: deletion never waits for the operator.
    assert not cluster.json("get", "-n", namespace, "vi", "docs")["metadata"].get("finalizers")


def test_unreachable_milvus_is_degraded(cluster, operator, namespace) -> None:
    cluster.apply(vi("lost", "http://127.0.0.1:1"), namespace)
    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "lost")) and cond(s, "Degraded").get("status") == "True" and s,
        timeout=90,
        desc="Degraded",
    )
    assert cond(st, "Degraded")["reason"] == "MilvusUnavailable"
    assert cond(st, "Ready")["status"] == "False" and st["phase"] == "Degraded"
    wait_warning_event(cluster, operator, namespace, "lost", "MilvusUnavailable")


def test_immutable_conflict_with_existing_collection(cluster, operator, namespace, milvus) -> None:
    from pymilvus import MilvusClient

    MilvusClient(uri=milvus.uri, dedicated=True).create_collection("narrow", dimension=128)
    cluster.apply(vi("narrow", milvus.uri), namespace)
    st = eventually(
        cluster,
        operator,
        lambda: (
            (s := status(cluster, namespace, "narrow"))
            and cond(s, "Ready").get("reason") == "ImmutableFieldConflict"
            and s
        ),
        timeout=60,
        desc="conflict",
    )
    assert "spec.dimension" in cond(st, "Ready")["message"] and "128" in cond(st, "Ready")["message"]


def test_managed_milvus_is_rendered_and_used_once_ready(cluster, operator, namespace, milvus) -> None:
    cluster.run("apply", "--server-side", "-f", "-", input=json.dumps(MILVUS_CRD))
    cluster.run("wait", "--for=condition=Established", "crd/milvuses.milvus.io", "--timeout=30s")
    cluster.apply(
        vi(
            "kb",
            None,
            milvus={"managed": {"mode": "Cluster", "queryNodeMemory": "16Gi"}},
            inMemoryReplicas=2,
            deletionPolicy="Delete",
        ),
        namespace,
    )

    m = eventually(
        cluster,
        operator,
        lambda: cluster.json("get", "-n", namespace, "milvuses.milvus.io", "kb-milvus"),
        timeout=60,
        desc="Milvus object",
    )
    assert m["spec"]["mode"] == "cluster" and m["spec"]["components"]["queryNode"]["replicas"] == 2
    assert m["metadata"]["ownerReferences"][0]["name"] == "kb"
    st = status(cluster, namespace, "kb")
    assert cond(st, "MilvusReady")["status"] == "False" and st["phase"] == "Creating"

    # What the Milvus Operator would report once its pods run: ready, and where to connect.
    ready = {
        "conditions": [{"type": "MilvusReady", "status": "True", "reason": "MilvusClusterHealthy", "message": "ok"}],
        "endpoint": f"127.0.0.1:{milvus.port}",
    }
    cluster.run(
        "patch",
        "-n",
        namespace,
        "milvuses.milvus.io",
        "kb-milvus",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": ready}),
    )
    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "kb")).get("loadState") == "Loaded" and s,
        timeout=60,
        desc="collection on the managed Milvus",
    )
    assert cond(st, "MilvusReady")["status"] == "True" and st["endpoint"] == milvus.uri


def test_delete_policy_drops_the_collection(cluster, operator, namespace, milvus) -> None:
    from pymilvus import MilvusClient

    cluster.apply(vi("scratch", milvus.uri, deletionPolicy="Delete"), namespace)
    eventually(
        cluster,
        operator,
        lambda: status(cluster, namespace, "scratch").get("loadState") == "Loaded",
        timeout=60,
        desc="collection loaded",
    )
    assert cluster.json("get", "-n", namespace, "vi", "scratch")["metadata"].get("finalizers") == [
        "agentfleet.io/finalizer"
    ]
    cluster.run("delete", "-n", namespace, "vi", "scratch", "--timeout=60s")
    assert "scratch" not in MilvusClient(uri=milvus.uri, dedicated=True).list_collections()


def test_source_claim_needs_its_owners_consent(cluster, operator, namespace, milvus) -> None:
    """A volume source is mounted into the ingestion Job (an image the spec's author chooses) only
    once the claim carries agentfleet.io/consent=true (issue 57, finding 12): until then the index
    says how to label it, and neither the collection nor a Job is made."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "team-docs"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    cluster.apply(claim, namespace)
    cluster.apply(vi("fromvol", milvus.uri, source={"persistentVolumeClaim": {"claimName": "team-docs"}}), namespace)
    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "fromvol")) and cond(s, "Ready").get("reason") and s,
        timeout=60,
        desc="a Ready condition",
    )
    ready = cond(st, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PersistentVolumeClaimNotConsented"
    assert "spec.source.persistentVolumeClaim.claimName" in ready["message"]
    assert f"kubectl label pvc -n {namespace} team-docs agentfleet.io/consent=true" in ready["message"]
    wait_warning_event(cluster, operator, namespace, "fromvol", "PersistentVolumeClaimNotConsented")
    jobs = cluster.json("get", "-n", namespace, "jobs", "-l", "agentfleet.io/vectorindex=fromvol")["items"]
    # No Job, and Milvus never called: no endpoint and no collection state in status.
    st = status(cluster, namespace, "fromvol")
    assert jobs == [] and "endpoint" not in st and "loadState" not in st

    # The owner consents: the next check (every 30 s) mounts it, read-only.
    cluster.run("label", "pvc", "-n", namespace, "team-docs", "agentfleet.io/consent=true")
    st = eventually(
        cluster,
        operator,
        lambda: (s := status(cluster, namespace, "fromvol")).get("ingestion", {}).get("jobName") and s,
        timeout=90,
        desc="the ingestion Job once consented",
    )
    job = cluster.json("get", "-n", namespace, "job", st["ingestion"]["jobName"])
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "team-docs", "readOnly": True}} in volumes
