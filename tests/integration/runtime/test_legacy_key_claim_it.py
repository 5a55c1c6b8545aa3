"""Key migration only on the operator's claim (issue 76, residual 7): on a real Redis, a fleet
under the old key layout (af:<fleet>:), then a same-named fleet of another namespace whose worker
starts first. Before, the first namespace to start claimed and moved the old keys (a tenant took
another's queued task and session history by creating a fleet of the same name); now only the
fleet the operator claims them for (its runtime document's legacyKeys) moves them."""

from __future__ import annotations

import asyncio

import pytest
from runtime_helpers import arun, environment, make_config, running_worker, store_for, submit, wait_ended

pytestmark = pytest.mark.integration


def test_a_same_named_fleet_that_starts_first_takes_no_old_keys(redis_server, fleet):
    async def body() -> None:
        async with environment(redis_server.url, fleet) as env:
            old = make_config(redis_server.url, fleet, env.model.url)
            intruder = make_config(redis_server.url, fleet, env.model.url, namespace="team-b")
            owner = make_config(redis_server.url, fleet, env.model.url, namespace="team-a", legacyKeys=True)
            s_old, s_b, s_a = store_for(old), store_for(intruder), store_for(owner)
            try:
                async with running_worker(old):
                    t1 = await submit(s_old, old, "earlier #answer=forty-two", session="s1")
                    await wait_ended(s_old, [t1], 30)
                t2 = await submit(s_old, old, "team-a's plan, queued before the upgrade")
                # team-b's fleet "support" starts first: unclaimed, it moves nothing and runs nothing of team-a's.
                async with running_worker(intruder):
                    await asyncio.sleep(1.0)
                assert await s_b.get(t1) is None and await s_b.get(t2) is None
                assert await s_b.session_context("s1", "next", 5, "") == []
                assert (await s_old.get(t2))[0].status.value == "queued"
                assert await s_old.r.get(f"af:{fleet}:migrated") is None  # no claim taken
                # The fleet the operator claims them for moves them and runs its queued task.
                async with running_worker(owner):
                    states = await wait_ended(s_a, [t2], 30)
                assert states[t2]["status"] == "done"
                assert (await s_a.get(t1))[0].answer.startswith("forty-two")
            finally:
                for s in (s_old, s_b, s_a):
                    await s.r.aclose()

    arun(body())
