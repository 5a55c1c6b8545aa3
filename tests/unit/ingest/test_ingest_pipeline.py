"""One worker's run with a deterministic stand-in embedder and an in-memory sink."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from agentfleet_contract.ingest_progress import WorkerProgress

from agentfleet_runtime.ingest.documents import list_directory
from agentfleet_runtime.ingest.pipeline import IngestOptions, Ingestor, chunk_rows, window_for

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashEmbedder:
    """Unit vectors from a hash of the text: deterministic, no model."""

    name = "hash"
    dimension = 8
    max_input_tokens = 40

    def __init__(self) -> None:
        self.calls: list[int] = []

    def count_tokens(self, texts):  # type: ignore[no-untyped-def]
        return [len(_TOKEN.findall(t)) for t in texts]

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(len(texts))
        v = (
            np.array(
                [np.frombuffer(hashlib.sha256(t.encode()).digest()[:32], dtype=np.uint8)[:8] for t in texts],
                dtype=np.float32,
            )
            + 1
        )
        return v / np.linalg.norm(v, axis=1, keepdims=True)


class MemorySink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.rows: dict[str, dict] = {}
        self.batches: list[int] = []
        self.fail_after = fail_after

    def upsert(self, rows):  # type: ignore[no-untyped-def]
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise RuntimeError("sink down")
        self.batches.append(len(rows))
        for r in rows:
            self.rows[r["id"]] = r


def _corpus(root: Path, n: int = 60) -> None:
    for i in range(n):
        sentences = " ".join(f"Document {i} sentence {j} talks about topic {j % 5}." for j in range(i % 7 + 1))
        (root / f"d{i:03d}.md").write_text(sentences + "\n\nA second paragraph closes it.")
    (root / "bad.bin").write_bytes(b"\x00\x01\x02")
    (root / "empty.md").write_text("")
    (root / "d000.md.meta.json").write_text('{"tenant": "acme", "lang": "en"}')


def _run(root: Path, sink: MemorySink, reports: list[WorkerProgress] | None = None, **kw) -> WorkerProgress:  # type: ignore[no-untyped-def]
    opts = IngestOptions(
        **{
            "revision": "r1",
            "max_tokens": 30,
            "overlap_tokens": 8,
            "insert_batch_size": 16,
            "embed_window": 20,
            "read_ahead": 4,
            **kw,
        }
    )
    return Ingestor(HashEmbedder(), sink, opts, report=(reports.append if reports is not None else lambda p: None)).run(
        list_directory(root)
    )


def test_a_run_ingests_good_documents_and_records_bad_ones(tmp_path: Path) -> None:
    _corpus(tmp_path)
    sink, reports = MemorySink(), []
    p = _run(tmp_path, sink, reports)
    assert (p.state, p.documents_total, p.documents_done, p.documents_failed) == ("Succeeded", 62, 60, 2)
    assert {f.document for f in p.failures} == {"bad.bin", "empty.md"}
    assert p.chunks == len(sink.rows) == sum(sink.batches)
    assert max(sink.batches) <= 16
    assert reports[0].state == "Running" and reports[0].documents_total == 62 and reports[-1] == p
    row = next(r for r in sink.rows.values() if r["source"] == "d000.md")
    assert row["metadata"] == {"tenant": "acme", "lang": "en", "revision": "r1", "chunk": 0, "chunks": 1}
    assert all(len(r["vector"]) == 8 for r in sink.rows.values())


def test_chunks_respect_the_embedders_window(tmp_path: Path) -> None:
    (tmp_path / "long.md").write_text(" ".join(f"Sentence {i} is here." for i in range(100)))
    sink = MemorySink()
    _run(tmp_path, sink, max_tokens=500)  # the spec asks for more than the model reads
    assert all(len(_TOKEN.findall(r["text"])) <= HashEmbedder.max_input_tokens for r in sink.rows.values())


def test_a_rerun_writes_the_same_ids(tmp_path: Path) -> None:
    _corpus(tmp_path)
    a, b = MemorySink(), MemorySink()
    _run(tmp_path, a)
    _run(tmp_path, b)
    assert a.rows.keys() == b.rows.keys()


def test_workers_write_disjoint_documents_that_cover_the_source(tmp_path: Path) -> None:
    _corpus(tmp_path)
    single = MemorySink()
    _run(tmp_path, single)
    sinks = [MemorySink() for _ in range(3)]
    results = [_run(tmp_path, s, worker=i, workers=3) for i, s in enumerate(sinks)]
    sources = [{r["source"] for r in s.rows.values()} for s in sinks]
    assert all(not (sources[i] & sources[j]) for i in range(3) for j in range(i + 1, 3))
    assert set().union(*(s.rows.keys() for s in sinks)) == single.rows.keys()
    assert sum(r.documents_total for r in results) == 62


def test_partition_key_value_comes_from_document_metadata(tmp_path: Path) -> None:
    _corpus(tmp_path, n=3)
    sink = MemorySink()
    _run(tmp_path, sink, partition_key="tenant")
    keys = {r["source"]: r["tenant"] for r in sink.rows.values()}
    assert keys["d000.md"] == "acme" and keys["d001.md"] == ""


def test_a_sink_failure_stops_the_worker(tmp_path: Path) -> None:
    _corpus(tmp_path)
    with pytest.raises(RuntimeError, match="sink down"):
        _run(tmp_path, MemorySink(fail_after=1))


def test_the_default_window_is_a_few_upserts_so_writing_starts_early(tmp_path: Path) -> None:
    """Unset spec-side, the window follows the batch: 32-row upserts begin after 128 chunks, not after
    1,024 (an 800-chunk corpus used to write its first row after encoding all of it)."""
    assert [window_for(b) for b in (1, 32, 100, 512, 100_000)] == [128, 128, 400, 1024, 1024]
    for i in range(300):
        (tmp_path / f"d{i:03d}.md").write_text(f"Document {i} is short.")
    embedder, sink = HashEmbedder(), MemorySink()
    opts = IngestOptions(revision="r1", insert_batch_size=32, read_ahead=4)
    Ingestor(embedder, sink, opts).run(list_directory(tmp_path))
    assert embedder.calls == [128, 128, 44] and sum(sink.batches) == 300


def test_rows_are_built_in_chunk_order() -> None:
    from agentfleet_runtime.ingest.chunking import Chunk
    from agentfleet_runtime.ingest.documents import Document

    doc = Document("a.md", "x", {"k": 1})
    chunks = [Chunk("i0", "a.md", 0, "t0", 1), Chunk("i1", "a.md", 1, "t1", 1)]
    rows = chunk_rows(doc, chunks, [[0.0], [1.0]], "r9", None)
    assert [r["id"] for r in rows] == ["i0", "i1"]
    assert rows[1]["metadata"] == {"k": 1, "revision": "r9", "chunk": 1, "chunks": 2}
    assert doc.metadata == {"k": 1}  # not mutated
