"""Real vLLM on one GPU, started with the arguments the operator renders: the checks CI cannot run.

CI has no GPU. When a session is lent one (the `device` tool), this runs there:

    python -m e2e.gpu.vllm_check --model /models/Qwen2.5-0.5B-Instruct --adapter sql=/models/lora-sql \\
        [--tasks 32 --steps 6 --out $OUT]

Nothing is downloaded: the model and the adapters are local directories (safetensors) carried to the
machine, and vLLM (0.26.0 matches the device image's torch 2.11 + CUDA 13) is installed there.
`VLLM_USE_FLASHINFER_SAMPLER=0` is set where flashinfer is absent.

It checks, against two replicas on the one GPU, each started from `render_pod`'s container (the
operator's `vllm serve` arguments and environment; only the port and the model path differ):
1. metrics: every vLLM metric the operator's autoscaler and router read is exposed (promql's names
   and the prefix-cache counters), after one request, since some appear only then;
2. adapters: the operator's adapter client (controllers/modelreplicaset/adapters.py) loads each
   spec.adapters entry on both replicas through vLLM's API, the served model list shows them, and an
   emptied list unloads them; the seconds each sync took;
3. routing: agent-shaped conversations (a system prompt, a goal, steps whose history grows) sent by the
   runtime's routing client with PrefixAffinity and, in the same invocation, RoundRobin: per-replica
   share of calls and the prefix-cache hit rate each policy got from vLLM's own counters.
It prints a table and writes report.json to --out. It exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentfleet import promql
from agentfleet.controllers.modelreplicaset.adapters import AdapterClient, sync_replica
from agentfleet.placement import Assignment
from agentfleet.render.modelreplicaset import render_pod
from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from e2e.harness.ports import free_port
from e2e.harness.procs import terminate

SERVED = "gpu-check"
PREFIX_COUNTERS = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")
# What the operator reads from every replica (promql.py) and what the router's load view uses.
READ_BY_THE_OPERATOR = (*promql.REQUIRED, promql.KV_USAGE, promql.REQUEST_SUCCESS, *PREFIX_COUNTERS)


def manifest(model: str, adapters: dict[str, str], utilization: float) -> ModelReplicaSet:
    """The ModelReplicaSet a user would write for this check: one GPU per replica, two replicas."""
    return ModelReplicaSet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": "gpu-check", "namespace": "default", "uid": "gpu-check-uid"},
            "spec": {
                "model": {"name": model, "servedName": SERVED},
                "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
                "replicas": 2,
                "engine": {"maxModelLen": 8192, "gpuMemoryUtilization": utilization, "maxLoras": max(1, len(adapters))},
                "adapters": [{"name": n, "source": s} for n, s in adapters.items()],
            },
        }
    )


def rendered(mrs: ModelReplicaSet, port: int) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the replica's vllm container as render_pod writes them, on PORT."""
    pod = render_pod(
        mrs, Assignment(key="default/gpu-check-0", owner="default/gpu-check", nodes=("gpu",), gpus_per_node=1), 0
    )
    c = next(c for c in pod["spec"]["containers"] if c["name"] == "vllm")
    args = list(c["args"])
    args[args.index("--port") + 1] = str(port)
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    return [*c["command"], *args], env


def get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm exited with {proc.returncode} before {url} was ready")
        try:
            get(url + "/health", 2)
            return time.monotonic() - t0
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} not ready in {timeout:.0f} s")


def samples(url: str) -> dict[str, float]:
    """Every sample of /metrics summed over its labels."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(get(url + "/metrics")):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def check_metrics(urls: list[str]) -> dict[str, Any]:
    missing = {u: sorted(set(READ_BY_THE_OPERATOR) - set(samples(u))) for u in urls}
    return {"ok": not any(missing.values()), "missing": missing}


def check_adapters(urls: list[str], adapters: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": True, "load_s": [], "unload_s": []}
    for u in urls:
        client = AdapterClient(u, None)
        t0 = time.monotonic()
        held, error = sync_replica(client, adapters)
        out["load_s"].append(round(time.monotonic() - t0, 2))
        served = {m["id"] for m in json.loads(get(u + "/v1/models"))["data"]}
        ok = error is None and set(held) == set(adapters) and set(adapters) <= served
        t0 = time.monotonic()
        left, error2 = sync_replica(client, {})
        out["unload_s"].append(round(time.monotonic() - t0, 2))
        served_after = {m["id"] for m in json.loads(get(u + "/v1/models"))["data"]}
        ok = ok and error2 is None and not left and not (set(adapters) & served_after)
        out["ok"] = out["ok"] and ok
        out.setdefault("replicas", []).append({"url": u, "held": held, "error": error or error2, "after": sorted(left)})
    return out


def conversation(task: int, steps: int) -> list[list[dict[str, str]]]:
    """The prompts of one agent task: a shared system prompt, the goal, and a history that grows."""
    system = {"role": "system", "content": "You are a support agent. Search before answering. " * 20}
    msgs = [system, {"role": "user", "content": f"Task {task}: which lock does VACUUM FULL take? " * 5}]
    prompts = []
    for i in range(steps):
        prompts.append(list(msgs))
        msgs += [
            {"role": "assistant", "content": f"step {i}: searching the manual for task {task}"},
            {"role": "user", "content": f"result {i} of task {task}: " + "VACUUM FULL rewrites the table. " * 30},
        ]
    return prompts


async def routing_pass(policy: str, urls: list[str], tasks: int, steps: int) -> dict[str, Any]:
    before = [samples(u) for u in urls]
    client = RoutingModelClient(
        (
            Tier("gpu-check", SERVED, RoutingSettings(policy=policy)),
            StaticSource([Endpoint(f"r{i}", u + "/v1") for i, u in enumerate(urls)]),
        ),
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=120.0,
        max_retries=2,
        max_output_tokens=16,
        rng=random.Random(1),
    )

    async def task(t: int) -> None:
        for n, messages in enumerate(conversation(t, steps)):
            await client.complete(
                ModelRequest(messages=messages, task_id=f"{policy}-{t}", root_id=f"{policy}-{t}", step=n)
            )

    t0 = time.monotonic()
    await asyncio.gather(*(task(t) for t in range(tasks)))
    wall = time.monotonic() - t0
    after = [samples(u) for u in urls]
    delta = [
        {k: a.get(k, 0.0) - b.get(k, 0.0) for k in (*PREFIX_COUNTERS, promql.REQUEST_SUCCESS)}
        for a, b in zip(after, before, strict=True)
    ]
    queries = sum(d[PREFIX_COUNTERS[0]] for d in delta)
    hits = sum(d[PREFIX_COUNTERS[1]] for d in delta)
    calls = [d[promql.REQUEST_SUCCESS] for d in delta]
    return {"policy": policy, "hit_rate": hits / queries if queries else 0.0, "calls": calls, "wall_s": round(wall, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a local model directory (safetensors)")
    ap.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR", help="a LoRA adapter directory")
    ap.add_argument("--utilization", type=float, default=0.40, help="each replica's --gpu-memory-utilization")
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--ready-timeout", type=float, default=600)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    adapters = dict(a.split("=", 1) for a in args.adapter)
    mrs = manifest(args.model, adapters, args.utilization)
    out = Path(args.out)
    procs, urls, report = [], [], {}
    try:
        for i in range(2):
            port = free_port()
            argv, env = rendered(mrs, port)
            log = open(out / f"vllm-{i}.log", "wb")  # noqa: SIM115 - closed with the process
            env = {
                **os.environ,
                **env,
                "VLLM_USE_FLASHINFER_SAMPLER": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER", "0"),
                "HF_HUB_OFFLINE": "1",  # the model and adapters are local: nothing may be downloaded
            }
            print("$", " ".join(argv), flush=True)
            procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
            # One at a time: two engines profiling the GPU's memory at once misjudge what is free.
            report[f"ready_s_{i}"] = round(wait_ready(urls[-1], procs[-1], args.ready_timeout), 1)
        for u in urls:  # some counters appear only after a first request
            urllib.request.urlopen(
                urllib.request.Request(
                    u + "/v1/chat/completions",
                    json.dumps(
                        {"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
                    ).encode(),
                    {"Content-Type": "application/json"},
                ),
                timeout=120,
            ).read()
        report["metrics"] = check_metrics(urls)
        report["adapters"] = check_adapters(urls, adapters) if adapters else {"ok": True, "skipped": "no --adapter"}
        report["routing"] = [
            asyncio.run(routing_pass(p, urls, args.tasks, args.steps)) for p in ("PrefixAffinity", "RoundRobin")
        ]
    finally:
        for p in procs:
            terminate(p, 30)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "routing"}, indent=2))
    print(f"{'policy':<16} {'prefix-cache hit rate':>22} {'calls per replica':>20} {'wall s':>8}")
    for r in report["routing"]:
        print(f"{r['policy']:<16} {r['hit_rate']:>22.1%} {str([int(c) for c in r['calls']]):>20} {r['wall_s']:>8}")
    return 0 if report["metrics"]["ok"] and report["adapters"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
