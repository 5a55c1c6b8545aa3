"""The agent loop against real Redis and the scripted model over HTTP: tool calling, text
fallback, budgets, sub-agents, cancellation, sessions, tools with side effects."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from runtime_helpers import Echo, arun, environment, running_worker

pytestmark = pytest.mark.integration

SPAWN = {"name": "spawn", "type": "Spawn", "timeoutSeconds": 30}


def test_text_fallback_tool_calls(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config, extra_tools=[Echo()]):
            tid = await env.submit("text model #text=1 #steps=3")
            st = await env.wait(tid)
            steps = await env.store.steps(tid)
        assert st[tid]["reason"] == "final_answer"
        assert [c.id for c in steps[0].tool_calls] == ["text-0"] and steps[0].observations[0].ok
        # The text step is replayed to the model as text, with the result as a user turn.
        assert "<tool_call>" in steps[0].content

    arun(body())


def test_max_steps_ends_with_best_answer_and_reason(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config, extra_tools=[Echo()]):
            tid = await env.submit("long #steps=50", maxSteps=3)
            st = await env.wait(tid)
            rec, _ = await env.store.get(tid)
        assert (st[tid]["status"], st[tid]["reason"]) == ("done", "max_steps")
        assert st[tid]["answer"].startswith("(no final answer; last echo result) echo")
        assert len(await env.store.steps(tid)) == 3 and rec.prompt_tokens > 0

    arun(body())


def test_token_and_cost_budgets(redis_server, fleet):
    async def body():
        pricing = {"inputPerMillionTokens": "1000000", "outputPerMillionTokens": "1000000", "currency": "EUR"}
        async with (
            environment(redis_server.url, fleet, pricing=pricing) as env,
            running_worker(env.config, extra_tools=[Echo()]),
        ):
            by_tokens = await env.submit("long #steps=50", maxTokens=150)
            by_cost = await env.submit("long #steps=50", maxCost="5000")
            st = await env.wait([by_tokens, by_cost])
            rec, raw = await env.store.get(by_cost)
        assert st[by_tokens]["reason"] == "max_tokens"
        assert st[by_cost]["reason"] == "max_cost"
        # maxCost is a bound (issue 76): calls ran, and none passed it (each held its worst case first).
        assert 0 < rec.cost <= 5000 and int(raw["tree_cost_nanos"]) == rec.cost_nanos

    arun(body())


def test_timeout_budget_stops_a_slow_model_call(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config, extra_tools=[Echo()]):
            t0 = time.monotonic()
            tid = await env.submit("slow #steps=5 #latency=0.6", timeoutSeconds=1)
            st = await env.wait(tid)
            took = time.monotonic() - t0
        assert st[tid]["reason"] == "timeout" and took < 3

    arun(body())


def test_spawn_fan_out_fan_in_and_tree_usage(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config):
            tid = await env.submit("research #spawn=3")
            st = await env.wait(tid)
            kids = await env.store.children(tid)
            kid_states = await env.wait(kids)
            steps = await env.store.steps(tid)
            _, raw = await env.store.get(tid)
            kid_recs = [(await env.store.get(k))[0] for k in kids]
        assert st[tid]["reason"] == "final_answer"
        assert kids == [f"{tid}.0.0.{i}" for i in range(3)]
        assert all(s["status"] == "done" for s in kid_states.values())
        assert all(r.depth == 1 and r.parent == tid and r.root == tid for r in kid_recs)
        obs = steps[0].observations[0].output
        assert obs.startswith("3 of 3 sub-agents finished")
        results = json.loads(obs.split("\n", 1)[1])
        assert [r["answer"].startswith("done: branch") for r in results] == [True] * 3
        own = sum(s.usage.total for s in steps) + sum(r.usage.total for r in [])
        tree = int(raw["tree_tokens"])
        final_tokens = int(raw["prompt_tokens"]) + int(raw["completion_tokens"])
        assert tree == final_tokens + sum(r.prompt_tokens + r.completion_tokens for r in kid_recs) and tree > own

    arun(body())


def test_fan_out_and_depth_limits(redis_server, fleet):
    async def body():
        async with (
            environment(redis_server.url, fleet, budgets={"maxFanOut": 2, "maxDepth": 1}) as env,
            running_worker(env.config),
        ):
            env.model.model.rules = [{"match": "branch", "spawn": 1}]
            env.model.record = True
            tid = await env.submit("wide #spawn=5")
            await env.wait(tid)
            kids = await env.store.children(tid)
            await env.wait(kids)
            parent_obs = (await env.store.steps(tid))[0].observations[0]
            grandchildren = [await env.store.children(k) for k in kids]
            offered = [[t["function"]["name"] for t in body.get("tools") or []] for body in env.model.requests]
        assert len(kids) == 2
        assert "3 goal(s) refused: at most 2 sub-agents per step" in parent_obs.output
        # A sub-agent at maxDepth is not offered the spawn tool (the tool itself still refuses a
        # call that comes anyway, see test_runtime_decisions), so none goes a level deeper.
        assert grandchildren == [[], []]
        assert sum(not any("spawn" in n for n in names) for names in offered) >= 2  # each child's calls

    arun(body())


def test_fan_in_timeout_continues_with_partial_results(redis_server, fleet):
    async def body():
        tools = [{"name": "spawn", "type": "Spawn", "timeoutSeconds": 1}]
        async with environment(redis_server.url, fleet, tools=tools) as env, running_worker(env.config):
            t0 = time.monotonic()
            tid = await env.submit("mixed #spawn=2 #child_latency=20")
            st = await env.wait(tid)
            took = time.monotonic() - t0
            kids = await env.store.children(tid)
            kid_states = await env.wait(kids, 10)
            obs = (await env.store.steps(tid))[0].observations[0].output
        assert st[tid]["reason"] == "final_answer" and took < 5
        assert "did not finish within 1s and were cancelled (partial results)" in obs
        assert all(json.loads(obs.split("\n", 1)[1])[i]["partial"] for i in range(2))
        assert {s["status"] for s in kid_states.values()} == {"cancelled"}

    arun(body())


def test_cancel_cascades_to_children(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config):
            tid = await env.submit("tree #spawn=2 #child_latency=20")
            for _ in range(100):
                kids = await env.store.children(tid)
                states = await env.store.statuses(kids)
                if len(kids) == 2 and all(s and s["status"] == "running" for s in states):
                    break
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            assert await env.store.cancel_tree(tid) == 1
            st = await env.wait([tid, *kids], 10)
            took = time.monotonic() - t0
        assert {s["status"] for s in st.values()} == {"cancelled"} and took < 3

    arun(body())


def test_cancel_of_a_queued_task_needs_no_worker(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            tid = await env.submit("never run")
            assert await env.store.cancel_tree(tid) == 1
            assert (await env.store.get(tid))[0].status == "cancelled"
            assert await env.store.cancel_tree(tid) == 0
            async with running_worker(env.config):
                await asyncio.sleep(0.3)  # the worker reaches the entry and only acks it
            assert (await env.store.get(tid))[0].attempts == 0

    arun(body())


def test_model_500s_are_retried_then_the_task_is_retried_then_dead_lettered(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config):
            flaky = await env.submit("flaky #fail=2")  # the client's 2 retries absorb it
            broken = await env.submit("broken #fail=1000")
            st = await env.wait([flaky, broken], 30)
            rec, _ = await env.store.get(broken)
            dead = await env.store.dead_letters()
        assert st[flaky]["reason"] == "final_answer"
        assert st[broken]["status"] == "dead" and "500" in st[broken]["error"]
        assert rec.failures == 3 and rec.attempts == 3
        assert [d["task"] for d in dead] == [broken] and "500" in dead[0]["error"]

    arun(body())


def test_model_timeout_is_retried(redis_server, fleet):
    async def body():
        async with (
            environment(redis_server.url, fleet, model={"timeoutSeconds": 0.5}) as env,
            running_worker(env.config),
        ):
            tid = await env.submit("sleepy #hang=5")
            t0 = time.monotonic()
            st = await env.wait(tid, 10)
            took = time.monotonic() - t0
        assert st[tid]["reason"] == "final_answer" and took < 4

    arun(body())


def test_tool_hang_times_out_and_the_breaker_opens(redis_server, fleet):
    tools = [
        {"name": "hang", "type": "HTTP", "http": {"url": "EFFECTS/hang"}, "timeoutSeconds": 1},
        {"name": "flaky", "type": "HTTP", "http": {"url": "EFFECTS/flaky"}, "timeoutSeconds": 5},
    ]

    async def body():
        async with environment(
            redis_server.url, fleet, tools=tools, breaker={"failureThreshold": 2, "cooldownSeconds": 60}
        ) as env:
            env.effects.flaky_left = 1000
            async with running_worker(env.config):
                t0 = time.monotonic()
                hung = await env.submit("stuck #steps=2 #tool=hang")
                st = await env.wait(hung, 10)
                assert st[hung]["reason"] == "final_answer" and time.monotonic() - t0 < 5
                obs = (await env.store.steps(hung))[0].observations[0]
                assert not obs.ok and "timed out after 1.0s" in obs.output
                flaky = await env.submit("flaky tool #steps=5 #tool=flaky")
                await env.wait(flaky, 10)
                outputs = [s.observations[0].output for s in (await env.store.steps(flaky)) if s.tool_calls]
        assert env.effects.flaky_calls == 2
        assert "HTTP 500" in outputs[0] and "temporarily unavailable" in outputs[2] and len(outputs) == 4

    arun(body())


def test_side_effect_tool_sends_idempotency_keys(redis_server, fleet):
    tools = [{"name": "effect", "type": "HTTP", "http": {"url": "EFFECTS/effect", "sideEffects": True}}]

    async def body():
        async with environment(redis_server.url, fleet, tools=tools) as env, running_worker(env.config):
            tid = await env.submit('pay #steps=3 #tool=effect #calls=2 #args={"amount":5}')
            await env.wait(tid)
            recorded = await env.store.recorded_results(tid, 1, 2)
        assert sorted(env.effects.applied) == [f"{tid}:{s}:{c}" for s in (0, 1) for c in (0, 1)]
        assert env.effects.applied[f"{tid}:0:0"] == {"amount": 5}
        assert all(r is not None and r.ok for r in recorded)

    arun(body())


def test_session_shares_earlier_answers(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, running_worker(env.config):
            env.model.record = True
            first = await env.submit("first question #answer=blue", session="s1")
            await env.wait(first)
            second = await env.submit("second question", session="s1")
            await env.wait(second)
        # Quoted in the task's user message, never in the system prompt (issue 57).
        system, user = (m["content"] for m in env.model.requests[-1]["messages"][:2])
        assert "blue" not in system
        assert '"question": "first question #answer=blue", "answer": "blue' in user and user.endswith("second question")

    arun(body())


def test_retrieval_tool_caches_in_redis(redis_server, fleet):
    from agentfleet_runtime.testing.fake_retriever import FakeRetriever

    tools = [{"name": "kb", "type": "Retrieval", "retrieval": {"topK": 2, "cacheTtlSeconds": 120}}]

    async def body():
        retriever = FakeRetriever()
        async with environment(redis_server.url, fleet, tools=tools) as env:
            async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                ids = [await env.submit('ask #steps=2 #tool=kb #args={"query":"AOF"}') for _ in range(3)]
                await env.wait(ids)  # concurrent: one search (single flight), then cached
            async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                later = await env.submit('ask again #steps=2 #tool=kb #args={"query":"AOF"}')
                await env.wait(later)  # another worker, a new tool instance: served from Redis
            keys = await env.store.r.keys(f"af:{fleet}:rcache:kb:*")
            ttl = await env.store.r.ttl(keys[0])
            obs = (await env.store.steps(later))[0].observations[0].output
        assert len(retriever.queries) == 1 and len(keys) == 1 and 0 < ttl <= 120
        assert "[1] (doc0.md" in obs

    arun(body())


def test_model_calls_can_go_through_the_routing_client(redis_server, fleet):
    """config.modelRouting swaps the plain client for agentfleet_runtime.routing's (static replicas here)."""

    async def body():
        async with environment(redis_server.url, fleet) as env:
            doc = env.config.model_dump(by_alias=True, mode="json")
            doc["modelRouting"] = {
                "primary": {"modelReplicaSet": "scripted", "model": "scripted", "endpoints": [env.model.url]}
            }
            from agentfleet_contract.runtime_config import RuntimeConfig

            from agentfleet_runtime.routing.client import RoutingModelClient

            config = RuntimeConfig.model_validate(doc)
            async with running_worker(config, extra_tools=[Echo()]) as w:
                assert isinstance(w.model.inner, RoutingModelClient)  # behind the spend guard (model/spend.py)
                tid = await env.submit("routed #steps=2", key=None)
                st = await env.wait(tid)
        assert st[tid]["reason"] == "final_answer"

    arun(body())
