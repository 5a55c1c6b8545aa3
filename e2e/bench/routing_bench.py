#!/usr/bin/env python3
"""Routing benchmark for the model client (prints figures; not a test).

Every comparison runs the same workload (same seed, same tasks, same tool delays, same replica
configuration) once per configuration, minutes apart in this process, so each figure has its
baseline from the same run. The real ``RoutingModelClient`` routes every call; only the transport
differs: in-process simulator replicas (``Replica.completion``) on a virtual clock for the large
runs, and real HTTP to ``start_fleet`` replicas for one run in real time.

Workload: agent tasks of S sequential calls; each call's prompt = a shared system prompt with tool
schemas (~1.6K tokens) + the task's goal + its growing history (each step appends an assistant
message and a ~1.6K-token tool output, so 16-call histories reach ~26K tokens, within the 20-40K
of real agents); tools take 0.1-2 s between calls. Replicas model a 70B TP-4 vLLM replica (the
simulator's defaults: 450K tokens of KV cache, against ~470K for 150 GB free at 0.31 MiB/token),
so all tasks' histories do not fit on every replica at once (residency is the limit, as in
production), but do fit when each replica keeps only its own 16 tasks (16 x 26K = 423K at the end).

1. Prefix-cache hit rate (vllm:prefix_cache_hits / queries of all replicas) and call latency
   mean/p99: PrefixAffinity vs RoundRobin vs LeastLoaded, 4 and 8 replicas. Goal: >= 3x
   RoundRobin's hit rate, p99 no worse. The section first prints what the prompts allow: sticky
   routing can at best hit everything but the new tokens (~89% here); round-robin lands on the
   replica of the task's previous call 1 time in n, and that prefix, the most recently freed,
   survives LRU eviction, so round-robin gets at least (1/n) x 89% + (1 - 1/n) x the system
   prompt's share (11.5%): 30.9% at n = 4, 21.2% at n = 8. No router can beat 2.88x round-robin
   with 4 replicas on this workload, whatever the cache size; at n = 4, 3x needs the shared
   prefix under 1/9 of the sticky ceiling (~10% of the mean prompt) and round-robin at its floor,
   and real system prompts with tool schemas are a larger share.
2. Hedging: 10x slow calls, 1% of them, under two models, side by side on the same tasks:
   independent per call (slow_fraction), and slow episodes per replica (1% of each replica's
   time, every call started in one is 10x slow; a task pinned there meets them in a row). Task
   p95/p99 and call p99 without and with hedging (after p95 of the kind, budget maxExtraPercent
   5), extra calls, against a reference run with no slow calls at all (the best any hedge can
   do). A task of n calls with one slow call takes ~(n + 9) call times, hedged ~(n + 1), so for
   n >= 8 the p95 gain stays under 2x with independent slowness; episodes that put several slow
   calls in one task are long, and then fewer than 5% of tasks meet one (the share is ~1% x
   (1 + task duration / episode length)), so the p95 gain is capped the same way there.
3. Bounded load under a skewed mix (a few roots with many sub-agents that share their root's
   replica): max/mean in-flight per replica, bounded (loadBoundPercent 125) vs unbounded HRW vs
   LeastLoaded, plus the hit rate each keeps.
4. Over real HTTP (start_fleet, 4 replicas, real time): PrefixAffinity vs RoundRobin hit rate and
   latency on a smaller workload.
5. Where the hits go, against the ceiling (2, 4, 8 and 16 replicas; streamed calls): hit rate,
   share of the ceiling, p99 TTFT from the client, tokens lost by cause, load-bound violations;
   at the --churn-replicas sizes also a run where one replica fails mid-run (leaves the set, its
   engine stops with its calls in flight and its cache) and one where a replica joins mid-run.

    .venv/bin/python -m e2e.bench.routing_bench [--sections 1,2,3,4] [--replicas 4,8] [--tasks-per-replica 16]
        [--tasks 64] [--steps 16] [--hedge-seconds 900] [--episode-seconds 10,40] [--short-tasks]
        [--sections 5 --ceiling-replicas 2,4,8,16 --churn-replicas 8 --churn-at 20]
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
from typing import Any

from agentfleet_contract.percentiles import percentile as pct
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.streaming import StreamObserver
from agentfleet_sim import ChatTokenizer, Replica, fleet_config, run_virtual, start_fleet, start_replicas
from agentfleet_sim.kv_cache import block_hashes
from agentfleet_sim.transport import SimTransport

WORDS = "alpha beta gamma delta data node pod call tool plan step load cache key value row col sum avg max min".split()
# The simulator's 70B TP-4 replica (450K tokens of KV cache): each replica can keep about a
# quarter of all tasks' histories warm (the residency limit), so sticky routing can keep every
# task warm somewhere while spraying calls cannot keep them warm anywhere.
ENGINE = {"max_model_len": 40_960}


class BoundCheckTransport(SimTransport):
    """The simulator's transport recording every stream (time to first token, cached tokens), and
    checking each placement against the load bound."""

    def __init__(self, replicas: dict[str, Replica]) -> None:
        super().__init__(replicas, record=True)
        self.inflight: dict[str, int] | None = None  # the router's in-flight counts, to check the load bound
        self.live: Callable[[], list[str]] = lambda: list(self.replicas)  # the replicas the router sees
        self.eps = 0.25
        self.placements = self.over_cap = 0

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: StreamObserver
    ) -> dict[str, Any]:
        if self.inflight is not None:
            # This call is already counted; the bound allowed it iff its replica is within
            # ceil((1 + eps) x total / n) now (hashing.load_cap at placement).
            live = self.live()
            total = sum(self.inflight.get(n, 0) for n in live)
            self.placements += 1
            self.over_cap += self.inflight.get(endpoint.name, 0) > max(
                1, math.ceil((1 + self.eps) * total / len(live) - 1e-9)
            )
        return await super().stream(endpoint, body, timeout, observer)

    def rows(self) -> list[tuple[str, int, str, int, int, float]]:
        """(goal, step, replica, prompt tokens, cached tokens, first token time) of each stream."""
        out = []
        for s in self.log:
            msgs = s.body["messages"]
            details = s.usage.get("prompt_tokens_details") or {}
            out.append(
                (
                    msgs[1]["content"],
                    sum(1 for m in msgs if m["role"] == "assistant"),
                    s.replica,
                    int(s.usage.get("prompt_tokens", 0)),
                    int(details.get("cached_tokens", 0)),
                    s.first_token_at,
                )
            )
        return out


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


def make_tasks(
    n: int,
    steps: int,
    seed: int,
    arrival_window: float,
    roots: Callable[[int], str] | None = None,
    out_words: int = 1000,
) -> list[TaskSpec]:
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
    by_task: dict[str, float] = field(default_factory=dict)  # task id -> seconds, for paired comparisons
    tokens_used: int = 0  # prompt + completion tokens of the answered calls (what the hedge budget counts)
    hit_rate: float = 0.0
    calls: int = 0
    sent: int = 0  # attempts actually sent (hedges included)
    hedges: float = 0.0
    denied: float = 0.0
    imbalance_mean: float = 0.0
    imbalance_max: float = 0.0
    affinity: float = 0.0
    wall: float = 0.0
    slow_calls: int = 0  # calls the replicas made 10x slow
    episodes: int = 0  # slow episodes begun during the run, all replicas


def first_messages(spec: TaskSpec) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": spec.goal}]


def after_step(spec: TaskSpec, step: int) -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "content": f"step {step}: calling search for {spec.task_id}"},
        {"role": "tool", "content": spec.tool_outputs[step]},
    ]


async def drive(client: RoutingModelClient, tasks: list[TaskSpec], res: Result, max_tokens_note: str = "") -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def one(spec: TaskSpec) -> None:
        await asyncio.sleep(spec.start)
        began = loop.time()
        msgs = first_messages(spec)
        for step in range(spec.steps):
            started = loop.time()
            reply = await client.complete(
                ModelRequest(messages=list(msgs), task_id=spec.task_id, root_id=spec.root_id, step=step, kind="step")
            )
            res.call_latencies.append(loop.time() - started)
            res.tokens_used += reply.usage.total
            msgs += after_step(spec, step)
            await asyncio.sleep(spec.tool_seconds[step])
        res.task_seconds.append(loop.time() - began)
        res.by_task[spec.task_id] = loop.time() - began

    await asyncio.gather(*(one(s) for s in tasks))
    res.wall = loop.time() - t0


async def sample_imbalance(
    client: RoutingModelClient, names: list[str], res: Result, stop: asyncio.Event, every: float = 0.25
) -> None:
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
    q = sum(r.stats().prefix_queries for r in replicas)
    h = sum(r.stats().prefix_hits for r in replicas)
    res.hit_rate = h / q if q else 0.0
    res.calls = len(res.call_latencies)
    reg = metrics.registry
    res.hedges = sum(
        reg.get_sample_value("agentfleet_routing_hedges_total", {"model": "llama", "result": r}) or 0.0
        for r in ("won", "lost", "failed")
    )
    res.denied = reg.get_sample_value("agentfleet_routing_hedges_total", {"model": "llama", "result": "denied"}) or 0.0
    res.sent = sum(r.calls for r in replicas)
    res.slow_calls = sum(r.slow_calls for r in replicas)
    hit = reg.get_sample_value("agentfleet_routing_affinity_total", {"model": "llama", "result": "hit"}) or 0.0
    miss = reg.get_sample_value("agentfleet_routing_affinity_total", {"model": "llama", "result": "miss"}) or 0.0
    res.affinity = hit / (hit + miss) if hit + miss else 0.0
    return res


def virtual_run(
    label: str,
    tasks: list[TaskSpec],
    settings: RoutingSettings,
    *,
    replicas: int = 4,
    faults: dict[str, Any] | None = None,
    max_tokens: int = 64,
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
        res.episodes = sum(len(r.slow_episodes()) for r in sims)
        for r in sims:
            await r.stop()
        return finish(res, sims, metrics)

    started = time.monotonic()
    res = run_virtual(main())
    print(
        f"    ({label}: {time.monotonic() - started:.0f} s of CPU-bound wall time for {res.wall:.0f} s simulated)",
        file=sys.stderr,
        flush=True,
    )
    return res


def http_run(label: str, tasks: list[TaskSpec], settings: RoutingSettings, max_tokens: int = 16) -> Result:
    fleet = start_fleet(4, engine={**ENGINE, "kv_cache_tokens": 70_000})
    try:

        async def main() -> Result:
            metrics = RoutingMetrics(CollectorRegistry())
            client = RoutingModelClient(
                (
                    Tier("llama", "llama-70b", settings),
                    StaticSource([Endpoint(h.name, h.base_url) for h in fleet.replicas]),
                ),
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
    mean, p99 = statistics.fmean(r.call_latencies), pct(r.call_latencies, 99)
    s = (
        f"  {r.label:<26} hit rate {r.hit_rate:6.1%}  call mean {mean:6.2f} s  p99 {p99:6.2f} s  task p95 "
        f"{pct(r.task_seconds, 95):7.1f} s  same-replica {r.affinity:6.1%}"
    )
    if base is not None:
        s += (
            f"   [{r.hit_rate / base.hit_rate:4.1f}x hit rate, p99 {p99 / pct(base.call_latencies, 99):4.2f}x of "
            f"{base.label}]"
        )
    return s


def hedging_section(args: argparse.Namespace) -> None:
    print(
        "2. Hedging: 10x slow calls, PrefixAffinity, 4 replicas; the same tasks under two models of the slowness\n"
        "   independent: every call is 10x slow with chance 1% (slow_fraction)\n"
        "   episodes D s: each replica spends 1% of its time in slow episodes (exponential, mean D s) in which every "
        "call it\n"
        "   starts is 10x slow (a long prefill hogging the batch, throttling, a noisy neighbour): a task pinned there "
        "meets\n"
        "   them in a row\n"
        "   'no stay': the router before this change (a task whose hedge won elsewhere goes back to its home next call)"
    )
    models: list[tuple[str, dict[str, Any]]] = [("independent", {"slow_fraction": 0.01, "slow_factor": 10.0})]
    for d in (float(x) for x in args.episode_seconds.split(",") if x):
        models.append(
            (f"episodes {d:g} s", {"slow_episode_fraction": 0.01, "slow_episode_seconds": d, "slow_factor": 10.0})
        )
    configs = [
        ("no hedging", RoutingSettings()),
        ("hedge p95, no stay", RoutingSettings(hedging=True, stay_after_move=False)),
        ("hedge p95", RoutingSettings(hedging=True)),
    ]
    # A fleet below saturation (~0.5 tasks/s on 4 replicas): the tail then comes from the slow
    # calls, not from queueing. Long enough that 1% of 4 replicas' time is several episodes.
    rate = 0.53
    workloads = [("agent tasks", args.steps, int(rate * args.hedge_seconds))]
    if args.short_tasks:
        workloads.append(("short tasks", 6, int(3 * rate * args.hedge_seconds)))
    for wlabel, steps, n_tasks in workloads:
        hset = make_tasks(n_tasks, steps, seed=2, arrival_window=args.hedge_seconds)
        print(f"  {wlabel}: {n_tasks} tasks x {steps} calls arriving over {args.hedge_seconds:.0f} s")
        # No hedge can make the tail better than a fleet without slow calls at all.
        ref = virtual_run("no slow calls", hset, RoutingSettings())
        print(
            f"    {'no slow calls (reference)':<36} task p95 {pct(ref.task_seconds, 95):6.1f} s  p99 "
            f"{pct(ref.task_seconds, 99):6.1f} s  call p99 {pct(ref.call_latencies, 99):6.2f} s"
        )
        for mlabel, faults in models:
            results = [virtual_run(f"{mlabel}: {clabel}", hset, st, faults=faults) for clabel, st in configs]
            off = results[0]
            for r in results:
                extra = (r.sent - r.calls) / r.calls
                print(
                    f"    {r.label:<36} task p95 {pct(r.task_seconds, 95):6.1f} s  p99 {pct(r.task_seconds, 99):6.1f} "
                    "s  "
                    f"call p99 {pct(r.call_latencies, 99):6.2f} s  slow calls {r.slow_calls / r.sent:5.2%}  "
                    f"extra calls {extra:5.1%} (hedges {r.hedges:.0f}, {r.denied:.0f} denied)  same-replica "
                    f"{r.affinity:5.1%}" + (f"  ({r.episodes} episodes in {r.wall:.0f} s)" if r.episodes else "")
                )
            print(
                f"      at most {pct(off.task_seconds, 95) / pct(ref.task_seconds, 95):.2f}x better task p95 "
                f"({pct(off.task_seconds, 99) / pct(ref.task_seconds, 99):.2f}x p99) for a hedge that removed every "
                "slow call for free"
            )
            for r in results[1:]:
                print(
                    f"      -> {r.label}: task p95 {pct(off.task_seconds, 95) / pct(r.task_seconds, 95):.2f}x better, "
                    f"task p99 {pct(off.task_seconds, 99) / pct(r.task_seconds, 99):.2f}x, call p99 "
                    f"{pct(off.call_latencies, 99) / pct(r.call_latencies, 99):.2f}x"
                )


def skew_section(args: argparse.Namespace) -> None:
    print("\n3. Bounded load, skewed mix: 8 of every 10 tasks are sub-agents of 3 hot roots (subAgentAffinity)")
    hot = make_tasks(
        args.tasks,
        args.steps,
        seed=3,
        arrival_window=30.0,
        roots=lambda i: f"root-{i % 3}" if i % 10 < 8 else f"solo-{i}",
    )
    results = [
        virtual_run("HRW unbounded (1000%)", hot, RoutingSettings(load_bound_percent=1000)),
        virtual_run("HRW bounded 125%", hot, RoutingSettings(load_bound_percent=125)),
        virtual_run("LeastLoaded", hot, RoutingSettings(policy="LeastLoaded")),
    ]
    for r in results:
        print(
            f"  {r.label:<26} in-flight max/mean: mean {r.imbalance_mean:4.2f}  worst {r.imbalance_max:4.2f}   "
            f"hit rate {r.hit_rate:6.1%}  call p99 {pct(r.call_latencies, 99):6.2f} s"
        )


def hit_bounds(tasks: list[TaskSpec], replicas: int, samples: int = 20) -> tuple[float, float, float]:
    """What the routing policies can get on this workload, from the prompts alone (token-weighted
    like vllm:prefix_cache_hits / queries; block-granular, at most prompt - 1 tokens):

    - sticky ceiling: every call finds its task's previous prompt (the first call only the
      shared system prompt): 1 - new tokens / prompt tokens;
    - round-robin floor: a call lands on the replica of the task's previous call with chance 1/n
      (that prefix is the most recently freed there, so LRU keeps it under any cache pressure that
      sticky routing itself survives); otherwise at least the shared system prompt hits;
    - round-robin with an unbounded cache: the latest prefix the task left on the replica the call
      lands on (uniform replicas, Monte Carlo).
    So no router beats ceiling / floor times round-robin on this workload and fleet size."""
    tok = ChatTokenizer()
    bs = 16
    shared = len(block_hashes(tok.chat_prompt(first_messages(tasks[0])[:1], add_generation_prompt=False), bs))
    rng = random.Random(7)
    queries = sticky = floor = unbounded = 0.0
    for spec in tasks:
        msgs = first_messages(spec)
        chains: list[list[int]] = []
        lengths: list[int] = []
        for step in range(spec.steps):
            prompt = tok.chat_prompt(msgs)
            chains.append(block_hashes(prompt, bs))
            lengths.append(len(prompt))
            msgs += after_step(spec, step)

        def hit(k: int, j: int | None, chains: list[list[int]] = chains, lengths: list[int] = lengths) -> int:
            """Tokens of call k found in the cache when call j's prompt is there (None: only the
            system prompt)."""
            most = (lengths[k] - 1) // bs
            if j is None:
                return min(shared, most) * bs
            a, b = chains[k], chains[j]
            n = 0
            while n < min(len(a), len(b), most) and a[n] == b[n]:
                n += 1
            return n * bs

        for k in range(spec.steps):
            queries += lengths[k]
            prev = hit(k, k - 1 if k else None)
            sticky += prev
            floor += prev / replicas + hit(k, None) * (1 - 1 / replicas) if k else prev
        for _ in range(samples):
            last: dict[int, int] = {}
            for k in range(spec.steps):
                r = rng.randrange(replicas)
                unbounded += hit(k, last.get(r)) / samples
                last[r] = k
    return sticky / queries, floor / queries, unbounded / queries


def affinity_section(args: argparse.Namespace) -> None:
    for replicas in [int(x) for x in args.replicas.split(",")]:
        n_tasks = args.tasks_per_replica * replicas
        print(f"1. Cache affinity: {n_tasks} tasks x {args.steps} calls, {replicas} replicas (virtual clock)")
        tasks = make_tasks(n_tasks, args.steps, seed=1, arrival_window=30.0)
        ceiling, floor, unbounded = hit_bounds(tasks, replicas)
        print(
            f"  bounds from the prompts: sticky ceiling {ceiling:.1%}; RoundRobin floor {floor:.1%} (unbounded cache "
            f"{unbounded:.1%}) "
            f"-> no router gets more than {ceiling / floor:.2f}x RoundRobin here"
        )
        rr = virtual_run("RoundRobin", tasks, RoutingSettings(policy="RoundRobin"), replicas=replicas)
        ll = virtual_run("LeastLoaded", tasks, RoutingSettings(policy="LeastLoaded"), replicas=replicas)
        pa = virtual_run(
            "PrefixAffinity (bound 125%)", tasks, RoutingSettings(policy="PrefixAffinity"), replicas=replicas
        )
        pa2 = virtual_run(
            "PrefixAffinity (bound 200%)",
            tasks,
            RoutingSettings(policy="PrefixAffinity", load_bound_percent=200),
            replicas=replicas,
        )
        # The router before the bound moved tasks instead of calls: a call over the bound went to
        # the task's next replica and the next call went back home, missing on both.
        old = virtual_run(
            "PrefixAffinity 125%, no stay",
            tasks,
            RoutingSettings(policy="PrefixAffinity", stay_after_move=False),
            replicas=replicas,
        )
        print(line(rr))
        for r in (ll, pa, pa2, old):
            print(line(r, rr))
        print()


def call_ceilings(tasks: list[TaskSpec]) -> dict[tuple[str, int], tuple[int, int]]:
    """(goal, step) -> (tokens the ceiling router finds cached, prompt tokens): the previous
    call's prompt (the first call: the shared system prompt), block-granular, at most prompt - 1."""
    tok = ChatTokenizer()
    bs = 16
    shared = block_hashes(tok.chat_prompt(first_messages(tasks[0])[:1], add_generation_prompt=False), bs)
    out = {}
    for spec in tasks:
        msgs = first_messages(spec)
        prev = shared
        for step in range(spec.steps):
            prompt = tok.chat_prompt(msgs)
            chain = block_hashes(prompt, bs)
            most = (len(prompt) - 1) // bs
            n = 0
            while n < min(len(chain), len(prev), most) and chain[n] == prev[n]:
                n += 1
            out[(spec.goal, step)] = (n * bs, len(prompt))
            prev = chain
            msgs += after_step(spec, step)
    return out


@dataclass
class Where:
    label: str
    hit_rate: float
    ttft_p99: float
    moves: int
    lost_moved: float  # share of all prompt tokens the ceiling hits but this run missed, by cause
    lost_evicted: float
    lost_first: float
    over_cap: int  # calls placed on a replica already above the load bound (loadBoundPercent)
    samples: int  # calls placed


def where_hits_go(
    label: str,
    tasks: list[TaskSpec],
    settings: RoutingSettings,
    replicas: int,
    ceilings: dict[tuple[str, int], tuple[int, int]],
    churn: tuple[str, float] | None = None,
) -> Where:
    """``churn``: ("fail", t) stops one replica at t s (its EndpointSlice entry goes first, then
    the engine with its calls in flight and its cache); ("add", t) starts with one replica fewer in
    the set and adds it at t s."""

    async def main() -> Where:
        sims = await start_replicas(replicas, fleet_config(replicas, engine=ENGINE))
        by_name = {r.name: r for r in sims}
        transport = BoundCheckTransport(by_name)
        endpoints = [Endpoint(n, f"sim://{n}/v1") for n in by_name]
        source = StaticSource(endpoints[:-1] if churn and churn[0] == "add" else endpoints)
        transport.live = lambda: [e.name for e in source.endpoints()]

        async def change(kind: str, at: float) -> None:
            await asyncio.sleep(at)
            if kind == "add":
                source.set(endpoints)
            else:
                victim = sims[len(sims) // 2]
                source.set([e for e in endpoints if e.name != victim.name])
                await victim.stop()

        changer = asyncio.ensure_future(change(*churn)) if churn else None
        client = RoutingModelClient(
            (Tier("llama", "llama-70b", settings), source),
            transport=transport,
            metrics=RoutingMetrics(CollectorRegistry()),
            timeout=600.0,
            max_output_tokens=64,
            rng=random.Random(1),
            stream=True,
        )
        transport.inflight, transport.eps = client.primary.inflight, settings.eps
        # TTFT as the agent sees it: from the call's start at the client (a wait before placing
        # the call counts), to the first token of the attempt that answered.
        starts: dict[tuple[str, int], float] = {}
        complete = client.complete

        async def timed(request: ModelRequest) -> Any:
            starts[(request.messages[1]["content"], request.step)] = asyncio.get_running_loop().time()
            return await complete(request)

        client.complete = timed  # type: ignore[method-assign]
        await drive(client, tasks, Result(label))
        if changer is not None:
            await changer
        await client.close()
        for r in sims:
            await r.stop()
        q = sum(r.stats().prefix_queries for r in sims)
        h = sum(r.stats().prefix_hits for r in sims)
        last: dict[str, str] = {}
        moved = evicted = first = 0.0
        moves = 0
        rows = transport.rows()
        for goal, step, replica, _prompt, cached, _ttft in rows:
            ceiling, _ = ceilings[(goal, step)]
            lost = max(0, ceiling - cached)
            prev = last.get(goal)
            if step == 0:
                first += lost
            elif prev != replica:
                moved += lost
                moves += 1
            else:
                evicted += lost
            last[goal] = replica
        ttfts = [t - starts[(g, s)] for g, s, *_, t in rows if t == t]
        return Where(
            label,
            h / q,
            pct(ttfts, 99),
            moves,
            moved / q,
            evicted / q,
            first / q,
            transport.over_cap,
            transport.placements,
        )

    started = time.monotonic()
    res = run_virtual(main())
    print(f"    ({label}: {time.monotonic() - started:.0f} s wall)", file=sys.stderr, flush=True)
    return res


def ceiling_section(args: argparse.Namespace) -> None:
    print(
        "\n5. Where the hits go: hit rate against the ceiling (a router that always finds the task's previous "
        "prompt, unbounded"
    )
    print(
        "   capacity), p99 TTFT (streamed calls), tokens the ceiling hits that a run missed by cause, load-bound "
        "violations"
    )
    print(
        f"   {'replicas':>8} {'policy':<28} {'hit rate':>8} {'of ceiling':>10} {'p99 TTFT':>9} {'moves':>6} "
        f"{'lost: moved':>11} {'evicted':>8} {'first':>6} {'over cap':>9}"
    )
    for replicas in [int(x) for x in args.ceiling_replicas.split(",")]:
        tasks = make_tasks(args.tasks_per_replica * replicas, args.steps, seed=args.ceiling_seed, arrival_window=30.0)
        ceiling = hit_bounds(tasks, replicas, samples=1)[0]
        ceilings = call_ceilings(tasks)
        rr = where_hits_go("RoundRobin", tasks, RoutingSettings(policy="RoundRobin"), replicas, ceilings)
        routers = (
            ROUTERS
            + [
                (f"PrefixAffinity {b}%", RoutingSettings(policy="PrefixAffinity", load_bound_percent=b))
                for b in (int(x) for x in args.bounds.split(",") if x)
            ]
            + [
                (f"PA 125% + wait {w:g} s for room", RoutingSettings(policy="PrefixAffinity", spill_wait_s=w))
                for w in (float(x) for x in args.spill_waits.split(",") if x)
            ]
        )
        rows = [rr] + [where_hits_go(label, tasks, st, replicas, ceilings) for label, st in routers]
        if replicas in [int(x) for x in args.churn_replicas.split(",") if x]:
            at = args.churn_at
            pa = RoutingSettings(policy="PrefixAffinity")
            rows += [
                where_hits_go(
                    f"PA 125%, 1 of {replicas} fails at {at:g} s", tasks, pa, replicas, ceilings, churn=("fail", at)
                ),
                where_hits_go(f"PA 125%, 1 added at {at:g} s", tasks, pa, replicas, ceilings, churn=("add", at)),
            ]
        for w in rows:
            print(
                f"   {replicas:>8} {w.label:<28} {w.hit_rate:8.1%} {w.hit_rate / ceiling:10.1%} {w.ttft_p99:8.2f}s "
                f"{w.moves:6d} "
                f"{w.lost_moved:11.1%} {w.lost_evicted:8.1%} {w.lost_first:6.1%} {w.over_cap:4d}/{w.samples:<4d}"
                + (f"  p99 TTFT {w.ttft_p99 / rr.ttft_p99:.2f}x RR" if w is not rr else f"  (ceiling {ceiling:.1%})")
            )


# The sticky routers section 5 compares (label, settings).
ROUTERS: list[tuple[str, RoutingSettings]] = [("PrefixAffinity 125%", RoutingSettings(policy="PrefixAffinity"))]


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
    ap.add_argument(
        "--hedge-seconds", type=float, default=900.0, help="section 2: arrival window (tasks arrive at ~0.5/s)"
    )
    ap.add_argument(
        "--episode-seconds", default="10,40", help="section 2: mean slow-episode lengths to compare ('' for none)"
    )
    ap.add_argument("--short-tasks", action="store_true", help="section 2: also 6-call tasks")
    ap.add_argument("--ceiling-replicas", default="2,4,8,16", help="fleet sizes of section 5")
    ap.add_argument(
        "--ceiling-seed", type=int, default=1, help="section 5's task seed (the waits were tuned on seed 9)"
    )
    ap.add_argument(
        "--bounds", default="", help="section 5: extra PrefixAffinity rows with these loadBoundPercent values"
    )
    ap.add_argument(
        "--spill-waits", default="1", help="section 5: extra PA 125%% rows with these waits for room (s), for tuning"
    )
    ap.add_argument(
        "--churn-replicas",
        default="8",
        help="section 5: fleet sizes that also get a run where one replica fails and one where one is added",
    )
    ap.add_argument(
        "--churn-at",
        type=float,
        default=20.0,
        help="section 5: when the replica fails or is added (s; tasks arrive over the first 30 s)",
    )
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
    if 5 in sections:
        ceiling_section(args)


if __name__ == "__main__":
    main()
