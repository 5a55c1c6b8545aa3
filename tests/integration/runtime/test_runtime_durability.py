"""Leases, reclaim after the visibility timeout, heartbeats, graceful drain, idempotent scripts."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from runtime_helpers import Echo, arun, environment, running_worker

from agentfleet_runtime.core.errors import LeaseLost
from agentfleet_runtime.core.types import Observation, Step, ToolCall, Usage
from agentfleet_runtime.store.tasks import Acquired

pytestmark = pytest.mark.integration


async def read_one(env, consumer="c1"):
    res = await env.store.r.xreadgroup("workers", consumer, {env.store.keys.stream: ">"}, count=1)
    msg_id, fields = res[0][1][0]
    return msg_id, fields["task"]


def test_stale_lease_cannot_checkpoint_and_scripts_are_idempotent(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            tid = await env.submit("fenced")
            msg_id, _ = await read_one(env)
            a = await env.store.acquire(tid, lease="A", msg_id=msg_id, reclaimed=False, max_attempts=3, worker="wa")
            assert isinstance(a, Acquired) and a.record.attempts == 1
            step = Step(0, "", [ToolCall("c", "echo", {})], Usage(5, 1))
            await env.store.save_reply(a.record, "A", step, 7)
            await env.store.save_reply(a.record, "A", step, 7)  # a retried call: no second append, no double count
            rec, raw = await env.store.get(tid)
            assert len(await env.store.steps(tid)) == 1 and rec.prompt_tokens == 5 and raw["tree_cost_nanos"] == "7"
            b = await env.store.acquire(tid, lease="B", msg_id=msg_id, reclaimed=True, max_attempts=3, worker="wb")
            assert isinstance(b, Acquired) and b.record.failures == 1 and len(b.steps) == 1 and b.tree.cost_nanos == 7
            with pytest.raises(LeaseLost):
                await env.store.save_reply(a.record, "A", Step(1, "", [ToolCall("c", "echo", {})], Usage()), 0)
            step.observations = []
            with pytest.raises(LeaseLost):
                await env.store.complete(a.record, "A", step)
            await env.store.complete(b.record, "B", step)

    arun(body())


async def leased(env, goal: str):
    """A new task, read from the stream and acquired by worker "wa" under lease "A"."""
    tid = await env.submit(goal)
    msg_id, _ = await read_one(env)
    a = await env.store.acquire(tid, lease="A", msg_id=msg_id, reclaimed=False, max_attempts=3, worker="wa")
    assert isinstance(a, Acquired)
    return tid, a


def test_completion_checkpoint_sends_only_the_observations_and_stores_the_whole_step(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            tid, a = await leased(env, "delta")
            content = "thinking about " + "é" * 300 + ' "quotes" and }braces{'
            step = Step(
                0,
                content,
                [ToolCall("c1", "echo", {"q": "x" * 500}), ToolCall("c2", "echo", {})],
                Usage(5, 1),
                model_seconds=0.25,
            )
            await env.store.save_reply(a.record, "A", step, 0)
            step.observations = [
                Observation("c1", "echo", True, "out é " * 50, 0.01),
                Observation("c2", "echo", False, 'failed: "x"', 0.0),
            ]
            sent: list[list] = []
            real_call = env.store._call

            def spying_call(script, keys, args):
                sent.append(args)
                return real_call(script, keys, args)

            env.store._call = spying_call
            await env.store.complete(a.record, "A", step)
            assert sent[-1][-1] == "obs" and content.encode() not in sent[-1][2], (
                "the model reply must not be sent again"
            )
            stored = await env.store.r.lindex(env.store.keys.steps(tid), 0)
            assert json.loads(stored) == step.to_json()  # the spliced step is the whole step, valid JSON
            await env.store.complete(a.record, "A", step)  # a retried call: a no-op success
            assert await env.store.r.lindex(env.store.keys.steps(tid), 0) == stored
            # A stored step that is not this worker's plan (another shape): the whole step is sent.
            await env.store.r.lset(env.store.keys.steps(tid), 0, json.dumps(step.to_json(), indent=1))
            step.observations = [
                Observation("c1", "echo", True, "again", 0.0),
                Observation("c2", "echo", True, "ok", 0.0),
            ]
            await env.store.complete(a.record, "A", step)
            assert [a[-1] for a in sent[-2:]] == ["obs", "full"]
            assert (await env.store.steps(tid))[0] == step

    arun(body())


def test_observations_ready_before_their_plan_left_are_stored_with_it_in_one_call(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            tid, a = await leased(env, "folded")
            content = 'plan with "quotes", é and }braces{'
            step = Step(
                0,
                content,
                [ToolCall("c1", "echo", {"q": 1}), ToolCall("c2", "echo", {})],
                Usage(5, 1),
                model_seconds=0.25,
            )
            saving_reply = env.store.send_reply(a.record, "A", step, 7)
            step.observations = [
                Observation("c1", "echo", True, "out é", 0.01),
                Observation("c2", "echo", False, 'failed: "x"', 0.0),
            ]
            assert env.store.fold_observations(saving_reply, step)  # still queued: it carries them
            tree, cancel = env.store.reply_saved(a.record, 0, await saving_reply)
            assert (tree.tokens, tree.cost_nanos, cancel) == (6, 7, False)
            assert (await env.store.steps(tid)) == [step]  # one stored step, observations included
            stored = await env.store.r.lindex(env.store.keys.steps(tid), 0)
            assert json.loads(stored) == step.to_json()
            kinds = [json.loads(f["e"])["type"] for _, f in await env.store.r.xrange(env.store.keys.events(tid))]
            assert kinds[-2:] == ["step", "observations"]
            rec, _ = await env.store.get(tid)
            assert (rec.prompt_tokens, rec.completion_tokens, rec.cost_nanos) == (5, 1, 7)  # counted once

            # The next plan, already taken by the batcher: nothing to fold into; complete stores them.
            step1 = Step(1, "", [ToolCall("c3", "echo", {})], Usage(2, 1))
            saving_reply = env.store.send_reply(a.record, "A", step1, 0)
            await asyncio.sleep(0.05)
            step1.observations = [Observation("c3", "echo", True, "ok", 0.0)]
            assert not env.store.fold_observations(saving_reply, step1)
            env.store.reply_saved(a.record, 1, await saving_reply)
            assert (await env.store.steps(tid))[1].observations is None
            await env.store.complete(a.record, "A", step1)
            assert (await env.store.steps(tid))[1] == step1

    arun(body())


def test_reclaim_after_visibility_timeout_resumes_from_checkpoint(redis_server, fleet):
    """Worker 1 dies (no release) in the middle of a slow step; worker 2 takes over after the
    visibility timeout and finishes without re-asking the model for checkpointed steps."""

    async def body():
        async with environment(redis_server.url, fleet) as env:
            env.model.model.rules = [
                {
                    "match": "resumable",
                    "turns": [
                        {"tool_calls": [{"name": "echo", "arguments": {"i": 0}}]},
                        {"tool_calls": [{"name": "echo", "arguments": {"i": 1}}], "latency": 3},
                        {"content": "finished"},
                    ],
                }
            ]
            tid = await env.submit("resumable")
            async with running_worker(env.config, extra_tools=[Echo()], name="w1") as w1:
                for _ in range(200):
                    if len(await env.store.steps(tid)) == 1 and (await env.store.steps(tid))[0].observations:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)  # w1 is now inside the 3 s model call of step 1
                await w1.kill()
            calls_before = env.model.model.total_calls
            t0 = time.monotonic()
            async with running_worker(env.config, extra_tools=[Echo()], name="w2"):
                st = await env.wait(tid, 20)
            took = time.monotonic() - t0
            rec, raw = await env.store.get(tid)
            steps = await env.store.steps(tid)
        assert st[tid]["answer"] == "finished"
        assert 4 <= took < 12  # waited out the 5 s visibility timeout, minus what already passed
        assert (rec.attempts, rec.failures) == (2, 1) and raw["worker"] == "w2"
        assert [s.n for s in steps] == [0, 1, 2]
        # w2 asked the model for step 1 (lost with w1) and step 2 only; step 0 came from the checkpoint.
        assert env.model.model.total_calls - calls_before == 2

    arun(body())


def test_heartbeats_keep_a_long_step_from_being_reclaimed(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            async with running_worker(env.config, name="w1"), running_worker(env.config, name="w2"):
                tid = await env.submit("long call #latency=8")
                st = await env.wait(tid, 20)
            rec, _ = await env.store.get(tid)
        assert st[tid]["reason"] == "final_answer"
        assert (rec.attempts, rec.failures) == (1, 0)

    arun(body())


def test_graceful_drain_releases_tasks_without_counting_a_failure(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet, worker={"shutdownGraceSeconds": 0.5}) as env:
            ids = [await env.submit(f"slow {i} #steps=4 #latency=0.4") for i in range(3)]
            async with running_worker(env.config, extra_tools=[Echo()], name="w1") as w1:
                await asyncio.sleep(1.0)
                t0 = time.monotonic()
                w1.request_drain()
                await asyncio.wait_for(w1.wait(), 5)
                drained = time.monotonic() - t0
                states = await env.store.statuses(ids)
            assert drained < 2
            assert {s["status"] for s in states} == {"queued"}
            async with running_worker(env.config, extra_tools=[Echo()], name="w2"):
                st = await env.wait(ids, 20)
            recs = [(await env.store.get(i))[0] for i in ids]
            events = await env.store.events(ids[0])
            step_counts = [len(await env.store.steps(i)) for i in ids]
            all_events = [
                [
                    (e["type"], e.get("error") or e.get("reclaimed") or e.get("step") or "")
                    for _, e in await env.store.events(i)
                ]
                for i in ids
            ]
        assert {s["reason"] for s in st.values()} == {"final_answer"}
        assert [(r.failures, r.attempts) for r in recs] == [(0, 2)] * 3, all_events
        assert "released" in [e["type"] for _, e in events]
        assert step_counts == [4, 4, 4]  # nothing lost or repeated across the hand-over

    arun(body())


def test_concurrency_limit_and_parents_lend_their_slot(redis_server, fleet):
    """With 1 slot, a parent waiting for children must not starve them (no deadlock)."""

    async def body():
        async with (
            environment(redis_server.url, fleet, worker={"concurrency": 1}) as env,
            running_worker(env.config) as w,
        ):
            tid = await env.submit("nested #spawn=3")
            st = await env.wait(tid, 20)
            assert w.busy == 0
        assert st[tid]["reason"] == "final_answer"

    arun(body())


def test_heartbeat_reports_only_entries_another_worker_took(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            await env.submit("beat")
            msg_id, _ = await read_one(env, "c1")
            assert await env.store.heartbeat("c1", [msg_id]) == []
            await env.store.r.xclaim(env.store.keys.stream, "workers", "c2", 0, [msg_id], justid=True)
            assert await env.store.heartbeat("c1", [msg_id]) == [msg_id]
            await env.store.r.xack(env.store.keys.stream, "workers", msg_id)
            assert await env.store.heartbeat("c1", [msg_id]) == []  # acked (finished): nobody to yield to

    arun(body())


def test_drain_past_the_grace_releases_a_step_still_running(redis_server, fleet):
    """A step longer than the grace period is cancelled as a shutdown: the task goes back to the
    stream (no failure counted) and another worker finishes it."""

    async def body():
        async with environment(redis_server.url, fleet, worker={"shutdownGraceSeconds": 0.3}) as env:
            tid = await env.submit("slow #steps=2 #latency=3")
            async with running_worker(env.config, extra_tools=[Echo()], name="w1") as w1:
                deadline = time.monotonic() + 20
                while not (tid in w1.held and w1.held[tid].run is not None):  # leased and loaded
                    assert time.monotonic() < deadline, "w1 did not take the task"
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # inside the first model call (3 s)
                w1.request_drain()
                await asyncio.wait_for(w1.wait(), 10)
                state = (await env.store.statuses([tid]))[0]
            assert state is not None and state["status"] == "queued"
            async with running_worker(env.config, extra_tools=[Echo()], name="w2"):
                st = await env.wait([tid], 30)
            rec = (await env.store.get(tid))[0]
            events = [e["type"] for _, e in await env.store.events(tid)]
        assert st[tid]["reason"] == "final_answer"
        assert (rec.failures, rec.attempts) == (0, 2)
        assert "released" in events

    arun(body())
