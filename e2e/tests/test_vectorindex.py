"""The VectorIndex controller on the real control plane, against a real Milvus Lite server.

The operator runs as a subprocess on this machine, so it reaches the Milvus Lite server on
127.0.0.1; the ingestion Job's pods run on kwok nodes, which start no containers (kwok marks a Job's
pods Succeeded), so ingestion itself is covered by tests/integration/ingest and
test_vectorindex_milvus_server, and here only the Job's shape and bookkeeping are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from e2e.harness import operator as fx
from e2e.harness.milvus import MilvusLiteServer, milvus_lite
from e2e.harness.objects import cond, vi, vi_status
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
        lambda: (s := vi_status(cluster, namespace, "docs")).get("ingestion", {}).get("jobName") and s,
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
        lambda: (s := vi_status(cluster, namespace, "docs"))["phase"] == "Ready" and s,
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

    from agentfleet_milvus import MilvusTarget

    client = MilvusTarget(milvus.uri).connect()
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
        lambda: (s := vi_status(cluster, namespace, "docs"))["ingestion"]["jobName"] != first["jobName"] and s,
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
    st = vi_status(cluster, namespace, "kb")
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
        lambda: (s := vi_status(cluster, namespace, "kb")).get("loadState") == "Loaded" and s,
        timeout=60,
        desc="collection on the managed Milvus",
    )
    assert cond(st, "MilvusReady")["status"] == "True" and st["endpoint"] == milvus.uri
