"""The product on the real node: containers run by containerd under a kubelet, not kwok's Running.

e2e/cluster/cluster.sh starts one real node beside the kwok GPU nodes (kubelet, kube-proxy and containerd in
a private network namespace, tainted so that only pods which ask for it run there). A namespace asks
for it with the PodNodeSelector and PodTolerationRestriction annotations (:func:`confine`), so the
chart and every pod the operator renders run unchanged. Here:

- the chart, installed with helm (the project image imported into the node's containerd), runs the
  operator as a pod that reaches the API through the ``kubernetes`` Service and reconciles;
- an AgentFleet's Redis (a StatefulSet on a local PersistentVolume), task API and workers, and a
  ModelReplicaSet's replica (the project image whose ``vllm`` is the simulator: e2e/cluster/node/vllm-sim)
  run as real pods with the kubelet's probes, securityContext and limits; tasks submitted through
  the task API's Service complete, and ``kubectl get agentfleets`` fills its columns from the pods;
- a VectorIndex's ingestion Job runs as a pod and fills a collection in a Milvus Lite server that
  itself runs as a pod behind a Service (as a user's in-cluster Milvus would), which the test then
  searches through a local forward to the Service;
- `kubectl logs` and `exec` into those pods, through the apiserver's egress proxy (nodenet.py);
- faults on those pods: a worker killed mid-task, the Redis pod deleted, the kubelet restarted.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import ssl
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentfleet.render.agentfleet import (
    API_PORT,
    COMPONENT_LABEL,
    FLEET_LABEL,
    TOKEN_KEY,
    api_name,
    api_token_secret_name,
)
from agentfleet_runtime.core.types import Status
from e2e.harness import realnode
from e2e.harness.nodenet import connect_in_netns, forward_into_netns
from e2e.harness.realnode import MILVUS_PORT, NODE_DIR, confine, pods, ready, served_pod

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
GPUS = 4  # patched into the real node's status: GPU-requesting pods then run there on CPU


def new_namespace(cluster, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.run("create", "namespace", ns)
    cluster.run("label", "namespace", ns, "agentfleet.io/e2e=true")
    confine(cluster, ns)
    cluster.wait_for(
        lambda: cluster.run("-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        desc=f"{ns}'s ServiceAccount",
    )
    return ns


def on_real_node(p: dict, node: str) -> None:
    """The pod runs on the real node in containers containerd started (kwok's pods have no container ids)."""
    assert p["spec"]["nodeName"] == node, (p["metadata"]["name"], p["spec"].get("nodeName"))
    for cs in p["status"].get("containerStatuses", []):
        assert cs.get("containerID", "").startswith("containerd://"), cs


class ServiceClient:
    """HTTP to a Service's ClusterIP from inside the node's network namespace (kube-proxy's rules)."""

    def __init__(self, netns: str, ip: str, port: int, tls: tuple[ssl.SSLContext, str] | None = None) -> None:
        """TLS: HTTPS, verified with the context for the name (a Service's DNS name the certificate holds)."""
        self.netns, self.ip, self.port, self.tls = netns, ip, port, tls

    def _connect(self, timeout: float = 10.0) -> Any:
        sock = connect_in_netns(self.netns, self.ip, self.port, timeout=timeout)
        return sock if self.tls is None else self.tls[0].wrap_socket(sock, server_hostname=self.tls[1])

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        conn = http.client.HTTPConnection(self.ip, self.port, timeout=15)
        conn.sock = self._connect()
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode(errors="replace")

    def events(self, path: str, headers: dict[str, str], quiet: float = 2.0) -> list[dict]:
        """The server-sent events of PATH received until the stream ends or is QUIET seconds (the
        stream of a running task stays open)."""
        conn = http.client.HTTPConnection(self.ip, self.port)
        conn.sock = self._connect(timeout=quiet)
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200, (resp.status, resp.read()[:500])
        got: list[dict] = []
        try:
            while line := resp.readline():
                if line.startswith(b"data: "):
                    got.append(json.loads(line[6:]))
        except TimeoutError:
            pass
        conn.close()
        return got


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(cluster) -> dict[str, Any]:
    info = cluster.info.get("real_node")
    if not info:
        pytest.fail("the cluster has no real node (AGENTFLEET_REAL_NODE=0?): this tier needs one", pytrace=False)
    cluster.wait_for(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in cluster.json("get", "node", info["name"])["status"]["conditions"]
        ),
        timeout=120,
        desc="the real node Ready",
    )
    return info


@pytest.fixture(scope="module")
def images(cluster, node) -> dict[str, str]:
    """The project image (e2e/cluster/image.sh), the CPU engine and Redis images on it, imported into the node.

    AGENTFLEET_REALNODE_IMAGE names another project image instead (e2e/cluster/node/mutant.sh builds one with
    a changed source file, to show which test catches the change)."""
    return realnode.images(cluster, os.environ.get("AGENTFLEET_REALNODE_IMAGE"))


@pytest.fixture(scope="module")
def operator(cluster, node, images, helm) -> Iterator[dict[str, str]]:  # noqa: F811 - helm is a fixture
    """The chart installed unchanged by helm into a namespace on the real node, serving the fleet's."""
    ns = new_namespace(cluster, "af-real-op")
    fleet_ns = new_namespace(cluster, "af-real")
    release = "af"
    sets = [f"operator.watchNamespaces={{{fleet_ns}}}", "operator.resources.requests.cpu=100m"]
    t0 = time.monotonic()
    try:
        realnode.helm_install(cluster, helm, release, ns, images["project"], sets)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    print(f"helm install --wait: {time.monotonic() - t0:.1f}s")
    yield {"ns": ns, "fleet_ns": fleet_ns, "release": release}
    # The fleet's namespace goes first, while the operator still runs to clear its objects'
    # finalizers: deleted after the uninstall, it stayed Terminating with them, and the next test
    # module's operator (watching every namespace) inherited its ModelReplicaSet and VectorIndex.
    cluster.run("delete", "namespace", fleet_ns, "--ignore-not-found", "--timeout=120s", check=False, timeout=150)
    realnode.helm_uninstall(cluster, helm, release, ns)
    cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def dump(cluster, ns: str) -> None:
    print(cluster.run("-n", ns, "get", "pods,events", "-o", "wide", check=False).stdout[-6000:])


LEDGER_PORT = 8080
TOOL_STEPS = 3  # the simulator answers a task's first 3 calls with a tool call: 4 steps a task


def ledger_server(cluster, ns: str, image: str) -> str:
    """e2e/cluster/node/ledger.py (from a ConfigMap, in the project image) behind a Service ``ledger``: the
    fleet's one tool, whose calls it counts by idempotency key; returns the URL the workers call."""
    script = (NODE_DIR / "ledger.py").read_text()
    cluster.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ledger"}, "data": {"ledger.py": script}},
        ns,
    )
    volumes = {"ledger": {"configMap": {"name": "ledger"}}}
    # Each call takes a second: a kill meets tasks in their tools as well as in their model calls.
    env = {"LEDGER_DELAY_S": "1", "LEDGER_PORT": str(LEDGER_PORT)}
    served_pod(cluster, ns, "ledger", image, ["python", "/ledger/ledger.py"], LEDGER_PORT, volumes, env)
    return f"http://ledger.{ns}.svc.cluster.local:{LEDGER_PORT}/effects"


@pytest.fixture(scope="module")
def fleet(cluster, node, images, operator) -> dict[str, Any]:
    """A ModelReplicaSet (the simulator) and an AgentFleet with its own Redis, all on the real node.

    Every task takes TOOL_STEPS + 1 steps: the simulator calls the fleet's one tool, an HTTP tool
    with side effects served by the ledger (ledger_server), on each of a task's first TOOL_STEPS
    calls, and answers in text after that."""
    ns = operator["fleet_ns"]
    realnode.gpu_node(cluster, node, GPUS)
    ledger = ledger_server(cluster, ns, images["project"])
    realnode.local_volume(cluster, node, f"{ns}-redis")
    # e2e/cluster/node/vllm-sim: every call takes 2 s more, so faults meet tasks mid-flight, and a
    # task's first calls answer with tool calls, so tasks take several steps
    sim = {"AGENTFLEET_SIM_ADDED_LATENCY_S": "2", "AGENTFLEET_SIM_TOOL_CALL_STEPS": str(TOOL_STEPS)}
    cluster.apply(realnode.simulator_model("sim", images["engine"], sim), ns)
    cluster.apply(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "AgentFleet",
            "metadata": {"name": "support"},
            "spec": {
                "modelRef": {"name": "sim"},
                "image": images["project"],
                "workers": {"replicas": 2, "concurrency": 8, "cpu": "100m", "memory": "256Mi"},
                "budgets": {"maxSteps": TOOL_STEPS + 3, "timeoutSeconds": 300},
                "tools": [
                    {
                        "name": "record",
                        "type": "HTTP",
                        "description": "Records a note in the ledger (a side effect: never twice).",
                        "parameters": {
                            "type": "object",
                            "properties": {"note": {"type": "string", "maxLength": 200}},
                            "required": ["note"],
                        },
                        "http": {"url": ledger, "sideEffects": True},
                    }
                ],
                # a crashed worker's tasks are reclaimed after 5 s (default 60)
                "retry": {"visibilityTimeoutSeconds": 5},
                "redis": {"deploy": {"image": images["redis"], "memory": "128Mi", "storageSize": "1Gi"}},
            },
        },
        ns,
    )
    return {"ns": ns, "name": "support"}


def fleet_api(cluster, node: dict, fleet: dict) -> tuple[ServiceClient, str]:
    """The task API's Service (its ClusterIP, through kube-proxy) and a bearer token the operator wrote."""
    ns, name = fleet["ns"], fleet["name"]
    ip = cluster.json("-n", ns, "get", "service", api_name(name))["spec"]["clusterIP"]
    secret = cluster.json("-n", ns, "get", "secret", api_token_secret_name(name))
    token = base64.b64decode(secret["data"][TOKEN_KEY]).decode().split()[0]
    return ServiceClient(node["netns"], ip, API_PORT), token


def submit(api: ServiceClient, token: str, goal: str) -> str:
    status, body = api.request("POST", "/v1/tasks", {"goal": goal}, {"Authorization": f"Bearer {token}"})
    assert status == 201, (status, body)
    return body["id"]


def task(api: ServiceClient, token: str, task_id: str) -> dict:
    status, body = api.request("GET", f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, (status, body)
    return body


def wait_done(cluster, api: ServiceClient, token: str, ids: list[str], timeout: float = 240) -> list[dict]:
    views: dict[str, dict] = {}

    def done() -> bool:
        for t in ids:
            if t not in views or not Status(views[t]["status"]).terminal:
                try:
                    views[t] = task(api, token, t)
                except OSError:
                    return False
        return all(Status(v["status"]).terminal for v in views.values())

    cluster.wait_for(done, timeout=timeout, interval=1, desc=f"{len(ids)} task(s) finished")
    return [views[t] for t in ids]


def test_operator_from_the_chart_runs_on_the_real_node(cluster, node, operator) -> None:
    """helm install --wait returned: the Deployment is Available with its pods (two: leader election
    is the chart's default) run by containerd, whose startupProbes the kubelet passed; they reach the
    API through the `kubernetes` Service, and one of them holds the leader Lease."""
    ops = pods(cluster, operator["ns"], "app.kubernetes.io/component=operator")
    assert len(ops) == 2, [p["metadata"]["name"] for p in ops]
    for pod in ops:
        on_real_node(pod, node["name"])
        assert ready(pod), pod["status"]
        spec = pod["spec"]
        assert not spec.get("hostNetwork"), "the operator needs no host network: the kubernetes Service works"
        sc = spec["containers"][0]["securityContext"]
        assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False, sc
    # The Lease went through the `kubernetes` Service too: its holder is one of the two pods.
    leases = cluster.json("get", "leases", "-n", operator["ns"])["items"]
    holders = {(lease.get("spec") or {}).get("holderIdentity") for lease in leases}
    assert holders & {p["metadata"]["name"] for p in ops}, holders
    # The Service's endpoint is the address the apiserver advertises inside the node's namespace.
    eps = cluster.json("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes")["items"]
    assert [a for e in eps for ep in e["endpoints"] for a in ep["addresses"]] == [node["gateway"]], eps


# Two documents whose words share nothing, so a query in one's words finds it first.
CORPUS = {
    "wal.md": "# Write-ahead log\n\nThe write-ahead log records every change before the data files are "
    "written. After a crash the server replays the WAL from the last checkpoint.\n" * 4,
    "gardening.md": "# Tomatoes\n\nWater tomato plants deeply twice a week and stake them once they "
    "flower. Pick the fruit when it turns fully red.\n" * 4,
}


def test_vectorindex_ingestion_job_fills_a_collection_from_a_real_pod(cluster, node, images, operator) -> None:
    """The operator (a pod) reaches Milvus (a pod) by its Service's name through the cluster DNS and
    creates the collection; the ingestion Job's pod (MiniLM in the project image, read-only root,
    the kubelet's limits) embeds the ConfigMap's documents into it; the VectorIndex reports Ready
    with the counts; a search through the Service finds each document by its own words."""
    ns = operator["fleet_ns"]
    uri = realnode.milvus_server(cluster, ns, images["project"])
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "corpus"}, "data": CORPUS}, ns)
    spec = {
        "collection": "kb",
        "dimension": 384,
        "milvus": {"uri": uri},
        "source": {"configMap": {"name": "corpus"}},
        "ingestion": {"parallelism": 1},
    }
    t0 = time.monotonic()
    cluster.apply(
        {"apiVersion": "agentfleet.io/v1alpha1", "kind": "VectorIndex", "metadata": {"name": "kb"}, "spec": spec}, ns
    )

    def indexed() -> dict | None:
        st = cluster.json("-n", ns, "get", "vectorindex", "kb").get("status") or {}
        conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
        assert st.get("phase") != "Failed", st  # a failed Job: no use waiting out the timeout
        return st if conds.get("Ready") == "True" and st.get("ingestion", {}).get("completedAt") else None

    try:
        st = cluster.wait_for(indexed, timeout=600, interval=2, desc="the VectorIndex Ready after ingestion")
    finally:
        dump(cluster, ns)
    print(f"VectorIndex Ready {time.monotonic() - t0:.1f}s after it was applied")
    ing = st["ingestion"]
    assert ing["documentsTotal"] == ing["documentsDone"] == len(CORPUS) and ing["documentsFailed"] == 0, ing
    assert ing["chunks"] >= len(CORPUS), ing
    (worker,) = pods(cluster, ns, f"job-name={ing['jobName']}")
    on_real_node(worker, node["name"])
    assert worker["status"]["phase"] == "Succeeded", worker["status"]
    (server,) = pods(cluster, ns, "app.kubernetes.io/name=milvus")
    on_real_node(server, node["name"])

    from agentfleet_contract.vectorindex import VectorIndexSpec

    from agentfleet_runtime.tools.retriever import Retriever

    ip = cluster.json("-n", ns, "get", "service", "milvus")["spec"]["clusterIP"]
    with forward_into_netns(node["netns"], ip, MILVUS_PORT) as port:

        async def search() -> dict[str, list[str]]:
            retriever = Retriever.for_index(VectorIndexSpec.model_validate(spec), uri=f"http://127.0.0.1:{port}")
            async with retriever:
                return {
                    q: [p.source for p in await retriever.search(q, top_k=2)]
                    for q in ("How does the server recover after a crash?", "When do I pick ripe tomatoes?")
                }

        found = asyncio.run(search())
    print(found)
    assert found["How does the server recover after a crash?"][0].endswith("wal.md"), found
    assert found["When do I pick ripe tomatoes?"][0].endswith("gardening.md"), found


def test_fleet_runs_on_real_pods_and_tasks_complete(cluster, node, fleet) -> None:
    ns, name = fleet["ns"], fleet["name"]
    t0 = time.monotonic()

    def fleet_ready() -> dict | None:
        if crash := realnode.crash_loops(cluster, ns):  # failing at once tells more than a timeout
            pytest.fail(crash, pytrace=False)
        af = cluster.json("-n", ns, "get", "agentfleet", name)
        conds = {c["type"]: c["status"] for c in (af.get("status") or {}).get("conditions", [])}
        return af if conds.get("Ready") == "True" else None

    try:
        cluster.wait_for(fleet_ready, timeout=600, interval=2, desc="the AgentFleet Ready on real pods")
    finally:
        dump(cluster, ns)
    print(f"AgentFleet Ready {time.monotonic() - t0:.1f}s after it was applied")
    for selector in (f"{FLEET_LABEL}={name}", "agentfleet.io/modelreplicaset=sim"):
        found = pods(cluster, ns, selector)
        assert found, selector
        for p in found:
            on_real_node(p, node["name"])
    api, token = fleet_api(cluster, node, fleet)
    ids = [submit(api, token, f"Question {i}: how do I reclaim disk space?") for i in range(4)]
    views = wait_done(cluster, api, token, ids)
    for v in views:
        assert v["status"] == "done", json.dumps(v)[:2000]
        assert v["answer"].strip(), v

    # `kubectl get agentfleets`: every column filled, from the pods the kubelet runs (READY, WORKERS)
    # and the tasks they ran (TASKS/H, P95, COST/TASK from the fleet's Redis).
    def columns() -> list[str] | None:
        table = cluster.run("-n", ns, "get", "agentfleets", name).stdout.splitlines()
        # GATE and A2A stay blank: this fleet has no spec.rollout and no spec.a2a (test_a2a_realnode
        # reads a fleet's A2A column).
        header, row = [h for h in table[0].split() if h not in ("GATE", "A2A")], table[1].split()
        return table if len(row) == len(header) and "<none>" not in row and row[1] == "True" and row[5] != "0" else None

    print("\n".join(cluster.wait_for(columns, timeout=180, interval=2, desc="every column of kubectl get agentfleets")))


def test_kubectl_logs_and_exec_reach_the_real_node(cluster, node, operator, fleet) -> None:
    """The apiserver reaches the real node's kubelet (through nodenet's egress proxy): `kubectl logs` of
    an operator pod, and `kubectl exec` into a worker, whose identity is the rendered securityContext
    as the kubelet applied it (fsGroup among its groups)."""
    (op, *_) = pods(cluster, operator["ns"], "app.kubernetes.io/component=operator")
    logs = cluster.run("-n", operator["ns"], "logs", op["metadata"]["name"], "--tail=200").stdout
    assert logs.strip(), "kubectl logs returned nothing"
    ns, name = fleet["ns"], fleet["name"]
    (worker, *_) = pods(cluster, ns, f"{FLEET_LABEL}={name},{COMPONENT_LABEL}=worker")
    out = cluster.run(
        "-n", ns, "exec", worker["metadata"]["name"], "-c", "worker", "--",
        "python", "-c", "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()))",
    ).stdout  # fmt: skip
    assert out.split() == ["65532", "65532", "[65532]"], out


def kill_containers(cluster, node: dict, pod: dict) -> None:
    """SIGKILL to the pod's containers through containerd: a crash, not a graceful delete."""
    for cs in pod["status"]["containerStatuses"]:
        cid = cs["containerID"].removeprefix("containerd://")
        realnode.run(
            node["ctr"],
            "--address",
            node["containerd_socket"],
            "-n",
            "k8s.io",
            "tasks",
            "kill",
            "-s",
            "SIGKILL",
            cid,
            timeout=60,
        )


def exactly_once(v: dict) -> None:
    """Done, and no step twice: step numbers run 1..n once each and the usage is their sum."""
    assert v["status"] == "done" and v["answer"].strip(), json.dumps(v)[:2000]
    ns = [s["n"] for s in v["steps"]]
    assert sorted(ns) == list(range(ns[0], ns[0] + len(ns))) and len(set(ns)) == len(ns) == v["stepCount"], ns
    total = sum(s["usage"]["promptTokens"] + s["usage"]["completionTokens"] for s in v["steps"])
    assert v["usage"]["totalTokens"] == total, (v["usage"], total)


def complete(v: dict) -> list[dict]:
    """The task's steps stored with their tools' observations (a resumed task never runs them again)."""
    return [s for s in v.get("steps") or () if s["observations"] is not None or not s["toolCalls"]]


def effects_once(v: dict, calls: dict[str, int], checkpointed: dict | None = None) -> None:
    """Every tool call of the task's history reached the ledger, and nothing else of the task did
    (no step that the history lost ran its tool); a call ran again only in a later attempt, and
    never when its step was complete in CHECKPOINTED, the task as stored before a kill."""
    tid = v["id"]
    want = {f"{tid}:{s['n']}:{i}" for s in v["steps"] for i in range(len(s["toolCalls"]))}
    mine = {k: c for k, c in calls.items() if k.startswith(f"{tid}:")}
    assert set(mine) == want and len(want) == TOOL_STEPS, (sorted(mine), sorted(want))
    assert all(c <= v["attempts"] for c in mine.values()), (mine, v["attempts"])
    done_before = [f"{tid}:{s['n']}:{i}" for s in complete(checkpointed or {}) for i in range(len(s["toolCalls"]))]
    assert all(mine[k] == 1 for k in done_before), f"a step complete before the kill ran its tool again: {mine}"


def resumed_from(v: dict, checkpointed: dict) -> None:
    """A task taken over after a kill went on from its checkpoint: a later attempt, done, and the
    steps stored before the kill kept as they were (model replies not asked for again, the complete
    steps' observations not replaced)."""
    assert v["attempts"] >= 2, (v["id"], v["attempts"])
    assert v["status"] == "done", f"the task taken over was not resumed: {json.dumps(v)[:2000]}"
    kept = ("n", "content", "toolCalls", "usage", "modelSeconds")
    for before, after in zip(checkpointed["steps"], v["steps"], strict=False):
        assert {k: before[k] for k in kept} == {k: after[k] for k in kept}, (before, after)
        if before["observations"] is not None:
            assert before["observations"] == after["observations"], (before, after)
    assert len(v["steps"]) == TOOL_STEPS + 1, [s["n"] for s in v["steps"]]


def test_faults_on_real_pods_lose_nothing_and_do_nothing_twice(cluster, node, fleet) -> None:
    ns, name = fleet["ns"], fleet["name"]
    api, token = fleet_api(cluster, node, fleet)
    auth = {"Authorization": f"Bearer {token}"}
    workers = f"{FLEET_LABEL}={name},{COMPONENT_LABEL}=worker"
    ledger_ip = cluster.json("-n", ns, "get", "service", "ledger")["spec"]["clusterIP"]
    ledger = ServiceClient(node["netns"], ledger_ip, LEDGER_PORT)

    # 1. A worker killed mid-task, in a task with two complete steps stored: its tasks' leases lapse
    # and the other worker (or it, restarted by the kubelet) resumes them from their checkpoints.
    ids = [submit(api, token, f"Worker crash {i}: summarise the WAL.") for i in range(6)]

    def holder(t: str) -> str:
        """The worker that took the task last (its `started` event): its pod's name, then its process
        (lifecycle.consumer_name)."""
        started = [e for e in api.events(f"/v1/tasks/{t}/events", auth, quiet=1) if e.get("type") == "started"]
        return started[-1]["worker"]

    def mid_task(v: dict) -> bool:
        return v["status"] == "running" and 2 <= len(complete(v)) <= TOOL_STEPS

    def aim() -> tuple[str, str, dict[str, dict]] | None:
        """A running task with two complete steps, the worker holding it, and the views of every task
        that worker holds, read just before the kill; None when the target finished meanwhile."""
        views = {t: task(api, token, t) for t in ids}
        target = next((t for t, v in views.items() if mid_task(v)), None)
        if target is None:
            return None
        running = [t for t, v in views.items() if v["status"] == "running"]
        with ThreadPoolExecutor(len(running)) as pool:  # each stream is read until a second of quiet
            holders = dict(zip(running, pool.map(holder, running), strict=True))
        checkpointed = {t: task(api, token, t) for t in running if holders[t] == holders[target]}
        return (target, holders[target], checkpointed) if mid_task(checkpointed[target]) else None

    target, worker, before = cluster.wait_for(aim, timeout=120, interval=0.5, desc="a running task, two steps stored")
    (victim,) = [p for p in pods(cluster, ns, workers) if worker.startswith(p["metadata"]["name"] + "-")]
    restarts = victim["status"]["containerStatuses"][0]["restartCount"]
    killed_at = time.time()
    kill_containers(cluster, node, victim)
    stored = {t: len(v["steps"]) for t, v in before.items()}
    print(f"killed {victim['metadata']['name']} holding {sorted(before)}; their steps stored: {stored}")
    cluster.wait_for(
        lambda: (
            cluster.json("-n", ns, "get", "pod", victim["metadata"]["name"])["status"]["containerStatuses"][0][
                "restartCount"
            ]
            > restarts
        ),
        timeout=120,
        desc="the kubelet restarting the killed worker",
    )
    views = {v["id"]: v for v in wait_done(cluster, api, token, ids, timeout=300)}
    status, calls = ledger.request("GET", "/calls")
    assert status == 200, (status, calls)
    # The target was killed mid-step; another task of the worker may have ended between the read and
    # the kill (then it had nothing to resume).
    resumed = [t for t in before if t == target or (views[t]["finishedAt"] or 0) > killed_at]
    for t in resumed:
        resumed_from(views[t], before[t])
    for t, v in views.items():
        exactly_once(v)
        effects_once(v, calls, before.get(t))
    print({v["id"]: v["attempts"] for v in views.values()})

    # 2. The Redis pod deleted: the StatefulSet's new pod reopens the append-only file on its volume.
    ids = [submit(api, token, f"Redis restart {i}: what is VACUUM?") for i in range(3)]
    (redis_pod,) = pods(cluster, ns, f"{FLEET_LABEL}={name},{COMPONENT_LABEL}=redis")
    cluster.run("-n", ns, "delete", "pod", redis_pod["metadata"]["name"], "--wait=false")
    cluster.wait_for(
        lambda: [
            p
            for p in pods(cluster, ns, f"{COMPONENT_LABEL}=redis")
            if p["metadata"]["uid"] != redis_pod["metadata"]["uid"] and ready(p)
        ],
        timeout=180,
        desc="a new Redis pod Ready",
    )
    # 3. The kubelet restarted: the containers keep running and the node comes back Ready.
    env = {**os.environ, **cluster.env()}
    realnode.run("bash", str(ROOT / "e2e" / "cluster" / "cluster.sh"), "restart-kubelet", timeout=300, env=env)
    ids += [submit(api, token, f"Kubelet restart {i}: what is an index?") for i in range(3)]

    views = {v["id"]: v for v in wait_done(cluster, api, token, ids, timeout=600)}
    status, calls = ledger.request("GET", "/calls")
    assert status == 200, (status, calls)
    for v in views.values():
        exactly_once(v)
        effects_once(v, calls)
    print({v["id"]: v["attempts"] for v in views.values()})
