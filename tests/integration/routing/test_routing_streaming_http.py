"""Streamed model calls over real HTTP to simulator replicas: the same answers as plain calls, a
hedge on time to first token that beats a stalled replica, and an engine that does not abort
cancelled requests noticed from its own counters."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.streaming import delta_sink
from agentfleet_sim import FleetThread, start_fleet

pytestmark = pytest.mark.integration

ENGINE = {
    "prefill_tokens_per_s": 200_000.0,
    "decode_base_s": 0.004,
    "output_tokens_median": 20.0,
    "max_model_len": 8192,
    "kv_cache_tokens": 100_000,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]


def client_for(fleet: FleetThread, stream: bool, hedging: bool = False) -> RoutingModelClient:
    src = StaticSource([Endpoint(h.name, h.base_url) for h in fleet.replicas])
    settings = RoutingSettings(hedging=hedging, hedge_after_percentile=95, hedge_max_extra_percent=50)
    return RoutingModelClient(
        (Tier("m", "llama-70b", settings), src),
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=20.0,
        max_output_tokens=64,
        rng=random.Random(1),
        stream=stream,
    )


def req(task: str, tools: bool = False) -> ModelRequest:
    messages = [{"role": "system", "content": "You are an agent. " * 20}, {"role": "user", "content": f"goal {task}"}]
    return ModelRequest(messages=messages, tools=TOOLS if tools else [], task_id=task, root_id=task)


def admin(fleet: FleetThread, name: str, changes: dict[str, Any]) -> None:
    handle = next(h for h in fleet.replicas if h.name == name)
    data = json.dumps(changes).encode()
    urllib.request.urlopen(
        urllib.request.Request(handle.url + "/admin/config", data=data, headers={"Content-Type": "application/json"}),
        timeout=5,
    ).read()


def test_streamed_calls_give_the_plain_answers_and_tool_calls() -> None:
    fleet = start_fleet(2, engine=ENGINE, quirks={"tool_call_rate": 0.5})
    try:

        async def main() -> tuple[list[Any], list[Any], list[str]]:
            plain, streamed = client_for(fleet, False), client_for(fleet, True)
            pieces: list[str] = []
            delta_sink.set(pieces.append)
            try:
                a = [await plain.complete(req(f"t{i}", tools=True)) for i in range(12)]
                b = [await streamed.complete(req(f"t{i}", tools=True)) for i in range(12)]
            finally:
                await plain.close()
                await streamed.close()
            return a, b, pieces

        a, b, pieces = asyncio.run(main())
    finally:
        fleet.stop()
    assert [(r.content, r.tool_calls, r.usage, r.finish_reason) for r in a] == [
        (r.content, r.tool_calls, r.usage, r.finish_reason) for r in b
    ]
    assert any(r.tool_calls for r in b) and any(not r.tool_calls for r in b)
    assert "".join(pieces) == "".join(r.content for r in b)  # every text delta reached the sink once


def warm(client: RoutingModelClient, n: int = 80) -> Any:
    async def go() -> None:
        for i in range(n):
            await client.complete(req(f"w{i}"))

    return go()


@pytest.mark.parametrize(
    ("aborting", "metrics_500"),
    [(True, False), (False, False), (False, True)],
    ids=["aborts", "runs-on", "runs-on-metrics-500"],
)
def test_first_token_hedge_beats_a_stall_and_notices_an_engine_that_does_not_abort(
    aborting: bool, metrics_500: bool
) -> None:
    # runs-on-metrics-500: llm-d's simulator also fails the first /metrics read after a disconnect (issue 46).
    quirks = {"abort_on_disconnect": aborting, "metrics_error_after_disconnect": metrics_500}
    fleet = start_fleet(2, engine=ENGINE, quirks=quirks)
    try:

        async def main() -> tuple[list[float], list[bool | None]]:
            client = client_for(fleet, True, hedging=True)
            watch = client.abort_watch(client.primary)
            watch.every_s, watch.settle_s, watch.min_cancels = 1.0, 0.5, 2
            try:
                await warm(client)
                times, stalled = [], set()
                for _ in range(6):
                    # Stall the replica the task's next call goes to (a won hedge moves the task).
                    home = client.primary.order("stalled-task", 0.0, task="stalled-task")[0].name
                    stalled.add(home)
                    admin(fleet, home, {"stall_seconds": 3.0})
                    t0 = time.monotonic()
                    await client.complete(req("stalled-task"))
                    times.append(time.monotonic() - t0)
                    await asyncio.sleep(3.5)  # the stall ends; the loser finishes or was aborted
                return times, [watch.known(h.base_url) for h in fleet.replicas if h.name in stalled]
            finally:
                await client.close()

        times, known = asyncio.run(main())
        orphans = sum(h.replica.orphans for h in fleet.replicas)
    finally:
        fleet.stop()
    assert max(times) < 1.0, times  # the hedge answered long before the 3 s stall ended
    if aborting:
        assert known == [True, True] and orphans == 0, (known, orphans)
    else:
        assert known == [False, False] and orphans >= 6, (known, orphans)


def test_a_replica_stalled_mid_answer_is_left_out_until_its_probe_gets_a_token() -> None:
    # A call decoding on its replica when the engine stalls for 2 s: the stall watch (learned from
    # the warm-up's streamed tokens) judges the replica, the call is hedged to the other one, and
    # the replica stays out of the order until the one-token probe the client keeps there gets its
    # token, when the stall ends: not when a timed hold runs out inside it.
    fleet = start_fleet(2, engine={**ENGINE, "output_tokens_median": 60.0})
    try:

        async def main() -> tuple[float, list[tuple[float, bool]], int, float | None]:
            loop = asyncio.get_running_loop()
            client = client_for(fleet, True, hedging=True)
            pool = client.primary
            try:
                for start in range(0, 80, 8):  # 80 streamed calls, 8 at a time: ~4,000 gaps
                    await asyncio.gather(*(client.complete(req(f"w{i}")) for i in range(start, start + 8)))
                home = pool.order("stalled-task", loop.time(), task="stalled-task")[0].name
                writing = asyncio.Event()
                delta_sink.set(lambda _: writing.set())
                call = asyncio.ensure_future(client.complete(req("stalled-task")))
                await writing.wait()
                admin(fleet, home, {"stall_seconds": 2.0})
                t0 = time.monotonic()
                await call
                answered = time.monotonic() - t0
                seen = []
                while time.monotonic() - t0 < 3.5:
                    seen.append((time.monotonic() - t0, pool.stalled(home, loop.time())))
                    await asyncio.sleep(0.05)
                return answered, seen, pool.stalls.stalls, pool.stalls.threshold()
            finally:
                await client.close()

        answered, seen, judged, threshold = asyncio.run(main())
    finally:
        fleet.stop()
    assert threshold is not None and judged == 1, (threshold, judged)
    assert answered < 1.5, answered  # hedged mid-answer, long before the stall ended
    assert all(out for t, out in seen if t < 1.9), seen  # left out for the whole stall
    assert not any(out for t, out in seen if t > 2.5), seen  # back once its probe got a token
