"""A stand-in for agentfleet_runtime.tools.retriever.Retriever: tests of the retrieval tool and its
cache need to count searches and fail on demand, not a Milvus."""

from __future__ import annotations

from agentfleet_runtime.tools.retriever import Passage


class FakeRetriever:
    """Answers every search with top_k made-up passages (scores 1.0, 0.9, ...) and records it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.queries: list[tuple[str, int, str | None]] = []
        self.fail = fail

    async def search(self, query: str, top_k: int = 5, filter: str | None = None) -> list[Passage]:
        self.queries.append((query, top_k, filter))
        if self.fail:
            raise self.fail
        return [Passage(f"p{i}", f"text {i} about {query}", 1.0 - i / 10, f"doc{i}.md") for i in range(top_k)]
