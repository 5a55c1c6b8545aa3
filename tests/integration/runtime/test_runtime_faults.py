"""Fault tests with real processes: kill -9 of workers under load, Redis restarts (AOF)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
import yaml
from agentfleet_contract.runtime_config import RuntimeConfig
from runtime_helpers import arun, start_effects, start_scripted_model, start_worker, store_for, submit, wait_ended

pytestmark = pytest.mark.integration


def worker_config(tmp_path, redis_url, fleet, model_url, effects_url, **over):
    doc = {
        "fleet": fleet,
        "redisUrl": redis_url,
        "model": {"baseUrl": model_url, "name": "scripted", "timeoutSeconds": 10, "maxRetries": 3},
        "worker": {"concurrency": 40, "metricsPort": 0, "shutdownGraceSeconds": 2, "retryBackoffSeconds": 0.2},
        "retry": {"maxAttempts": 10, "visibilityTimeoutSeconds": 5},
        "tools": [
            {
                "name": "effect",
                "type": "HTTP",
                "http": {"url": effects_url + "/effect", "sideEffects": True},
                "timeoutSeconds": 5,
            }
        ],
        **over,
    }
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, RuntimeConfig.model_validate(doc)


async def busy_worker(store, ids, alive, timeout=60.0):
    """A live worker process that holds a running task with checkpointed steps (the consumer
    name carries the pid), so that killing it interrupts real work."""
    by_pid = {w.proc.pid: w for w in alive}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipe = store.r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(store.keys.task(i), "status", "worker")
            pipe.llen(store.keys.steps(i))
        res = await pipe.execute()
        for (status, worker), n in zip(res[::2], res[1::2], strict=True):
            if status == "running" and n >= 1 and worker:
                pid = int(worker.split("-")[-2])
                if pid in by_pid:
                    return by_pid[pid]
        await asyncio.sleep(0.05)
    raise AssertionError("no worker process held a running task")


def test_kill9_workers_while_100_tasks_run(redis_server, fleet, tmp_path, procs):
    """Three worker processes; one is SIGKILLed every ~2 s (four times) and replaced. Every task
    must end with its answer, every step exactly once, and every side effect applied once."""
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    path, config = worker_config(tmp_path, redis_server.url, fleet, model_url, effects_url)
    workers = [start_worker(procs, path, tmp_path, f"w{i}") for i in range(3)]
    steps, calls = 4, 2
    goal = 'job {i} #steps=4 #tool=effect #calls=2 #latency=0.3 #args={{"job":{i}}}'

    async def body():
        store = store_for(config)
        ids = [await submit(store, config, goal.format(i=i)) for i in range(100)]
        kills = 0
        for _ in range(4):
            await asyncio.sleep(1.0)
            victim = await busy_worker(store, ids, [w for w in workers if w.alive()])
            victim.proc.kill()  # SIGKILL: no release, no cleanup
            victim.proc.wait()
            kills += 1
            workers.append(start_worker(procs, path, tmp_path, f"w{len(workers)}"))
        states = await wait_ended(store, ids, 180)
        recs = {i: (await store.get(i))[0] for i in ids}
        all_steps = {i: await store.steps(i) for i in ids}
        await store.r.aclose()
        async with aiohttp.ClientSession() as http:
            stats = await (await http.get(effects_url + "/stats")).json()
        return ids, states, recs, all_steps, stats, kills

    ids, states, recs, all_steps, stats, kills = arun(body(), 240)
    assert {s["status"] for s in states.values()} == {"done"}, [s for s in states.values() if s["status"] != "done"][:3]
    assert {s["reason"] for s in states.values()} == {"final_answer"}
    for i in ids:
        assert [s.n for s in all_steps[i]] == list(range(steps)), (i, [s.n for s in all_steps[i]])
        for s in all_steps[i][:-1]:
            assert s.observations is not None and [o.ok for o in s.observations] == [True] * calls
    expected = {f"{i}:{s}:{c}" for i in ids for s in range(steps - 1) for c in range(calls)}
    assert set(stats["applied"]) == expected  # every side effect happened, and only under its key
    assert stats["unkeyed"] == 0
    resumed = [i for i in ids if recs[i].attempts > 1]
    assert resumed, "the kills hit no running task: the test proved nothing"
    # Re-sent requests (same key) only come from steps whose worker died mid-call; the service's
    # dedup turned them into no-ops.
    assert all(k.split(":")[0] in resumed for k in stats["duplicates"])
    print(
        f"\nkills={kills} resumed_tasks={len(resumed)} re-sent_effect_requests={len(stats['duplicates'])} "
        f"applied={len(stats['applied'])}"
    )


AOF_STEPS = 12


def test_redis_restart_with_aof_loses_nothing(own_redis, fleet, tmp_path, procs):
    """Redis is killed (SIGKILL) twice while 30 tasks run and comes back from its AOF."""
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    path, config = worker_config(tmp_path, own_redis.url, fleet, model_url, effects_url)
    for i in range(2):
        start_worker(procs, path, tmp_path, f"w{i}")

    async def submit_all():
        store = store_for(config)
        # ~5 s per task, so both kills (at ~1.5 s and ~3.5 s) land mid-task even on an idle machine.
        ids = [
            await submit(store, config, f"durable {i} #steps={AOF_STEPS} #tool=effect #latency=0.4") for i in range(30)
        ]
        await store.r.aclose()
        return ids

    ids = arun(submit_all())

    async def snapshot():
        store = store_for(config)
        run_id = (await store.r.info("server"))["run_id"]
        states = await store.statuses(ids)
        await store.r.aclose()
        return run_id, sum(1 for s in states if s["status"] == "done")

    run_ids = []
    for _ in range(2):
        time.sleep(1.5)
        run_id, done = arun(snapshot())
        assert done < len(ids)  # tasks are in flight when Redis dies
        run_ids.append(run_id)
        own_redis.restart(kill=True)
    run_ids.append(arun(snapshot())[0])
    assert len(set(run_ids)) == 3  # three Redis processes served this test

    async def check():
        store = store_for(config)
        states = await wait_ended(store, ids, 120)
        steps = {i: [s.n for s in await store.steps(i)] for i in ids}
        await store.r.aclose()
        async with aiohttp.ClientSession() as http:
            stats = await (await http.get(effects_url + "/stats")).json()
        return states, steps, stats

    states, steps, stats = arun(check(), 180)
    assert {(s["status"], s["reason"]) for s in states.values()} == {("done", "final_answer")}
    assert all(v == list(range(AOF_STEPS)) for v in steps.values())
    assert set(stats["applied"]) == {f"{i}:{s}:0" for i in ids for s in range(AOF_STEPS - 1)}
    print(f"\nre-sent effect requests after Redis restarts: {len(stats['duplicates'])}")


def test_model_server_outage_is_ridden_out(redis_server, fleet, tmp_path, procs):
    """The model answers 500 to the next 40 calls (any task): client retries and task retries
    carry every task through."""
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    path, config = worker_config(tmp_path, redis_server.url, fleet, model_url, effects_url)
    start_worker(procs, path, tmp_path, "w0")

    async def body():
        async with aiohttp.ClientSession() as http:
            await http.post(model_url.rsplit("/v1", 1)[0] + "/admin/faults", json={"count": 40, "status": 500})
        store = store_for(config)
        ids = [await submit(store, config, f"outage {i} #steps=3 #tool=effect") for i in range(10)]
        states = await wait_ended(store, ids, 90)
        failures = sum([(await store.get(i))[0].failures for i in ids])
        await store.r.aclose()
        return states, failures

    states, failures = arun(body(), 120)
    assert {s["reason"] for s in states.values()} == {"final_answer"}
    print(f"\ntask attempts failed and retried: {failures}")
