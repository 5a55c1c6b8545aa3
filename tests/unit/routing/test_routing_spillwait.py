"""Waiting for room at the task's replica instead of spilling (routing.spillwait, ReplicaPool.preferred)."""

from __future__ import annotations

import asyncio

from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.spillwait import RoomWaiter
from agentfleet_sim import run_virtual


def pool(**kw: object) -> ReplicaPool:
    src = StaticSource([Endpoint(f"r{i}", f"http://r{i}/v1") for i in range(4)])
    return ReplicaPool(Tier("m", "m", RoutingSettings(**kw)), src)  # type: ignore[arg-type]


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
