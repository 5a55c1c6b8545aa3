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


def client_for(adapter: bool, transport: FakeTransport) -> RoutingModelClient:
    src = StaticSource([Endpoint(f"r{i}", f"http://x{i}/v1") for i in range(8)])
    return RoutingModelClient(
        (Tier("base", "sql-lora", RoutingSettings(), adapter=adapter), src),
        transport=transport,
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=1.0,
        rng=random.Random(0),
    )


def replicas_of_tasks(adapter: bool, tasks: int, concurrent: bool = False) -> Counter[str]:
    t = FakeTransport(latency={f"r{i}": 0.5 for i in range(8)} if concurrent else None)

    async def main() -> None:
        c = client_for(adapter, t)
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


def test_a_hot_adapter_spreads_down_its_ranking_under_the_load_bound() -> None:
    spread = replicas_of_tasks(adapter=True, tasks=32, concurrent=True)
    # 32 calls at once on 8 replicas: a fair share is 4, the bound (125 %) 5 a replica.
    assert len(spread) >= 6 and max(spread.values()) <= 5
