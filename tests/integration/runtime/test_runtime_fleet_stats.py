"""The finished-task record and fleet_stats() against a real redis-server: what the AgentFleet's
status shows (tasks per hour, task p95, cost per task, queue depth, in-flight tasks)."""

from __future__ import annotations

import time

import pytest
import redis
from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.fleet_stats import read_fleet_stats
from agentfleet_contract.percentiles import percentile
from runtime_helpers import arun, make_config, running_worker, store_for, submit, wait_ended

from agentfleet_runtime.store import lua
from agentfleet_runtime.testing.scripted_model import ScriptedModelServer

pytestmark = pytest.mark.integration

PRICING = {"currency": "USD", "inputPerMillionTokens": "100", "outputPerMillionTokens": "300"}


def test_finished_root_tasks_feed_the_hourly_figures(redis_server, fleet):
    async def body():
        model = ScriptedModelServer()
        await model.start()
        config = make_config(redis_server.url, fleet, model.url, pricing=PRICING)
        store = store_for(config)
        async with running_worker(config):
            ids = [await submit(store, config, f"task {i} #steps=2 #spawn={1 if i == 0 else 0}") for i in range(6)]
            states = await wait_ended(store, ids, 30)
        assert all(s["status"] == "done" for s in states.values()), states
        hashes = [await store.r.hgetall(store.keys.task(t)) for t in ids]
        durations = [float(h["finished_at"]) - float(h["created_at"]) for h in hashes]
        costs = [int(h["tree_cost_nanos"]) for h in hashes]
        assert all(c > 0 for c in costs)

        stats = await store.fleet_stats()
        # The sub-agent task 0 spawned ended too, but only what clients submitted is counted.
        children = await store.children(ids[0])
        assert len(children) == 1 and (await store.statuses(children))[0]["status"] == "done"
        assert stats.tasks_per_hour == 6
        assert stats.p95_seconds == pytest.approx(percentile(durations, 95), abs=0.002)
        assert stats.mean_cost == pytest.approx(sum(costs) / len(costs) / 1e9)
        assert (stats.queue_depth, stats.in_flight) == (0, 0)

        # Without a worker, new tasks wait: the queue depth says so; the hour's figures stay.
        for i in range(3):
            await submit(store, config, f"waiting {i}")
        stats2 = await store.fleet_stats()
        assert (stats2.queue_depth, stats2.in_flight, stats2.tasks_per_hour) == (3, 0, 6)

        # The operator's synchronous read sees the same.
        sync = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=1)
        assert read_fleet_stats(sync, fleet) == stats2
        sync.close()
        await store.close()
        await model.stop()

    arun(body())


def test_the_record_keeps_one_hour_and_a_bounded_size(redis_server, fleet):
    async def body():
        model = ScriptedModelServer()
        await model.start()
        config = make_config(redis_server.url, fleet, model.url)
        store = store_for(config)
        key = Keys(fleet).finished
        now = time.time()
        # Entries older than the window, and enough recent ones to pass the cap.
        await store.r.zadd(key, {f"old{i}|1.000|0|done": now - lua.FINISHED_WINDOW_SECONDS - 60 for i in range(10)})
        filler = {f"f{i}|2.000|1000|done": now - 600 + i / 1000 for i in range(lua.FINISHED_CAP)}
        items = list(filler.items())
        for i in range(0, len(items), 20_000):
            await store.r.zadd(key, dict(items[i : i + 20_000]))
        assert await store.r.zcard(key) == lua.FINISHED_CAP + 10

        async with running_worker(config):
            tid = await submit(store, config, "one more")
            await wait_ended(store, [tid], 20)
        members = await store.r.zrange(key, 0, -1)
        assert len(members) == lua.FINISHED_CAP
        assert not any(m.startswith("old") for m in members)
        assert members[-1].startswith(tid + "|")  # the newest survives; the oldest filler went
        assert "f0|2.000|1000|done" not in members
        stats = await store.fleet_stats()
        assert stats.tasks_per_hour == lua.FINISHED_CAP and stats.capped
        await store.r.delete(key)
        await store.close()
        await model.stop()

    arun(body())


def test_a_fleet_with_no_finished_task_has_no_p95_or_cost(redis_server, fleet):
    async def body():
        config = make_config(redis_server.url, fleet)
        store = store_for(config)
        stats = await store.fleet_stats()
        assert (stats.tasks_per_hour, stats.p95_seconds, stats.mean_cost, stats.queue_depth) == (0, None, None, 0)
        await store.close()

    arun(body())
