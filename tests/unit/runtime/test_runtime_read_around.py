"""Reading around (spec.tools[].retrieval.readAround), the pure parts: the Milvus expression that
selects a hit's neighbours inside the search's filter, chunks joined without their overlap, and a
hit inside a better hit's window dropped. tests/integration/ingest/test_read_around_it.py reads
real chunks back from Milvus Lite."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import pytest
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.budget import Prices
from agentfleet_runtime.tools.registry import build_tools
from agentfleet_runtime.tools.retrieval import READ_AROUND_ASKED_MAX, RetrievalTool, cache_digest
from agentfleet_runtime.tools.retriever import Passage, join_chunks, windows_filter, with_neighbours
from agentfleet_runtime.worker.oneshot import OneShot
from tests.unit.runtime.test_runtime_oneshot import Model
from tests.unit.runtime.test_runtime_retrieval_tool import CTX


def hit(source: str, chunk: int | None, text: str = "", score: float = 1.0, revision: str | None = "r1") -> Passage:
    meta = {} if chunk is None else {"chunk": chunk}
    if revision is not None and chunk is not None:
        meta["revision"] = revision
    return Passage(id=f"{source}:{chunk}", text=text or f"text {chunk}", score=score, source=source, metadata=meta)


def row(source: str, chunk: int, text: str) -> dict:
    return {"source": source, "text": text, "metadata": {"chunk": chunk, "revision": "r1"}}


def test_the_neighbours_are_selected_by_source_chunk_range_and_revision_inside_the_filter() -> None:
    expr = windows_filter(
        [hit("a.html", 0), hit('b "x".html', 7, revision=None), hit("c.html", None)], 2, 'tenant == "t"'
    )
    assert expr == (
        '(tenant == "t") and ((source == "a.html" and metadata["chunk"] >= 0 and metadata["chunk"] <= 2 and '
        'metadata["revision"] == "r1") or (source == "b \\"x\\".html" and metadata["chunk"] >= 5 and '
        'metadata["chunk"] <= 9))'
    )
    assert windows_filter([hit("a.html", 3)], 1) == (
        '(source == "a.html" and metadata["chunk"] >= 2 and metadata["chunk"] <= 4 and metadata["revision"] == "r1")'
    )
    assert windows_filter([hit("c.html", None)], 1, "x") is None
    # A hit without a chunk number is passed over, not the end of the list.
    assert windows_filter([hit("c.html", None), hit("a.html", 3, revision=None)], 1) == (
        '(source == "a.html" and metadata["chunk"] >= 2 and metadata["chunk"] <= 4)'
    )


def test_consecutive_chunks_join_without_their_overlap_or_repeated_title() -> None:
    assert join_chunks("one two three four", "two three four five") == "one two three four five"
    title = "## Title\nbody words, then some shared words"
    assert join_chunks(title, "## Title\nsome shared words and more") == f"{title} and more"
    assert join_chunks("## A\nfirst part", "## B\nsecond part") == "## A\nfirst part\n## B\nsecond part"
    assert join_chunks("no overlap here", "elsewhere entirely") == "no overlap here\nelsewhere entirely"
    # The overlap is the longest suffix of the first that begins the second, not an earlier repeat.
    assert join_chunks("repeat me, repeat me, repeat me now", "repeat me now and then") == (
        "repeat me, repeat me, repeat me now and then"
    )
    # Under OVERLAP_MIN characters a match is not taken for an overlap, even a whole short chunk.
    assert join_chunks("ends with a b c", "a b c starts") == "ends with a b c\na b c starts"
    assert join_chunks("ends with a b c", "a b c") == "ends with a b c\na b c"
    # The probe found first where the rest does not run on: the next place it is found is tried.
    first = "abcdefghijklmn XX abcdefghijklmn YY"
    assert join_chunks(first, "abcdefghijklmn YY and more") == f"{first} and more"
    first = "abcdefghijklmn XX abcdefghijklmn YY abcdefghijklmn ZZ"
    assert join_chunks(first, "abcdefghijklmn YY abcdefghijklmn ZZ more") == f"{first} more"
    assert join_chunks("a" * 13 + "b", "a" * 12 + "bc") == "a" * 13 + "bc"  # the very next place, too
    # Of two places where the rest runs on, the first: the longest overlap.
    same = "the same words the same words the same words"
    assert join_chunks(same, f"{same} and then") == f"{same} and then"
    # The title is each chunk's first line, whatever lines follow.
    assert (
        join_chunks("## T\nline one\nline two of it", "## T\nmore\nwords")
        == "## T\nline one\nline two of it\nmore\nwords"
    )


def test_each_hit_gets_its_window_and_a_hit_inside_a_better_window_is_dropped() -> None:
    rows = [row("a.html", i, f"a{i} ") for i in range(6)] + [row("b.html", 0, "b0 ")]
    hits = [hit("a.html", 2, "a2 ", 0.9), hit("b.html", 1, "b1 ", 0.8), hit("a.html", 3, "a3 ", 0.7), hit("z", None)]
    got = with_neighbours(hits, rows, 1)
    assert [(p.source, p.text, p.metadata.get("window")) for p in got] == [
        ("a.html", "a1 \na2 \na3 ", [1, 3]),
        ("b.html", "b0 \nb1 ", [0, 1]),  # b's chunk 2 is not there: the window stops at what exists
        ("z", "text None", None),
    ]
    assert [p.score for p in got] == [0.9, 0.8, 1.0] and got[0].id == "a.html:2"
    # A hit without a chunk number is kept as it is, and the hits after it are still read around.
    assert [p.text for p in with_neighbours([hit("z", None), hit("a.html", 1, "a1 ")], rows, 1)] == [
        "text None",
        "a0 \na1 \na2 ",
    ]
    # A gap ends the window on that side: no chunk from beyond a missing one.
    gap = with_neighbours([hit("a.html", 2, "a2 ")], [row("a.html", 0, "a0 "), row("a.html", 3, "a3 ")], 2)
    assert gap[0].text == "a2 \na3 " and gap[0].metadata["window"] == [2, 3]
    wide = with_neighbours([hit("a.html", 2, "a2 ")], rows, 2)
    assert wide[0].text == "a0 \na1 \na2 \na3 \na4 " and wide[0].metadata["window"] == [0, 4]
    # Only a better hit's own window covers: hits just outside it, on either side, stay, and their
    # windows stop where it begins.
    kept = with_neighbours([hit("a.html", 3, "a3 "), hit("a.html", 0, "a0 "), hit("a.html", 5, "a5 ")], rows, 1)
    assert [p.metadata["window"] for p in kept] == [[2, 4], [0, 1], [5, 5]]
    # A row or hit whose chunk number is no integer is passed over, not the end of the rows.
    odd = [{"source": "a.html", "text": "x", "metadata": {}}, *rows]
    assert with_neighbours([hit("a.html", 2, "a2 ")], odd, 1)[0].text == "a1 \na2 \na3 "
    for chunk in ("3", True):
        p = Passage(id="p", text="t", score=1.0, source="a.html", metadata={"chunk": chunk})
        assert with_neighbours([p], rows, 1) == [p]


class Searcher:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def search(self, query, top_k=5, filter=None, **kw):  # type: ignore[no-untyped-def]
        self.calls.append({"top_k": top_k, "filter": filter, **kw})
        return [hit("a.html", 1, "joined text")]


@pytest.mark.parametrize("around", [0, 2])
def test_the_tool_passes_read_around_only_when_set_and_keys_its_cache_by_it(around: int) -> None:
    searcher = Searcher()
    tool = RetrievalTool("kb", searcher, filter="f", read_around=around)
    out = asyncio.run(tool.run({"query": "q"}, CTX))
    assert "joined text" in out
    assert searcher.calls == [{"top_k": 5, "filter": "f", **({"read_around": around} if around else {})}]
    assert cache_digest("q", 5, "f", 0) == cache_digest("q", 5, "f") != cache_digest("q", 5, "f", 1)


def test_a_call_may_ask_for_more_neighbours_than_the_fleets_never_fewer_nor_past_the_cap() -> None:
    """A call may ask for more neighbours than the fleet's; a model's arguments are untrusted, so what
    any call asks is capped (READ_AROUND_ASKED_MAX)."""
    asked = [(1, 1), (2, 2), (50, READ_AROUND_ASKED_MAX), (0, 0), (-3, 0), (True, 0), ("9", 0), (None, 0)]
    for ask, joined in asked:
        searcher = Searcher()
        asyncio.run(RetrievalTool("kb", searcher).run({"query": "q", "read_around": ask}, CTX))
        assert searcher.calls == [{"top_k": 5, "filter": None, **({"read_around": joined} if joined else {})}], ask
    searcher = Searcher()  # the fleet's own is the least
    asyncio.run(RetrievalTool("kb", searcher, read_around=2).run({"query": "q", "read_around": 1}, CTX))
    assert searcher.calls[0]["read_around"] == 2


def test_the_fleets_read_around_reaches_its_tool_and_one_shot_rag_searches_as_the_tool_does() -> None:
    settings = {"topK": 4, "filter": 'lang == "en"', "readAround": 2}
    config = RuntimeConfig.model_validate({"tools": [{"name": "kb", "type": "Retrieval", "retrieval": settings}]})
    store = SimpleNamespace(r=None, keys=None)
    tool = build_tools(config, store, None, retriever_factory=lambda config, spec: None)[0]  # type: ignore[arg-type]
    assert (tool.top_k, tool.filter, tool.read_around) == (4, 'lang == "en"', 2)

    searcher = Searcher()
    one = OneShot(
        "rag", Model(), Prices(Decimal(0), Decimal(0)), retriever=searcher, top_k=4, filter="f", read_around=1
    )
    view = asyncio.run(one.answer("q", "Q?"))
    assert searcher.calls == [{"top_k": 4, "filter": "f", "read_around": 1}]
    assert view["retrieved"][0]["text"] == "joined text"
