"""The retrieval tool with the real Retriever (agentfleet_runtime.tools.retriever) on a real Milvus Lite
server, its Redis cache, inside a worker. The embedder is a tiny deterministic bag-of-words stand-in
(64 dimensions), so the test needs no model files; the Milvus search and filters are real."""

from __future__ import annotations

import json

import pytest
from agentfleet_contract.agentfleet import Tool
from runtime_helpers import arun, environment, running_worker

from agentfleet_runtime.tools.retriever import Retriever
from e2e.harness import plinth

pytestmark = pytest.mark.integration
DIM = 64

DOCS = [
    ("aof.md", "Redis AOF persistence appends every write to a log file", "en"),
    ("streams.md", "Redis streams keep consumer groups and pending entries", "en"),
    ("kaffe.md", "Kaffe wird aus gerösteten Bohnen gebrüht", "de"),
]


def make_collection(uri: str, name: str) -> None:
    plinth.make_collection(uri, name, [(src, text, {"lang": lang}) for src, text, lang in DOCS], plinth.BagOfWords(DIM))


def test_retrieval_tool_on_milvus_lite_with_cache(milvus_uri, redis_server, fleet):
    collection = "kb_" + fleet
    make_collection(milvus_uri, collection)
    tools = [
        {
            "name": "kb",
            "type": "Retrieval",
            "retrieval": {"topK": 2, "filter": 'metadata["lang"] == "en"', "cacheTtlSeconds": 60},
        }
    ]

    class Counting(Retriever):
        searches = 0

        async def search(self, query, top_k=5, filter=None):
            Counting.searches += 1
            return await super().search(query, top_k, filter)

    async def body():
        retriever = Counting(milvus_uri, collection, plinth.BagOfWords(DIM))
        args = json.dumps({"query": "AOF persistence appends writes to a log file"}, separators=(",", ":")).replace(
            " ", ""
        )
        async with environment(redis_server.url, fleet, tools=tools) as env:
            async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                first = await env.submit(f"look up #steps=2 #tool=kb #args={args}")
                await env.wait(first)
                second = await env.submit(f"look up again #steps=2 #tool=kb #args={args}")
                await env.wait(second)
            outs = [(await env.store.steps(t))[0].observations[0] for t in (first, second)]
        return outs

    outs = arun(body())
    assert all(o.ok for o in outs), outs
    assert outs[0].output == outs[1].output and Counting.searches == 1  # the repeat came from Redis
    assert outs[0].output.startswith("[1] (aof.md, score")
    assert "kaffe.md" not in outs[0].output  # the tool's filter reached Milvus


def test_default_retriever_is_built_from_the_vectorindex_spec(redis_server, fleet):
    from runtime_helpers import make_config

    from agentfleet_runtime.tools.registry import default_retriever

    spec = {
        "milvus": {"uri": "http://milvus.example:19530"},
        "collection": "docs",
        "dimension": 8,
        "embedding": {"provider": "OpenAI", "endpoint": "http://emb:8000/v1", "model": "e5"},
    }
    config = make_config(redis_server.url, fleet, retrieval={"vectorIndex": spec, "uri": "http://127.0.0.1:19531"})
    r = default_retriever(config, Tool(name="kb", type="Retrieval", timeoutSeconds=45))
    assert isinstance(r, Retriever) and r.uri == "http://127.0.0.1:19531" and r.collection == "docs"
    assert r.timeout == 45.0  # the tool's timeoutSeconds bounds the Milvus calls too
    with pytest.raises(ValueError, match="retrieval.vectorIndex"):
        default_retriever(make_config(redis_server.url, fleet), Tool(name="kb", type="Retrieval"))


def test_search_first_and_the_answer_check_in_a_worker(milvus_uri, redis_server, fleet):
    """The Cascade answer policy and spec.decisions.answerCheck from the runtime config to a worker:
    step 0 searched the goal with no model call; an answer whose value no passage holds goes on to the
    loop and is declined there, one the passages support ends the task."""
    from agentfleet_runtime.answering.answercheck import DECLINE

    collection = "kb_sf_" + fleet
    make_collection(milvus_uri, collection)
    retrieval = {"topK": 2, "cacheTtlSeconds": 0, "answerPolicy": "Cascade"}
    tools = [{"name": "kb", "type": "Retrieval", "retrieval": retrieval}]
    decisions = {"answerCheck": {"retries": 0}}

    async def body():
        retriever = Retriever(milvus_uri, collection, plinth.BagOfWords(DIM))
        async with environment(redis_server.url, fleet, tools=tools, decisions=decisions) as env:
            async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                # Answers from script rules: a directive would put the answer's value in the goal.
                env.model.model.rules = [
                    {"match": "AOF", "answer": "every 9 minutes"},
                    {"match": "streams", "answer": "`pending`"},
                ]
                invented = await env.submit("How often does AOF persistence flush?")
                supported = await env.submit("What do Redis streams keep?")
                ended = await env.wait([invented, supported])
                steps = await env.store.steps(invented)
        return ended, steps, invented, supported

    ended, steps, invented, supported = arun(body())
    assert steps[0].tool_calls[0].name == "kb" and steps[0].usage.total == 0
    assert steps[0].tool_calls[0].arguments == {"query": "How often does AOF persistence flush?"}
    assert steps[0].observations[0].output.startswith("[1] (aof.md, score")
    assert ended[invented]["reason"] == "final_answer" and ended[invented]["answer"] == DECLINE
    assert ended[supported]["answer"] == "`pending`\n\nSources: streams.md"  # cites the passage stating it
