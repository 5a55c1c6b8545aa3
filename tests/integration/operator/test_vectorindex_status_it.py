"""What the VectorIndex controller does against the run's private kube-apiserver, the operator as a
real process and the run's Milvus Lite server: an unreachable Milvus is Degraded with a Warning, a
collection that exists with another dimension is refused naming the field, deletionPolicy Delete drops
the collection through the operator's finalizer, and a volume source is mounted only once its claim
carries the owner's consent. None of it needs a pod to run, so it moved down from the e2e tier
(e2e/tests/test_vectorindex.py keeps the ingestion Job that kwok completes, and the managed Milvus,
whose stand-in CRD is cluster-wide state)."""

from __future__ import annotations

import pytest
from agentfleet_milvus import MilvusTarget

from e2e.harness import operator as fx
from e2e.harness.objects import cond, vi, vi_status, wait_warning_event
from e2e.harness.operator import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

operator = fx.operator


def test_unreachable_milvus_is_degraded(kube, operator, namespace) -> None:
    kube.apply(vi("lost", "http://127.0.0.1:1"), namespace)
    st = eventually(
        kube,
        operator,
        lambda: (s := vi_status(kube, namespace, "lost")) and cond(s, "Degraded").get("status") == "True" and s,
        timeout=90,
        desc="Degraded",
    )
    assert cond(st, "Degraded")["reason"] == "MilvusUnavailable"
    assert cond(st, "Ready")["status"] == "False" and st["phase"] == "Degraded"
    wait_warning_event(kube, operator, namespace, "lost", "MilvusUnavailable")


def test_immutable_conflict_with_existing_collection(kube, operator, namespace, milvus_uri) -> None:
    MilvusTarget(milvus_uri).connect().create_collection("narrow", dimension=128)
    kube.apply(vi("narrow", milvus_uri), namespace)
    st = eventually(
        kube,
        operator,
        lambda: (
            (s := vi_status(kube, namespace, "narrow"))
            and cond(s, "Ready").get("reason") == "ImmutableFieldConflict"
            and s
        ),
        timeout=60,
        desc="conflict",
    )
    assert "spec.dimension" in cond(st, "Ready")["message"] and "128" in cond(st, "Ready")["message"]


def test_delete_policy_drops_the_collection(kube, operator, namespace, milvus_uri) -> None:
    kube.apply(vi("scratch", milvus_uri, deletionPolicy="Delete"), namespace)
    eventually(
        kube,
        operator,
        lambda: vi_status(kube, namespace, "scratch").get("loadState") == "Loaded",
        timeout=60,
        desc="collection loaded",
    )
    assert kube.json("get", "-n", namespace, "vi", "scratch")["metadata"].get("finalizers") == [
        "agentfleet.io/finalizer"
    ]
    kube.run("delete", "-n", namespace, "vi", "scratch", "--timeout=60s")
    assert "scratch" not in MilvusTarget(milvus_uri).connect().list_collections()


def test_source_claim_needs_its_owners_consent(kube, operator, namespace, milvus_uri) -> None:
    """A volume source is mounted into the ingestion Job (an image the spec's author chooses) only
    once the claim carries agentfleet.io/consent=true (issue 57, finding 12): until then the index
    says how to label it, and neither the collection nor a Job is made."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "team-docs"},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.apply(claim, namespace)
    kube.apply(vi("fromvol", milvus_uri, source={"persistentVolumeClaim": {"claimName": "team-docs"}}), namespace)
    st = eventually(
        kube,
        operator,
        lambda: (s := vi_status(kube, namespace, "fromvol")) and cond(s, "Ready").get("reason") and s,
        timeout=60,
        desc="a Ready condition",
    )
    ready = cond(st, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PersistentVolumeClaimNotConsented"
    assert "spec.source.persistentVolumeClaim.claimName" in ready["message"]
    assert f"kubectl label pvc -n {namespace} team-docs agentfleet.io/consent=true" in ready["message"]
    wait_warning_event(kube, operator, namespace, "fromvol", "PersistentVolumeClaimNotConsented")
    jobs = kube.json("get", "-n", namespace, "jobs", "-l", "agentfleet.io/vectorindex=fromvol")["items"]
    # No Job, and Milvus never called: no endpoint and no collection state in status.
    st = vi_status(kube, namespace, "fromvol")
    assert jobs == [] and "endpoint" not in st and "loadState" not in st

    # The owner consents: the next check (every 30 s) mounts it, read-only.
    kube.run("label", "pvc", "-n", namespace, "team-docs", "agentfleet.io/consent=true")
    st = eventually(
        kube,
        operator,
        lambda: (s := vi_status(kube, namespace, "fromvol")).get("ingestion", {}).get("jobName") and s,
        timeout=90,
        desc="the ingestion Job once consented",
    )
    job = kube.json("get", "-n", namespace, "job", st["ingestion"]["jobName"])
    volumes = job["spec"]["template"]["spec"]["volumes"]
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "team-docs", "readOnly": True}} in volumes
