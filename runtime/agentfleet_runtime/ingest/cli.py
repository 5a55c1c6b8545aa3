"""``python -m agentfleet_runtime.ingest``: one worker of the ingestion Job.

The operator's Job (agentfleet.render.vectorindex) passes settings as flags and secrets as
environment variables; every flag also reads an environment variable so the command works by
hand too. The worker index comes from JOB_COMPLETION_INDEX, set by Kubernetes for Indexed Jobs.

Exit codes (the Job's podFailurePolicy keys on them):
    0  done; bad documents are recorded in the progress record, not errors
    1  transient failure (Milvus or the embedding endpoint unreachable): the Job retries the worker
    3  permanent failure (missing collection, dimension mismatch, no source): retrying cannot help
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from agentfleet_contract.ingest_progress import WorkerProgress, termination_message, to_line

EXIT_OK = 0
EXIT_RETRY = 1
EXIT_PERMANENT = 3
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
log = logging.getLogger("agentfleet_runtime.ingest")


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m agentfleet_runtime.ingest",
        description="Ingest documents into a Milvus collection (one indexed-Job worker).",
    )
    src = p.add_argument_group("source (exactly one)")
    src.add_argument(
        "--source-dir", default=env("INGEST_SOURCE_DIR"), help="directory of documents: a mounted ConfigMap or PVC path"
    )
    src.add_argument("--urls-file", default=env("INGEST_URLS_FILE"), help="file with one URL per line")
    src.add_argument("--url", action="append", default=[], help="a document URL (repeatable)")
    m = p.add_argument_group("milvus")
    m.add_argument("--milvus-uri", default=env("MILVUS_URI"), help="e.g. http://milvus:19530 (env MILVUS_URI)")
    m.add_argument("--database", default=env("MILVUS_DATABASE", "default"))
    m.add_argument("--collection", default=env("MILVUS_COLLECTION"))
    m.add_argument(
        "--partition-key",
        default=env("INGEST_PARTITION_KEY") or None,
        help="metadata field feeding the collection's partition key",
    )
    m.add_argument("--insert-batch-size", type=int, default=_env_int("INGEST_INSERT_BATCH_SIZE", 512))
    j = p.add_argument_group("job")
    j.add_argument("--revision", default=env("INGEST_REVISION", ""), help="source revision, stored on every chunk")
    j.add_argument(
        "--worker",
        type=int,
        default=_env_int("JOB_COMPLETION_INDEX", 0),
        help="this worker's index (env JOB_COMPLETION_INDEX)",
    )
    j.add_argument(
        "--workers", type=int, default=_env_int("INGEST_WORKERS", 1), help="number of workers sharing the documents"
    )
    j.add_argument("--max-document-bytes", type=int, default=_env_int("INGEST_MAX_DOCUMENT_BYTES", 10 * 1024 * 1024))
    j.add_argument("--progress-interval", type=float, default=float(env("INGEST_PROGRESS_INTERVAL", "5")))
    j.add_argument("--termination-log", default=env("INGEST_TERMINATION_LOG", DEFAULT_TERMINATION_LOG))
    c = p.add_argument_group("chunking")
    c.add_argument("--max-tokens", type=int, default=_env_int("INGEST_MAX_TOKENS", 128))
    c.add_argument("--overlap-tokens", type=int, default=_env_int("INGEST_OVERLAP_TOKENS", 16))
    c.add_argument(
        "--section-titles",
        action="store_true",
        default=env("INGEST_SECTION_TITLES", "") in ("1", "true"),
        help="begin each chunk with its heading path (spec.chunking.sectionTitles)",
    )
    e = p.add_argument_group("embedding")
    e.add_argument("--embedding-provider", choices=["Local", "OpenAI"], default=env("EMBEDDING_PROVIDER", "Local"))
    e.add_argument("--embedding-model", default=env("EMBEDDING_MODEL", "all-MiniLM-L6-v2"))
    e.add_argument("--embedding-endpoint", default=env("EMBEDDING_ENDPOINT") or None)
    e.add_argument("--embedding-batch-size", type=int, default=_env_int("EMBEDDING_BATCH_SIZE", 64))
    e.add_argument(
        "--precision",
        choices=["int8", "fp32"],
        default=env("EMBEDDING_PRECISION", "int8"),
        help="Local MiniLM precision",
    )
    e.add_argument("--dimension", type=int, default=_env_int("EMBEDDING_DIMENSION", 0) or None)
    return p


def _write_termination(path: str | None, p: WorkerProgress) -> None:
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(termination_message(p))
    except OSError as e:  # outside Kubernetes the default path does not exist
        log.debug("no termination message written to %s: %s", path, e)


def _emit(p: WorkerProgress) -> None:
    sys.stdout.write(to_line(p) + "\n")
    sys.stdout.flush()


def run(argv: Sequence[str] | None = None) -> int:
    """One ingestion worker from start to its termination record; long because every exit path
    (bad arguments, no embedder, Milvus down, done) writes its own progress record."""
    args = build_parser().parse_args(argv)
    from agentfleet_milvus import MilvusError, MilvusSink, MilvusTarget

    from agentfleet_runtime.ingest.documents import list_directory, list_urls
    from agentfleet_runtime.ingest.embedders import make_embedder
    from agentfleet_runtime.ingest.embedding import EmbeddingError, EmbeddingSettings
    from agentfleet_runtime.ingest.pipeline import IngestOptions, Ingestor

    base = WorkerProgress(worker=args.worker, workers=args.workers, revision=args.revision)

    def finish(code: int, error: str, progress: WorkerProgress | None = None) -> int:
        p = replace(progress or base, state="Failed", error=error)
        _emit(p)
        _write_termination(args.termination_log, p)
        log.error("%s", error)
        return code

    sources = [s for s in (args.source_dir, args.urls_file, args.url or None) if s]
    if len(sources) != 1:
        return finish(EXIT_PERMANENT, "give exactly one source: --source-dir, --urls-file or --url")
    if not args.milvus_uri or not args.collection:
        return finish(EXIT_PERMANENT, "--milvus-uri and --collection are required")
    if not 0 <= args.worker < args.workers:
        return finish(EXIT_PERMANENT, f"worker index {args.worker} is outside 0..{args.workers - 1}")
    try:
        if args.source_dir:
            refs = list_directory(Path(args.source_dir))
        elif args.urls_file:
            refs = list_urls(Path(args.urls_file).read_text(encoding="utf-8").splitlines())
        else:
            refs = list_urls(args.url)
    except OSError as e:
        return finish(EXIT_PERMANENT, f"cannot list the source: {e}")

    target = MilvusTarget(
        uri=args.milvus_uri,
        database=args.database,
        user=os.environ.get("MILVUS_USER", ""),
        password=os.environ.get("MILVUS_PASSWORD", ""),
        token=os.environ.get("MILVUS_TOKEN", ""),
    )
    settings = EmbeddingSettings(
        provider=args.embedding_provider,
        model=args.embedding_model,
        endpoint=args.embedding_endpoint,
        api_key=os.environ.get("EMBEDDING_API_KEY") or None,
        batch_size=args.embedding_batch_size,
        precision=args.precision,
        dimension=args.dimension,
    )
    options = IngestOptions(
        revision=args.revision,
        worker=args.worker,
        workers=args.workers,
        max_tokens=args.max_tokens,
        overlap_tokens=args.overlap_tokens,
        section_titles=args.section_titles,
        insert_batch_size=args.insert_batch_size,
        max_document_bytes=args.max_document_bytes,
        partition_key=args.partition_key,
        progress_interval_seconds=args.progress_interval,
    )
    ingestor = None
    try:
        sink = MilvusSink.connect(target, args.collection)
        dim = sink.describe_dimension()
        if dim is not None and settings.dimension is None:
            settings = replace(settings, dimension=dim)
        key = sink.partition_key()
        if key != options.partition_key:
            if options.partition_key is None:
                options = replace(options, partition_key=key)
            else:
                return finish(
                    EXIT_PERMANENT,
                    f"--partition-key {options.partition_key} but the collection's partition key is {key or 'unset'}",
                )
        embedder = make_embedder(settings)
        ingestor = Ingestor(embedder, sink, options, report=_emit)
        result = ingestor.run(refs)
    except EmbeddingError as e:
        return finish(
            EXIT_RETRY if e.retryable else EXIT_PERMANENT,
            f"embedding failed: {e}",
            ingestor.progress if ingestor else None,
        )
    except MilvusError as e:
        return finish(
            EXIT_RETRY if e.retryable else EXIT_PERMANENT, f"milvus: {e}", ingestor.progress if ingestor else None
        )
    _write_termination(args.termination_log, result)
    log.info(
        "worker %d/%d done: %d documents, %d failed, %d chunks",
        args.worker,
        args.workers,
        result.documents_done,
        result.documents_failed,
        result.chunks,
    )
    return EXIT_OK


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sys.exit(run())
