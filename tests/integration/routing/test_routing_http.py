"""The routing client against four simulator replicas over real HTTP: sticky routing fills the
prefix cache, failover on 500s and hangs, ejection and probe-back, drain, hedging cancels the loser."""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import FleetThread

pytestmark = pytest.mark.integration
SYSTEM = "You are a careful agent. " * 60


def scrape(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def client_for(
    fleet: FleetThread, policy: str = "PrefixAffinity", timeout: float = 5.0, **over: Any
) -> tuple[RoutingModelClient, StaticSource, RoutingMetrics]:
    src = StaticSource([Endpoint(h.name, h.base_url) for h in fleet.replicas])
    settings = RoutingSettings(**{"policy": policy, "ejection_consecutive_errors": 2, "ejection_seconds": 1.0, **over})
    metrics = RoutingMetrics(CollectorRegistry())
    client = RoutingModelClient(
        (Tier("llama", "llama-70b", settings), src),
        metrics=metrics,
        timeout=timeout,
        max_retries=3,
        max_output_tokens=4,
        backoff_base=0.01,
        rng=random.Random(1),
    )
    return client, src, metrics


def history(task: str, n: int) -> list[dict[str, Any]]:
    msgs = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"goal of {task}: " + "find the answer " * 20},
    ]
    for i in range(n):
        msgs.append({"role": "assistant", "content": f"step {i} of {task}: calling search"})
        msgs.append({"role": "tool", "content": f"result {i} for {task}: " + "data " * 80})
    return msgs


def req(task: str, n: int = 0, **kw: Any) -> ModelRequest:
    return ModelRequest(messages=history(task, n), task_id=task, root_id=task, **kw)


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def served(metrics: RoutingMetrics, replica: str, outcome: str = "ok") -> float:
    return (
        metrics.registry.get_sample_value(
            "agentfleet_routing_replica_calls_total", {"model": "llama", "replica": replica, "outcome": outcome}
        )
        or 0.0
    )


def test_sticky_routing_keeps_each_task_on_one_replica_and_hits_the_cache(fleet4: FleetThread) -> None:
    async def body() -> None:
        # A loose load bound: this test is about stickiness (tests/unit covers the spill-over).
        client, _, metrics = client_for(fleet4, load_bound_percent=400)
        tasks = [f"task-{i}" for i in range(8)]

        async def one(task: str) -> None:
            for step in range(5):
                await client.complete(req(task, step))

        await asyncio.gather(*(one(t) for t in tasks))
        await client.close()
        hits = metrics.registry.get_sample_value(
            "agentfleet_routing_affinity_total", {"model": "llama", "result": "hit"}
        )
        assert hits == 8 * 4  # every call after a task's first landed on the same replica
        assert sum(1 for h in fleet4.replicas if h.replica.calls) >= 2  # and tasks spread

    run(body())
    queries = sum(scrape(h.url, "vllm:prefix_cache_queries_total") for h in fleet4.replicas)
    hits = sum(scrape(h.url, "vllm:prefix_cache_hits_total") for h in fleet4.replicas)
    assert hits / queries > 0.7


def test_failover_on_500s_ejects_the_replica_and_probes_it_back(fleet4: FleetThread) -> None:
    async def body() -> None:
        client, _, metrics = client_for(fleet4)
        home = client.primary.order("task-0", 0)[0].name
        tasks = [t for t in (f"task-{i}" for i in range(200)) if client.primary.order(t, 0)[0].name == home][:4]
        index = next(h.index for h in fleet4.replicas if h.name == home)
        fleet4.configure(index, error_rate=1.0)
        for task in tasks[:2]:
            for step in range(2):  # one failover, then the task stays where it was served
                out = await client.complete(req(task, step))
                assert out.usage.prompt_tokens > 0
        assert served(metrics, home, "error") == 2  # two errors eject; later calls skip it
        assert (
            metrics.registry.get_sample_value("agentfleet_routing_ejections_total", {"model": "llama", "replica": home})
            == 1
        )
        await client.complete(req(tasks[2]))
        assert served(metrics, home, "error") == 2
        fleet4.configure(index, error_rate=0.0)
        await asyncio.sleep(1.1)  # ejectionSeconds
        await client.complete(req(tasks[3]))  # the probe goes home and succeeds
        await client.complete(req(tasks[3], 1))
        assert served(metrics, home) == 2
        await client.close()

    run(body())


def test_failover_on_a_hung_replica_times_out_and_moves_on(fleet4: FleetThread) -> None:
    async def body() -> None:
        client, _, metrics = client_for(fleet4, timeout=0.5)
        home = client.primary.order("task-h", 0)[0].name
        fleet4.configure(next(h.index for h in fleet4.replicas if h.name == home), hang=True)
        started = time.monotonic()
        await client.complete(req("task-h"))
        assert 0.5 <= time.monotonic() - started < 3.0
        assert served(metrics, home, "timeout") == 1
        await client.close()

    run(body())


def test_a_draining_replica_is_failed_over_and_only_its_tasks_move(fleet4: FleetThread) -> None:
    async def body() -> None:
        client, src, _ = client_for(fleet4)
        tasks = [f"t{i}" for i in range(16)]
        before = {t: client.primary.order(t, 0)[0].name for t in tasks}
        drained = before["t0"]
        fleet4.drain(next(h.index for h in fleet4.replicas if h.name == drained))
        await client.complete(req("t0"))  # 503 from the draining replica: served by the next one
        src.set([Endpoint(h.name, h.base_url) for h in fleet4.replicas if h.name != drained])  # it left the Service
        after = {t: client.primary.order(t, 0)[0].name for t in tasks}
        assert all(after[t] == before[t] for t in tasks if before[t] != drained)
        assert all(after[t] != drained for t in tasks)
        await client.close()

    run(body())


def test_hedging_sends_a_duplicate_and_the_server_drops_the_loser(fleet4: FleetThread) -> None:
    async def body() -> None:
        client, _, metrics = client_for(fleet4, hedging=True, hedge_max_extra_percent=50)
        for i in range(60):  # learn the p95 of step calls (~0.1 s) and earn hedge tokens
            await client.complete(req(f"warm-{i}"))
        home = client.primary.order("slow", 0)[0].name
        handle = next(h for h in fleet4.replicas if h.name == home)
        # 3 s before the replica even admits the call: if the server cancels the handler when the
        # client hangs up, the call never reaches the engine and the replica's call count stays put.
        fleet4.configure(handle.index, added_latency_s=3.0)
        calls = handle.replica.calls
        started = time.monotonic()
        await client.complete(req("slow"))
        assert time.monotonic() - started < 1.5
        assert (
            metrics.registry.get_sample_value("agentfleet_routing_hedges_total", {"model": "llama", "result": "won"})
            >= 1
        )
        assert served(metrics, home, "cancelled") >= 1
        await asyncio.sleep(3.5)
        assert handle.replica.calls == calls
        await client.close()

    run(body())


def test_two_pods_place_each_task_on_the_same_replica_without_talking(fleet4: FleetThread) -> None:
    async def body() -> None:
        a, _, ma = client_for(fleet4, load_bound_percent=400)
        b, _, mb = client_for(fleet4, load_bound_percent=400)
        for i in range(12):
            pod, metrics = (a, ma) if i % 2 else (b, mb)
            await pod.complete(req(f"task-{i % 6}", i // 6))  # each task's 2 calls go through different pods
        for task in (f"task-{i}" for i in range(6)):
            assert a.primary.order(task, 0)[0] == b.primary.order(task, 0)[0]
        per_replica = [h.replica.calls for h in fleet4.replicas]
        # 6 tasks x 2 calls; each task's calls on one replica, whichever pod sent them.
        assert sum(per_replica) == 12 and all(c % 2 == 0 for c in per_replica)
        await a.close()
        await b.close()

    run(body())
