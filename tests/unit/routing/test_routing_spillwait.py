"""Waiting for room at the task's replica instead of spilling (routing.spillwait, ReplicaPool.preferred)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.spillwait import RoomWaiter
from agentfleet_sim import run_virtual


def pool(**kw: object) -> ReplicaPool:
    src = StaticSource([Endpoint(f"r{i}", f"http://r{i}/v1") for i in range(4)])
    return ReplicaPool(Tier("m", "m", RoutingSettings(**kw)), src)  # type: ignore[arg-type]


def _call(client: RoutingModelClient, task: str) -> Any:
    """One step's model call for ``task`` (its own root), started now."""
    request = ModelRequest(messages=[{"role": "user", "content": task}], task_id=task, root_id=task, kind="step")  # type: ignore[arg-type]
    return asyncio.ensure_future(client.complete(request))


async def _two_then_a_third(client: RoutingModelClient, tasks: list[str]) -> None:
    """Two calls at once, then a third 50 ms later (while the first two still run), all awaited."""
    first = [_call(client, tasks[0]), _call(client, tasks[1])]
    await asyncio.sleep(0.05)
    await asyncio.gather(*first, _call(client, tasks[2]))


def test_preferred_is_the_tasks_replica_and_says_whether_the_bound_would_move_it() -> None:
    p = pool()
    home, room = p.preferred("task-1", 0.0)
    assert home == p.order("task-1", 0.0)[0].name and room
    p.inflight = {home: 3, **{n: 0 for n in ("r0", "r1", "r2", "r3") if n != home}}
    home2, room2 = p.preferred("task-1", 0.0)
    # ceil(1.25 x (3 + 1) / 4) = 2: home holds 3, the bound would move the call.
    assert home2 == home and not room2 and p.order("task-1", 0.0)[0].name != home
    p.last.swap("task-1", "r9")  # a replica that left: back to the rendezvous home
    assert p.preferred("task-1", 0.0)[0] == home
    assert pool(policy="RoundRobin").preferred("task-1", 0.0) == (None, True)


def test_one_freed_call_wakes_one_waiter_so_the_cap_holds() -> None:
    async def run() -> tuple[list[bool], list[bool]]:
        waiter = RoomWaiter()
        slots = {"free": 0}

        def room() -> bool:
            return slots["free"] > 0

        async def one() -> bool:
            ok = await waiter.wait("r0", room, 5.0)
            if ok:
                await asyncio.sleep(0.01)  # as in the client: the call counts as in flight a little later
                slots["free"] -= 1
            return ok

        calls = [asyncio.ensure_future(one()) for _ in range(3)]
        await asyncio.sleep(1.0)
        slots["free"] += 1
        waiter.freed("r0")  # one call ended: one slot
        await asyncio.sleep(0.1)
        first = [c.done() for c in calls]
        return first, list(await asyncio.gather(*calls))

    first, results = run_virtual(run())
    assert first.count(True) == 1
    assert sorted(results) == [False, False, True]  # the other two timed out: they would spill


class TimedEngine:
    """Answers after ``latency[replica]`` (virtual) seconds; records (replica, task, send time)."""

    def __init__(self, latency: dict[str, float], failing: frozenset[str] = frozenset()) -> None:
        self.latency = latency
        self.failing = failing
        self.sent: list[tuple[str, str, float]] = []

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self.sent.append((endpoint.name, body["messages"][0]["content"], round(loop.time(), 6)))
        await asyncio.sleep(self.latency[endpoint.name])
        if endpoint.name in self.failing:
            raise ModelError(f"{endpoint.name} answered 500", status=500)
        return {
            "choices": [{"message": {"content": endpoint.name}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "spill_wait, home_latency, third_goes",
    [(0.0, 0.2, ("r1", 0.05)), (1.0, 0.2, ("r0", 0.2)), (1.0, 5.0, ("r1", 1.05))],
    ids=["no-wait-spills-at-once", "waits-for-a-call-to-end-then-goes-home", "spills-when-the-wait-runs-out"],
)
def test_the_client_waits_for_room_at_home_before_the_bound_moves_a_call(
    spill_wait: float, home_latency: float, third_goes: tuple[str, float]
) -> None:
    """Two replicas at 125 %: with two calls in flight on a task's home, ceil(1.25 x 3 / 2) = 2
    leaves no room there, so a third call spills to the other replica, unless spillWaitSeconds
    lets it wait for one of the two to end (then it goes home the moment one does)."""

    async def body() -> list[tuple[str, str, float]]:
        engine = TimedEngine({"r0": home_latency, "r1": 0.2})
        src = StaticSource([Endpoint("r0", "http://r0/v1"), Endpoint("r1", "http://r1/v1")])
        settings = RoutingSettings(spill_wait_s=spill_wait)
        client = RoutingModelClient(
            (Tier("m", "m", settings), src),
            transport=engine,
            metrics=RoutingMetrics(CollectorRegistry()),
            timeout=10.0,
            max_retries=0,
            rng=random.Random(0),
        )
        tasks = [t for t in (f"t{i}" for i in range(200)) if client.primary.order(t, 0)[0].name == "r0"][:3]

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await _two_then_a_third(client, tasks)
        return [(r, task, round(at - t0, 6)) for r, task, at in engine.sent]

    sent = run_virtual(body(), start=1000.0)
    assert [(r, at) for r, _, at in sent[:2]] == [("r0", 0.0), ("r0", 0.0)]
    assert (sent[2][0], sent[2][2]) == third_goes


def test_the_wait_for_room_leaves_an_ejected_replica_out() -> None:
    """As above with a third replica, ejected: the bound and the wait count the two live ones."""

    async def body() -> list[tuple[str, str, float]]:
        engine = TimedEngine({"r0": 0.2, "r1": 0.2, "r2": 0.01}, failing=frozenset({"r2"}))
        src = StaticSource([Endpoint(f"r{i}", f"http://r{i}/v1") for i in range(3)])
        settings = RoutingSettings(spill_wait_s=1.0, ejection_consecutive_errors=1, ejection_seconds=60.0)
        client = RoutingModelClient(
            (Tier("m", "m", settings), src),
            transport=engine,
            metrics=RoutingMetrics(CollectorRegistry()),
            timeout=10.0,
            max_retries=0,
            rng=random.Random(0),
        )
        loop = asyncio.get_running_loop()

        doomed = next(t for t in (f"x{i}" for i in range(200)) if client.primary.order(t, 0)[0].name == "r2")
        with pytest.raises(ModelError):
            await _call(client, doomed)
        assert client.primary.ejected("r2")
        tasks = [t for t in (f"t{i}" for i in range(400)) if client.primary.order(t, loop.time())[0].name == "r0"][:3]
        engine.sent.clear()
        t0 = loop.time()
        await _two_then_a_third(client, tasks)
        return [(r, task, round(at - t0, 6)) for r, task, at in engine.sent]

    sent = run_virtual(body(), start=1000.0)
    assert [(r, at) for r, _, at in sent] == [("r0", 0.0), ("r0", 0.0), ("r0", 0.2)]


def test_a_waiter_woken_without_room_is_woken_again_by_the_next_freed_call() -> None:
    # Pins: a wake that finds no room (a new call took the slot first) leaves the waiter where the
    # next freed() finds it; it used to re-wait on a queue already removed and sat out its timeout.
    async def run() -> tuple[bool, bool]:
        waiter = RoomWaiter()
        slots = {"free": 0}
        call = asyncio.ensure_future(waiter.wait("r0", lambda: slots["free"] > 0, 10.0))
        await asyncio.sleep(1.0)
        waiter.freed("r0")  # a call ended, but another took its slot before the waiter looked
        await asyncio.sleep(1.0)
        slots["free"] += 1
        waiter.freed("r0")  # now there is room
        await asyncio.sleep(0.1)
        return call.done(), await call

    done, ok = run_virtual(run())
    assert done and ok  # at 2.1 s, not at the 10 s timeout
