"""A gate task's time budget starts at its pickup, not its submission (issue 76, finding 2): on a
real Redis, the store's acquire script moves the deadline of a root task of the gate's tenant on
by the time it waited in the stream; a tenant's task keeps the deadline it was given (its wait is
part of what its caller sees), and a retried gate task is not moved again."""

from __future__ import annotations

import time

import pytest
from agentfleet_contract.runtime_config import GATE_TENANT
from runtime_helpers import arun, environment

from agentfleet_runtime.store.tasks import Acquired

pytestmark = pytest.mark.integration

WAITED, BUDGET = 30.0, 60.0


async def queued(env, tenant: str) -> str:
    """A task submitted WAITED seconds ago with BUDGET seconds to run, not yet picked up."""
    tid = await env.submit(f"a task of {tenant}")
    created = time.time() - WAITED
    key = env.store.keys.task(tid)
    await env.store.r.hset(
        key, mapping={"tenant": tenant, "created_at": repr(created), "deadline": repr(created + BUDGET)}
    )
    return tid


async def pick_up(env, tid: str, lease: str, reclaimed: bool = False) -> Acquired:
    res = await env.store.r.xreadgroup("workers", "c1", {env.store.keys.stream: ">"}, count=10)
    msg_id = next(m for m, f in res[0][1] if f["task"] == tid) if res else "0-0"
    got = await env.store.acquire(tid, lease=lease, msg_id=msg_id, reclaimed=reclaimed, max_attempts=3, worker="w")
    assert isinstance(got, Acquired), got
    return got


def test_a_gate_tasks_deadline_starts_at_pickup_and_a_tenants_does_not(redis_server, fleet):
    async def body() -> None:
        async with environment(redis_server.url, fleet) as env:
            gate = await queued(env, GATE_TENANT)
            tenant = await queued(env, "acme")
            now = time.time()
            picked = await pick_up(env, gate, "A")
            assert abs(picked.record.deadline - (now + BUDGET)) < 5, picked.record.deadline - now
            assert abs(picked.root_deadline - picked.record.deadline) < 1e-3  # the root deadline the loop reads
            other = await pick_up(env, tenant, "B")
            assert abs(other.record.deadline - (now - WAITED + BUDGET)) < 1
            # A second pickup (a reclaimed lease) keeps the deadline the first one set.
            again = await pick_up(env, gate, "C", reclaimed=True)
            assert again.record.deadline == picked.record.deadline

    arun(body())
