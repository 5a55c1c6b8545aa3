"""The client's control flow against an in-process fake transport (no sockets): failover order,
ejection, hedging within budget with the loser cancelled, tiers, affinity and metrics."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual


def reply(name: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": name}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "model": "m",
    }


class FakeTransport:
    """Each replica: a latency and a behaviour ('ok', 'fail', 'bad', 'hang')."""

    def __init__(self, latency: dict[str, float] | None = None) -> None:
        self.latency = latency or {}
        self.mode: dict[str, str] = {}
        self.sent: list[str] = []
        self.cancelled: list[str] = []

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.sent.append(endpoint.name)
        mode = self.mode.get(endpoint.name, "ok")
        try:
            if mode == "hang":
                await asyncio.sleep(3600)
            await asyncio.sleep(self.latency.get(endpoint.name, 0.001))
        except asyncio.CancelledError:
            self.cancelled.append(endpoint.name)
            raise
        if mode == "fail":
            raise ModelError(f"{endpoint.name} answered 500", status=500)
        if mode == "bad":
            raise ModelError("bad request", status=400, retryable=False)
        return reply(endpoint.name)

    async def close(self) -> None:
        return None


class StreamingFake(FakeTransport):
    """FakeTransport whose calls can be streamed: the first token comes with the answer."""

    async def stream(self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: Any) -> dict[str, Any]:
        out = await self.send(endpoint, body, timeout)
        observer.on_first()
        return out


def make(
    n: int = 4, transport: FakeTransport | None = None, **routing: Any
) -> tuple[RoutingModelClient, FakeTransport, RoutingMetrics, StaticSource]:
    t = transport or FakeTransport()
    src = StaticSource([Endpoint(f"r{i}", f"http://x{i}/v1") for i in range(n)])
    metrics = RoutingMetrics(CollectorRegistry())
    settings = RoutingSettings(**{"ejection_consecutive_errors": 2, "ejection_seconds": 5, **routing})
    client = RoutingModelClient(
        (Tier("big", "big", settings), src),
        transport=t,
        metrics=metrics,
        timeout=1.0,
        max_retries=3,
        backoff_base=0.001,
        rng=random.Random(0),
    )
    return client, t, metrics, src


def req(task: str = "t1", kind: str = "step", root: str = "") -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": "hi"}], task_id=task, root_id=root or task, kind=kind)  # type: ignore[arg-type]


def value(metrics: RoutingMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_a_task_sticks_to_its_replica_and_affinity_is_counted() -> None:
    async def body() -> None:
        client, t, m, _ = make()
        for _ in range(5):
            await client.complete(req("a"))
        assert len(set(t.sent)) == 1
        assert value(m, "agentfleet_routing_affinity_total", model="big", result="hit") == 4
        assert value(m, "agentfleet_routing_affinity_total", model="big", result="first") == 1
        # sub-agents follow their root task
        await client.complete(req("a/child", root="a"))
        assert t.sent[-1] == t.sent[0]

    run(body())


def test_failover_walks_the_task_order_and_ejects_the_failing_replica() -> None:
    async def body() -> None:
        client, t, m, _ = make()
        home = client.primary.order("a", 0)[0].name
        second = client.primary.order("a", 0, exclude=[home])[0].name
        t.mode[home] = "fail"
        out = await client.complete(req("a"))
        assert out.content == second and t.sent[:2] == [home, second]
        t.sent.clear()
        await client.complete(req("a"))
        assert t.sent == [second]  # the task stays where it was served (its cache is there now)
        other, fresh = [k for k in (f"b{i}" for i in range(100)) if client.primary.order(k, 0)[0].name == home][:2]
        await client.complete(req(other))  # second failure on home: ejected
        assert value(m, "agentfleet_routing_ejections_total", model="big", replica=home) == 1
        t.sent.clear()
        await client.complete(req(fresh))
        assert home not in t.sent and len(t.sent) == 1  # no more calls to the ejected replica
        assert value(m, "agentfleet_routing_failovers_total", model="big") == 2

    run(body())


def test_a_moved_sub_agent_stays_where_its_own_history_is_and_its_siblings_stay_home() -> None:
    async def body() -> None:
        client, t, _, _ = make()
        home = client.primary.order("root", 0)[0].name
        t.mode[home] = "fail"
        moved = (await client.complete(req("sub-1", root="root"))).content  # failed over
        assert moved != home
        t.mode[home] = "ok"
        t.sent.clear()
        await client.complete(req("sub-1", root="root"))
        await client.complete(req("sub-2", root="root"))
        await client.complete(req("root"))
        assert t.sent == [moved, home, home]  # per task, though all three share the root's key

    run(body())


def test_non_retryable_errors_are_not_failed_over() -> None:
    async def body() -> None:
        client, t, _, _ = make()
        t.mode = {f"r{i}": "bad" for i in range(4)}
        with pytest.raises(ModelError) as err:
            await client.complete(req("a"))
        assert not err.value.retryable and len(t.sent) == 1

    run(body())


def test_all_replicas_failing_raises_the_last_error_after_the_retries() -> None:
    async def body() -> None:
        client, t, _, _ = make()
        t.mode = {f"r{i}": "fail" for i in range(4)}
        with pytest.raises(ModelError):
            await client.complete(req("a"))
        assert len(t.sent) == 4 and len(set(t.sent)) == 4

    run(body())


def test_no_replicas_is_a_clear_error() -> None:
    async def body() -> None:
        client, _, _, src = make()
        src.set([])
        with pytest.raises(ModelError, match="no serving replica of big"):
            await client.complete(req("a"))

    run(body())


def test_a_call_waits_for_the_first_replica_of_an_empty_set() -> None:
    """Scale to zero: the set is empty while the model sleeps or loads; the call is served by the
    first replica to become ready, and nothing is sent before."""

    async def body() -> None:
        client, t, _, src = make()
        src.set([])

        async def wake() -> None:
            await asyncio.sleep(0.5)
            assert t.sent == []
            src.set([Endpoint("r0", "http://x0/v1")])

        waker = asyncio.ensure_future(wake())
        out = await client.complete(req("a"))
        await waker
        assert out.content == "r0" and t.sent == ["r0"]

    run(body())


def test_hedge_after_the_percentile_wins_and_cancels_the_loser() -> None:
    async def body() -> None:
        t = FakeTransport({f"r{i}": 0.01 for i in range(4)})
        client, t, m, _ = make(transport=t, hedging=True, hedge_max_extra_percent=50)
        for i in range(200):  # learn the p95 (~10 ms) and earn hedge tokens
            await client.complete(req(f"warm-{i}"))
        home = client.primary.order("slow", 0)[0].name
        t.mode[home] = "hang"
        t.cancelled.clear()
        cancelled = value(m, "agentfleet_routing_replica_calls_total", model="big", replica=home, outcome="cancelled")
        won = value(m, "agentfleet_routing_hedges_total", model="big", result="won")
        out = await client.complete(req("slow"))
        assert out.content != home
        assert t.cancelled == [home]
        assert value(m, "agentfleet_routing_hedges_total", model="big", result="won") == won + 1
        assert (
            value(m, "agentfleet_routing_replica_calls_total", model="big", replica=home, outcome="cancelled")
            == cancelled + 1
        )

    run(body())


@pytest.mark.parametrize("stay", [True, False])
def test_a_task_whose_hedge_won_elsewhere_stays_there(stay: bool) -> None:
    """A replica in a slow episode: the hedge's winner holds the whole prompt now, so the task's
    next call goes straight there instead of paying the hedge delay (and a hedge) again."""

    async def body() -> None:
        t = FakeTransport({f"r{i}": 0.01 for i in range(4)})
        client, t, m, _ = make(transport=t, hedging=True, hedge_max_extra_percent=50, stay_after_move=stay)
        for i in range(200):  # learn the p95 (~10 ms) and earn hedge tokens
            await client.complete(req(f"warm-{i}"))
        home = client.primary.order("slow", 0)[0].name
        t.latency[home] = 1.0  # slow, not failing: only a hedge gets the task away from it
        first = await client.complete(req("slow"))
        assert first.content != home
        won = value(m, "agentfleet_routing_hedges_total", model="big", result="won")
        # The hedge delay is the learned p95, which a call at the same 10 ms exceeds 1 time in 20:
        # the winner answers well inside it, so only a call sent home would be hedged.
        t.latency[first.content] = 0.001
        t.sent.clear()
        second = await client.complete(req("slow"))
        if stay:
            # Sent to the winner first, and answered there. On a loaded machine a 1 ms call can still
            # outlast the learned p95 and send a hedge, which the winner beats: staying is where the
            # call goes first, not whether the hedge timer ever fires.
            assert t.sent[0] == first.content and second.content == first.content
            assert value(m, "agentfleet_routing_hedges_total", model="big", result="won") == won
        else:
            assert (
                t.sent[0] == home and value(m, "agentfleet_routing_hedges_total", model="big", result="won") == won + 1
            )

    run(body())


def test_hedges_stay_within_the_budget() -> None:
    async def body() -> None:
        t = FakeTransport({f"r{i}": 0.002 for i in range(4)})
        client, t, m, _ = make(transport=t, hedging=True, hedge_max_extra_percent=5)
        for i in range(100):
            await client.complete(req(f"warm-{i}"))
        # Everything is now 'slow': 25 times the warm latency, so that the warm p95 (the hedge
        # delay) stays under it when the machine is loaded and 2 ms sleeps take several.
        t.latency = {f"r{i}": 0.05 for i in range(4)}
        for i in range(100):
            await client.complete(req(f"slow-{i}"))
        sent = sum(
            value(m, "agentfleet_routing_hedges_total", model="big", result=r) for r in ("won", "lost", "failed")
        )
        assert 1 <= sent <= 0.05 * 200  # the budget starts empty: 5% of the calls answered
        assert (
            value(m, "agentfleet_routing_hedges_total", model="big", result="denied") >= 1
        )  # the p95 then adapts to the new regime

    run(body())


@pytest.mark.parametrize("stream", [False, True], ids=["whole-call", "first-token"])
def test_a_denied_hedge_is_asked_for_again_while_the_call_still_waits(stream: bool) -> None:
    """A stalled replica holds its calls far past the hedge delay; the budget was empty when the
    delay passed (the steady tail's hedges drain it) but refills while the call waits: the call
    gets its hedge then, instead of waiting out the stall (here: the 1 s attempt timeout)."""

    async def body() -> None:
        t = StreamingFake({f"r{i}": 0.01 for i in range(4)})
        client, t, m, _ = make(transport=t, hedging=True, hedge_max_extra_percent=50)
        client.stream = stream
        for i in range(200):  # learn the p95 (~10 ms)
            await client.complete(req(f"warm-{i}"))
        budget = client.primary.budget
        budget.credit = budget.tokens = 0.0  # drained
        won, denied = (value(m, "agentfleet_routing_hedges_total", model="big", result=r) for r in ("won", "denied"))
        home = client.primary.order("slow", 0)[0].name
        t.mode[home] = "hang"
        t.latency = {n: 0.005 for n in t.latency}  # the others now answer inside the delay
        loop = asyncio.get_running_loop()
        began = loop.time()
        slow = asyncio.ensure_future(client.complete(req("slow")))
        await asyncio.sleep(0.05)
        assert value(m, "agentfleet_routing_hedges_total", model="big", result="denied") == denied + 1
        others = [f"other-{i}" for i in range(400) if client.primary.order(f"other-{i}", 0)[0].name != home][:10]
        for task in others:  # answered calls refill the budget
            await client.complete(req(task))
        out = await slow
        assert out.content != home and loop.time() - began < 0.5
        assert value(m, "agentfleet_routing_hedges_total", model="big", result="won") >= won + 1
        assert (
            value(m, "agentfleet_routing_hedges_total", model="big", result="denied") == denied + 1
        )  # counted once per call

    run_virtual(body())  # the virtual clock: the learned delay and the waits are exact, however busy the machine


def test_routine_steps_go_to_the_routine_tier() -> None:
    async def body() -> None:
        t = FakeTransport()
        metrics = RoutingMetrics(CollectorRegistry())
        big = StaticSource([Endpoint("big-0", "http://b/v1")])
        small = StaticSource([Endpoint("small-0", "http://s/v1")])
        client = RoutingModelClient(
            (Tier("big", "big"), big),
            routine=(Tier("small", "small"), small),
            routine_kinds=frozenset({"summary"}),
            transport=t,
            metrics=metrics,
        )
        await client.complete(req("a"))
        await client.complete(req("a", kind="summary"))
        await client.complete(req("a", kind="tool_arguments"))
        assert t.sent == ["big-0", "small-0", "big-0"]
        assert value(metrics, "agentfleet_routing_tier_calls_total", tier="routine", model="small", kind="summary") == 1
        assert (
            value(metrics, "agentfleet_routing_tier_calls_total", tier="primary", model="big", kind="tool_arguments")
            == 1
        )
        info = {"policy": "PrefixAffinity", "load_bound_percent": "125", "hedging": "false"}
        assert (
            value(metrics, "agentfleet_routing_policy_info", tier="routine", model="small", kinds="summary", **info)
            == 1
        )

    run(body())


def test_cancelling_a_call_cancels_its_attempts() -> None:
    async def body() -> None:
        client, t, _, _ = make()
        t.mode = {f"r{i}": "hang" for i in range(4)}
        task = asyncio.create_task(client.complete(req("a")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(t.cancelled) == 1 and client.primary.inflight[t.cancelled[0]] == 0

    run(body())
