#!/usr/bin/env python3
"""Recall@k of the supporting pages, dense against hybrid retrieval, section titles off and on.

No model is asked anything: each answerable question of the task set is searched once, with its
own text (what one-shot RAG and a loop whose first retrieval is the question do), and recall@k is
the share of its supporting pages among the sources of the first k passages. The manual is
ingested twice through the operator's own path (``CollectionManager.ensure`` and the ingestion
Job's command, as e2e/bench/manual_ingest.py does), both times with ``spec.fullText`` on so one
collection answers both searches: dense (``Retriever`` without hybrid settings: exactly the
search of an index without fullText, over the same vectors) and hybrid (BM25 and dense fused by
RRF). The first collection has ``spec.chunking.sectionTitles`` off, the second on. Every row is
measured in the same invocation; the dense, titles-off row is the baseline of the deltas.

    .venv/bin/python -m e2e.bench.retrieval_recall [--k 5] [--manual DIR] [--tasks FILE]

Needs ``apt-get install postgresql-doc-15`` (done here when missing). Tune on part dev; the
held-out part is printed beside it, never tuned on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_eval.taskset import load_taskset

from e2e.bench.manual_ingest import bench_vectorindex, prepare
from e2e.eval.corpus import MANUAL, TASKS, ensure_manual
from e2e.harness.installers import ensure_ingest_packages
from e2e.harness.milvus import MilvusLiteServer

ROOT = Path(__file__).resolve().parents[2]


def variant(collection: str, titles: bool) -> VectorIndex:
    doc = bench_vectorindex(collection, 1).model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["fullText"] = {}
    doc["spec"]["chunking"]["sectionTitles"] = titles
    return VectorIndex.model_validate(doc)


def ingest(uri: str, vi: VectorIndex, manual: Path, log: Path) -> float:
    args, env = prepare(uri, vi, manual)
    t0 = time.monotonic()
    with open(log, "a") as err:
        done = subprocess.run(
            [sys.executable, "-m", "agentfleet_runtime.ingest", *args, "--termination-log", ""],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    if done.returncode != 0:
        raise SystemExit(f"ingestion failed ({done.returncode}); log {log}")
    return time.monotonic() - t0


def recall(sources: list[str], supporting: tuple[str, ...]) -> float:
    """Share of the supporting pages among the passages' sources (compared by file name). Pure."""
    names = {Path(s).name for s in sources}
    return sum(1 for d in supporting if Path(d).name in names) / len(supporting)


async def measure(uri: str, vi: VectorIndex, tasks: list[Any], k: int, hybrid: bool) -> dict[str, float]:
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder
    from agentfleet_runtime.tools.retriever import Retriever

    r = Retriever.for_index(vi.spec, uri=uri, embedder=MiniLMEmbedder(precision="int8"), timeout=120)
    if not hybrid:
        r.hybrid = None
    out = {}
    async with r:
        for t in tasks:
            found = await r.search(t.question, top_k=k)
            out[t.id] = recall([p.source for p in found], t.supporting)
    return out


def table(rows: dict[str, dict[str, float]], tasks: list[Any], k: int) -> None:
    groups: dict[str, list[Any]] = {}
    for t in tasks:
        groups.setdefault(f"{t.part}", []).append(t)
        groups.setdefault(f"{t.part} / {t.kind}", []).append(t)
    base = next(iter(rows.values()))
    names = list(rows)
    print(f"\nrecall@{k} of the supporting pages (question as the query); deltas against '{names[0]}'")
    print(f"{'part / kind':<24} {'n':>3} " + " ".join(f"{n:>26}" for n in names))
    for g in sorted(groups):
        ids = [t.id for t in groups[g]]
        cells = []
        for n in names:
            v = sum(rows[n][i] for i in ids) / len(ids)
            b = sum(base[i] for i in ids) / len(ids)
            cells.append(f"{v:>7.0%}" + (f" ({(v - b) * 100:+.0f} pts)" if n != names[0] else " " * 10))
        print(f"{g:<24} {len(ids):>3} " + " ".join(f"{c:>26}" for c in cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--manual", type=Path, default=None, help="directory of pages (default: the installed manual)")
    ap.add_argument("--tasks", type=Path, default=TASKS)
    args = ap.parse_args()
    manual = args.manual or ensure_manual() or MANUAL
    ensure_ingest_packages()
    tasks = [t for t in load_taskset(args.tasks).tasks if t.supporting]
    tmp = Path(tempfile.mkdtemp(prefix="retrieval-recall-"))
    server = MilvusLiteServer(tmp / "data")
    server.wait_ready()
    print(
        f"pages: {manual}; {len(tasks)} answerable questions; Milvus {server.uri}; log {tmp / 'ingest.log'}", flush=True
    )
    rows: dict[str, dict[str, float]] = {}
    try:
        for titles in (False, True):
            vi = variant(f"recall_titles_{int(titles)}", titles)
            wall = ingest(server.uri, vi, manual, tmp / "ingest.log")
            print(
                f"ingested with sectionTitles {titles} in {wall:.0f} s (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            label = "titles" if titles else "no titles"
            for hybrid in (False, True):
                rows[f"{'hybrid' if hybrid else 'dense'}, {label}"] = asyncio.run(
                    measure(server.uri, vi, tasks, args.k, hybrid)
                )
    finally:
        server.stop()
        shutil.rmtree(tmp / "data", ignore_errors=True)
    table(rows, tasks, args.k)
    for t in tasks:
        print(f"  {t.id:<34} {t.part:<8} " + " ".join(f"{rows[n][t.id]:.0%}" for n in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
