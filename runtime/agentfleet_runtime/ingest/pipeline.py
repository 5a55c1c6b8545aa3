"""One ingestion worker: its share of the documents -> chunks -> embeddings -> upserts, with progress.

The encoder dominates the cost, so everything else is arranged around keeping it busy:
- documents are read ahead by a small thread pool (URLs wait on the network, not the CPU);
- chunks from many documents are embedded together, so the embedder can sort them by length and
  pad each batch only to its own longest chunk;
- upserts run on a writer thread while the next window is encoded (at most two batches in
  flight, so memory stays bounded when Milvus is slower than the encoder).

A document counts as done once its last chunk is upserted. A bad document is a recorded failure;
an embedder or Milvus error stops the worker (the Job retries it; upserts make retries safe).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from agentfleet_contract.ingest_progress import WORKER_FAILURES, FailureRecord, WorkerProgress
from agentfleet_milvus import METADATA, PRIMARY, SOURCE, SOURCE_MAX, TEXT, VECTOR

from agentfleet_runtime.ingest.chunking import Chunk, chunk_document
from agentfleet_runtime.ingest.documents import Document, DocumentRef, Failure, load
from agentfleet_runtime.ingest.embedding import Embedder
from agentfleet_runtime.ingest.partition import owned

log = logging.getLogger(__name__)


class Sink(Protocol):
    def upsert(self, rows: list[dict[str, Any]]) -> None: ...


@dataclass(frozen=True)
class IngestOptions:
    revision: str = ""
    worker: int = 0
    workers: int = 1
    max_tokens: int = 128  # spec.chunking's defaults
    overlap_tokens: int = 16
    section_titles: bool = False  # spec.chunking.sectionTitles
    insert_batch_size: int = 512
    max_document_bytes: int = 10 * 1024 * 1024
    partition_key: str | None = None
    # Chunks embedded per call (the embedder length-sorts inside it); unset: window_for(insert_batch_size).
    embed_window: int | None = None
    read_ahead: int = 16  # documents loaded ahead of the chunker
    progress_interval_seconds: float = 5.0


EMBED_WINDOW_MAX = 1024
EMBED_WINDOW_MIN = 128


def window_for(insert_batch_size: int) -> int:
    """Chunks per embed call: four upserts' worth, within [128, 1024].

    The writer upserts one window while the encoder works on the next, so a window of a few batches
    keeps both busy. One far larger than the batch wrote nothing until the whole window was encoded
    (a 1,024-chunk window over 32-row batches: an 800-chunk corpus wrote its first row last) and then
    queued its upserts behind each other; below 128 chunks the length sort has too little to pad well.
    """
    return min(EMBED_WINDOW_MAX, max(EMBED_WINDOW_MIN, 4 * insert_batch_size))


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def chunk_rows(
    doc: Document, chunks: Sequence[Chunk], vectors: Any, revision: str, partition_key: str | None
) -> list[dict[str, Any]]:
    """Milvus rows for a document's chunks. Pure."""
    rows = []
    for c, v in zip(chunks, vectors, strict=True):
        meta = dict(doc.metadata)
        meta.update({"revision": revision, "chunk": c.index, "chunks": len(chunks)})
        row = {PRIMARY: c.id, TEXT: c.text, SOURCE: c.source, METADATA: meta, VECTOR: v}
        if partition_key:
            value = doc.metadata.get(partition_key, "")
            row[partition_key] = value if isinstance(value, str) else str(value)
        rows.append(row)
    return rows


def _read_ahead(refs: Sequence[DocumentRef], max_bytes: int, depth: int) -> Iterator[Document | Failure]:
    """Documents in order, at most ``depth`` loads in flight."""
    if depth <= 1:
        for ref in refs:
            yield load(ref, max_bytes)
        return
    with ThreadPoolExecutor(max_workers=min(depth, 8), thread_name_prefix="ingest-read") as pool:
        pending: deque[Future[Document | Failure]] = deque()
        it = iter(refs)
        for ref in it:
            pending.append(pool.submit(load, ref, max_bytes))
            if len(pending) >= depth:
                break
        while pending:
            doc = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(load, nxt, max_bytes))
            yield doc


class Ingestor:
    def __init__(
        self,
        embedder: Embedder,
        sink: Sink,
        options: IngestOptions,
        report: Callable[[WorkerProgress], None] = lambda p: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.embedder = embedder
        self.sink = sink
        self.options = options
        self.report = report
        self.clock = clock
        budget = min(options.max_tokens, embedder.max_input_tokens)
        self.max_tokens = budget
        self.overlap_tokens = min(options.overlap_tokens, budget // 2)
        self.progress = WorkerProgress(
            worker=options.worker, workers=options.workers, revision=options.revision, started_at=_now()
        )
        self._last_report = -1e18
        self._failures: list[FailureRecord] = []

    # -- progress --

    def _update(self, force: bool = False, **changes: Any) -> None:
        self.progress = replace(self.progress, **changes)
        now = self.clock()
        if force or now - self._last_report >= self.options.progress_interval_seconds:
            self._last_report = now
            self.progress = replace(self.progress, updated_at=_now())
            self.report(self.progress)

    def _fail(self, f: Failure) -> None:
        log.info("document %s skipped: %s", f.document, f.reason)
        if len(self._failures) < WORKER_FAILURES:
            self._failures.append(FailureRecord(f.document, f.reason))
        self._update(
            documents_failed=self.progress.documents_failed + 1,
            failures=tuple(self._failures),
            failures_truncated=self.progress.documents_failed + 1 > len(self._failures),
        )

    # -- the run --

    def run(self, refs: Iterable[DocumentRef]) -> WorkerProgress:
        o = self.options
        mine = owned(list(refs), o.worker, o.workers)
        self._update(force=True, documents_total=len(mine))
        window: list[tuple[Document, list[Chunk]]] = []
        window_chunks = 0
        window_size = o.embed_window or window_for(o.insert_batch_size)
        rows: list[dict[str, Any]] = []
        in_flight: deque[tuple[Future[None], int, int]] = deque()  # (upsert, documents completed, chunks)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writer:

            def settle(block_until: int) -> None:
                while len(in_flight) > block_until:
                    fut, docs, n = in_flight.popleft()
                    fut.result()  # re-raises the sink's error: the worker fails
                    self._update(documents_done=self.progress.documents_done + docs, chunks=self.progress.chunks + n)

            def flush_rows(final: bool = False) -> None:
                nonlocal rows
                while len(rows) >= o.insert_batch_size or (final and rows):
                    batch, rows = rows[: o.insert_batch_size], rows[o.insert_batch_size :]
                    # A document's rows are contiguous and all embedded: it completes in this batch
                    # unless its remaining rows head the queue.
                    sources = dict.fromkeys(r[SOURCE] for r in batch)
                    if rows and rows[0][SOURCE] in sources:
                        del sources[rows[0][SOURCE]]
                    settle(1)  # at most two upserts in flight
                    in_flight.append((writer.submit(self.sink.upsert, batch), len(sources), len(batch)))

            def embed_window() -> None:
                nonlocal window, window_chunks
                if not window:
                    return
                texts = [c.text for _, cs in window for c in cs]
                vectors = self.embedder.embed(texts)
                pos = 0
                for doc, cs in window:
                    rows.extend(chunk_rows(doc, cs, vectors[pos : pos + len(cs)], o.revision, o.partition_key))
                    pos += len(cs)
                window, window_chunks = [], 0
                flush_rows()

            for item in _read_ahead(mine, o.max_document_bytes, o.read_ahead):
                if isinstance(item, Failure):
                    self._fail(item)
                    continue
                if len(item.id) > SOURCE_MAX:
                    self._fail(Failure(item.id[:256], f"document id longer than {SOURCE_MAX} characters"))
                    continue
                count = self.embedder.count_tokens
                chunks = chunk_document(
                    item.id, item.text, count, self.max_tokens, self.overlap_tokens, section_titles=o.section_titles
                )
                if not chunks:
                    self._fail(Failure(item.id, "no text to index"))
                    continue
                window.append((item, chunks))
                window_chunks += len(chunks)
                if window_chunks >= window_size:
                    embed_window()
                    settle(1)
            embed_window()
            flush_rows(final=True)
            settle(0)
        self._update(force=True, state="Succeeded")
        return self.progress
