"""One OpenTelemetry trace per task, read back from a real collector: Jaeger v2's all-in-one (built
from its Go module by e2e/cluster/thirdparty.sh jaeger) through its query API.

- a task with an HTTP tool, a retrieval on Milvus Lite and a sub-agent, in a worker in this
  process: one trace holds the task's and the sub-agent's invoke_agent, chat and execute_tool
  spans, the sub-agent under its spawn call, and every model request carried a traceparent;
- a worker process killed with SIGKILL in the middle of a task: the task resumed by another
  worker continues the same trace;
- Qwen2.5-Coder on llama-server deciding a task that delegates to sub-agents: span counts by kind
  match the steps and tool calls stored in Redis, and every chat span names its replica;
- Qwen2.5-Coder deciding a booking whose side-effect tool is held in flight while its worker
  process is killed with SIGKILL: another worker resumes the task, and one trace holds the
  killed worker's chat span and the resumed attempt's invoke_agent, tool and chat spans, with
  the booking made once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections import Counter

import pytest
import test_runtime_real_agent as real_agent
import yaml
from agentfleet_contract.runtime_config import RuntimeConfig, TracingSettings
from aiohttp import web
from runtime_helpers import (
    arun,
    environment,
    running_worker,
    start_effects,
    start_scripted_model,
    start_worker,
    store_for,
    submit,
    wait_ended,
)

from agentfleet_runtime.testing.server import LocalServer
from agentfleet_runtime.tools.retriever import Retriever
from e2e.harness import jaeger as jaeger_harness
from e2e.harness import plinth
from e2e.harness.jaeger import tags
from e2e.harness.plinth import DELEGATE, fleet_config

pytestmark = pytest.mark.integration
collector = jaeger_harness.collector  # the module's Jaeger (a fixture)
collection = real_agent.collection  # the corpus the model searches; ``decider`` (Qwen) is the conftest's
DIM = 64


def kinds(spans: list[dict]) -> Counter:
    return Counter(tags(s).get("gen_ai.operation.name") for s in spans)


def parent_of(span: dict) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def test_a_task_with_a_tool_retrieval_and_a_sub_agent_is_one_trace(collector, milvus_uri, redis_server, fleet):
    kb = "kb_" + fleet
    plinth.make_collection(
        milvus_uri,
        kb,
        [("aof.md", "Redis AOF persistence appends every write to a log", {})],
        plinth.BagOfWords(DIM),
    )
    tools = [
        {"name": "spawn", "type": "Spawn", "timeoutSeconds": 30},
        {"name": "effect", "type": "HTTP", "http": {"url": "EFFECTS/effect"}, "timeoutSeconds": 5},
        {"name": "kb", "type": "Retrieval", "retrieval": {"topK": 1, "cacheTtlSeconds": 0}},
    ]
    parent_turns = [
        {
            "tool_calls": [
                {"name": "kb", "arguments": {"query": "AOF persistence"}},
                {"name": "effect", "arguments": {"x": 1}},
            ]
        },
        {"tool_calls": [{"name": "spawn", "arguments": {"goals": ["traced child: check the log"]}}]},
        {"content": "parent finished"},
    ]

    async def body():
        retriever = Retriever(milvus_uri, kb, plinth.BagOfWords(DIM))
        tracing = {"endpoint": collector.otlp_endpoint}
        async with environment(redis_server.url, fleet, tools=tools, tracing=tracing) as env:
            env.model.model.rules = [
                {"match": "traced child", "turns": [{"content": "child finished"}]},
                {"match": "traced parent", "turns": parent_turns},
            ]
            async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                tid = await env.submit("traced parent: look it up")
                st = await env.wait(tid, 60)
            rec, _ = await env.store.get(tid)
            return tid, st[tid], rec, list(env.model.traceparents)

    tid, state, rec, traceparents = arun(body())
    assert state["answer"] == "parent finished"
    spans = collector.wait_spans(
        fleet, lambda s: kinds(s)["invoke_agent"] >= 2 and kinds(s)["chat"] >= 4 and kinds(s)["execute_tool"] >= 3
    )
    by_kind = kinds(spans)
    assert (by_kind["invoke_agent"], by_kind["chat"], by_kind["execute_tool"]) == (2, 4, 3), by_kind
    trace_ids = {s["traceID"] for s in spans}
    assert len(trace_ids) == 1, trace_ids  # the sub-agent's spans are in its parent's trace
    assert rec.trace.split("-")[1] == next(iter(trace_ids))  # the record holds the trace's context
    ids = {s["spanID"]: s for s in spans}
    agents = {tags(s)["agentfleet.task.id"]: s for s in spans if tags(s).get("gen_ai.operation.name") == "invoke_agent"}
    root, child = agents[tid], next(s for t, s in agents.items() if t != tid)
    assert parent_of(root) is None and tags(root)["agentfleet.task.status"] == "done"
    spawn = ids[parent_of(child)]  # the sub-agent hangs under the call that started it
    assert tags(spawn)["gen_ai.tool.name"] == "spawn" and parent_of(spawn) == root["spanID"]
    tools_seen = {
        tags(s)["gen_ai.tool.name"]: tags(s) for s in spans if tags(s).get("gen_ai.operation.name") == "execute_tool"
    }
    assert (
        tools_seen["kb"]["gen_ai.tool.type"] == "datastore" and tools_seen["effect"]["gen_ai.tool.type"] == "extension"
    )
    for chat in (s for s in spans if tags(s).get("gen_ai.operation.name") == "chat"):
        t = tags(chat)
        assert (
            t["gen_ai.request.model"] == "scripted"
            and t["gen_ai.usage.input_tokens"] > 0
            and t["gen_ai.usage.output_tokens"] > 0
        )
        assert t["agentfleet.replica"].startswith("127.0.0.1:")
        assert parent_of(chat) in (root["spanID"], child["spanID"])
    # Every model request carried its chat span's context: an engine exporting spans joins the trace.
    chat_ids = {s["spanID"] for s in spans if tags(s).get("gen_ai.operation.name") == "chat"}
    assert len(traceparents) == 4 and {tp.split("-")[2] for tp in traceparents} == chat_ids


def test_a_task_resumed_after_kill9_continues_its_trace(collector, redis_server, fleet, tmp_path, procs, monkeypatch):
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    doc = {
        "fleet": fleet,
        "redisUrl": redis_server.url,
        "model": {"baseUrl": model_url, "name": "scripted", "timeoutSeconds": 10, "maxRetries": 2},
        "worker": {"concurrency": 4, "metricsPort": 0, "shutdownGraceSeconds": 2, "retryBackoffSeconds": 0.1},
        "retry": {"maxAttempts": 5, "visibilityTimeoutSeconds": 5},
        "tools": [{"name": "effect", "type": "HTTP", "http": {"url": effects_url + "/effect"}, "timeoutSeconds": 5}],
        "tracing": {"endpoint": collector.otlp_endpoint},
    }
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = RuntimeConfig.model_validate(doc)
    # Spans leave a worker 100 ms after they end, so what the first worker finished is exported before the kill.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    first = start_worker(procs, path, tmp_path, "w1")

    async def body():
        store = store_for(config)
        tid = await submit(store, config, 'resume me #steps=4 #tool=effect #latency=1 #args={"k":1}')
        for _ in range(300):  # two steps checkpointed: the third model call is under way
            if len(await store.steps(tid)) >= 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        first.proc.send_signal(signal.SIGKILL)  # no release, no flush
        first.proc.wait()
        start_worker(procs, path, tmp_path, "w2")
        st = await wait_ended(store, [tid], 60)
        rec, _ = await store.get(tid)
        await store.r.aclose()
        return tid, st[tid], rec

    tid, state, rec = arun(body(), 120)
    assert state["status"] == "done" and rec.attempts == 2, (state, rec.attempts)
    _, trace_id, first_agent, _ = rec.trace.split("-")
    spans = collector.wait_spans(fleet, lambda s: any(tags(x).get("agentfleet.task.attempt") == 2 for x in s))
    spans = [s for s in spans if tags(s).get("agentfleet.task.id", tid) == tid]
    assert {s["traceID"] for s in spans} == {trace_id}  # both workers' spans: one trace
    agents = [s for s in spans if tags(s).get("gen_ai.operation.name") == "invoke_agent"]
    # The first attempt's invoke_agent span died with its worker; the resumed one continues it.
    assert [tags(a)["agentfleet.task.attempt"] for a in agents] == [2] and parent_of(agents[0]) == first_agent
    assert tags(agents[0])["agentfleet.task.resumed_steps"] >= 2
    chats = [s for s in spans if tags(s).get("gen_ai.operation.name") == "chat"]
    before = [c for c in chats if parent_of(c) == first_agent]  # exported by the killed worker
    after = [c for c in chats if parent_of(c) == agents[0]["spanID"]]
    assert len(before) >= 2 and len(after) >= 1, (len(before), len(after))
    print(
        f"\ncrash-resume trace {trace_id}: {json.dumps(dict(kinds(spans)))}; "
        f"chat spans before the kill {len(before)}, after {len(after)}"
    )


def test_a_real_model_task_with_sub_agents_is_one_trace(
    collector, decider, redis_server, fleet, milvus_uri, collection
):
    """Qwen2.5-Coder on llama-server decides every step (test_runtime_real_agent's harness): the
    trace has the task, its sub-agents, each model call with its replica, and each tool call."""
    config = real_agent.config_for(redis_server.url, fleet, decider, milvus_uri, collection, system=DELEGATE)
    config = config.model_copy(update={"tracing": TracingSettings(endpoint=collector.otlp_endpoint)})
    [task] = real_agent.run_tasks(
        config,
        milvus_uri,
        collection,
        ["Compare the zorblat scheduler interval with the frobnicate queue retry delay."],
        timeout=1500,
    )
    assert task["status"]["status"] == "done", task["status"]  # a dead-lettered task says nothing of its trace
    children = task["children"]
    want_agents, want_chats = 1 + len(children), len(task["steps"]) + sum(len(c["steps"]) for c in children)
    spans = collector.wait_spans(
        fleet, lambda s: kinds(s)["invoke_agent"] >= want_agents and kinds(s)["chat"] >= want_chats, timeout=60
    )
    by_kind = kinds(spans)
    replicas = {tags(s).get("agentfleet.replica") for s in spans if tags(s).get("gen_ai.operation.name") == "chat"}
    tools = Counter(
        tags(s)["gen_ai.tool.name"] for s in spans if tags(s).get("gen_ai.operation.name") == "execute_tool"
    )
    print(
        f"\nreal-model trace: {len(children)} sub-agents; spans by kind {dict(by_kind)}; "
        f"tools {dict(tools)}; replicas {replicas}"
    )
    assert len({s["traceID"] for s in spans}) == 1
    agents = {tags(s)["agentfleet.task.id"] for s in spans if tags(s).get("gen_ai.operation.name") == "invoke_agent"}
    answered = [s for s in spans if tags(s).get("gen_ai.operation.name") == "chat" and "error.type" not in tags(s)]
    assert len(agents) == want_agents and len(answered) == want_chats  # failed calls are spans too, with error.type
    assert None not in replicas and all(r.startswith("127.0.0.1:") for r in replicas)
    assert by_kind["execute_tool"] == sum(len(s.tool_calls) for t in [task, *children] for s in t["steps"])


class Bookings(LocalServer):
    """A booking API that applies each Idempotency-Key once (a repeat gets the first reply) and
    holds the first booking's reply until ``release`` is set: the worker that sent it can be
    killed after the effect and before the reply, the point where a careless resume books twice."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()  # key -> requests received
        self.replies: dict[str, str] = {}  # key -> the one booking made under it
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/book", self._book)
        return app

    async def _book(self, request: web.Request) -> web.Response:
        body, key = await request.json(), request.headers.get("Idempotency-Key", "")
        self.requests[key] += 1
        if key not in self.replies:
            ref = "BK-" + secrets.token_hex(3).upper()  # no model can guess it: the answer must come from here
            self.replies[key] = f"Booked {body.get('guest')} for the night of {body.get('night')}: reference {ref}."
            self.arrived.set()
            await self.release.wait()
        return web.Response(text=self.replies[key])


def test_a_real_model_task_killed_mid_tool_call_is_one_trace_and_books_once(
    collector, decider, redis_server, fleet, tmp_path, procs, monkeypatch
):
    """Qwen2.5-Coder books a room through a side-effect HTTP tool; the worker process is killed
    with SIGKILL while the booking's reply is held, and a second worker resumes the task."""
    bookings = Bookings()
    doc = fleet_config(
        redis_server.url,
        fleet,
        decider,
        system="You book hotel rooms. Call book_room, then answer in one short sentence that gives the booking "
        "reference.",
        # The test is about the resume, not the choice: step 0 books, and nothing books twice.
        policies=[{"tool": "book_room", "firstStep": True, "maxCallsPerTask": 1}],
        budgets={"maxSteps": 4},
    )
    doc["tools"] = [
        {
            "name": "book_room",
            "type": "HTTP",
            "description": "Books a hotel room for one guest and one night; returns the booking reference.",
            "http": {"url": "BOOKINGS/book", "sideEffects": True},
            "parameters": {
                "type": "object",
                "properties": {
                    "guest": {"type": "string", "description": "the guest's full name"},
                    "night": {"type": "string", "description": "the night, as YYYY-MM-DD"},
                },
                "required": ["guest", "night"],
            },
            "timeoutSeconds": 600,
        }
    ]
    # A killed attempt counts as a failed one; the reclaim comes 10 s after its last heartbeat.
    doc["retry"] = {"maxAttempts": 3, "visibilityTimeoutSeconds": 10}
    doc["worker"] = {**doc["worker"], "shutdownGraceSeconds": 2, "retryBackoffSeconds": 0.1}
    doc["tracing"] = {"endpoint": collector.otlp_endpoint}
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # spans leave a worker 100 ms after they end

    async def body():
        await bookings.start()
        doc["tools"][0]["http"]["url"] = bookings.url + "/book"
        path = tmp_path / "runtime.yaml"
        path.write_text(yaml.safe_dump(doc))
        config = RuntimeConfig.model_validate(doc)
        store = store_for(config)
        try:
            first = start_worker(procs, path, tmp_path, "w1")
            tid = await submit(store, config, "Book a room for Ada Lovelace for the night of 2026-12-03.")
            try:
                await asyncio.wait_for(bookings.arrived.wait(), 900)
            except TimeoutError:
                pytest.fail(f"no booking reached the tool server: {await store.steps(tid)}\n{first.logs()[-3000:]}")
            # The killed worker's chat span for step 0 is in Jaeger before the kill (it ended
            # before the tool was called); the execute_tool span still open dies with the worker.
            await asyncio.to_thread(collector.wait_spans, fleet, lambda s: kinds(s)["chat"] >= 1)
            first.proc.send_signal(signal.SIGKILL)  # no release, no flush
            first.proc.wait()
            bookings.release.set()  # the held reply goes nowhere: its connection died with the worker
            start_worker(procs, path, tmp_path, "w2")
            state = (await wait_ended(store, [tid], 900))[tid]
            rec, _ = await store.get(tid)
            return tid, state, rec, await store.steps(tid)
        finally:
            await store.r.aclose()
            await bookings.stop()

    tid, state, rec, steps = arun(body(), 2000)
    calls = [(c.name, c.arguments) for s in steps for c in s.tool_calls]
    print(f"\nanswer: {state['answer']!r} ({state['reason']}); tool calls {calls}; bookings {dict(bookings.requests)}")
    assert state["status"] == "done" and rec.attempts == 2, (state, rec.attempts)
    assert len(bookings.replies) == 1, bookings.replies  # one booking, made once ...
    [(key, booking)] = bookings.replies.items()
    assert bookings.requests[key] == 2, bookings.requests  # ... though the resumed step sent it again
    assert booking.rsplit(" ", 1)[1].rstrip(".") in state["answer"], (booking, state["answer"])

    _, trace_id, first_agent, _ = rec.trace.split("-")
    spans = collector.wait_spans(fleet, lambda s: any(tags(x).get("agentfleet.task.attempt") == 2 for x in s))
    by_kind = kinds(spans)
    assert {s["traceID"] for s in spans} == {trace_id}, by_kind  # both workers' spans: one trace
    [agent] = [s for s in spans if tags(s).get("gen_ai.operation.name") == "invoke_agent"]
    # The first attempt's invoke_agent span died with its worker; the resumed one continues it.
    assert parent_of(agent) == first_agent and tags(agent)["agentfleet.task.attempt"] == 2
    assert tags(agent)["agentfleet.task.status"] == "done"
    chats = [s for s in spans if tags(s).get("gen_ai.operation.name") == "chat"]
    before = [c for c in chats if parent_of(c) == first_agent]  # exported by the killed worker
    after = [c for c in chats if parent_of(c) == agent["spanID"]]
    assert len(before) + len(after) == len(chats) and before and after, (len(before), len(after), len(chats))
    # The resumed worker replayed step 0's stored reply: the model was never asked for it again.
    assert {tags(c)["agentfleet.step"] for c in before} == {0}
    assert 0 not in {tags(c)["agentfleet.step"] for c in after}
    replica = decider.split("//")[1].split("/")[0]
    assert {tags(c)["agentfleet.replica"] for c in chats} == {replica}
    tools = [s for s in spans if tags(s).get("gen_ai.operation.name") == "execute_tool"]
    # Step 0's booking ran again under the resumed attempt, under the same idempotency key.
    step0 = [
        (tags(t)["gen_ai.tool.name"], tags(t)["gen_ai.tool.call.id"], parent_of(t))
        for t in tools
        if tags(t)["agentfleet.step"] == 0
    ]
    assert step0 == [("book_room", key, agent["spanID"])], step0
    print(
        f"crash-resume trace {trace_id} of a real-model task: spans by kind {dict(by_kind)}; "
        f"chat spans before the kill {len(before)}, after {len(after)}; replica {replica}"
    )
