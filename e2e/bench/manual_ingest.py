#!/usr/bin/env python3
"""Ingesting the PostgreSQL 15 manual (Debian postgresql-doc-15) the way the operator does it.

The VectorIndex below (a volume source holding the manual's HTML) is rendered by the operator's
own code: the collection comes from ``CollectionManager.ensure`` (what the VectorIndex controller
runs) and the workers run ``python -m agentfleet_runtime.ingest`` with the flags of the Job that
``agentfleet.render.vectorindex`` renders, the volume's mount path swapped for the local
directory. Prints documents, chunks, chunks/s, tokens/s (MiniLM tokens of the stored chunks),
wall time and the rows Milvus reports, and the workers' own CPU seconds (chunks per CPU-second
stays comparable when other work shares the cores; wall time does not); ``--repeat N`` runs it
N times into fresh collections and gives the spread. The first run on a machine also builds the
int8 encoder once (cached under ~/.cache/agentfleet).

    .venv/bin/python -m e2e.bench.manual_ingest [--repeat 2] [--workers 1] [--keep-uri http://127.0.0.1:PORT]

Needs ``apt-get install postgresql-doc-15`` (done here when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus.collection import CollectionManager
from agentfleet_milvus.connection import MilvusTarget
from agentfleet_milvus.schema import CollectionSpec

from agentfleet.render import vectorindex as render
from e2e.eval.corpus import MANUAL, ensure_manual, manual_vectorindex
from e2e.harness.procs import source_path

ROOT = Path(__file__).resolve().parents[2]


def bench_vectorindex(collection: str, workers: int) -> VectorIndex:
    """The evaluation knowledge base: e2e/eval/postgres-manual.yaml's VectorIndex with another collection."""
    doc = manual_vectorindex()
    doc["spec"]["collection"] = collection
    doc["spec"].setdefault("ingestion", {})["parallelism"] = workers
    return VectorIndex.model_validate(doc)


def prepare(uri: str, vi: VectorIndex, pages: Path = MANUAL) -> tuple[list[str], dict[str, str]]:
    """The collection made as the controller makes it, then the Job's flags and environment, with
    the volume's mount path swapped for ``pages``."""
    CollectionManager.connect(MilvusTarget(uri=uri), CollectionSpec.from_vectorindex(vi.spec)).ensure(wait_loaded=True)
    revision = render.source_revision(vi.spec)
    args = render.ingestion_args(vi.spec, render.row_tag(revision, render.ingestion_key(vi.spec, revision, uri)))
    args[args.index("--source-dir") + 1] = str(pages)
    env = {**os.environ, "MILVUS_URI": uri, "PYTHONPATH": source_path()}
    return args, env


def run_once(uri: str, collection: str, workers: int, log: Path) -> dict[str, float]:
    args, env = prepare(uri, bench_vectorindex(collection, workers))
    t0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "agentfleet_runtime.ingest", *args, "--termination-log", ""],
            env={**env, "JOB_COMPLETION_INDEX": str(i)},
            stdout=subprocess.PIPE,
            stderr=open(log, "a"),
            text=True,
        )  # noqa: SIM115
        for i in range(workers)
    ]
    finals = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"ingestion worker failed ({p.returncode}); log {log}\n{out[-2000:]}")
        finals.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)  # the workers' own CPU seconds
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=60, dedicated=True)
    client.flush(collection)
    rows = int(client.get_collection_stats(collection).get("row_count", 0))
    texts: list[str] = []
    it = client.query_iterator(collection, batch_size=1000, output_fields=["text"])
    while batch := it.next():
        texts += [r["text"] for r in batch]
    it.close()
    client.close()
    from tokenizers import Tokenizer

    from agentfleet_runtime.ingest.minilm import package_model_dir

    tok = Tokenizer.from_file(str(package_model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    docs = sum(f.get("documentsDone", f.get("documents_done", 0)) for f in finals)
    failed = sum(f.get("documentsFailed", f.get("documents_failed", 0)) for f in finals)
    chunks = sum(f.get("chunks", 0) for f in finals)
    return {
        "documents": docs,
        "failed": failed,
        "chunks": chunks,
        "rows": rows,
        "tokens": tokens,
        "wall_s": wall,
        "cpu_s": cpu,
        "chunks_per_s": chunks / wall,
        "tokens_per_s": tokens / wall,
        "chunks_per_cpu_s": chunks / cpu if cpu else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="Job parallelism (indexed workers)")
    ap.add_argument("--uri", help="an existing Milvus to fill (default: a Milvus Lite server started here)")
    args = ap.parse_args()
    ensure_manual()
    from e2e.harness.installers import ensure_ingest_packages
    from e2e.harness.milvus import MilvusLiteServer

    ensure_ingest_packages()
    tmp = Path(tempfile.mkdtemp(prefix="manual-ingest-"))
    server = None
    if not args.uri:
        server = MilvusLiteServer(tmp / "data")
        server.wait_ready()
    uri = args.uri or server.uri  # type: ignore[union-attr]
    files = sum(1 for p in MANUAL.rglob("*") if p.is_file())
    print(
        f"manual: {MANUAL} ({files} files); Milvus {uri}; {args.workers} worker(s); log {tmp / 'ingest.log'}",
        flush=True,
    )
    runs = []
    try:
        for i in range(args.repeat):
            r = run_once(uri, f"pgdocs_bench_{i}", args.workers, tmp / "ingest.log")
            runs.append(r)
            print(
                f"run {i + 1}: {r['documents']} documents ({r['failed']} refused), {r['chunks']} chunks, {r['rows']} "
                "rows in Milvus, "
                f"{r['tokens']} tokens, {r['wall_s']:.1f} s wall: {r['chunks_per_s']:.1f} chunks/s, "
                f"{r['tokens_per_s']:.0f} tokens/s; "
                f"workers' CPU {r['cpu_s']:.1f} s: {r['chunks_per_cpu_s']:.1f} chunks per CPU-second (load average "
                f"{os.getloadavg()[0]:.1f})",
                flush=True,
            )
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(tmp / "data", ignore_errors=True)
    if len(runs) > 1:
        for key in ("wall_s", "chunks_per_s", "tokens_per_s", "chunks_per_cpu_s"):
            vals = [r[key] for r in runs]
            print(
                f"{key}: median {statistics.median(vals):.1f}, min {min(vals):.1f}, max {max(vals):.1f} over "
                f"{len(vals)} runs"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
