"""A fake Retriever for integration tests of the retrieval tool's Redis cache.

agentfleet_runtime.retrieval (the Milvus-backed Retriever) is another engineer's module; until it
exists these tests use this stand-in with the same search() signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Passage:
    id: str
    text: str
    score: float
    source: str
    metadata: dict = field(default_factory=dict)


class FakeRetriever:
    def __init__(self) -> None:
        self.queries: list[tuple[str, int, str | None]] = []

    async def search(self, query: str, top_k: int = 5, filter: str | None = None) -> list[Passage]:
        self.queries.append((query, top_k, filter))
        return [Passage(f"p{i}", f"passage {i} on {query}", 0.9 - i / 10, f"doc{i}.md") for i in range(top_k)]
