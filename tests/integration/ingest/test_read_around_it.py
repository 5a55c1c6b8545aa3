"""Reading around (spec.tools[].retrieval.readAround) on a real Milvus Lite server: chunks written as
ingestion writes them (chunk_document, chunk_rows) come back with their neighbours joined, the
chunker's overlap shown once, under the search's own filter."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from agentfleet_milvus import CollectionManager, CollectionSpec, MilvusSink, MilvusTarget

from agentfleet_runtime.ingest.chunking import chunk_document
from agentfleet_runtime.ingest.documents import Document
from agentfleet_runtime.ingest.pipeline import chunk_rows
from agentfleet_runtime.tools.retriever import Hybrid, Retriever
from tests.integration.ingest.test_hybrid_retrieval_it import DIM, Scrambled

pytestmark = pytest.mark.integration

# One page whose answer sits in the sentence after the one a search for the setting finds.
PAGE = " ".join(f"Filler sentence number {i} about nothing in particular." for i in range(40))
PAGE += " The setting zebra_timeout controls how long the zebra waits."
PAGE += " Its default value is 42 seconds, and 0 disables it."
PAGE += " " + " ".join(f"Trailing sentence number {i} about other matters." for i in range(40))


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _ingest(uri: str, tenant_pages: dict[str, str]) -> str:
    target = MilvusTarget(uri=uri, database="it_around")
    spec = CollectionSpec(name="a_" + uuid.uuid4().hex[:10], dimension=DIM, full_text_analyzer="standard")
    CollectionManager.connect(target, spec).ensure(wait_loaded=True)
    rows = []
    for tenant, text in tenant_pages.items():
        doc = Document(id=f"{tenant}/zebra.html", text=text, metadata={"tenant": tenant})
        chunks = chunk_document(doc.id, text, _words, max_tokens=30, overlap_tokens=10)
        assert len(chunks) > 10
        rows += chunk_rows(doc, chunks, Scrambled().embed([c.text for c in chunks]), "r1", None)
    sink = MilvusSink.connect(target, spec.name)
    sink.upsert(rows)
    sink.client.flush(spec.name)
    return spec.name


def _search(uri: str, name: str, query: str, **kw) -> list:  # type: ignore[no-untyped-def]
    async def go() -> list:
        async with Retriever(uri, name, Scrambled(), database="it_around", hybrid=Hybrid(), timeout=30) as r:
            for _ in range(3):  # consistency is Bounded: rows may take a moment to be searchable
                found = await r.search(query, **kw)
                if found:
                    return found
            return found

    return asyncio.run(go())


def test_a_passage_comes_back_with_its_neighbours_joined_under_the_filter(milvus_uri: str) -> None:
    other = PAGE.replace("42 seconds", "7 seconds")
    name = _ingest(milvus_uri, {"acme": PAGE, "globex": other})
    acme = 'metadata["tenant"] == "acme"'

    alone = _search(milvus_uri, name, "zebra_timeout controls", top_k=1, filter=acme)
    assert "zebra_timeout" in alone[0].text and "42 seconds" not in alone[0].text  # the fact is past the chunk

    around = _search(milvus_uri, name, "zebra_timeout controls", top_k=1, filter=acme, read_around=1)
    p = around[0]
    assert p.source == "acme/zebra.html" and "zebra_timeout" in p.text and "42 seconds" in p.text
    assert "7 seconds" not in p.text  # the other tenant's page is never read, though it has the same chunks
    c = alone[0].metadata["chunk"]
    assert p.metadata["window"] == [c - 1, c + 1]
    # The overlap the chunker carried from one chunk to the next is shown once.
    sentences = re.findall(r"number \d+ about", p.text)
    assert len(sentences) == len(set(sentences)) > 0
    # A filter that excludes the neighbours leaves the passage as it was.
    lone = _search(
        milvus_uri,
        name,
        "zebra_timeout controls",
        top_k=1,
        filter=f'{acme} and metadata["chunk"] == {c}',
        read_around=1,
    )
    assert lone[0].text == alone[0].text
