#!/usr/bin/env python3
"""Routing benchmark for the model client (prints figures; not a test).

Every comparison runs the same workload (same seed, same tasks, same tool delays, same replica
configuration) once per configuration, minutes apart in this process, so each figure has its
baseline from the same run. The real ``RoutingModelClient`` routes every call; only the transport
differs: in-process simulator replicas (``Replica.completion``) on a virtual clock for the large
runs, and real HTTP to ``start_fleet`` replicas for one run in real time.

Workload: agent tasks of S sequential calls; each call's prompt = a shared system prompt with tool
schemas (~2K tokens) + the task's goal + its growing history (each step appends an assistant
message and a ~800-token tool output, so histories reach ~15K tokens); tools take 0.1-2 s between
calls. Replicas model a 70B TP-4 vLLM replica (the simulator's defaults) with a KV cache small
enough that all tasks' histories do not fit on every replica at once (residency is the limit, as
in production), but do fit when each replica keeps only its own tasks.

1. Prefix-cache hit rate (vllm:prefix_cache_hits / queries of all replicas) and call latency
   mean/p99: PrefixAffinity vs RoundRobin vs LeastLoaded, 4 replicas. Goal: >= 3x RoundRobin's hit
   rate, p99 no worse.
2. Hedging: 1% of calls 10x slow on every replica; task p95 and call p99 without and with hedging
   (after p95 of the kind, budget maxExtraPercent 5); extra calls in percent. Goal: >= 2x better
   p95 for < 5% extra calls.
3. Bounded load under a skewed mix (a few roots with many sub-agents that share their root's
   replica): max/mean in-flight per replica, bounded (loadBoundPercent 125) vs unbounded HRW vs
   LeastLoaded, plus the hit rate each keeps.
4. Over real HTTP (start_fleet, 4 replicas, real time): PrefixAffinity vs RoundRobin hit rate and
   latency on a smaller workload.

    .venv/bin/python e2e/bench/routing_bench.py [--sections 1,2,3,4] [--replicas 4,8] [--tasks-per-replica 16] [--tasks 64] [--steps 16]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "runtime"))
sys.path.insert(0, str(ROOT / "operator"))

from prometheus_client import CollectorRegistry  # noqa: E402

from agentfleet_runtime.model import ModelError, ModelRequest  # noqa: E402
from agentfleet_runtime.routing.client import RoutingModelClient  # noqa: E402
from agentfleet_runtime.routing.metrics import RoutingMetrics  # noqa: E402
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier  # noqa: E402
from agentfleet_runtime.routing.sources import StaticSource  # noqa: E402
from agentfleet_sim import ApiError, Replica, fleet_config, run_virtual, start_fleet, start_replicas  # noqa: E402

WORDS = "alpha beta gamma delta data node pod call tool plan step load cache key value row col sum avg max min".split()
# The simulator's 70B TP-4 replica (450K tokens of KV cache): each replica can keep about a
# quarter of all tasks' histories warm (the residency limit), so sticky routing can keep every
# task warm somewhere while spraying calls cannot keep them warm anywhere.
ENGINE = {"max_model_len": 40_960}


class SimTransport:
    """The simulator's replicas in-process: same request/response bodies as HTTP, no sockets."""

    def __init__(self, replicas: dict[str, Replica]) -> None:
        self.replicas = replicas

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            out = await self.replicas[endpoint.name].completion(body)
        except ApiError as e:
            raise ModelError(f"{endpoint.name} answered {e.status}: {e.message}", status=e.status, retryable=e.status >= 500 or e.status == 429) from e
        assert isinstance(out, dict)
        return out

    async def close(self) -> None:
        return None


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


SYSTEM = "You are an agent. Tools: " + text(random.Random(0), 1000)  # ~1.5K tokens


@dataclass
class TaskSpec:
    task_id: str
    root_id: str
    steps: int
    start: float
    goal: str
    tool_seconds: list[float]
    tool_outputs: list[str]


def make_tasks(n: int, steps: int, seed: int, arrival_window: float, roots: Callable[[int], str] | None = None, out_words: int = 1000) -> list[TaskSpec]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tid = f"task-{seed}-{i}"
        out.append(
            TaskSpec(
                task_id=tid,
                root_id=roots(i) if roots else tid,
                steps=steps,
                start=rng.uniform(0, arrival_window),
                goal=f"Goal {i}: " + text(rng, 150),
                tool_seconds=[rng.uniform(0.1, 2.0) for _ in range(steps)],
                tool_outputs=[text(rng, out_words) for _ in range(steps)],
            )
        )
    return out


@dataclass
class Result:
    label: str
    call_latencies: list[float] = field(default_factory=list)
    task_seconds: list[float] = field(default_factory=list)
    hit_rate: float = 0.0
    calls: int = 0
    sent: int = 0  # attempts actually sent (hedges included)
    hedges: float = 0.0
    denied: float = 0.0
    imbalance_mean: float = 0.0
    imbalance_max: float = 0.0
    affinity: float = 0.0
    wall: float = 0.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]


async def drive(client: RoutingModelClient, tasks: list[TaskSpec], res: Result, max_tokens_note: str = "") -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def one(spec: TaskSpec) -> None:
        await asyncio.sleep(spec.start)
        began = loop.time()
        msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": spec.goal}]
        for step in range(spec.steps):
            started = loop.time()
            await client.complete(ModelRequest(messages=list(msgs), task_id=spec.task_id, root_id=spec.root_id, step=step, kind="step"))
            res.call_latencies.append(loop.time() - started)
            msgs.append({"role": "assistant", "content": f"step {step}: calling search for {spec.task_id}"})
            msgs.append({"role": "tool", "content": spec.tool_outputs[step]})
            await asyncio.sleep(spec.tool_seconds[step])
        res.task_seconds.append(loop.time() - began)

    await asyncio.gather(*(one(s) for s in tasks))
    res.wall = loop.time() - t0


async def sample_imbalance(client: RoutingModelClient, names: list[str], res: Result, stop: asyncio.Event, every: float = 0.25) -> None:
    """max/mean of the calls in flight per replica, as the router counts them (one pod here)."""
    ratios = []
    while not stop.is_set():
        loads = [client.primary.inflight.get(n, 0) for n in names]
        total = sum(loads)
        if total >= 2 * len(names):  # an idle fleet's ratio says nothing
            ratios.append(max(loads) / (total / len(names)))
        await asyncio.sleep(every)
    if ratios:
        res.imbalance_mean = statistics.fmean(ratios)
        res.imbalance_max = max(ratios)


def finish(res: Result, replicas: list[Replica], metrics: RoutingMetrics) -> Result:
    q = sum(r.engine.stats.prefix_queries for r in replicas)
    h = sum(r.engine.stats.prefix_hits for r in replicas)
    res.hit_rate = h / q if q else 0.0
    res.calls = len(res.call_latencies)
    reg = metrics.registry
    res.hedges = sum(reg.get_sample_value("agentfleet_routing_hedges_total", {"model": "llama", "result": r}) or 0.0 for r in ("won", "lost", "failed"))
    res.denied = reg.get_sample_value("agentfleet_routing_hedges_total", {"model": "llama", "result": "denied"}) or 0.0
    res.sent = sum(r.calls for r in replicas)
    hit = reg.get_sample_value("agentfleet_routing_affinity_total", {"model": "llama", "result": "hit"}) or 0.0
    miss = reg.get_sample_value("agentfleet_routing_affinity_total", {"model": "llama", "result": "miss"}) or 0.0
    res.affinity = hit / (hit + miss) if hit + miss else 0.0
    return res


def virtual_run(
    label: str, tasks: list[TaskSpec], settings: RoutingSettings, *, replicas: int = 4, faults: dict[str, Any] | None = None, max_tokens: int = 64
) -> Result:
    async def main() -> Result:
        sims = await start_replicas(replicas, fleet_config(replicas, engine=ENGINE, faults=faults or {}))
        by_name = {r.name: r for r in sims}
        metrics = RoutingMetrics(CollectorRegistry())
        client = RoutingModelClient(
            (Tier("llama", "llama-70b", settings), StaticSource([Endpoint(n, f"sim://{n}/v1") for n in by_name])),
            transport=SimTransport(by_name),
            metrics=metrics,
            timeout=600.0,
            max_output_tokens=max_tokens,
            rng=random.Random(1),
        )
        res = Result(label)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_imbalance(client, list(by_name), res, stop))
        await drive(client, tasks, res)
        stop.set()
        await sampler
        for r in sims:
            await r.stop()
        return finish(res, sims, metrics)

    started = time.monotonic()
    res = run_virtual(main())
    print(f"    ({label}: {time.monotonic() - started:.0f} s of CPU-bound wall time for {res.wall:.0f} s simulated)", file=sys.stderr, flush=True)
    return res


def http_run(label: str, tasks: list[TaskSpec], settings: RoutingSettings, max_tokens: int = 16) -> Result:
    fleet = start_fleet(4, engine={**ENGINE, "kv_cache_tokens": 70_000})
    try:

        async def main() -> Result:
            metrics = RoutingMetrics(CollectorRegistry())
            client = RoutingModelClient(
                (Tier("llama", "llama-70b", settings), StaticSource([Endpoint(h.name, h.base_url) for h in fleet.replicas])),
                metrics=metrics,
                timeout=120.0,
                max_output_tokens=max_tokens,
                rng=random.Random(1),
            )
            res = Result(label)
            await drive(client, tasks, res)
            await client.close()
            # The engines' counters: what /metrics exports as vllm:prefix_cache_{queries,hits}_total.
            return finish(res, [h.replica for h in fleet.replicas], metrics)

        return asyncio.run(main())
    finally:
        fleet.stop()


def line(r: Result, base: Result | None = None) -> str:
    mean, p99 = statistics.fmean(r.call_latencies), pct(r.call_latencies, 0.99)
    s = f"  {r.label:<26} hit rate {r.hit_rate:6.1%}  call mean {mean:6.2f} s  p99 {p99:6.2f} s  task p95 {pct(r.task_seconds, 0.95):7.1f} s  same-replica {r.affinity:6.1%}"
    if base is not None:
        s += f"   [{r.hit_rate / base.hit_rate:4.1f}x hit rate, p99 {p99 / pct(base.call_latencies, 0.99):4.2f}x of {base.label}]"
    return s


def hedging_section(args: argparse.Namespace) -> None:
    print("2. Hedging: 1% of calls 10x slow on every replica (PrefixAffinity)")
    slow = {"slow_fraction": 0.01, "slow_factor": 10.0}
    # A fleet below saturation: the tail then comes from the slow calls, not from queueing.
    for label, n_tasks, steps, window in (("agent tasks", args.tasks, args.steps, 120.0), ("short tasks", args.tasks * 3, 6, 240.0)):
        hset = make_tasks(n_tasks, steps, seed=2, arrival_window=window)
        off = virtual_run(f"{label}: no hedging", hset, RoutingSettings(), faults=slow)
        on = virtual_run(f"{label}: hedging p95/5%", hset, RoutingSettings(hedging=True), faults=slow)
        on99 = virtual_run(f"{label}: hedging p99/5%", hset, RoutingSettings(hedging=True, hedge_after_percentile=99), faults=slow)
        for r in (off, on, on99):
            extra = (r.sent - r.calls) / r.calls
            print(
                f"  {r.label:<30} task p95 {pct(r.task_seconds, 0.95):7.1f} s  task p99 {pct(r.task_seconds, 0.99):7.1f} s  "
                f"call p99 {pct(r.call_latencies, 0.99):6.2f} s  call max {max(r.call_latencies):6.2f} s  "
                f"extra calls {extra:5.1%} (hedges {r.hedges:.0f} of {r.calls}, {r.denied:.0f} denied by the budget)"
            )
        for r in (on, on99):
            print(
                f"    -> {r.label}: task p95 {pct(off.task_seconds, 0.95) / pct(r.task_seconds, 0.95):.2f}x better, "
                f"task p99 {pct(off.task_seconds, 0.99) / pct(r.task_seconds, 0.99):.2f}x, call p99 {pct(off.call_latencies, 0.99) / pct(r.call_latencies, 0.99):.2f}x"
            )


def skew_section(args: argparse.Namespace) -> None:
    print("\n3. Bounded load, skewed mix: 8 of every 10 tasks are sub-agents of 3 hot roots (subAgentAffinity)")
    hot = make_tasks(args.tasks, args.steps, seed=3, arrival_window=30.0, roots=lambda i: f"root-{i % 3}" if i % 10 < 8 else f"solo-{i}")
    results = [
        virtual_run("HRW unbounded (1000%)", hot, RoutingSettings(load_bound_percent=1000)),
        virtual_run("HRW bounded 125%", hot, RoutingSettings(load_bound_percent=125)),
        virtual_run("LeastLoaded", hot, RoutingSettings(policy="LeastLoaded")),
    ]
    for r in results:
        print(
            f"  {r.label:<26} in-flight max/mean: mean {r.imbalance_mean:4.2f}  worst {r.imbalance_max:4.2f}   hit rate {r.hit_rate:6.1%}  call p99 {pct(r.call_latencies, 0.99):6.2f} s"
        )


def affinity_section(args: argparse.Namespace) -> None:
    for replicas in [int(x) for x in args.replicas.split(",")]:
        n_tasks = args.tasks_per_replica * replicas
        print(f"1. Cache affinity: {n_tasks} tasks x {args.steps} calls, {replicas} replicas (virtual clock)")
        tasks = make_tasks(n_tasks, args.steps, seed=1, arrival_window=30.0)
        rr = virtual_run("RoundRobin", tasks, RoutingSettings(policy="RoundRobin"), replicas=replicas)
        ll = virtual_run("LeastLoaded", tasks, RoutingSettings(policy="LeastLoaded"), replicas=replicas)
        pa = virtual_run("PrefixAffinity (bound 125%)", tasks, RoutingSettings(policy="PrefixAffinity"), replicas=replicas)
        pa2 = virtual_run("PrefixAffinity (bound 200%)", tasks, RoutingSettings(policy="PrefixAffinity", load_bound_percent=200), replicas=replicas)
        print(line(rr))
        for r in (ll, pa, pa2):
            print(line(r, rr))
        print()


def http_section() -> None:
    print("\n4. Over real HTTP (start_fleet, 4 replicas on 127.0.0.1, real time, KV cache 70000 tokens per replica)")
    small = make_tasks(24, 8, seed=4, arrival_window=3.0, out_words=400)
    for t in small:
        t.tool_seconds = [s / 10 for s in t.tool_seconds]
    hrr = http_run("RoundRobin (HTTP)", small, RoutingSettings(policy="RoundRobin"))
    hpa = http_run("PrefixAffinity (HTTP)", small, RoutingSettings(policy="PrefixAffinity"))
    print(line(hrr))
    print(line(hpa, hrr))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=64, help="tasks of sections 2 and 3")
    ap.add_argument("--tasks-per-replica", type=int, default=16, help="section 1 scales its tasks with the fleet")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--replicas", default="4,8", help="fleet sizes of section 1")
    ap.add_argument("--sections", default="1,2,3,4", help="comma-separated sections to run (4 is real HTTP)")
    args = ap.parse_args()
    sections = {int(x) for x in args.sections.split(",")}
    if 1 in sections:
        affinity_section(args)
    if 2 in sections:
        hedging_section(args)
    if 3 in sections:
        skew_section(args)
    if 4 in sections:
        http_section()


if __name__ == "__main__":
    main()
