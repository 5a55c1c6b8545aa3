"""The AgentFleet controller on the real control plane: examples/agentfleet.yaml goes Ready.

The example's documents are applied as they are, with only their endpoints rewritten to servers
this test starts on 127.0.0.1 (a redis-server for spec.redis.url, a Milvus Lite server for the
VectorIndex) and the ModelReplicaSet confined to this test's kwok GPU pool. kwok marks pods
Running and Ready, so Deployments become available; no container runs, so the test plays the
agent worker itself (the runtime's own TaskStore and Worker, in this process, against the same
Redis) to give the status real queue depth and task figures to report. The worker's model is the
real Qwen GGUF on llama-server (e2e/harness/llama_server.py), as in the integration tier's real
agents: the tasks end on the model's own answers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet_runtime.core.config import RuntimeConfig
from e2e.harness import llama_server
from e2e.harness import operator as fx
from e2e.harness.milvus import MilvusLiteServer, milvus_lite
from e2e.harness.objects import FLEET_LABEL, af_status, apply_stuck_model, bad_fleet, children, cond
from e2e.harness.operator import eventually
from e2e.harness.plinth import fleet_config
from e2e.harness.redis import RedisServer
from e2e.harness.redis import run_wide as redis_run_wide

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool
ROOT = Path(__file__).resolve().parents[2]


def _runtime_helpers():
    path = ROOT / "tests" / "integration" / "runtime" / "runtime_helpers.py"
    spec = importlib.util.spec_from_file_location("agentfleet_e2e_runtime_helpers", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


helpers = _runtime_helpers()


@pytest.fixture(scope="module")
def milvus(tmp_path_factory) -> Iterator[MilvusLiteServer]:
    with milvus_lite(tmp_path_factory.mktemp("af-milvus") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def redis_server() -> RedisServer:
    """The run's one Redis (e2e/harness/redis.py run_wide): a fleet's keys are prefixed by its
    namespace and name, and every module's namespaces are its own."""
    return redis_run_wide()


def example_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "examples" / "agentfleet.yaml").read_text()) if d]


def rewrite(doc: dict[str, Any], pool, milvus_uri: str, redis_url: str) -> dict[str, Any]:
    """Endpoints to local servers, GPU placement to this test's pool; nothing else changes."""
    doc = json.loads(json.dumps(doc))
    spec = doc["spec"]
    if doc["kind"] == "ModelReplicaSet":
        spec["placement"] = {**spec.get("placement", {}), **pool.selector}
        if "autoscaling" in spec:
            spec["autoscaling"]["prometheusURL"] = "http://127.0.0.1:9"
    elif doc["kind"] == "VectorIndex":
        spec["milvus"]["uri"] = milvus_uri
    elif doc["kind"] == "AgentFleet":
        spec["redis"]["url"] = redis_url
    return doc


def seed_collection(uri: str, collection: str, dim: int) -> None:
    """One row, as an ingestion would write it: kwok never runs the ingestion Job's containers."""
    from agentfleet_milvus import MilvusTarget

    client = MilvusTarget(uri).connect()
    client.upsert(
        collection,
        [
            {
                "id": "seed-0",
                "text": "Reset a password from the account page.",
                "source": "seed.md",
                "metadata": {},
                "vector": [0.1] * dim,
            }
        ],
    )
    client.close()


# Questions a small model answers from what it knows, and what its answer must say.
QUESTIONS = {
    "What is the capital of France?": r"\bParis\b",
    "What is 17 plus 25? Answer with the number.": r"(?<![\d.])42(?![\d.])",
    "Which planet is known as the Red Planet?": r"\bMars\b",
}


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Iterator[str]:
    """The run's llama-server with the real Qwen model (e2e/harness/llama_server.py run_wide): its /v1
    base URL. With
    AGENTFLEET_E2E_DECIDER=scripted the scripted model takes its place, to show the test then fails."""
    tmp = tmp_path_factory.mktemp("qwen")
    if os.environ.get("AGENTFLEET_E2E_DECIDER") == "scripted":
        procs: list[Any] = []
        yield helpers.start_scripted_model(procs, tmp)
        for p in procs:
            p.end()
        return
    yield llama_server.run_wide()


@pytest.mark.timeout(1500)
def test_example_goes_ready_reports_tasks_and_deletes_its_children(
    cluster, operator, gpu_pool, namespace, milvus, redis_server, qwen
) -> None:
    gpu_pool.add("h100", count=1, gpus=8)
    docs = [rewrite(d, gpu_pool, milvus.uri, redis_server.url) for d in example_docs()]
    af_doc = next(d for d in docs if d["kind"] == "AgentFleet")
    # What a GitOps tool puts on the objects it syncs; children must not carry it.
    af_doc["metadata"]["labels"] = {
        "app.kubernetes.io/instance": "support-app",
        "argocd.argoproj.io/instance": "support-app",
    }
    fleet = af_doc["metadata"]["name"]
    vi_doc = next(d for d in docs if d["kind"] == "VectorIndex")
    for d in docs:
        cluster.apply(d, namespace)

    # The index has its collection once the VectorIndex controller made it; give it a row.
    eventually(
        cluster,
        operator,
        lambda: (
            cluster.json("get", "-n", namespace, "vi", vi_doc["metadata"]["name"]).get("status", {}).get("loadState")
            == "Loaded"
        ),
        timeout=90,
        desc="collection loaded",
    )
    seed_collection(milvus.uri, vi_doc["spec"]["collection"], vi_doc["spec"]["dimension"])

    st = eventually(
        cluster,
        operator,
        lambda: (s := af_status(cluster, namespace, fleet)) and cond(s, "Ready").get("status") == "True" and s,
        timeout=150,
        desc="AgentFleet Ready",
    )
    for t in ("ModelReady", "IndexReady", "RedisReady", "RuntimeReady"):
        assert cond(st, t)["status"] == "True", (t, st)
    assert st["workers"] == 2 and st["readyWorkers"] == 2 and st["desiredWorkers"] == 2
    assert st["selector"] == f"{FLEET_LABEL}={fleet},app.kubernetes.io/component=worker"
    assert st["taskApiEndpoint"] == f"http://{fleet}-api.{namespace}.svc:8080"
    assert st["queueDepth"] == 0 and st["tasksPerHour"] == 0
    assert "taskP95Seconds" not in st and "costPerTask" not in st  # nothing finished yet: unset, not zero

    af = cluster.json("get", "-n", namespace, "agentfleet", fleet, "--show-managed-fields")
    assert af["metadata"]["generation"] == 1  # the operator never wrote spec
    spec_managers = {m["manager"] for m in af["metadata"]["managedFields"] if m.get("subresource") != "status"}
    assert not any(m.startswith("agentfleet") for m in spec_managers), spec_managers

    # The children: the runtime wired to the model, the index and the Redis.
    items = children(cluster, namespace, fleet)
    kinds = {(i["kind"], i["metadata"]["name"]) for i in items}
    assert {
        ("Deployment", f"{fleet}-worker"),
        ("Deployment", f"{fleet}-api"),
        ("Service", f"{fleet}-api"),
        ("ConfigMap", f"{fleet}-runtime"),
        ("ServiceAccount", fleet),
        ("Role", f"{fleet}-endpointslices"),
        ("RoleBinding", f"{fleet}-endpointslices"),
        ("PodDisruptionBudget", f"{fleet}-worker"),
        ("Secret", f"{fleet}-api-token"),
    } <= kinds, kinds
    for i in items:
        labels = i["metadata"].get("labels") or {}
        assert "app.kubernetes.io/instance" not in labels and not any(
            k.startswith("argocd.argoproj.io") for k in labels
        ), i["metadata"]
        owner = i["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("AgentFleet", fleet, True)
    config = yaml.safe_load(
        cluster.json("get", "-n", namespace, "configmap", f"{fleet}-runtime")["data"]["runtime.yaml"]
    )
    assert config["fleet"] == fleet and config["redisUrl"] == redis_server.url
    assert config["model"] == {
        "baseUrl": f"http://llama-8b.{namespace}.svc:8000/v1",
        "name": "llama-8b",
        "maxOutputTokens": 1024,  # spec.modelCalls' defaults: the example sets none
        "timeoutSeconds": 120,
    }
    assert config["modelRouting"]["primary"]["modelReplicaSet"] == "llama-8b"
    assert config["retrieval"]["uri"] == milvus.uri and config["retrieval"]["vectorIndex"]["collection"] == "docs"
    assert config["budgets"]["maxTokens"] == 150000 and [t["name"] for t in config["tools"]] == [
        "search_docs",
        "create_ticket",
        "delegate",
    ]
    worker = cluster.json("get", "-n", namespace, "deployment", f"{fleet}-worker")
    pod = worker["spec"]["template"]
    assert pod["spec"]["containers"][0]["args"] == ["worker", "--config", "/etc/agentfleet/runtime.yaml"]
    assert pod["metadata"]["annotations"]["agentfleet.io/config-hash"]

    out = cluster.run("get", "-n", namespace, "agentfleets", fleet).stdout.splitlines()
    header, row = out[0].split(), out[1].split()
    assert header[:5] == ["NAME", "READY", "MODEL", "WORKERS", "QUEUE"] and row[:5] == [
        fleet,
        "True",
        "llama-8b",
        "2",
        "0",
    ], out

    # Tasks: three wait (queue depth), then a worker of the runtime finishes them, each step decided
    # by the real Qwen model (llama-server): each task must end on the model's own answer.
    async def submit_then_run() -> dict[str, dict[str, str]]:
        doc = fleet_config(redis_server.url, fleet, qwen, system="Answer the user's question in a few words.")
        doc.update(tools=[], pricing={"inputPerMillionTokens": "100", "outputPerMillionTokens": "300"})
        doc["namespace"] = namespace  # the fleet's keys hold its namespace: the operator reads the queue there
        cfg = RuntimeConfig.model_validate(doc)
        store = helpers.store_for(cfg)
        ids = [await helpers.submit(store, cfg, q) for q in QUESTIONS]
        await asyncio.to_thread(
            eventually,
            cluster,
            operator,
            lambda: af_status(cluster, namespace, fleet).get("queueDepth") == 3,
            timeout=60,
            desc="queueDepth 3 in status",
        )
        async with helpers.running_worker(cfg):
            states = await helpers.wait_ended(store, ids, 900)
        await store.close()
        return {q: states[i] for q, i in zip(QUESTIONS, ids, strict=True)}

    ended = helpers.arun(submit_then_run(), timeout=1000)
    for q, st in ended.items():
        print(f"{q!r} -> {st.get('answer')!r} ({st.get('reason')})")
        assert st["status"] == "done" and st["reason"] == "final_answer", (q, st)
        assert re.search(QUESTIONS[q], st["answer"], re.IGNORECASE), (q, st["answer"])
    st = eventually(
        cluster,
        operator,
        lambda: (s := af_status(cluster, namespace, fleet)).get("tasksPerHour") == 3 and s,
        timeout=60,
        desc="tasksPerHour 3",
    )
    assert st["queueDepth"] == 0 and st["inFlightTasks"] == 0
    # Task times of a real model on a shared CPU (a 1.5B step took 55-68 s at load 16): under the budget's timeout.
    assert 0 < st["taskP95Seconds"] < 900 and float(st["costPerTask"]) > 0

    # Deleting the fleet removes every child (ownerReferences), and only the fleet's.
    cluster.run("delete", "-n", namespace, "agentfleet", fleet, "--wait=true", timeout=60)
    eventually(cluster, operator, lambda: not children(cluster, namespace, fleet), timeout=90, desc="every child gone")
    assert cluster.run("get", "-n", namespace, "mrs", "llama-8b", check=False).returncode == 0


def test_managed_redis_is_rendered_with_a_password_made_once(cluster, operator, namespace) -> None:
    body = bad_fleet("own-redis", "unused", modelRef={"name": "stuck"})
    body["spec"]["redis"] = {"deploy": {"storageSize": "1Gi"}}
    apply_stuck_model(cluster, namespace)
    cluster.apply(body, namespace)
    st = eventually(
        cluster,
        operator,
        lambda: (
            (s := af_status(cluster, namespace, "own-redis"))
            and cond(s, "RuntimeReady").get("reason") in ("RuntimeProgressing", "RuntimeAvailable")
            and s
        ),
        timeout=60,
        desc="runtime rendered",
    )
    # kwok has no volume provisioner: the Redis pod waits for its volume, and the status says so.
    assert cond(st, "RedisReady")["status"] == "False" and cond(st, "RedisReady")["reason"] == "RedisStarting"
    sts = cluster.json("get", "-n", namespace, "statefulset", "own-redis-redis")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:2] == ["--appendonly", "yes"] and "$(REDIS_PASSWORD)" in c["args"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    policy = cluster.json("get", "-n", namespace, "networkpolicy", "own-redis-redis")
    assert {"podSelector": {"matchLabels": {FLEET_LABEL: "own-redis"}}} in policy["spec"]["ingress"][0]["from"]
    config = cluster.json("get", "-n", namespace, "configmap", "own-redis-runtime")["data"]["runtime.yaml"]
    assert f"redis://own-redis-redis.{namespace}.svc:6379/0" in config

    password = cluster.json("get", "-n", namespace, "secret", "own-redis-redis")
    # A change of the fleet and several passes later the password is the one made first.
    cluster.run(
        "patch",
        "-n",
        namespace,
        "agentfleet",
        "own-redis",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"workers": {"replicas": 1}}}),
    )
    eventually(
        cluster,
        operator,
        lambda: cluster.json("get", "-n", namespace, "deployment", "own-redis-worker")["spec"]["replicas"] == 1,
        timeout=60,
        desc="worker scaled",
    )
    time.sleep(3)
    again = cluster.json("get", "-n", namespace, "secret", "own-redis-redis")
    assert (
        again["data"] == password["data"]
        and again["metadata"]["resourceVersion"] == password["metadata"]["resourceVersion"]
    )
    secrets = cluster.json("get", "-n", namespace, "secrets", "-l", f"{FLEET_LABEL}=own-redis")["items"]
    assert sorted(x["metadata"]["name"] for x in secrets) == ["own-redis-api-token", "own-redis-redis"]

    pvcs = lambda: cluster.json("get", "-n", namespace, "pvc", "-l", f"{FLEET_LABEL}=own-redis")["items"]  # noqa: E731
    assert [p["metadata"]["name"] for p in pvcs()] == ["data-own-redis-redis-0"]

    cluster.run("delete", "-n", namespace, "agentfleet", "own-redis", "--wait=true", timeout=60)
    eventually(
        cluster, operator, lambda: not children(cluster, namespace, "own-redis"), timeout=90, desc="every child gone"
    )
    # The append-only file's volume goes with the StatefulSet (persistentVolumeClaimRetentionPolicy).
    eventually(cluster, operator, lambda: not pvcs(), timeout=90, desc="Redis volume claim gone")
