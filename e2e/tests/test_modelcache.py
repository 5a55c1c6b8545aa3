"""spec.engine.modelCache as a cache on the real control plane: the operator's fill Job is accepted
by the API server as rendered, new replicas wait for it, and start once the Job controller reports
it complete.

kwok runs no containers: its stages mark the fill's pod Succeeded a few seconds after it starts,
and the real Job controller then reports the Job Complete, as it would after a finished download.
The download itself is huggingface_hub's (render.modelreplicaset.FILL_SCRIPT), run only where a
cluster can reach the Hub.
"""

from __future__ import annotations

import json

import pytest

from e2e.harness import operator as fx
from e2e.harness.operator import eventually
from e2e.tests.test_modelreplicaset import events, get_mrs, mrs_manifest, replica_pods, settled

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def fill_jobs(cluster, ns: str, name: str) -> list[dict]:
    return cluster.json("-n", ns, "get", "jobs", "-l", f"agentfleet.io/model-cache={name}")["items"]


def test_replicas_wait_for_the_fill_job_then_start(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=2)
    # A claim bound to a volume made for it: the e2e cluster has no provisioner, and pods with an
    # unbound claim are never scheduled.
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"weights-{ns}"},
        "spec": {
            "capacity": {"storage": "50Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "hostPath": {"path": f"/tmp/{ns}-weights"},
            "claimRef": {"namespace": ns, "name": "weights"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        # The operator mounts a claim a spec names only with its consent (docs/security.md).
        "metadata": {"name": "weights", "labels": {"agentfleet.io/consent": "true"}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "",
            "resources": {"requests": {"storage": "50Gi"}},
        },
    }
    cluster.run("create", "-f", "-", input=json.dumps(volume))
    cluster.run("-n", ns, "create", "-f", "-", input=json.dumps(claim))
    try:
        run_fill(operator, gpu_pool, ns, cluster)
    finally:
        cluster.run("delete", "pv", f"weights-{ns}", "--wait=false", check=False)


def run_fill(operator, gpu_pool, ns: str, cluster) -> None:
    manifest = mrs_manifest("qwen", gpu_pool, replicas=2, engine={"modelCache": {"claimName": "weights"}})
    cluster.apply(manifest, ns)

    jobs = eventually(cluster, operator, lambda: fill_jobs(cluster, ns, "qwen"), timeout=30, desc="the fill Job")
    assert len(jobs) == 1
    job = jobs[0]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelReplicaSet"
    claim = next(v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-cache")
    assert claim["persistentVolumeClaim"]["claimName"] == "weights"

    def filling():
        st = (get_mrs(cluster, ns, "qwen").get("status") or {}).get("modelCache") or {}
        return st if st.get("phase") == "Filling" else None

    st = eventually(cluster, operator, filling, timeout=30, desc="status.modelCache Filling")
    assert st["job"] == job["metadata"]["name"]
    progressing = next(c for c in get_mrs(cluster, ns, "qwen")["status"]["conditions"] if c["type"] == "Progressing")
    assert "model cache weights" in progressing["message"]

    obj = eventually(
        cluster, operator, settled(cluster, ns, "qwen", 2), timeout=60, desc="2 replicas once the cache is filled"
    )
    assert obj["status"]["modelCache"]["phase"] == "Filled"
    finished = cluster.json("-n", ns, "get", "job", job["metadata"]["name"])["status"]["completionTime"]
    created = sorted(p["metadata"]["creationTimestamp"] for p in replica_pods(cluster, ns, "qwen"))
    assert created[0] >= finished, f"a replica was created at {created[0]}, before the fill ended at {finished}"
    assert obj["status"]["modelCache"]["filledAt"] == finished
    reasons = [e["reason"] for e in events(cluster, ns, "qwen")]
    assert "FillingModelCache" in reasons and "ModelCacheFilled" in reasons
