"""Hybrid retrieval (spec.fullText) on a real Milvus Lite server: the collection gets Milvus' BM25
function and sparse index beside the vectors, ingestion writes the same rows as before, and the
Retriever's fused search finds by its words a chunk the dense search cannot rank."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import numpy as np
import pytest
from agentfleet_milvus import CollectionManager, CollectionSpec, ImmutableFieldConflict, MilvusSink, MilvusTarget

from agentfleet_runtime.tools.retriever import Hybrid, Retriever

pytestmark = pytest.mark.integration
DIM = 16
DOCS = [
    (
        "wal.html",
        "wal_level determines how much information is written to the WAL. The default value is replica.",
        "en",
    ),
    ("locks.html", "VACUUM FULL acquires an ACCESS EXCLUSIVE lock on the table it rewrites.", "en"),
    ("kaffee.html", "wal_level heißt auf Deutsch auch wal_level, Kaffee wird gebrüht.", "de"),
] + [(f"filler{i}.html", f"Filler page {i} about unrelated matters number {i}.", "en") for i in range(12)]


class Scrambled:
    """An encoder that knows no words: each text gets a pseudo-random unit vector. Dense search
    over it ranks at random, so what the hybrid search ranks first it found by BM25."""

    name, max_input_tokens = "scrambled", 512

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def embed(self, texts):
        out = np.stack(
            [
                np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).standard_normal(DIM)
                for t in texts
            ]
        )
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def _rows() -> list[dict]:
    vectors = Scrambled().embed([t for _, t, _ in DOCS])
    return [
        {"id": f"id{i}", "text": t, "source": s, "metadata": {"lang": lang, "revision": "r1"}, "vector": v.tolist()}
        for i, ((s, t, lang), v) in enumerate(zip(DOCS, vectors, strict=True))
    ]


def _search(uri: str, name: str, query: str, hybrid: Hybrid | None, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    async def go() -> list[str]:
        async with Retriever(uri, name, Scrambled(), database="it_hybrid", hybrid=hybrid, timeout=30) as r:
            return [p.source for p in await r.search(query, **kw)]

    return asyncio.run(go())


def test_a_full_text_collection_is_searched_by_words_and_vectors_fused(milvus_uri: str) -> None:
    target = MilvusTarget(uri=milvus_uri, database="it_hybrid")
    spec = CollectionSpec(
        name="h_" + uuid.uuid4().hex[:10],
        dimension=DIM,
        index_params={"M": 8, "efConstruction": 32},
        full_text_analyzer="standard",
    )
    manager = CollectionManager.connect(target, spec)
    first = manager.ensure(wait_loaded=True)
    assert first.created and first.state.full_text_analyzer == "standard" and first.state.load_state == "Loaded"
    again = manager.ensure(wait_loaded=True)  # read back from the server: no conflict, nothing rebuilt
    assert not again.created and not again.index_rebuilt and again.state.full_text_analyzer == "standard"

    sink = MilvusSink.connect(target, spec.name)
    sink.upsert(_rows())  # the rows ingestion writes without fullText: Milvus fills the sparse field itself
    sink.client.flush(spec.name)

    for _ in range(3):  # consistency is Bounded: rows may take a moment to be searchable
        found = _search(milvus_uri, spec.name, "ACCESS EXCLUSIVE lock", Hybrid(candidates=20), top_k=1)
        if found:
            break
    assert found == ["locks.html"]
    # The tool's filter reaches both searches.
    assert (
        _search(milvus_uri, spec.name, "wal_level", Hybrid(candidates=20), top_k=2, filter='metadata["lang"] == "en"')[
            0
        ]
        == "wal.html"
    )
    assert _search(
        milvus_uri, spec.name, "wal_level", Hybrid(candidates=20), top_k=1, filter='metadata["lang"] == "de"'
    ) == ["kaffee.html"]

    # Changing the dense index rebuilds it alone: the sparse index stays and the collection loads again.
    rebuilt = CollectionManager.connect(
        target, CollectionSpec(**{**spec.__dict__, "index_params": {"M": 16, "efConstruction": 64}})
    )
    r = rebuilt.ensure(wait_loaded=True)
    assert r.index_rebuilt and r.state.load_state == "Loaded"
    assert "sparse" in rebuilt.client.list_indexes(spec.name)
    assert _search(milvus_uri, spec.name, "ACCESS EXCLUSIVE lock", Hybrid(candidates=20), top_k=1) == ["locks.html"]


def test_full_text_cannot_be_added_to_an_existing_dense_collection(milvus_uri: str) -> None:
    target = MilvusTarget(uri=milvus_uri, database="it_hybrid")
    dense = CollectionSpec(name="d_" + uuid.uuid4().hex[:10], dimension=DIM)
    CollectionManager.connect(target, dense).ensure(wait_loaded=True)
    with pytest.raises(
        ImmutableFieldConflict,
        match=r"spec.fullText.analyzer is unset in the existing collection, the spec asks for standard",
    ):
        CollectionManager.connect(
            target, CollectionSpec(**{**dense.__dict__, "full_text_analyzer": "standard"})
        ).ensure()
