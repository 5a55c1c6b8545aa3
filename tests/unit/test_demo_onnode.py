"""Pure parts of the main job on the real node (e2e/demo/onnode.py, e2e/demo/prom.py pod_targets):
the example as it runs there, and the pods the demo's Prometheus scrapes."""

from __future__ import annotations

import json

import yaml

from e2e.demo import prom
from e2e.demo.driver import EXAMPLE
from e2e.demo.onnode import localize_for_node, release, sim_engine
from e2e.harness.realnode import REAL_NODE_LABEL

IMAGES = {"project": "localhost/agentfleet:1", "engine": "localhost/agentfleet-engine-sim:2", "redis": "localhost/r:3"}


def _example() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    notes = localize_for_node(
        docs, IMAGES, milvus_uri="http://milvus.ns.svc.cluster.local:19530", prometheus_url="http://10.200.0.1:9090",
        sim_engine=sim_engine(next(d for d in docs if d["kind"] == "ModelReplicaSet"), None),
    )  # fmt: skip
    assert len(notes) == 3, notes
    return {d["kind"]: d for d in docs}


def test_the_example_on_the_real_node_uses_in_cluster_servers_and_the_projects_images():
    objs = _example()
    mrs, af, vi = objs["ModelReplicaSet"]["spec"], objs["AgentFleet"]["spec"], objs["VectorIndex"]["spec"]
    assert mrs["engine"]["image"] == IMAGES["engine"] and af["image"] == IMAGES["project"]
    # The scripted agent in the replica's pod knows the fleet's retrieval and spawn tools by name.
    env = {e["name"]: e["value"] for e in mrs["engine"]["env"]}
    assert env["AGENTFLEET_SIM_SCRIPTED_AGENT"] == "search_docs,delegate"
    assert json.loads(env["AGENTFLEET_SIM_ENGINE"])["max_num_seqs"] == 128  # the example's maxNumSeqs
    assert mrs["placement"]["nodeSelector"] == {REAL_NODE_LABEL: "true"}
    assert mrs["autoscaling"]["prometheusURL"] == "http://10.200.0.1:9090"
    # The fleet's own Redis, not a URL to a server that is not there.
    assert af["redis"] == {"deploy": {"image": IMAGES["redis"], "memory": "128Mi", "storageSize": "1Gi"}}
    assert af["workers"]["replicas"] == 2 and af["workers"]["cpu"] == "50m"
    assert vi["milvus"]["uri"] == "http://milvus.ns.svc.cluster.local:19530" and vi["ingestion"]["parallelism"] == 1


def test_the_burst_shortens_the_replicas_queue():
    engine = json.loads(sim_engine({"spec": {"engine": {"maxNumSeqs": 128}}}, "burst"))
    assert engine["max_num_seqs"] == 4 and engine["decode_base_s"] == 0.03


def test_release_is_named_after_the_namespace_within_helms_limit():
    assert release("agentfleet-demo") == "agentfleet-agentfleet-demo"
    assert len(release("n" * 63)) == 53


def _pod(name: str, labels: dict, port: tuple[str, int], phase: str = "Running", deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": "ns", "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T00:00:00Z"
    spec = {"containers": [{"ports": [{"name": port[0], "containerPort": port[1]}]}]}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase, "podIP": "10.201.0.9"}}


def test_pod_targets_are_the_running_replicas_and_workers_with_their_labels():
    replica = {"agentfleet.io/modelreplicaset": "llama-8b", "agentfleet.io/replica": "llama-8b-0"}
    worker = {"agentfleet.io/agentfleet": "support", "app.kubernetes.io/component": "worker"}
    pods = [
        _pod("llama-8b-0", replica, ("http", 8000)),
        _pod("llama-8b-1", replica, ("http", 8000), phase="Pending"),
        _pod("llama-8b-2", replica, ("http", 8000), deleting=True),
        _pod("llama-8b-3-w", {**replica, "agentfleet.io/role": "worker"}, ("http", 8000)),  # a multi-node worker
        _pod("support-worker-a", worker, ("metrics", 9090)),
        _pod("support-api-a", {**worker, "app.kubernetes.io/component": "api"}, ("http", 8080)),
    ]
    replicas, workers = prom.pod_targets(pods)
    assert replicas == prom.replica_targets("ns", "llama-8b", {"llama-8b-0": "10.201.0.9:8000"})
    assert workers == prom.worker_targets("ns", "support", {"support-worker-a": "10.201.0.9:9090"})
