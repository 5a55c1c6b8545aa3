"""The main job: a working fleet on the local control plane, end to end.

    python -m e2e.demo up   [--tasks N] [--model qwen|sim|smollm2|vllm] [--namespace agentfleet-demo]
                            [--scenario burst [--burst-phases 40:0.5,80:3,90:0.5]]
    python -m e2e.demo down [--namespace NS]      # stops the local processes (not the cluster)
    python -m e2e.demo status

``up`` needs a running cluster (e2e/up.sh starts it; without --kubeconfig the driver asks
``e2e/cluster.sh info`` for it). With --model sim and the demo corpus on a cluster with a real node
(``--on node``, the default there) every pod runs a container on that node: e2e/demo/onnode.py.
The rest of this module's docstring is ``--on processes``, the other models' and corpora's path.
What runs here is the code the pods would run: the operator
(python -m agentfleet.manager), the ingestion (python -m agentfleet_runtime.ingest with the args of
the Job the operator rendered), the agent workers and the task API (python -m agentfleet_runtime)
configured from the AgentFleet's runtime ConfigMap, and a Prometheus scraping the replicas and the
workers (e2e/demo/prom.py) for the operator's autoscaler. kwok only simulates pods, so those
processes run on this machine, bound to 127.0.0.1 or to the pods' IPs made local, with the
in-cluster addresses rewritten to local ones.
For the ingestion Job's pods the demo also does the kubelet's part (e2e/demo/kubelet.py): it
reports how each local run ended in the pod's status, and the cluster's job controller finishes
the Job from there.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from e2e.demo import burst, kubelet, models, onnode, prom, report
from e2e.demo.models import code_stamp
from e2e.eval.corpus import CORPORA
from e2e.harness.installers import ensure_prometheus, ensure_redis_server
from e2e.harness.ports import http_ok, port_open
from e2e.harness.procs import Procs, route_local, source_path
from e2e.harness.redis import redis_ping

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agentfleet.yaml"
CORPUS = Path(__file__).resolve().parent / "corpus"
PY = sys.executable
# The demo's default model, and its default task count (a real model on 2 CPU cores decides a few
# seconds per step; the simulator is for scale).
DEFAULT_MODEL = "sim"
TASKS_BY_MODEL = {"qwen": 8, "smollm2": 20, "sim": 20, "vllm": 20}
# Real deciding models on 2 CPU cores are slow: the 0.5B finished 5 of 8 demo tasks in 600 s here
# (the first at 313 s), so their tasks get longer before the demo calls them failed.
TASK_TIMEOUT_BY_MODEL = {"qwen": 1800.0}
GROUP = "agentfleet.io"
# Start order; down stops in reverse.
# The manual is ~13k chunks: minutes of encoding on 2 cores, more when they are shared.
INGEST_TIMEOUT = {"demo": 600, "postgres": 5400, "python": 5400}
# The marker of a namespace whose fleet runs on the real node (e2e/demo/onnode.py): `down` deletes it there.
ON_NODE = "on-node"
ORDER = ["redis", "milvus", "prometheus", "operator", "model", "scripted-agent", "api", "worker"]

GOALS = [
    "How does routing keep an agent task on the replica that holds its KV cache?",
    "What happens to running tasks when a worker is scaled down?",
    "Compare ModelReplicaSet autoscaling and AgentFleet queue scaling",
    "How is a VectorIndex filled with documents?",
    "Which embedding model does ingestion use by default?",
    "What does the Ready condition of a VectorIndex mean?",
    "How are task budgets enforced?",
    "Compare Retrieval tools and Spawn tools",
    "How do I submit a task and read its answer?",
    "Where does the operator write the nodes a replica was placed on?",
    "How is the cost of a task computed?",
    "What does the operator do when a replica keeps failing?",
]


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --- cluster access -------------------------------------------------------------------------------


class Kubectl:
    def __init__(self, kubectl: str, kubeconfig: str) -> None:
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def get(self, *args: str) -> Any | None:
        proc = self.run(*args, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None


def cluster_info() -> dict[str, Any]:
    proc = subprocess.run(
        ["bash", str(ROOT / "e2e" / "cluster.sh"), "info"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"no cluster: `bash e2e/cluster.sh info` failed ({proc.stderr.strip()}); start it with `bash e2e/up.sh`"
        )
    return json.loads(proc.stdout)


def wait(predicate, timeout: float, desc: str, interval: float = 0.5):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {desc}")
        time.sleep(interval)


def http_json(
    url: str, body: Any = None, token: str | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            raw = resp.read()
            return resp.status, json.loads(
                raw
            ) if raw and resp.headers.get_content_type() == "application/json" else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# --- the example, with local endpoints --------------------------------------------------------------


def gpu_inventory(kc: Kubectl) -> dict[str, int]:
    """GPU product -> most GPUs on one Ready node."""
    out: dict[str, int] = {}
    for n in kc.json("get", "nodes")["items"]:
        labels = n["metadata"].get("labels", {})
        product = labels.get("nvidia.com/gpu.product")
        gpus = int((n.get("status", {}).get("allocatable") or {}).get("nvidia.com/gpu", "0") or 0)
        if product and gpus:
            out[product] = max(out.get(product, 0), gpus)
    return out


def localize(
    docs: list[dict[str, Any]], *, milvus_uri: str, redis_url: str, prometheus_url: str, inventory: dict[str, int]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The example's objects with their endpoints pointed at the local processes; a GPU product no
    simulated node has is swapped for one that fits. Returns the objects and what was changed."""
    notes = []
    out = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        kind, spec, name = doc["kind"], doc.setdefault("spec", {}), doc["metadata"]["name"]
        if kind == "VectorIndex" and "milvus" in spec:
            notes.append(f"VectorIndex/{name} spec.milvus.uri {spec['milvus'].get('uri')} -> {milvus_uri}")
            spec["milvus"]["uri"] = milvus_uri
        if kind == "AgentFleet" and "redis" in spec:
            notes.append(f"AgentFleet/{name} spec.redis.url {spec['redis'].get('url')} -> {redis_url}")
            spec["redis"] = {"url": redis_url}
        if kind == "ModelReplicaSet" and "prometheusURL" in (spec.get("autoscaling") or {}):
            notes.append(
                f"ModelReplicaSet/{name} spec.autoscaling.prometheusURL {spec['autoscaling']['prometheusURL']} -> "
                f"{prometheus_url}"
            )
            spec["autoscaling"]["prometheusURL"] = prometheus_url
        if kind == "ModelReplicaSet":
            engine = spec.get("engine") or {}
            need = int(engine.get("tensorParallelSize", 1))
            product = (spec.get("gpu") or {}).get("product")
            if product and inventory.get(product, 0) < need:
                fit = max((p for p, n in inventory.items() if n >= need), key=lambda p: inventory[p], default=None)
                if fit:
                    notes.append(
                        f"ModelReplicaSet/{name} spec.gpu.product {product} -> {fit} (no simulated node has "
                        f"{need} {product})"
                    )
                    spec["gpu"]["product"] = fit
            else:
                notes.append(f"ModelReplicaSet/{name} GPU placement kept: {product} x{need} fits the simulated nodes")
        out.append(doc)
    return out, notes


QWEN_PROMPT = (
    "You are a support agent for agentfleet, a Kubernetes operator for LLM agent fleets.\n"
    "Search the documentation before answering and answer only from the passages you found, citing their sources.\n"
    "When a question compares two things, delegate: give each thing to its own sub-agent as one goal, "
    "then answer from their answers.\n"
    "Keep answers to a few sentences."
)


def small_model_settings(objs: list[dict[str, Any]]) -> list[str]:
    """The AgentFleet settings that make a small CPU model usable (AgentFleet spec, not demo code):
    JSON decisions constrained by a schema, search first, no ticket calls to an endpoint that is not
    there, and a prompt that says when to delegate."""
    notes = []
    for o in objs:
        if o["kind"] != "AgentFleet":
            continue
        spec = o["spec"]
        tools = {t["name"]: t["type"] for t in spec.get("tools") or []}
        policies = [{"tool": n, "firstStep": True} for n, k in tools.items() if k == "Retrieval"]
        policies += [{"tool": n, "maxCallsPerTask": 0} for n, k in tools.items() if k == "HTTP"]
        spec["decisions"] = {"mode": "JSONSchema", "repairAttempts": 1, "toolPolicies": policies}
        spec["systemPrompt"] = {"inline": QWEN_PROMPT}
        notes.append(
            f"AgentFleet/{o['metadata']['name']} spec.decisions {json.dumps(spec['decisions'])}; "
            "spec.systemPrompt: search, cite, delegate comparisons"
        )
    return notes


def with_corpus(objs: list[dict[str, Any]], name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The example's objects with an evaluation corpus's VectorIndex source and AgentFleet settings
    (e2e/eval/corpus.py), or unchanged for the demo corpus; and what was changed. Pure."""
    corpus = CORPORA.get(name)
    if not corpus:
        return objs, []
    swap = {"VectorIndex": corpus.with_source, "AgentFleet": corpus.with_fleet}
    note = f"VectorIndex source and AgentFleet settings -> {corpus.title}'s ({corpus.objects.relative_to(ROOT)})"
    return [swap[o["kind"]](o) if o["kind"] in swap else o for o in objs], [note]


# --- the driver -------------------------------------------------------------------------------------


def unfilled_columns(
    mrs: str, mrs_status: dict[str, Any], fleet: str, fleet_status: dict[str, Any], *, since: float, finished: int
) -> list[str]:
    """The printer columns a run of ``finished`` tasks should have filled and has not yet: the
    autoscaler's QUEUE and GOODPUT observed after ``since``; the AgentFleet controller's TASKS/H
    once a pass counted every finished task (a pass that read Redis while the last task was
    finishing shows a count that is filled and still short) and its P95."""
    obs = mrs_status.get("observed") or {}
    fresh = obs.get("observedAt", "") >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    out = []
    for field in ("queueDepth", "goodput"):
        if obs.get(field) is None or not fresh:
            metrics = next((c for c in mrs_status.get("conditions") or [] if c.get("type") == "MetricsAvailable"), {})
            out.append(
                f"ModelReplicaSet {mrs} status.observed.{field} "
                f"({metrics.get('reason', 'no MetricsAvailable condition')}: {metrics.get('message', '')})"
            )
    counted = fleet_status.get("tasksPerHour") or 0
    if counted < finished:
        out.append(f"AgentFleet {fleet} status.tasksPerHour ({counted} counted of {finished} finished)")
    if not fleet_status.get("taskP95Seconds"):
        out.append(f"AgentFleet {fleet} status.taskP95Seconds")
    return out


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ns = args.namespace
        if args.kubeconfig:
            kubectl = args.kubectl or shutil.which("kubectl") or "kubectl"
            state = Path(args.state_dir or Path(args.kubeconfig).parent)
            self.kc = Kubectl(kubectl, args.kubeconfig)
        else:
            info = cluster_info()
            self.kc = Kubectl(args.kubectl or info["kubectl"], info["kubeconfig"])
            state = Path(args.state_dir or info["state_dir"])
        if not Path(self.kc.kubeconfig).is_file():
            # Checked before anything is written: a demo folder left in the cluster's state
            # directory would make `e2e/cluster.sh up` refuse that directory afterwards.
            raise SystemExit(
                f"no cluster: {self.kc.kubeconfig} does not exist; start one with `bash e2e/up.sh` or `bash "
                "e2e/cluster.sh up`"
            )
        self.dir = state / "demo" / self.ns
        self.procs = Procs(self.dir)
        self.prom_dir = self.dir / "prometheus"
        # Simulator flags a scenario changes (burst.SIM_TIMING).
        self.sim_timing: dict[str, str] = dict(burst.SIM_TIMING) if args.scenario == "burst" else {}
        self.pods: dict[str, tuple[str, str, int]] | None = (
            None  # replica -> (pod, local pod IP, port) with EndpointSlice discovery
        )
        # On the real node: the VectorIndex sources as volumes of the node (onnode.Node.corpus_claims).
        self.on_node_sources: Callable[[list[dict[str, Any]]], list[str]] | None = None
        self.env = {**os.environ, "KUBECONFIG": self.kc.kubeconfig, "PYTHONUNBUFFERED": "1"}
        self.env["PYTHONPATH"] = source_path(os.environ.get("PYTHONPATH"))

    def start(
        self, name: str, settings: dict[str, Any], build, ports: list[str], ready, timeout: float = 60
    ) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        meta, reused = self.procs.ensure(name, settings, build, ports, ready, env=self.env, timeout=timeout)
        ports_s = ", ".join(f"{k} {v}" for k, v in meta["ports"].items())
        say(
            f"  {name:<10} pid {meta['pid']:<7} {'reused' if reused else 'started'}  {ports_s}  log "
            f"{self.procs.log_path(name)}"
        )
        return meta

    def local_model_servers(  # type: ignore[no-untyped-def]
        self, names: list[str], settings: dict[str, Any], command, health: str, timeout: float = 240
    ) -> dict[str, str]:
        """One local model server per placed replica (command(port) -> argv); replica name -> its /v1 URL."""
        urls = {}
        for i, name in enumerate(names):
            meta = self.start(
                f"model-{i}",
                settings,
                lambda p: command(p["port"]),
                ["port"],
                lambda m: http_ok(f"http://127.0.0.1:{m['ports']['port']}{health}"),
                timeout=timeout,
            )
            urls[name] = f"http://127.0.0.1:{meta['ports']['port']}/v1"
        return urls

    # -- infrastructure --
    def crds(self) -> None:
        self.kc.run(
            "apply", "--server-side", "--field-manager=agentfleet", "--force-conflicts", "-f", str(ROOT / "crds")
        )
        for crd in ("modelreplicasets", "vectorindexes", "agentfleets"):
            self.kc.run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}.{GROUP}")
        ns = self.kc.run("create", "namespace", self.ns, "--dry-run=client", "-o", "yaml").stdout
        self.kc.run("apply", "-f", "-", input=ns)

    def redis(self) -> str:
        binary = ensure_redis_server()
        data = self.dir / "redis"
        data.mkdir(parents=True, exist_ok=True)

        def build(p: dict[str, int]) -> list[str]:
            return [
                binary,
                "--port",
                str(p["port"]),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--maxclients",
                "10000",
            ]

        meta = self.start("redis", {"binary": binary}, build, ["port"], lambda m: redis_ping(m["ports"]["port"]))
        return f"redis://127.0.0.1:{meta['ports']['port']}/0"

    def milvus(self) -> str:
        if importlib.util.find_spec("milvus_lite") is None:
            subprocess.run([PY, "-m", "pip", "install", "-q", "milvus-lite>=3.2"], check=True)
        data = self.dir / "milvus"
        data.mkdir(parents=True, exist_ok=True)

        def build(p: dict[str, int]) -> list[str]:
            return [
                PY,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(data),
                "--host",
                "127.0.0.1",
                "--port",
                str(p["port"]),
            ]

        meta = self.start(
            "milvus", {"data": str(data)}, build, ["port"], lambda m: _milvus_ready(m["ports"]["port"]), timeout=90
        )
        return f"http://127.0.0.1:{meta['ports']['port']}"

    def prometheus(self) -> str:
        """A private Prometheus (Debian's package) scraping the replicas and the workers listed in
        its file_sd files (e2e/demo/prom.py), as the chart's PodMonitors have a cluster's scrape them."""
        binary = ensure_prometheus()
        pdir = self.prom_dir
        pdir.mkdir(parents=True, exist_ok=True)
        for sd in (prom.REPLICAS_SD, prom.WORKERS_SD):
            if not (pdir / sd).exists():
                prom.write_sd(pdir / sd, [])
        config = pdir / "prometheus.yml"
        text = json.dumps(prom.scrape_config(pdir), indent=1)  # JSON is YAML
        config.write_text(text)

        def build(p: dict[str, int]) -> list[str]:
            return [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={pdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{p['port']}",
                "--storage.tsdb.retention.time=1d",
            ]

        meta = self.start(
            "prometheus",
            {"binary": binary, "config": text},
            build,
            ["port"],
            lambda m: http_ok(f"http://127.0.0.1:{m['ports']['port']}/-/ready"),
        )
        return f"http://127.0.0.1:{meta['ports']['port']}"

    def scrape_replicas(self, mrs: str, endpoints: dict[str, str]) -> None:
        """Lists each placed replica's /metrics for Prometheus under its pod's name: the pod's
        address when the pod IPs are local, else the local server's."""
        pods = self.kc.json("-n", self.ns, "get", "pods", "-l", f"agentfleet.io/modelreplicaset={mrs}")["items"]
        pod_of = {
            p["metadata"]["labels"].get("agentfleet.io/replica"): p["metadata"]["name"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
        }
        targets = {}
        for replica, url in endpoints.items():
            if replica in pod_of:
                targets[pod_of[replica]] = url.split("//", 1)[1].split("/", 1)[0]
        prom.write_sd(self.prom_dir / prom.REPLICAS_SD, prom.replica_targets(self.ns, mrs, targets))

    def scrape_workers(self, fleet: str, metrics_urls: list[str]) -> None:
        workers = {f"{fleet}-worker-{i}": url.split("//", 1)[1].split("/", 1)[0] for i, url in enumerate(metrics_urls)}
        prom.write_sd(self.prom_dir / prom.WORKERS_SD, prom.worker_targets(self.ns, fleet, workers))

    def columns_filled(self, mrs: str, fleet: str, since: float, finished: int, timeout: float = 60) -> list[str]:
        """Waits until the printer columns the tasks should fill are filled: the autoscaler's
        observation from Prometheus made after ``since`` (ModelReplicaSet QUEUE, GOODPUT) and the
        AgentFleet controller's task figures from Redis (TASKS/H counting the ``finished`` tasks,
        P95). Returns what is still blank after ``timeout``, each with the reason the operator gave."""

        def blank() -> list[str]:
            m = (self.kc.get("-n", self.ns, "get", f"modelreplicasets.{GROUP}", mrs) or {}).get("status") or {}
            a = (self.kc.get("-n", self.ns, "get", f"agentfleets.{GROUP}", fleet) or {}).get("status") or {}
            return unfilled_columns(mrs, m, fleet, a, since=since, finished=finished)

        deadline = time.monotonic() + timeout
        while (missing := blank()) and time.monotonic() < deadline:
            time.sleep(1)
        return missing

    def operator(self, prometheus_url: str) -> None:
        def build(p: dict[str, int]) -> list[str]:
            # The default Prometheus: the AgentFleet workers' autoscaling reads it (a
            # ModelReplicaSet names its own in spec.autoscaling.prometheusURL).
            return [
                "env",
                f"AGENTFLEET_PROMETHEUS_URL={prometheus_url}",
                PY,
                "-m",
                "agentfleet.manager",
                "-n",
                self.ns,
                "--liveness",
                f"http://127.0.0.1:{p['health']}/healthz",
                "--resync-seconds",
                "10",
            ]

        self.start(
            "operator",
            {
                "kubeconfig": self.kc.kubeconfig,
                "ns": self.ns,
                "code": code_stamp(ROOT / "operator", ROOT / "shared"),
                "prometheus": prometheus_url,
            },
            build,
            ["health"],
            lambda m: http_ok(f"http://127.0.0.1:{m['ports']['health']}/healthz"),
        )

    # -- the application --
    def apply_text(self, text: str) -> None:
        """Server-side apply of YAML or JSON into the demo namespace, under the demo's field manager."""
        self.kc.run(
            "apply",
            "--server-side",
            "--field-manager=agentfleet-demo",
            "--force-conflicts",
            "-n",
            self.ns,
            "-f",
            "-",
            input=text,
        )

    def apply_example(self, milvus_uri: str, redis_url: str, prometheus_url: str) -> dict[str, dict[str, Any]]:
        docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
        objs, notes = localize(
            docs,
            milvus_uri=milvus_uri,
            redis_url=redis_url,
            prometheus_url=prometheus_url,
            inventory=gpu_inventory(self.kc),
        )
        return self.apply_objects(objs, notes)

    def apply_objects(self, objs: list[dict[str, Any]], notes: list[str]) -> dict[str, dict[str, Any]]:
        """The example's objects with the mode's, the scenario's and the corpus's settings, applied with
        the sample corpus's ConfigMap; NOTES (what was changed so far) are printed with the rest."""
        if self.args.model == "qwen":
            notes += small_model_settings(objs)
        if self.args.scenario == "burst":
            notes += burst.with_burst_autoscaling(objs)
        objs, corpus_notes = with_corpus(objs, self.args.corpus)
        notes += corpus_notes
        if self.on_node_sources:
            notes += self.on_node_sources(objs)
        for n in notes:
            say(f"  {n}")
        # The example's VectorIndex reads a ConfigMap of documents: it holds the sample corpus.
        vi_sources = [
            o["spec"]["source"]["configMap"]["name"]
            for o in objs
            if o["kind"] == "VectorIndex" and (o["spec"].get("source") or {}).get("configMap")
        ]
        for cm in vi_sources:
            text = self.kc.run(
                "create", "configmap", cm, "-n", self.ns, f"--from-file={CORPUS}", "--dry-run=client", "-o", "yaml"
            ).stdout
            self.apply_text(text)
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        self.apply_text(body)
        say(
            f"  applied {EXAMPLE.relative_to(ROOT)}: "
            + ", ".join(f"{o['kind']}/{o['metadata']['name']}" for o in objs)
            + (f"; ConfigMap/{', '.join(vi_sources)} from {CORPUS.relative_to(ROOT)}" if vi_sources else "")
        )
        return {o["kind"]: o for o in objs}

    def placements(self, mrs: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        def ready() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            obj = self.kc.get("-n", self.ns, "get", f"modelreplicasets.{GROUP}", mrs)
            st = (obj or {}).get("status") or {}
            conds = {c["type"]: c for c in st.get("conditions") or []}
            placed = [p for p in st.get("placements") or [] if p.get("phase") == "Ready"]
            if conds.get("Ready", {}).get("status") == "True" and placed and len(placed) == st.get("readyReplicas"):
                return obj, placed
            return None

        return wait(
            ready,
            180,
            f"ModelReplicaSet {mrs} Ready with its placements (operator log {self.procs.log_path('operator')})",
        )

    def pod_addresses(self, mrs: str, names: list[str]) -> dict[str, tuple[str, str, int]] | None:
        """replica name -> (pod, pod IP, its "http" container port), each pod IP made a local
        address of this machine (Linux AnyIP: ``ip route replace local IP/32 dev lo``), so a
        replica's server here listens where the replica's EndpointSlice points and the workers
        find it through EndpointSlice discovery, as in a cluster. None when the routes cannot be
        added (needs root or passwordless sudo): the workers then get static endpoints."""
        pods = self.kc.json("-n", self.ns, "get", "pods", "-l", f"agentfleet.io/modelreplicaset={mrs}")["items"]
        by_replica: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            if not p["metadata"].get("deletionTimestamp"):
                by_replica.setdefault(p["metadata"]["labels"].get("agentfleet.io/replica", ""), []).append(p)
        out: dict[str, tuple[str, str, int]] = {}
        for name in names:
            group = by_replica.get(name) or []
            if len(group) != 1 or not group[0]["status"].get("podIP"):
                return None  # multi-node replicas (one server for several pods) keep static endpoints
            pod = group[0]
            port = next(
                (
                    cp["containerPort"]
                    for c in pod["spec"]["containers"]
                    for cp in c.get("ports") or []
                    if cp.get("name") == "http"
                ),
                None,
            )
            if port is None:
                return None
            out[name] = (pod["metadata"]["name"], pod["status"]["podIP"], int(port))
        for _, ip, _ in out.values():
            error = route_local(ip, self.dir / "local-routes")
            if error:
                say(f"  cannot make pod IP {ip} local ({error}): static endpoints instead of EndpointSlice discovery")
                return None
        return out

    def worker_kubeconfig(self, fleet: str) -> Path:
        """A kubeconfig that is the AgentFleet's worker ServiceAccount (a TokenRequest token; the
        RBAC is the Role the operator rendered for the fleet), not the admin: the local workers
        watch EndpointSlices with exactly what a worker pod may do."""
        wait(
            lambda: self.kc.get("-n", self.ns, "get", "rolebinding", f"{fleet}-endpointslices"),
            60,
            f"the workers' RoleBinding {fleet}-endpointslices",
        )
        token = self.kc.run("-n", self.ns, "create", "token", fleet, "--duration=24h").stdout.strip()
        admin = yaml.safe_load(Path(self.kc.kubeconfig).read_text())
        cluster = admin["clusters"][0]
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": fleet, "user": {"token": token}}],
            "contexts": [{"name": fleet, "context": {"cluster": cluster["name"], "user": fleet, "namespace": self.ns}}],
            "current-context": fleet,
        }
        path = self.dir / "worker-kubeconfig"
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def model_servers(
        self, mrs_obj: dict[str, Any], placements: list[dict[str, Any]], retrieval_tool: str, spawn_tool: str | None
    ) -> tuple[dict[str, str], str]:
        """replica name -> OpenAI base URL the workers call, and a note on what answers."""
        spec = mrs_obj["spec"]
        served = spec["model"].get("servedName") or spec["model"]["name"].split("/")[-1]
        names = [p["name"] for p in placements]
        mode = self.args.model
        # A switch of --model replaces the other mode's servers.
        for name in self.procs.names():
            if (mode == "sim" and name.startswith("model-")) or (mode != "sim" and name in ("model", "scripted-agent")):
                self.procs.stop(name)
        return models.LAUNCHERS[mode](self, mrs_obj, names, served, (retrieval_tool, spawn_tool))

    def ingest(self, vi_name: str, milvus_uri: str) -> None:
        """Runs the ingestion Job the operator rendered, as a local process per Job pod, and reports
        each pod's outcome as its kubelet would, so the Job and the VectorIndex finish as in a cluster."""
        from agentfleet_contract.vectorindex import VectorIndex

        from agentfleet.render import vectorindex as render

        def job() -> dict[str, Any] | None:
            vi = self.kc.get("-n", self.ns, "get", f"vectorindexes.{GROUP}", vi_name)
            name = (((vi or {}).get("status") or {}).get("ingestion") or {}).get("jobName")
            return self.kc.get("-n", self.ns, "get", "job", name) if name else None

        live: dict[str, Any] | None
        try:
            live = wait(job, 60, f"the ingestion Job of VectorIndex {vi_name}")
            container = live["spec"]["template"]["spec"]["containers"][0]
            args = list(container.get("args") or [])
            completions = int(live["spec"].get("completions") or 1)
            source = f"Job {live['metadata']['name']} rendered by the operator"
        except RuntimeError:
            live, container = None, {}
            vi = VectorIndex.model_validate(self.kc.json("-n", self.ns, "get", f"vectorindexes.{GROUP}", vi_name))
            rev = render.source_revision(vi.spec)
            args = render.ingestion_args(vi.spec, render.row_tag(rev, render.ingestion_key(vi.spec, rev, milvus_uri)))
            completions = vi.spec.ingestion.parallelism
            source = "args from agentfleet.render.vectorindex (the operator rendered no Job in time)"
        if "--source-dir" in args:
            corpus = CORPORA.get(self.args.corpus)
            args[args.index("--source-dir") + 1] = str(corpus.ensure() if corpus else CORPUS)
        # Chunk ids are stable, so a second run only rewrites the same rows: skip it when this
        # Milvus already holds this revision (the outcomes are kept to report to a Job not yet told).
        marker = self.dir / "ingested"
        stamp = json.dumps({"args": args, "milvus": (self.procs.get("milvus") or {}).get("pid")})
        outcomes: dict[int, kubelet.Outcome] = {}
        try:
            kept = json.loads(marker.read_text())
            if isinstance(kept, dict) and kept.get("stamp") == stamp:
                outcomes = {int(i): kubelet.Outcome(**o) for i, o in kept["outcomes"].items()}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if outcomes and (live is None or kubelet.finished(live)):
            say(f"  {source}: this revision is already in the collection, skipped")
            return
        policy = container.get("terminationMessagePolicy")

        def run(i: int) -> kubelet.Outcome:
            if i in outcomes:
                say(
                    f"  worker {i}/{completions}: already ran "
                    f"({'succeeded' if outcomes[i].succeeded else f'exit {outcomes[i].exit_code}'}), reported "
                    "again"
                )
                return outcomes[i]
            outcome = self.run_ingest_worker(i, args, milvus_uri, policy)
            outcomes[i] = outcome
            return outcome

        say(f"  {source}: python -m agentfleet_runtime.ingest {' '.join(args)}")
        if live is None:
            for i in range(completions):
                if not run(i).succeeded:
                    raise RuntimeError(
                        f"ingestion worker {i} failed ({outcomes[i].exit_code}): {outcomes[i].message[-3000:]}"
                    )
        else:
            done = self.run_job_pods(live, container["name"], run)
            why = next(
                (
                    c.get("message") or c.get("reason")
                    for c in done["status"].get("conditions") or []
                    if c.get("type") == kubelet.finished(done)
                ),
                "",
            )
            st = done.get("status") or {}
            say(
                f"  Job {done['metadata']['name']}: {kubelet.finished(done)} ({why}); succeeded "
                f"{st.get('succeeded', 0)}, failed {st.get('failed', 0)} (the job controller's count)"
            )
            if kubelet.finished(done) != "Complete":
                raise RuntimeError(f"ingestion Job {done['metadata']['name']} failed: {why}")
            self.wait_ingested(vi_name, done["metadata"]["name"])
        if all(o.succeeded for o in outcomes.values()):
            marker.write_text(json.dumps({"stamp": stamp, "outcomes": {i: o.__dict__ for i, o in outcomes.items()}}))

    def run_ingest_worker(self, i: int, args: list[str], milvus_uri: str, policy: str | None) -> kubelet.Outcome:
        """One ingestion worker (Job completion index ``i``) as a local process."""
        term = self.dir / f"ingest-{i}.termination-log"
        term.unlink(missing_ok=True)
        env = {
            **self.env,
            "MILVUS_URI": milvus_uri,
            "JOB_COMPLETION_INDEX": str(i),
            "INGEST_TERMINATION_LOG": str(term),
        }
        started, t0 = _now(), time.monotonic()
        proc = subprocess.run(
            [PY, "-m", "agentfleet_runtime.ingest", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=INGEST_TIMEOUT[self.args.corpus],
        )
        output = proc.stdout + proc.stderr
        with open(self.procs.log_path("ingest"), "a") as log:
            log.write(output)
        written = term.read_text(errors="replace") if term.exists() else ""
        say(f"  worker {i}: exit {proc.returncode}, {_ingest_summary(output)} in {time.monotonic() - t0:.1f}s")
        return kubelet.Outcome(
            proc.returncode, kubelet.termination_message(written, output, proc.returncode, policy), started, _now()
        )

    def run_job_pods(self, job: dict[str, Any], container: str, run, settle: float = 120) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        """Runs each pod of ``job`` the demo has not run yet (``run(completion index)``) and
        reports its outcome in the pod's status; returns the Job once the job controller has
        finished it. A failed pod is replaced by the job controller (backoffLimit) and the
        replacement is run in turn; the podFailurePolicy's exit code fails the Job at once."""
        name = job["metadata"]["name"]
        handled: set[str] = set()
        deadline = time.monotonic() + settle
        while True:
            pods = self.kc.json("-n", self.ns, "get", "pods", "-l", f"job-name={name}")["items"]
            for pod in sorted((p for p in pods if kubelet.to_run(p, handled)), key=kubelet.completion_index):
                handled.add(pod["metadata"]["uid"])
                outcome = run(kubelet.completion_index(pod))
                pod_name = pod["metadata"]["name"]
                now = self.kc.get("-n", self.ns, "get", "pod", pod_name)  # kwok may have finished it meanwhile
                if now is None or now["metadata"]["uid"] != pod["metadata"]["uid"]:
                    continue
                patch = kubelet.terminated_status(now, container, outcome)
                if patch is None:
                    raise RuntimeError(
                        f"ingestion worker {kubelet.completion_index(pod)} failed ({outcome.exit_code}) but kwok "
                        f"already made pod {pod_name} Succeeded: "
                        f"{outcome.message[-3000:]}"
                    )
                self.kc.run(
                    "patch",
                    "-n",
                    self.ns,
                    "pod",
                    pod_name,
                    "--subresource=status",
                    "--type=strategic",
                    "-p",
                    json.dumps(patch),
                )
                say(
                    f"  pod {pod_name}: {patch['status'].get('phase', now['status'].get('phase'))}, reported as "
                    "its kubelet would"
                )
                deadline = time.monotonic() + settle
            live = self.kc.json("-n", self.ns, "get", "job", name)
            if kubelet.finished(live):
                return live
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Job {name} did not finish within {settle:.0f}s of its last pod's report (status "
                    f"{json.dumps(live.get('status'))})"
                )
            time.sleep(1)

    def wait_ingested(self, vi_name: str, job_name: str) -> None:
        """Until the operator has seen the Job finish and read the workers' records."""

        def ingested() -> dict[str, Any] | None:
            st = (self.kc.get("-n", self.ns, "get", f"vectorindexes.{GROUP}", vi_name) or {}).get("status") or {}
            cond = next((c for c in st.get("conditions") or [] if c.get("type") == "Ingested"), {})
            done = (st.get("ingestion") or {}).get("jobName") == job_name and cond.get("reason") in (
                "IngestionSucceeded",
                "IngestionFailed",
            )
            return cond if done and (st.get("ingestion") or {}).get("documentsDone") else None

        cond = wait(
            ingested,
            60,
            f"VectorIndex {vi_name} to report the Job's outcome (operator log {self.procs.log_path('operator')})",
            interval=1,
        )
        say(f"  VectorIndex {vi_name}: Ingested {cond['status']} ({cond['reason']}): {cond.get('message', '')}")

    def runtime_config(
        self,
        af: dict[str, Any],
        mrs: dict[str, Any],
        vi: dict[str, Any],
        redis_url: str,
        milvus_uri: str,
        endpoints: dict[str, str],
    ) -> tuple[dict[str, Any], str]:
        from agentfleet_contract.runtime_config import ModelTarget, RuntimeConfig, runtime_config

        fleet = af["metadata"]["name"]
        served = mrs["spec"]["model"].get("servedName") or mrs["spec"]["model"]["name"].split("/")[-1]
        cm = self.kc.get("-n", self.ns, "get", "configmap", f"{fleet}-runtime")
        if cm and "runtime.yaml" in (cm.get("data") or {}):
            doc = yaml.safe_load(cm["data"]["runtime.yaml"])
            source = f"ConfigMap {fleet}-runtime, rendered by the AgentFleet controller"
        else:
            doc = runtime_config(
                {"metadata": {"name": fleet, "namespace": self.ns}, "spec": af["spec"]},
                primary=ModelTarget(f"{mrs['metadata']['name']}-replicas", served),
                redis_url=af["spec"]["redis"]["url"],
                vector_index=vi["spec"],
                milvus_uri=vi["spec"]["milvus"]["uri"],
            )
            source = f"runtime_config() here: no ConfigMap {fleet}-runtime yet (the AgentFleet controller renders it)"
        urls = list(endpoints.values())
        doc["redisUrl"] = redis_url
        doc.setdefault("model", {})
        doc["model"]["baseUrl"] = urls[0]
        doc["model"]["name"] = served
        routing = doc.get("modelRouting") or {
            "primary": {
                "modelReplicaSet": mrs["metadata"]["name"],
                "model": served,
                "routing": mrs["spec"].get("routing") or {},
            }
        }
        if af["spec"].get("streamModelCalls"):
            routing["stream"] = True
        if "rateLimit" not in routing and af["spec"].get("rateLimit"):
            routing["rateLimit"] = af["spec"]["rateLimit"]
        if self.pods:
            # The workers watch the replicas Service's EndpointSlices, which point at the local pod addresses.
            routing["primary"].pop("endpoints", None)
        else:
            routing["primary"]["endpoints"] = urls  # static replicas instead of the Service's EndpointSlices
        routing["namespace"] = self.ns
        doc["modelRouting"] = routing
        if doc.get("retrieval"):
            doc["retrieval"]["uri"] = milvus_uri
            doc["retrieval"].setdefault("vectorIndex", {}).setdefault("milvus", {})["uri"] = milvus_uri
        doc["listenHost"] = "127.0.0.1"
        tokens = self.dir / "api-tokens"
        if not tokens.exists():
            tokens.write_text(secrets.token_urlsafe(24) + "\n")
        doc.setdefault("api", {})["tokensFile"] = str(tokens)
        if self.args.model == "smollm2":
            doc["model"]["maxOutputTokens"] = 256  # ~6 s per call on two CPU cores instead of ~25 s
        if self.args.model == "qwen":
            doc["model"]["maxOutputTokens"] = 320  # a decision or a cited answer; bounds a rambling step on CPU
            doc["model"]["timeoutSeconds"] = 180
        RuntimeConfig.model_validate(doc)
        return doc, source

    def runtime(self, doc: dict[str, Any], workers: int) -> tuple[str, list[str]]:
        """Starts the task API and ``workers`` workers; returns the API URL and the workers' metrics URLs."""
        path = self.dir / "runtime.yaml"
        text = yaml.safe_dump(doc, sort_keys=False)
        path.write_text(text)
        digest = hashlib.sha256((text + code_stamp(ROOT / "runtime", ROOT / "shared")).encode()).hexdigest()[:16]
        api = self.start(
            "api",
            {"config": digest},
            lambda p: [
                "env",
                f"AGENTFLEET_API_PORT={p['port']}",
                PY,
                "-m",
                "agentfleet_runtime",
                "api",
                "--config",
                str(path),
            ],
            ["port"],
            lambda m: http_ok(f"http://127.0.0.1:{m['ports']['port']}/readyz"),
        )
        metrics = []
        kube = [f"KUBECONFIG={self.worker_kubeconfig(doc['fleet'])}"] if self.pods else []
        for i in range(workers):
            m = self.start(
                f"worker-{i}",
                {"config": digest, "discovery": bool(kube)},
                lambda p: [
                    "env",
                    f"AGENTFLEET_METRICS_PORT={p['metrics']}",
                    *kube,
                    PY,
                    "-m",
                    "agentfleet_runtime",
                    "worker",
                    "--config",
                    str(path),
                ],
                ["metrics"],
                lambda m: http_ok(f"http://127.0.0.1:{m['ports']['metrics']}/readyz"),
            )
            metrics.append(f"http://127.0.0.1:{m['ports']['metrics']}/metrics")
        for name in self.procs.names():  # fewer workers than last time
            if name.startswith("worker-") and int(name.split("-")[1]) >= workers:
                self.procs.stop(name)
        return f"http://127.0.0.1:{api['ports']['port']}", metrics


def _milvus_ready(port: int) -> bool:
    if not port_open(port):
        return False
    try:
        from pymilvus import MilvusClient

        c = MilvusClient(uri=f"http://127.0.0.1:{port}", timeout=5, dedicated=True)
        c.get_server_version(timeout=5)
        c.close()
        return True
    except Exception:  # noqa: BLE001 - still starting
        return False


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _ingest_summary(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if "chunks" in line or "documents" in line:
            return line.split("agentfleet_runtime.ingest: ")[-1].strip()[:200]
    return text.strip().splitlines()[-1][:200] if text.strip() else "(no output)"


def check_model_mode(mode: str) -> None:
    """Refuse --model vllm up front, before anything starts, when it cannot run here."""
    if mode != "vllm":
        return
    if not _has_gpu():
        raise SystemExit(
            "--model vllm needs an NVIDIA GPU and this machine has none (nvidia-smi -L failed or is missing); "
            "use --model sim (default) or --model smollm2 (a real model on CPU)"
        )
    if importlib.util.find_spec("vllm") is None:
        raise SystemExit("--model vllm needs the vllm package in this venv: .venv/bin/pip install vllm")
    weights = os.environ.get("AGENTFLEET_DEMO_VLLM_MODEL")
    if not weights or not Path(weights).exists():
        raise SystemExit(
            "--model vllm needs local weights (nothing is downloaded): set AGENTFLEET_DEMO_VLLM_MODEL to a model "
            "directory"
        )


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0


# --- tasks ------------------------------------------------------------------------------------------


def run_tasks(api: str, token: str, n: int, run_id: str, timeout: float) -> list[dict[str, Any]]:
    ids = []
    for i in range(n):
        goal = GOALS[i % len(GOALS)]
        status, body = http_json(
            f"{api}/v1/tasks",
            # The tenant is the token's (one here); the body may not name one (docs/security.md).
            {"goal": goal, "metadata": {"demo": run_id, "client": f"client-{i % 3}"}},
            token,
            headers={"Idempotency-Key": f"demo-{run_id}-{i}"},
        )
        if status not in (200, 201):
            raise RuntimeError(f"POST /v1/tasks answered {status}: {body}")
        ids.append(body["id"])
    tty = sys.stdout.isatty()
    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    last_line = -1
    while True:
        for tid in ids:
            if tid in results:
                continue
            status, body = http_json(f"{api}/v1/tasks/{tid}?steps=0", token=token)
            if status == 200 and body.get("status") in ("done", "dead", "cancelled"):
                results[tid] = body
        failed = sum(1 for r in results.values() if r["status"] != "done")
        line = report.bar(len(results), n, failed, elapsed=time.monotonic() - t0)
        if tty:
            print("\r" + line, end="", flush=True)
        elif len(results) == n or len(results) - last_line >= max(1, n // 5):
            say(line)
            last_line = len(results)
        if len(results) == n:
            break
        if time.monotonic() - t0 > timeout:
            if tty:
                print()
            raise RuntimeError(f"only {len(results)}/{n} tasks finished within {timeout:.0f}s")
        time.sleep(0.3)
    if tty:
        print()
    return [results[t] for t in ids]


def task_tree(api: str, token: str, task_id: str) -> dict[str, Any]:
    """A task with its steps, and its sub-agents' trees (the task API's own records)."""
    status, body = http_json(f"{api}/v1/tasks/{task_id}", token=token)
    if status != 200:
        raise RuntimeError(f"GET /v1/tasks/{task_id} answered {status}: {body}")
    return {"task": body, "children": [task_tree(api, token, c) for c in body.get("children") or []]}


def scrape(urls: list[str]) -> list[str]:
    pages = []
    for u in urls:
        try:
            with urllib.request.urlopen(u, timeout=5) as resp:  # noqa: S310 - 127.0.0.1 only
                pages.append(resp.read().decode())
        except OSError:
            pass
    return pages


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


# --- commands ---------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    check_model_mode(args.model)
    demo = Demo(args)
    info = cluster_info() if args.on == "node" else {}
    if args.on == "node":
        if not info.get("real_node"):
            raise SystemExit(
                "--on node needs the cluster's real node (e2e/cluster.sh with AGENTFLEET_REAL_NODE=1, the default); "
                "--on processes runs the fleet as local processes beside kwok nodes"
            )
        say(f"== agentfleet demo in namespace {demo.ns} on the real node (model: {args.model}); logs in {demo.dir}")
        (demo.dir / ON_NODE).write_text(args.namespace + "\n")
        return onnode.up(demo, info, t_start)
    say(f"== agentfleet demo in namespace {demo.ns} (model: {args.model}); processes and logs in {demo.dir}")
    demo.crds()
    say("== local services (127.0.0.1)")
    redis_url = demo.redis()
    milvus_uri = demo.milvus()
    prometheus_url = demo.prometheus()
    demo.operator(prometheus_url)
    say(f"== {EXAMPLE.relative_to(ROOT)} with local endpoints")
    objs = demo.apply_example(milvus_uri, redis_url, prometheus_url)
    af, mrs_doc, vi_doc = objs["AgentFleet"], objs["ModelReplicaSet"], objs["VectorIndex"]
    tools = af["spec"].get("tools") or []
    retrieval_tool = next((t["name"] for t in tools if t.get("type") == "Retrieval"), None)
    spawn_tool = next((t["name"] for t in tools if t.get("type") == "Spawn"), None)
    if retrieval_tool is None:
        raise SystemExit("the example's AgentFleet has no Retrieval tool")
    say(f"== model replicas placed by the operator (ModelReplicaSet {mrs_doc['metadata']['name']})")
    mrs, placements = demo.placements(mrs_doc["metadata"]["name"])
    for p in placements:
        say(f"  {p['name']}: nodes {','.join(p.get('nodes') or [])}, {p.get('gpus')} GPU(s), zone {p.get('zone')}")
    endpoints, model_note = demo.model_servers(mrs, placements, retrieval_tool, spawn_tool)
    for name, url in endpoints.items():
        say(f"  {name} -> {url}")
    if not demo.pods:  # with the pod IPs local, the scripted agent lists the pods it backs
        demo.scrape_replicas(mrs_doc["metadata"]["name"], endpoints)
    say(f"== ingestion into VectorIndex {vi_doc['metadata']['name']} (collection {vi_doc['spec']['collection']})")
    demo.ingest(vi_doc["metadata"]["name"], milvus_uri)
    vi = demo.kc.json("-n", demo.ns, "get", f"vectorindexes.{GROUP}", vi_doc["metadata"]["name"])
    say("== agent runtime")
    doc, source = demo.runtime_config(af, mrs, vi, redis_url, milvus_uri, endpoints)
    say(f"  runtime config: {source}")
    workers = int((af["spec"].get("workers") or {}).get("replicas", 1))
    api, metrics_urls = demo.runtime(doc, workers)
    demo.scrape_workers(af["metadata"]["name"], metrics_urls)
    say(
        f"  Prometheus {prometheus_url} scrapes the replicas and the workers every {prom.SCRAPE_INTERVAL} (config "
        f"{demo.prom_dir / 'prometheus.yml'})"
    )
    token = (demo.dir / "api-tokens").read_text().split()[0]
    rows = wait(
        lambda: (
            (demo.kc.get("-n", demo.ns, "get", f"vectorindexes.{GROUP}", vi_doc["metadata"]["name"]) or {}).get(
                "status"
            )
            or {}
        ).get("rowCount"),
        60,
        "the VectorIndex's rowCount",
        interval=1,
    )
    say(f"  VectorIndex {vi_doc['metadata']['name']}: {rows} rows (status.rowCount, read by the operator from Milvus)")
    if demo.pods:
        aliases = {pod: name for name, (pod, _, _) in demo.pods.items()}
        routing = (
            f"EndpointSlice discovery of Service {mrs_doc['metadata']['name']}-replicas as ServiceAccount "
            f"{af['metadata']['name']}"
        )
    else:
        aliases, routing = {}, "static endpoints"
    fleet = Fleet(api, token, af, mrs_doc, placements, endpoints, metrics_urls, model_note, aliases, routing, scrape)
    return finish(demo, fleet, t_start)


class Fleet(NamedTuple):
    """What the tasks and the report need, wherever the fleet runs: the task API (a URL here) and its
    token, the example's objects as applied, the replicas placed, where each replica and each worker
    answers, how the workers route, and how a /metrics page is read (``scrape``)."""

    api: str
    token: str
    af: dict[str, Any]
    mrs: dict[str, Any]
    placements: list[dict[str, Any]]
    endpoints: dict[str, str]  # replica name -> OpenAI base URL
    metrics_urls: list[str]  # the workers' /metrics
    model_note: str
    aliases: dict[str, str]  # pod -> replica name, where the workers name replicas by pod
    routing: str
    scrape: Callable[[list[str]], list[str]]


def finish(demo: Demo, fleet: Fleet, t_start: float) -> int:
    """Once the fleet is up: the sample tasks through the task API and the report, or the burst."""
    args = demo.args
    api, token, af, mrs_doc, placements = fleet.api, fleet.token, fleet.af, fleet.mrs, fleet.placements
    endpoints, metrics_urls, model_note, scrape = fleet.endpoints, fleet.metrics_urls, fleet.model_note, fleet.scrape
    tools = af["spec"].get("tools") or []
    retrieval_tool = next(t["name"] for t in tools if t.get("type") == "Retrieval")
    spawn_tool = next((t["name"] for t in tools if t.get("type") == "Spawn"), None)
    if args.tasks == 0 and args.scenario is None:
        # On the real node the runtime config for this machine is the one with its forwards (onnode.local_runtime).
        runtime = demo.dir / ("runtime.local.yaml" if (demo.dir / "runtime.local.yaml").exists() else "runtime.yaml")
        say(f"== the fleet is up; no sample tasks (--tasks 0). Evaluate it through its task API {api}:")
        say(
            f"  agentfleet eval {CORPORA.get(args.corpus, CORPORA['postgres']).tasks.relative_to(ROOT)} "
            f"--part heldout --api {api} "
            f"--token-file {demo.dir / 'api-tokens'} --fleet {af['metadata']['name']} -n {demo.ns} "
            f"--kubeconfig {demo.kc.kubeconfig} --runtime-config {runtime}"
            "  # + closed-book and one-shot RAG on the same model and index"
        )
        say(
            f"  (local variants: --runtime-config {runtime} --compare retrieval.topK=3,8 "
            "instead of --api/--token-file)"
        )
        return 0
    tasks_ok = True
    if args.tasks:
        say(f"== {args.tasks} agent tasks through the task API {api}/v1/tasks")
        replica_metrics = [u[: -len("/v1")] + "/metrics" for u in endpoints.values()]
        aliases = fleet.aliases
        say(f"  routing: {fleet.routing}")
        before = _figures(scrape(metrics_urls) + scrape(replica_metrics), retrieval_tool, endpoints, aliases)
        run_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
        tasks = run_tasks(api, token, args.tasks, run_id, args.task_timeout)
        after = _figures(scrape(metrics_urls) + scrape(replica_metrics), retrieval_tool, endpoints, aliases)
        say()
        # QUEUE and GOODPUT are the autoscaler's next evaluation (every 15 s) of what Prometheus
        # scraped; TASKS/H and P95 the AgentFleet controller's next pass over the fleet's Redis.
        t_wait = time.monotonic()
        missing = demo.columns_filled(
            mrs_doc["metadata"]["name"], af["metadata"]["name"], since=time.time() - 1, finished=len(tasks)
        )
        say(
            "== the operator's figures of the tasks (QUEUE, GOODPUT from Prometheus; TASKS/H, P95 from Redis): "
            f"waited {time.monotonic() - t_wait:.0f}s"
        )
        for m in missing:
            say(f"  still blank: {m}")
        say(f"== kubectl get agentfleets,modelreplicasets,vectorindexes -n {demo.ns}")
        say(demo.kc.run("get", "agentfleets,modelreplicasets,vectorindexes", "-n", demo.ns).stdout.rstrip())
        say()
        summary = report.summarize(tasks)
        agents = report.agent_figures([task_tree(api, token, t["id"]) for t in tasks], retrieval_tool, spawn_tool)
        mrs_final = demo.kc.json("-n", demo.ns, "get", f"modelreplicasets.{GROUP}", mrs_doc["metadata"]["name"])
        say(
            report.render(
                summary,
                model_calls=sum(delta(after["calls"], before["calls"]).values()),
                model_errors=sum(delta(after["errors"], before["errors"]).values()),
                calls_by_replica=delta(after["by_replica"], before["by_replica"]),
                affinity=delta(after["affinity"], before["affinity"]),
                retrieval=delta(after["retrieval"], before["retrieval"]),
                prefix_cache=(
                    delta(after["cache_hits"], before["cache_hits"]).get("", 0.0),
                    delta(after["cache_queries"], before["cache_queries"]).get("", 0.0),
                ),
                placements=(mrs_final.get("status") or {}).get("placements") or placements,
                model_note=model_note,
            )
        )
        say(report.render_agents(agents))
        say(f"sample answer: {next((t['answer'] for t in tasks if t.get('answer')), '-')[:300]}")
        tasks_ok = summary["done"] == summary["total"]
    burst_ok = True
    if args.scenario == "burst":
        burst_ok = run_burst(demo, fleet)
    say(f"done in {time.monotonic() - t_start:.0f}s; the fleet keeps running. Stop it: bash e2e/up.sh down")
    return 0 if tasks_ok and burst_ok else 1


def run_burst(demo: Demo, fleet: Fleet) -> bool:
    """--scenario burst (e2e/demo/burst.py); True when every task of the burst finished."""
    api, token, mrs = fleet.api, fleet.token, fleet.mrs["metadata"]["name"]
    on_node = (demo.dir / ON_NODE).exists()
    if not demo.pods and not on_node:
        raise RuntimeError(
            "--scenario burst needs the pods' IPs local to this machine (root or passwordless sudo for `ip route`): "
            "the replicas the "
            "autoscaler adds are found by the workers through EndpointSlices, at their pod IPs"
        )
    phases = demo.args.burst_phases
    say(
        f"== --scenario burst: {burst.describe(phases)}, through the task API; the autoscaler's decisions as they "
        "happen"
    )
    say(
        f"  shortened for the demo: simulated replicas of {burst.SIM_TIMING['max-num-seqs']} sequences at "
        f"{burst.SIM_TIMING['decode-base-s']}s a "
        f"decode step; autoscaling every {burst.AUTOSCALING['evaluationPeriodSeconds']}s, scale-down after "
        f"{burst.AUTOSCALING['scaleDownStabilizationSeconds']}s; a new replica is ready when "
        + ("its pod is Ready (seconds" if on_node else "kwok marks its pod Ready (~1s")
        + "; a real model loads for minutes)"
    )
    run_id = time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    ids: list[str] = []

    def submit(i: int) -> None:
        status, body = http_json(
            f"{api}/v1/tasks",
            {
                "goal": GOALS[i % len(GOALS)],
                "metadata": {"demo": run_id, "scenario": "burst", "client": f"client-{i % 6}"},
            },
            token,
            headers={"Idempotency-Key": f"burst-{run_id}-{i}"},
        )
        if status not in (200, 201):
            raise RuntimeError(f"POST /v1/tasks answered {status}: {body}")
        ids.append(body["id"])

    def status() -> dict[str, Any]:
        return (demo.kc.get("-n", demo.ns, "get", f"modelreplicasets.{GROUP}", mrs) or {}).get("status") or {}

    t0 = time.monotonic()
    timeline = burst.run(submit, status, say, phases)
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(results) < len(ids) and time.monotonic() < deadline:
        for tid in ids:
            if tid not in results:
                code, body = http_json(f"{api}/v1/tasks/{tid}?steps=0", token=token)
                if code == 200 and body.get("status") in ("done", "dead", "cancelled"):
                    results[tid] = body
        time.sleep(1)
    summary = report.summarize(list(results.values()))
    say(
        f"  tasks: {summary['done']} done, {summary['failed']} failed, {len(ids) - len(results)} unfinished of "
        f"{len(ids)} submitted; "
        f"task time p50 {report._secs(summary['p50'])} p95 {report._secs(summary['p95'])}"
    )
    events = demo.kc.json(
        "-n",
        demo.ns,
        "get",
        "events",
        "--field-selector",
        f"involvedObject.kind=ModelReplicaSet,involvedObject.name={mrs}",
    )["items"]
    scaled = [e for e in events if e.get("reason") in ("ScaledUp", "ScaledDown")]
    say(
        f"  Events of ModelReplicaSet {mrs} (kubectl get events --field-selector involvedObject.name={mrs}): "
        f"{len(scaled)} ScaledUp/ScaledDown"
    )
    for e in sorted(scaled, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        say(f"    {e.get('lastTimestamp') or e.get('eventTime')}  {e['reason']:<10} {e.get('message', '')[:200]}")
    # The workers name a replica by its pod (EndpointSlice discovery): the pods that answered calls.
    answered = report.metric_sums(
        fleet.scrape(fleet.metrics_urls),
        "agentfleet_routing_replica_calls_total",
        by="replica",
        where={"outcome": "ok"},
    )
    say(f"  replica pods that answered calls: {len(answered)} ({', '.join(sorted(answered))})")
    path = burst.plot(timeline, demo.dir / "burst.png", f"--scenario burst, ModelReplicaSet {mrs} in {demo.ns}")
    ups = sum(1 for d in timeline.decisions if d.before is not None and d.after > d.before)
    peak = max((x.desired or 0 for x in timeline.samples), default=0)
    # -o wide for the ModelReplicaSet: TERM (status.lastScaleTerm) is a wide column.
    say(f"== kubectl get modelreplicasets -o wide; kubectl get agentfleets -n {demo.ns}")
    say(demo.kc.run("get", "modelreplicasets", "-o", "wide", "-n", demo.ns).stdout.rstrip())
    say(demo.kc.run("get", "agentfleets", "-n", demo.ns).stdout.rstrip())
    say(
        f"== {len(timeline.decisions)} decisions ({ups} up), peak {peak} replicas, {time.monotonic() - t0:.0f}s; "
        f"plot of demand, replicas and goodput: {path}"
    )
    return len(results) == len(ids) and summary["failed"] == 0


def _figures(
    pages: list[str], retrieval_tool: str, endpoints: dict[str, str], aliases: dict[str, str]
) -> dict[str, dict[str, float]]:
    # The routing metrics name a replica by its host:port (static endpoints) or its pod (discovery).
    by_url = {url.split("//")[1].split("/")[0]: name for name, url in endpoints.items()} | aliases
    replica = report.metric_sums(pages, "agentfleet_routing_replica_calls_total", by="replica", where={"outcome": "ok"})
    by_replica: dict[str, float] = {}
    for key, v in replica.items():
        name = next((n for hostport, n in by_url.items() if hostport in key), key)
        by_replica[name] = by_replica.get(name, 0.0) + v
    return {
        "calls": report.metric_sums(pages, "agentfleet_routing_replica_calls_total", by="outcome"),
        "errors": report.metric_sums(pages, "agentfleet_routing_replica_errors_total", by="reason"),
        "by_replica": by_replica,
        "affinity": report.metric_sums(pages, "agentfleet_routing_affinity_total", by="result"),
        "retrieval": report.metric_sums(
            pages, "agentfleet_tool_calls_total", by="outcome", where={"tool": retrieval_tool}
        ),
        # vLLM's own counters on the replicas (the simulator exports them too; llama.cpp does not).
        "cache_hits": report.metric_sums(pages, "vllm:prefix_cache_hits_total"),
        "cache_queries": report.metric_sums(pages, "vllm:prefix_cache_queries_total"),
    }


def cmd_down(args: argparse.Namespace) -> int:
    info_dir = (
        Path(args.state_dir)
        if args.state_dir
        else (Path(args.kubeconfig).parent if args.kubeconfig else Path(cluster_info()["state_dir"]))
    )
    root = info_dir / "demo"
    spaces = [root / args.namespace] if args.namespace else sorted(p for p in root.glob("*") if p.is_dir())
    for d in spaces:
        if (d / ON_NODE).exists():
            for what in onnode.down(info_dir, d.name, cluster_info()):
                say(f"deleted {what}")
            (d / ON_NODE).unlink()
        procs = Procs(d)
        names = procs.names()
        names.sort(key=lambda n: -ORDER.index(n.split("-")[0]) if n.split("-")[0] in ORDER else 0)
        for name in names:
            if procs.stop(name):
                say(f"stopped {d.name}/{name}")
        routes = d / "local-routes"
        if routes.exists():
            sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
            for ip in sorted(set(routes.read_text().split())):
                subprocess.run(
                    [*sudo, "ip", "route", "del", "local", f"{ip}/32", "dev", "lo"],
                    capture_output=True,
                    timeout=10,
                    check=False,
                )
            routes.unlink()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    info_dir = Path(args.state_dir) if args.state_dir else Path(cluster_info()["state_dir"])
    for d in sorted((info_dir / "demo").glob("*")):
        procs = Procs(d)
        for name in procs.names():
            meta = procs.get(name)
            if meta:
                say(f"{d.name}/{name}: pid {meta['pid']} ports {meta['ports']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m e2e.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("command", nargs="?", default="up", choices=["up", "down", "status"])
    p.add_argument("--namespace", "-n", default=os.environ.get("AGENTFLEET_NAMESPACE"))
    p.add_argument(
        "--on",
        choices=["node", "processes"],
        default=os.environ.get("AGENTFLEET_DEMO_ON"),
        help="node: every pod on the cluster's real node (default with --model sim when the cluster has one); "
        "processes: the operator, servers and runtime as local processes beside kwok nodes (the other models)",
    )
    p.add_argument("--kubeconfig", help="cluster to use (default: the one e2e/cluster.sh runs)")
    p.add_argument("--kubectl", help="kubectl binary (default: the one e2e/cluster.sh built)")
    p.add_argument("--state-dir", help="where pids and logs go (default: the cluster's state dir)")
    p.add_argument(
        "--tasks",
        type=int,
        default=int(os.environ["AGENTFLEET_DEMO_TASKS"]) if os.environ.get("AGENTFLEET_DEMO_TASKS") else None,
    )
    p.add_argument(
        "--model",
        choices=["qwen", "sim", "smollm2", "vllm"],
        default=os.environ.get("AGENTFLEET_DEMO_MODEL", DEFAULT_MODEL),
        help=(
            "qwen: Qwen2.5-Coder on llama-server (CPU), every decision the model's; sim: simulated vLLM replicas with "
            "scripted decisions, for scale"
        ),
    )
    p.add_argument(
        "--corpus",
        choices=["demo", *CORPORA],
        default=os.environ.get("AGENTFLEET_DEMO_CORPUS", "demo"),
        help="documents of the VectorIndex: the 4 sample pages, or one of agentfleet eval's corpora "
        "(the PostgreSQL 15 manual, the Python 3.11 library reference)",
    )
    p.add_argument(
        "--task-timeout",
        type=float,
        default=float(os.environ["AGENTFLEET_DEMO_TASK_TIMEOUT"])
        if os.environ.get("AGENTFLEET_DEMO_TASK_TIMEOUT")
        else None,
        help="seconds to wait for the tasks (default 600; 1800 with --model qwen)",
    )
    p.add_argument(
        "--scenario",
        choices=["burst"],
        default=os.environ.get("AGENTFLEET_DEMO_SCENARIO") or None,
        help=(
            "burst: after the sample tasks, a burst of tasks through the fleet, the autoscaler's decisions as they "
            "happen, and a PNG (--model sim)"
        ),
    )
    p.add_argument(
        "--burst-phases",
        type=burst.parse_phases,
        default=burst.PHASES,
        metavar="SECONDS:RATE,...",
        help="the burst's phases, tasks per second for so many seconds (default "
        + ",".join(f"{d:g}:{r:g}" for d, r in burst.PHASES)
        + ")",
    )
    args = p.parse_args(argv)
    if args.scenario == "burst" and args.model != "sim":
        p.error(
            "--scenario burst runs on the simulated replicas (--model sim): a real model on this machine's CPU "
            "serves a task in minutes"
        )
    if args.tasks is None:
        # The burst starts from a quiet fleet: sample tasks sent all at once would be a burst of their own.
        args.tasks = 0 if args.scenario == "burst" else TASKS_BY_MODEL.get(args.model, 20)
    if args.task_timeout is None:
        args.task_timeout = TASK_TIMEOUT_BY_MODEL.get(args.model, 600.0)
    if args.command == "up":
        args.namespace = args.namespace or "agentfleet-demo"
        if args.on is None:
            args.on = "node" if cluster_info().get("real_node") else "processes"
        try:
            return cmd_up(args)
        except RuntimeError as e:
            print(f"\nagentfleet demo failed: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted; what started keeps running. Stop it: bash e2e/up.sh down", file=sys.stderr)
            return 130
    if args.command == "down":
        return cmd_down(args)
    return cmd_status(args)
