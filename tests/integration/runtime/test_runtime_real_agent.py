"""Real agents: a Qwen2.5-Coder GGUF on llama.cpp's llama-server (CPU) decides every step of tasks
running in a real worker, on real Redis, searching a real Milvus Lite collection.

The corpus states invented facts (no model knows them from training), so an answer that states
one must have come through the search. Each test also checks something only a deciding model does
(a search query it wrote, a delegation it chose, a concise answer rather than pasted passages);
run with AGENTFLEET_IT_DECIDER=scripted and the repository's scripted model takes the model's
place: every test here then fails (shown in the closing note of issue 22).

The model and the server are built/fetched once into ~/.cache/agentfleet (e2e/harness/llama_server.py);
AGENTFLEET_IT_QWEN picks the model. Default the 1.5B: these three tests make about a dozen model
calls (3.5-7.3 s each for the 1.5B on 2 cores, issue 22), so the larger model costs CI about a
minute more than the 0.5B (and 27 s more download), and it is the one seen to search and cite.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from runtime_helpers import arun, running_worker, submit, wait_ended

from agentfleet_runtime.core.config import RuntimeConfig
from agentfleet_runtime.tools.retriever import Hybrid, Retriever
from e2e.harness.plinth import DELEGATE, SYSTEM, encoder, fleet_config, make_collection

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def collection(milvus_uri) -> str:
    name = "plinth_" + hashlib.sha1(str(time.time()).encode()).hexdigest()[:8]
    make_collection(milvus_uri, name)
    return name


def config_for(redis_url, fleet, model_url, milvus_uri, collection, **kw):
    return RuntimeConfig.model_validate(fleet_config(redis_url, fleet, model_url, **kw))


def run_tasks(config, milvus_uri, collection, goals, timeout=500):
    async def body():
        retriever = Retriever(
            milvus_uri, collection, encoder(), hybrid=Hybrid()
        )  # the fleet's hybrid search (spec.fullText)
        from runtime_helpers import store_for

        store = store_for(config)
        try:
            async with running_worker(config, retriever_factory=lambda c, t: retriever):
                ids = [await submit(store, config, g) for g in goals]
                await wait_ended(store, ids, timeout)
            out = []
            for tid in ids:
                out.append({"id": tid, "status": (await store.statuses([tid]))[0], "steps": await store.steps(tid)})
            for o in out:
                o["children"] = [
                    {"id": c, "steps": await store.steps(c), "status": (await store.statuses([c]))[0]}
                    for c in await store.children(o["id"])
                ]
            return out
        finally:
            await store.r.aclose()

    return arun(body(), timeout + 60)


def states_seconds(answer: str, n: int) -> bool:
    """The answer states n seconds as a quantity: the number alone (no digit or decimal point
    touching it) followed by a unit of seconds."""
    return re.search(rf"(?<![\d.]){n}\s*(?:s|sec|secs|seconds?)\b", answer, re.IGNORECASE) is not None


def calls(steps, name):
    return [c for s in steps for c in s.tool_calls if c.name == name]


def test_the_model_searches_the_index_and_answers_citing_the_passage(
    decider, redis_server, fleet, milvus_uri, collection
):
    # Search and cite only: the 1.5B once delegated a question it had just found the answer to.
    config = config_for(
        redis_server.url,
        fleet,
        decider,
        milvus_uri,
        collection,
        system=SYSTEM,
        policies=[{"tool": "delegate", "maxCallsPerTask": 0}],
    )
    [task] = run_tasks(
        config, milvus_uri, collection, ["How often does the zorblat scheduler wake up by default?"], timeout=1500
    )
    st, steps = task["status"], task["steps"]
    print(
        f"\nanswer: {st['answer']!r} ({st['reason']}, {len(steps)} steps: "
        f"{[(c.name, c.arguments) for s in steps for c in s.tool_calls]})"
    )
    print(f"model seconds per step: {[round(s.model_seconds, 2) for s in steps]}")
    searches = calls(steps, "search")
    assert st["status"] == "done" and st["reason"] == "final_answer", st
    assert searches, "the model never searched"
    assert "zorblat" in searches[0].arguments["query"].lower()
    assert any(o.ok and "zorblat.html" in o.output for s in steps for o in s.observations or [])
    assert "37" in st["answer"], st["answer"]  # an invented fact: only the passage has it
    assert "zorblat.html" in st["answer"], st["answer"]  # cites the passage it used
    assert "frobnicate" not in st["answer"].lower() and len(st["answer"]) < 400  # an answer, not the passages pasted


def test_the_model_delegates_a_comparison_and_fans_in(decider, redis_server, fleet, milvus_uri, collection):
    # No policy forces the delegation: the system prompt asks for it, the model decides.
    config = config_for(redis_server.url, fleet, decider, milvus_uri, collection, system=DELEGATE)
    [task] = run_tasks(
        config,
        milvus_uri,
        collection,
        ["Compare the zorblat scheduler interval with the frobnicate queue retry delay."],
        timeout=1500,
    )
    st, steps, children = task["status"], task["steps"], task["children"]
    print(f"\nanswer: {st['answer']!r}; delegated: {[c.arguments for c in calls(steps, 'delegate')]}")
    for c in children:
        print(
            f"  child {c['id']}: {c['status']['answer']!r} after "
            f"{[(x.name, x.arguments) for s in c['steps'] for x in s.tool_calls]}"
        )
    assert st["status"] == "done", st
    delegated = calls(steps, "delegate")
    assert delegated and len(children) >= 2, "the model did not spawn sub-agents"
    goals = " ".join(str(g) for c in delegated for g in c.arguments.get("goals", [])).lower()
    assert "zorblat" in goals and "frobnicate" in goals, goals  # one goal per side of the comparison
    assert all(c["status"]["status"] == "done" for c in children)
    assert all(calls(c["steps"], "search") for c in children), "a sub-agent answered without searching"
    # Fan-in: the parent's answer carries both children's facts, each as a duration (a bare digit
    # would take 15, 1.5 or 2025 for the 5 seconds).
    assert states_seconds(st["answer"], 37) and states_seconds(st["answer"], 5), st["answer"]


def test_a_step_budget_ends_the_task_with_its_reason_and_best_answer(
    decider, redis_server, fleet, milvus_uri, collection
):
    config = config_for(
        redis_server.url,
        fleet,
        decider,
        milvus_uri,
        collection,
        system=SYSTEM,
        policies=[{"tool": "search", "firstStep": True}],
        budgets={"maxSteps": 1},
    )
    [task] = run_tasks(config, milvus_uri, collection, ["How many entries does the quarkle cache keep at most?"])
    st, steps = task["status"], task["steps"]
    print(f"\nanswer: {st['answer']!r} ({st['reason']}); searched {[c.arguments for c in calls(steps, 'search')]}")
    assert st["status"] == "done" and st["reason"] == "max_steps", st
    [search] = calls(steps, "search")
    assert "quarkle" in search.arguments["query"].lower()  # the model's own query
    # The best answer so far: the passage its search found, not a JSON decision.
    assert "900" in st["answer"] and "quarkle.html" in st["answer"] and '"action"' not in st["answer"], st["answer"]


def test_the_model_calls_an_http_tool_and_answers_from_its_reply(decider, redis_server, fleet, milvus_uri, collection):
    """The HTTP tool path on the real model: it picks the tool, writes its arguments, and answers
    from the reply (an invented stock figure no model knows)."""
    calls_seen: list[dict] = []

    class Inventory(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            calls_seen.append(body)
            sku = str(body.get("sku", "")).upper()
            reply = f"SKU {sku}: 412 units in stock at the Lisbon depot." if "ZX-9" in sku else f"SKU {sku}: unknown."
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Inventory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    doc = fleet_config(
        redis_server.url,
        fleet,
        decider,
        system="You answer questions about stock levels. Use the inventory tool, then answer in one short sentence.",
    )
    doc["tools"] = [
        {
            "name": "inventory",
            "type": "HTTP",
            "description": "Looks up how many units of a stock-keeping unit (SKU) are in stock.",
            "http": {"url": f"http://127.0.0.1:{port}/inventory"},
            "parameters": {
                "type": "object",
                "properties": {"sku": {"type": "string", "description": "the SKU, e.g. AB-1"}},
                "required": ["sku"],
            },
            "timeoutSeconds": 10,
        }
    ]
    config = RuntimeConfig.model_validate(doc)
    try:
        [task] = run_tasks(config, milvus_uri, collection, ["How many units of SKU ZX-9 are in stock?"], timeout=900)
    finally:
        server.shutdown()
    st, steps = task["status"], task["steps"]
    print(
        f"\nanswer: {st['answer']!r} ({st['reason']}); tool calls "
        f"{[(c.name, c.arguments) for s in steps for c in s.tool_calls]}"
    )
    assert st["status"] == "done" and st["reason"] == "final_answer", st
    assert calls(steps, "inventory") and any("ZX-9" in str(b.get("sku", "")).upper() for b in calls_seen), calls_seen
    assert re.search(r"(?<![\d.])412(?![\d.])", st["answer"]), st["answer"]
