"""The client's probe of a replica judged stalled (client.py ``_probe``, stallwatch.py): one
one-token request kept in flight there until a token comes, replaced with a doubled wait when it
gets none, and the replica routed to again at that token. Virtual clock: the times are exact."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from prometheus_client import CollectorRegistry

from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.stallwatch import StallWatch
from agentfleet_sim import run_virtual


class SteppingAgainAt:
    """A transport whose replica ``name`` writes nothing before ``at`` (its engine stalled), then
    answers each waiting request with one token; it records each request it was sent."""

    def __init__(self, name: str, at: float) -> None:
        self.name, self.at = name, at
        self.sent: list[tuple[str, float, int, float]] = []  # replica, when, max_tokens, timeout

    async def stream(self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.sent.append((endpoint.name, round(loop.time(), 6), body["max_tokens"], round(timeout, 6)))
        if endpoint.name == self.name:
            await asyncio.sleep(max(0.0, self.at - loop.time()))
        observer.on_progress()
        observer.on_first()
        return {}

    async def close(self) -> None:
        return None


def test_a_stalled_replica_is_probed_until_it_writes_a_token_and_then_routed_to_again() -> None:
    transport = SteppingAgainAt("r0", at=5.0)
    eps = [Endpoint(n, f"http://{n}/v1") for n in ("r0", "r1")]
    metrics = RoutingMetrics(CollectorRegistry())
    client = RoutingModelClient(
        (Tier("big", "big", RoutingSettings(hedging=True)), StaticSource(eps)),
        transport=transport,
        metrics=metrics,
        rng=random.Random(0),
        stream=True,
    )  # type: ignore[arg-type]
    pool = client.primary
    watch = StallWatch(factor=4.0, on_judged=pool.stalls.on_judged)
    watch.first_token("warm")
    for i in range(1001):  # 1,000 gaps of 0.1 s: a stall is 0.4 s without a token
        watch.progress("warm", -200.0 + i * 0.1)
    pool.stalls = watch
    seen: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch.progress("r0", 0.0)
        watch.first_token("r0")  # a call decodes on r0; its tokens stop
        await asyncio.sleep(0.5)
        seen["judged"] = pool.stalled("r0", loop.time())
        await asyncio.sleep(4.49)  # 4.99: the probes have had no token yet
        seen["before"] = (pool.stalled("r0", loop.time()), [e.name for e in pool.order("t", loop.time())])
        await asyncio.sleep(0.02)  # 5.01: the second probe's token came at 5.0
        seen["after"] = (pool.stalled("r0", loop.time()), sorted(e.name for e in pool.order("t", loop.time())))
        await client.close()

    run_virtual(main())
    assert seen["judged"] and seen["before"] == (True, ["r1"])
    # The first probe waits 4 thresholds (1.6 s) for its token; the next one twice that.
    assert transport.sent == [("r0", 0.5, 1, 1.6), ("r0", 2.1, 1, 3.2)]
    assert seen["after"] == (False, ["r0", "r1"])
    assert watch.misses == {} and watch.stalls == 1
    assert (
        metrics.registry.get_sample_value("agentfleet_routing_stalls_total", {"model": "big", "replica": "r0"}) == 1.0
    )
