"""A fleet's Redis at maxmemory (noeviction), against a real redis-server: the task API answers
503 with Retry-After instead of a bare 500 and /readyz says why; both recover once memory is
freed. On c4625b5 the submission was a 500 while /readyz said ready."""

from __future__ import annotations

import asyncio

import pytest
from redis import Redis
from runtime_helpers import Echo, anonymous_api, arun, environment, make_config, running_worker

from agentfleet_runtime.server.api import REDIS_RETRY_AFTER_SECONDS

pytestmark = pytest.mark.integration


def test_a_full_redis_is_a_503_with_retry_after_and_readyz_names_the_cause(own_redis, fleet):
    admin = Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")

    async def body() -> None:
        config = make_config(own_redis.url, fleet, api={"allowAnonymous": True})
        async with anonymous_api(config) as http:
            ok = await http.post("/v1/tasks", json={"goal": "before"})
            assert ok.status == 201
            task_id = (await ok.json())["id"]
            admin.config_set("maxmemory", 1)  # below what Redis already uses: full
            refused = await http.post("/v1/tasks", json={"goal": "while full"}, headers={"Idempotency-Key": "k1"})
            assert refused.status == 503, await refused.text()
            assert refused.headers["Retry-After"] == str(REDIS_RETRY_AFTER_SECONDS)
            assert "full" in (await refused.json())["error"]
            cancel = await http.post(f"/v1/tasks/{task_id}/cancel")
            assert cancel.status == 503
            ready = await http.get("/readyz")
            assert ready.status == 503 and "maxmemory" in (await ready.json())["redis"]
            # Reads still answer while full.
            assert (await http.get(f"/v1/tasks/{task_id}")).status == 200
            admin.config_set("maxmemory", 0)
            assert (await http.get("/readyz")).status == 200
            again = await http.post("/v1/tasks", json={"goal": "while full"}, headers={"Idempotency-Key": "k1"})
            assert again.status == 201, "the refused submission must have stored nothing"

    try:
        arun(body(), 60)
    finally:
        admin.close()


def test_a_task_running_when_redis_fills_is_handed_back_without_a_failure(own_redis, fleet):
    # Redis fills while a task runs: its next checkpoint is refused (OOM). That is no fault of the
    # task: on c4625b5 the worker left it for reclaim, which counted a failure ("worker lost"),
    # and retry.maxAttempts such episodes dead-lettered it.
    admin = Redis.from_url(own_redis.url)
    admin.config_set("maxmemory-policy", "noeviction")

    async def body() -> tuple[dict, int]:
        async with environment(own_redis.url, fleet) as env, running_worker(env.config, extra_tools=[Echo()]):
            tid = await env.submit("fills up #steps=6 #latency=0.4")
            while len(await env.store.steps(tid)) < 1:
                await asyncio.sleep(0.05)
            admin.config_set("maxmemory", 1)
            await asyncio.sleep(1.5)  # the next checkpoint is refused meanwhile
            admin.config_set("maxmemory", 0)
            st = await env.wait(tid, 60)
            rec = (await env.store.get(tid))[0]
            return st[tid], rec.failures

    try:
        state, failures = arun(body(), 90)
    finally:
        admin.close()
    assert state["status"] == "done" and state["reason"] == "final_answer", state
    assert failures == 0, "a full Redis was charged to the task as a failure"
