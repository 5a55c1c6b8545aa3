"""Retrieval tool against a fake Retriever and a fake cache."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentfleet_runtime.core.types import Limits, Status, TaskRecord
from agentfleet_runtime.testing.fake_retriever import FakeRetriever
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.retrieval import RetrievalTool, cache_digest

# Built at collection time, minutes before the tests run in a full suite: deadlines far away.
CTX = ToolContext(
    TaskRecord(
        id="t", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=time.time() + 86400, root="t"
    ),
    0,
    0,
    time.time() + 86400,
)


class FakeCache:
    def __init__(self):
        self.data, self.ttls = {}, {}

    async def get(self, key):
        return self.data.get(key)

    async def set(self, key, value, ex=None):
        self.data[key] = value
        self.ttls[key] = ex


def test_repeated_queries_come_from_the_cache():
    r, cache, hits = FakeRetriever(), FakeCache(), []
    tool = RetrievalTool("kb", r, cache=cache, top_k=2, filter='lang == "en"', cache_ttl=60, on_cache=hits.append)
    first = asyncio.run(tool.run({"query": "What is  Redis?"}, CTX))
    second = asyncio.run(tool.run({"query": "What is Redis?"}, CTX))  # whitespace-normalised
    assert first == second and "[1] (doc0.md, score 1.000)" in first
    assert r.queries == [("What is  Redis?", 2, 'lang == "en"')]
    assert hits == [False, True] and list(cache.ttls.values()) == [60]
    asyncio.run(tool.run({"query": "What is Redis?", "top_k": 3}, CTX))
    assert len(r.queries) == 2  # a different top_k is a different question


def test_the_fleets_top_k_is_the_least_a_search_returns():
    r = FakeRetriever()
    tool = RetrievalTool("kb", r, cache=FakeCache(), top_k=5)
    for asked in (1, 5, 8):
        asyncio.run(tool.run({"query": f"q{asked}", "top_k": asked}, CTX))
    assert [k for _, k, _ in r.queries] == [5, 5, 8]  # a model asking for 1 passage gets the fleet's 5


def test_ttl_zero_disables_the_cache():
    r, cache = FakeRetriever(), FakeCache()
    tool = RetrievalTool("kb", r, cache=cache, cache_ttl=0)
    for _ in range(2):
        asyncio.run(tool.run({"query": "q"}, CTX))
    assert len(r.queries) == 2 and cache.data == {}


def test_errors():
    tool = RetrievalTool("kb", FakeRetriever(fail=ConnectionError("milvus down")))
    with pytest.raises(ToolError, match="milvus down") as e:
        asyncio.run(tool.run({"query": "q"}, CTX))
    assert e.value.unhealthy
    with pytest.raises(ToolError, match="non-empty 'query'") as e:
        asyncio.run(tool.run({}, CTX))
    assert not e.value.unhealthy


def test_digest_depends_on_filter():
    assert cache_digest("q", 5, None) != cache_digest("q", 5, "a == 1")


def test_identical_concurrent_queries_share_one_search():
    class Slow(FakeRetriever):
        async def search(self, query, top_k=5, filter=None):
            await asyncio.sleep(0.05)
            return await super().search(query, top_k, filter)

    r = Slow()
    tool = RetrievalTool("kb", r, cache=FakeCache())

    async def many():
        return await asyncio.gather(*(tool.run({"query": "same"}, CTX) for _ in range(5)))

    outs = asyncio.run(many())
    assert len(r.queries) == 1 and len(set(outs)) == 1


def test_a_query_whose_cache_read_outlasts_another_search_does_not_search_again():
    # Redis answers reads in order, but this worker reads the reply later: the second query's
    # read (a miss, taken before the first query stored its result) is still in flight when the
    # first query's search ends and its result is stored.
    class LateReads(FakeCache):
        def __init__(self):
            super().__init__()
            self.reads = 0

        async def get(self, key):
            value = self.data.get(key)
            self.reads += 1
            await asyncio.sleep(0.0 if self.reads == 1 else 0.05)
            return value

    class Slow(FakeRetriever):
        async def search(self, query, top_k=5, filter=None):
            await asyncio.sleep(0.01)
            return await super().search(query, top_k, filter)

    r, cache = Slow(), LateReads()
    tool = RetrievalTool("kb", r, cache=cache, cache_ttl=60)

    async def two():
        first = asyncio.ensure_future(tool.run({"query": "same"}, CTX))
        await asyncio.sleep(0.001)  # the first is searching
        return await asyncio.gather(first, tool.run({"query": "same"}, CTX))

    outs = asyncio.run(two())
    assert len(r.queries) == 1 and outs[0] == outs[1]


def test_passages_read_back_as_the_tool_wrote_them():
    from agentfleet_runtime.tools.retrieval import format_passages, parse_passages

    out = format_passages([
        {"id": "a", "source": "sql-vacuum.html", "score": 0.502, "text": (
            "VACUUM FULL takes an ACCESS EXCLUSIVE lock.\n\nSecond paragraph."
        )},
        {"id": "b", "source": "explicit-locking.html", "score": 0.3, "text": "| Lock | Conflicts |\n|---|---|"},
    ])  # fmt: skip
    assert parse_passages(out) == [
        {
            "rank": 1,
            "source": "sql-vacuum.html",
            "score": 0.502,
            "text": "VACUUM FULL takes an ACCESS EXCLUSIVE lock.\n\nSecond paragraph.",
        },
        {"rank": 2, "source": "explicit-locking.html", "score": 0.3, "text": "| Lock | Conflicts |\n|---|---|"},
    ]
    assert parse_passages("No passages found.") == [] and parse_passages("search_docs failed: timeout") == []


def test_the_retriever_waits_on_milvus_as_long_as_the_tool_may_take(monkeypatch):
    """A Retrieval tool's timeoutSeconds bounds the Milvus search too (not a fixed 10 s below it)."""
    from agentfleet_runtime.core.config import RuntimeConfig
    from agentfleet_runtime.tools import registry

    seen = {}

    def for_index(spec, **kw):
        seen.update(kw)
        return object()

    monkeypatch.setattr("agentfleet_runtime.tools.retriever.Retriever.for_index", staticmethod(for_index))
    vi = {"milvus": {"uri": "http://m:19530"}, "collection": "docs", "dimension": 384}
    cfg = RuntimeConfig.model_validate(
        {"tools": [{"name": "kb", "type": "Retrieval", "timeoutSeconds": 45}], "retrieval": {"vectorIndex": vi}}
    )
    registry.default_retriever(cfg, cfg.tools[0])
    assert seen["timeout"] == 45.0
