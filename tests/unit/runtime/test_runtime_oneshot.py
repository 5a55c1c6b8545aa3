"""The one-shot baselines (oneshot.py): the one request each mode sends, and the task-API-shaped
view it answers with. The model and the retriever are fakes (the logic under test is the
baseline's); the process and the real model client and index run in the integration tier."""

from __future__ import annotations

import asyncio
import io
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from agentfleet_runtime.core.budget import Prices
from agentfleet_runtime.core.types import ModelReply, Usage
from agentfleet_runtime.tools.retrieval import RAG_PROMPT
from agentfleet_runtime.worker.oneshot import CLOSED_BOOK_PROMPT, OneShot, messages, serve_lines, view

PASSAGES = [
    {"source": "a.html", "score": 0.91, "text": "wal_level defaults to replica."},
    {"source": "b.html", "score": 0.5, "text": "x"},
]


class Model:
    def __init__(self, reply: str | Exception = "replica [source: a.html]", seconds: float = 0.0) -> None:
        self.reply, self.seconds, self.requests = reply, seconds, []

    async def complete(self, request):
        self.requests.append(request)
        await asyncio.sleep(self.seconds)
        if isinstance(self.reply, Exception):
            raise self.reply
        return ModelReply(content=f"  {self.reply}\n", usage=Usage(1000, 20))


class Retriever:
    def __init__(self) -> None:
        self.queries: list[tuple[str, int]] = []

    async def search(self, query, top_k=5, filter=None):
        self.queries.append((query, top_k))
        return [SimpleNamespace(id=i, metadata={}, **p) for i, p in enumerate(PASSAGES[:top_k])]


def test_closed_book_sends_the_question_alone_and_rag_the_numbered_passages_then_the_question() -> None:
    assert messages("closed-book", "Q?") == [
        {"role": "system", "content": CLOSED_BOOK_PROMPT},
        {"role": "user", "content": "Q?"},
    ]
    rag = messages("rag", "Q?", PASSAGES)
    assert rag[0] == {"role": "system", "content": RAG_PROMPT} and "[source: NAME]" in RAG_PROMPT
    assert (
        rag[1]["content"] == "Passages:\n\n[1] (a.html, score 0.910)\nwal_level defaults to replica.\n\n"
        "[2] (b.html, score 0.500)\nx\n\nQuestion: Q?"
    )


def test_the_view_is_what_the_task_api_shows_for_a_finished_task() -> None:
    v = view(
        "q1",
        "Q?",
        answer="replica (see a.html)",
        passages=PASSAGES,
        usage=Usage(1000, 20),
        cost_nanos=108_000,
        seconds=1.23456,
        tool="search",
    )
    assert v["status"] == "done" and v["reason"] == "final_answer" and v["stepCount"] == 1 and v["error"] is None
    assert v["citations"] == ["a.html"] and v["durationSeconds"] == 1.235
    assert [(p["rank"], p["source"], p["text"]) for p in v["retrieved"]] == [
        (1, "a.html", "wal_level defaults to replica."),
        (2, "b.html", "x"),
    ]
    assert v["usage"] == {"promptTokens": 1000, "completionTokens": 20, "totalTokens": 1020}
    assert v["treeUsage"] == {"totalTokens": 1020, "cost": "0.000108"} and v["steps"] == [
        {"n": 0, "toolCalls": [{"name": "search"}]}
    ]
    closed = view("q1", "Q?", answer="x", passages=[], usage=Usage(), cost_nanos=0, seconds=0, tool="search")
    assert closed["retrieved"] == [] and closed["steps"] == [{"n": 0, "toolCalls": []}] and closed["cost"] == "0"
    dead = view(
        "q1",
        "Q?",
        answer="see a.html",
        passages=[],
        usage=Usage(),
        cost_nanos=0,
        seconds=0,
        tool="s",
        status="dead",
        reason="error",
    )
    assert dead["citations"] == [] and dead["stepCount"] == 0


def test_rag_searches_with_the_question_itself_then_calls_once_with_the_fleets_prices() -> None:
    model, retriever = Model(), Retriever()
    one = OneShot(
        "rag", model, Prices(Decimal("0.10"), Decimal("0.40")), retriever=retriever, top_k=1, tool="kb", timeout=42
    )
    v = asyncio.run(one.answer("q1", "What is wal_level's default?"))
    assert retriever.queries == [("What is wal_level's default?", 1)] and len(model.requests) == 1
    req = model.requests[0]
    assert (
        req.tools == []
        and req.response_format is None
        and req.timeout == 42
        and req.task_id == req.root_id == "oneshot-q1"
    )
    assert "[1] (a.html, score 0.910)" in req.messages[1]["content"] and "b.html" not in req.messages[1]["content"]
    assert (
        v["answer"] == "replica [source: a.html]" and v["treeUsage"]["cost"] == "0.000108"
    )  # 1000 x 0.10 + 20 x 0.40 per million
    assert [p["source"] for p in v["retrieved"]] == ["a.html"] and v["steps"][0]["toolCalls"] == [{"name": "kb"}]


def test_closed_book_never_searches_and_rag_needs_a_retriever() -> None:
    model = Model("I do not know.")
    v = asyncio.run(OneShot("closed-book", model, Prices()).answer("q", "Q?"))
    assert v["retrieved"] == [] and v["answer"] == "I do not know." and model.requests[0].messages[1]["content"] == "Q?"
    with pytest.raises(ValueError, match="needs a Retrieval tool"):
        OneShot("rag", model, Prices())


def test_a_failed_call_is_that_questions_outcome_with_what_it_had_retrieved() -> None:
    one = OneShot("rag", Model(RuntimeError("connection refused")), Prices(), retriever=Retriever(), top_k=2)
    v = asyncio.run(one.answer("q", "Q?"))
    assert (v["status"], v["reason"], v["error"], v["answer"]) == (
        "dead",
        "error",
        "RuntimeError: connection refused",
        "",
    )
    assert len(v["retrieved"]) == 2


class GatedModel(Model):
    """Answers only once ``width`` calls are in flight together: one after another never gets there."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width, self.inflight, self.peak = width, 0, 0

    async def complete(self, request):
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.peak < self.width:
                await asyncio.wait_for(self._all_in().wait(), 5)
            self._all_in().set()
            return await super().complete(request)
        finally:
            self.inflight -= 1

    def _all_in(self) -> asyncio.Event:
        if not hasattr(self, "_event"):
            self._event = asyncio.Event()
        return self._event


def test_lines_are_answered_concurrently_and_each_written_as_it_ends() -> None:
    # Concurrency is read as calls in flight together, not as a wall time a loaded runner may miss.
    model = GatedModel(width=4)
    out = io.StringIO()
    lines = io.StringIO("".join(json.dumps({"id": i, "question": f"Q{i}"}) + "\n" for i in range(4)) + "\n")
    n = asyncio.run(serve_lines(OneShot("closed-book", model, Prices()), lines, out, concurrency=4))
    views = [json.loads(ln) for ln in out.getvalue().splitlines()]
    assert n == 4 and sorted(v["id"] for v in views) == ["0", "1", "2", "3"]
    assert model.peak == 4 and {v["status"] for v in views} == {"done"}, views
