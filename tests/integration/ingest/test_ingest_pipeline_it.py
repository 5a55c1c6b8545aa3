"""Ingestion end to end against Milvus Lite with the real MiniLM: a generated corpus with known
answers, two indexed workers, a re-run, bad documents, retrieval recall@5 and filters."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from agentfleet_contract import ingest_progress as progress
from agentfleet_milvus import CollectionManager, CollectionSpec, MilvusTarget

from agentfleet_runtime.ingest import cli
from agentfleet_runtime.tools.retriever import Retriever
from e2e.bench import ingest_corpus as gen

pytestmark = pytest.mark.integration
N_DOCUMENTS = 2000
WORKERS = 2
DB = "it_ingest"


@pytest.fixture(scope="module")
def corpus() -> gen.Corpus:
    return gen.generate(N_DOCUMENTS, seed=11, filler_paragraphs=1, queries_per_document=0.06)


@pytest.fixture(scope="module")
def source_dir(corpus: gen.Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = gen.write(corpus, tmp_path_factory.mktemp("corpus"), sidecars=True)
    bad = gen.write_bad(root, oversize_bytes=300_000)
    return root, bad


def run_worker(argv: list[str]) -> tuple[int, list[progress.WorkerProgress], progress.WorkerProgress | None]:
    out = io.StringIO()
    term = Path(f"/tmp/agentfleet-term-{uuid.uuid4().hex}")
    with redirect_stdout(out):
        code = cli.run([*argv, "--termination-log", str(term)])
    lines = [p for p in (progress.parse_line(line) for line in out.getvalue().splitlines()) if p]
    final = progress.latest(term.read_text()) if term.exists() else None
    term.unlink(missing_ok=True)
    return code, lines, final


@pytest.fixture(scope="module")
def ingested(milvus_uri: str, source_dir, embedder):  # type: ignore[no-untyped-def]
    root, bad = source_dir
    name = "kb_" + uuid.uuid4().hex[:8]
    spec = CollectionSpec(
        name=name,
        dimension=384,
        index_params={"M": 16, "efConstruction": 128},
        partition_key="tenant",
        num_partitions=8,
    )
    manager = CollectionManager.connect(MilvusTarget(uri=milvus_uri, database=DB), spec)
    manager.ensure(wait_loaded=True)
    # No chunking flags: recall@5 below is measured at the default chunk size (spec.chunking's).
    base = [
        "--source-dir", str(root), "--milvus-uri", milvus_uri, "--database", DB, "--collection", name,
        "--revision", "r1", "--workers", str(WORKERS),
        "--max-document-bytes", "200000", "--partition-key", "tenant", "--progress-interval", "1",
    ]  # fmt: skip
    results = [run_worker([*base, "--worker", str(i)]) for i in range(WORKERS)]
    return {"manager": manager, "base": base, "results": results, "bad": bad, "name": name}


def test_workers_split_the_documents_and_report_progress(ingested, corpus: gen.Corpus) -> None:  # type: ignore[no-untyped-def]
    results = ingested["results"]
    assert [code for code, _, _ in results] == [0] * WORKERS
    finals = [final for _, _, final in results]
    assert all(f is not None and f.state == "Succeeded" for f in finals)
    summary = progress.merge(finals, WORKERS, revision="r1")
    total = N_DOCUMENTS + len(ingested["bad"])
    assert summary.state == "Succeeded"
    assert summary.documents_total == total  # every document owned by exactly one worker
    assert summary.documents_done == N_DOCUMENTS
    assert summary.documents_failed == len(ingested["bad"])
    assert all(f.documents_total > total // 4 for f in finals)  # hash partitioning is balanced
    # Live progress lines were emitted and end with the same record.
    for _, lines, final in results:
        assert lines and lines[0].state == "Running" and lines[-1].state == "Succeeded"
        assert lines[-1].chunks == final.chunks
    state = ingested["manager"].describe()
    assert state.row_count == summary.chunks >= N_DOCUMENTS


def test_bad_documents_are_recorded_with_reasons(ingested) -> None:  # type: ignore[no-untyped-def]
    finals = [final for _, _, final in ingested["results"]]
    failures = {f.document: f.reason for p in finals for f in p.failures}
    assert set(failures) == set(ingested["bad"])
    for doc, prefix in ingested["bad"].items():
        assert failures[doc].startswith(prefix), (doc, failures[doc])
    status = progress.merge(finals, WORKERS).status()
    assert status["documentsFailed"] == len(ingested["bad"]) and len(status["failures"]) == len(ingested["bad"])


def test_rerun_upserts_without_duplicates(ingested) -> None:  # type: ignore[no-untyped-def]
    manager = ingested["manager"]
    before = manager.describe().row_count
    code, _, final = run_worker([*ingested["base"], "--worker", "1"])
    assert code == 0 and final is not None and final.chunks > 0
    assert manager.describe().row_count == before


def test_retrieval_recall_at_5(ingested, corpus: gen.Corpus, milvus_uri: str, embedder) -> None:  # type: ignore[no-untyped-def]
    async def go() -> float:
        async with Retriever(milvus_uri, ingested["name"], embedder, database=DB, search_params={"ef": 64}) as r:
            results = await r.search_many([q.text for q in corpus.queries], top_k=5)
        hits = sum(
            q.source in {p.source for p in passages} for q, passages in zip(corpus.queries, results, strict=True)
        )
        return hits / len(corpus.queries)

    recall = asyncio.run(go())
    print(f"recall@5 = {recall:.3f} over {len(corpus.queries)} queries")
    assert len(corpus.queries) >= 100
    assert recall >= 0.9


def test_retrieval_filters_and_passages(ingested, corpus: gen.Corpus, milvus_uri: str, embedder) -> None:  # type: ignore[no-untyped-def]
    q = corpus.queries[0]
    tenant = corpus.metadata[q.source]["tenant"]

    async def go():  # type: ignore[no-untyped-def]
        async with Retriever(milvus_uri, ingested["name"], embedder, database=DB, search_params={"ef": 64}) as r:
            top = await r.search(q.text, top_k=5)
            same = await r.search(q.text, top_k=5, filter=f'tenant == "{tenant}"')
            other = "t9" if tenant != "t9" else "t8"
            none = await r.search(q.text, top_k=5, filter=f'tenant == "{other}"')
            only = await r.search(q.text, top_k=3, filter=f"source == {json.dumps(q.source)}")
            return top, same, none, only

    top, same, none, only = asyncio.run(go())
    assert top[0].source == q.source and top[0].score >= top[-1].score
    assert top[0].metadata["revision"] == "r1" and top[0].metadata["tenant"] == tenant
    assert top[0].text and len(top[0].id) == 32
    assert all(p.metadata["tenant"] == tenant for p in same) and same[0].source == q.source
    assert none == []
    assert {p.source for p in only} == {q.source}


def test_missing_collection_is_a_permanent_failure(milvus_uri: str, source_dir) -> None:  # type: ignore[no-untyped-def]
    root, _ = source_dir
    code, _, final = run_worker(
        ["--source-dir", str(root), "--milvus-uri", milvus_uri, "--database", DB, "--collection", "does_not_exist"]
    )
    assert code == cli.EXIT_PERMANENT
    assert final is not None and final.state == "Failed" and "does not exist" in (final.error or "")
