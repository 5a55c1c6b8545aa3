"""Adapter affinity: a tier whose model is a LoRA adapter ranks the replicas alike for every task,
so the adapter stays in the GPU slots of its first choices; the load bound still spreads it."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from prometheus_client import CollectorRegistry

from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual
from tests.unit.routing.test_routing_client import FakeTransport, req


def client_for(adapter: bool, transport: FakeTransport, floor: int = 8) -> RoutingModelClient:
    src = StaticSource([Endpoint(f"r{i}", f"http://x{i}/v1") for i in range(8)])
    return RoutingModelClient(
        (Tier("base", "sql-lora", RoutingSettings(adapter_calls_per_replica=floor), adapter=adapter), src),
        transport=transport,
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=1.0,
        rng=random.Random(0),
    )


def replicas_of_tasks(adapter: bool, tasks: int, concurrent: bool = False, floor: int = 8) -> Counter[str]:
    t = FakeTransport(latency={f"r{i}": 0.5 for i in range(8)} if concurrent else None)

    async def main() -> None:
        c = client_for(adapter, t, floor)

        async def task(i: int) -> None:
            await asyncio.sleep(0.01 * i)  # arrivals 10 ms apart, each call lasting 0.5 s
            await c.complete(req(f"task-{i}"))

        if concurrent:
            await asyncio.gather(*(task(i) for i in range(tasks)))
        else:
            for i in range(tasks):
                await c.complete(req(f"task-{i}"))

    run_virtual(main())
    return Counter(t.sent)


def test_every_task_of_an_adapter_goes_to_the_adapters_replica() -> None:
    assert len(replicas_of_tasks(adapter=True, tasks=16)) == 1
    # Without it, tasks spread over the fleet by their own keys (the base model's affinity).
    assert len(replicas_of_tasks(adapter=False, tasks=16)) >= 5


def test_a_hot_adapter_spreads_down_its_ranking_past_its_calls_per_replica() -> None:
    # 32 calls in flight on 8 replicas: each replica takes 8 (adapterCallsPerReplica) before the
    # adapter spreads to the next; with a floor of 1 the plain bound (125 % of a fair share of 4) holds.
    spread = replicas_of_tasks(adapter=True, tasks=32, concurrent=True)
    assert len(spread) == 4 and max(spread.values()) == 8
    spread = replicas_of_tasks(adapter=True, tasks=32, concurrent=True, floor=1)
    assert len(spread) >= 6 and max(spread.values()) <= 5


def test_homes_are_balanced_over_the_sets_adapters() -> None:
    from agentfleet_runtime.routing.hashing import balanced_homes

    replicas = [f"r{i}" for i in range(4)]
    homes = balanced_homes([f"lora-{i}" for i in range(8)], replicas)
    assert sorted(Counter(homes.values()).values()) == [2, 2, 2, 2]
    assert homes == balanced_homes(
        reversed([f"lora-{i}" for i in range(8)]), list(reversed(replicas))
    )  # the same on every pod
