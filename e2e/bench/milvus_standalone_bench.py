"""Milvus standalone 2.3.5 (PyPI) against Milvus Lite, on this machine: start times, memory, and
what each does with the VectorIndex requests issue 56 found refused.

    python -m e2e.bench.milvus_standalone_bench [--rows 3000]

Prints one table: the standalone server's first start on an empty data directory and a restart on
the same data (time to /healthz OK), its RSS idle and with a loaded collection of --rows rows, and
for each request (default HNSW, default IVF_PQ, inMemoryReplicas 2, fullText, another database)
what the current code does on the standalone server, beside Milvus Lite in the same invocation.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agentfleet_milvus import CollectionManager, CollectionSpec, MilvusError, MilvusSink, MilvusTarget

from e2e.harness.milvus import milvus_lite
from e2e.harness.milvus_standalone import MilvusStandalone

DIM = 64


def rows(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(1)
    return [
        {"id": f"r{i}", "text": "t", "source": "s", "metadata": {}, "vector": [rnd.random() for _ in range(DIM)]}
        for i in range(n)
    ]


def outcome(uri: str, **spec: Any) -> str:
    """What ensure() does with this spec: the state it reached, or the refusal's status text."""
    database = spec.pop("database", "default")
    name = f"b_{uuid.uuid4().hex[:8]}"
    try:
        m = CollectionManager.connect(
            MilvusTarget(uri=uri, database=database, timeout=30), CollectionSpec(name=name, dimension=DIM, **spec)
        )
        done = m.ensure(wait_loaded=True)
        s = done.state
        out = f"{s.index_type} {s.load_state}, {s.replicas} replica(s)"
        if done.replicas_refused:
            out += " (ReplicasRefused)"
        m.drop()
        return out
    except MilvusError as e:
        return f"{type(e).__name__}: {e.public[:70]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    args = ap.parse_args()
    cases = {
        "HNSW, no params": {},
        "IVF_PQ, no params": {"index_type": "IVF_PQ"},
        "inMemoryReplicas 2 (1 node)": {"replicas": 2},
        "fullText standard": {"full_text_analyzer": "standard"},
        "database other": {"database": "other"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        server = MilvusStandalone(Path(tmp) / "standalone")
        try:
            cold = server.start()
            idle = server.rss_bytes()
            m = CollectionManager.connect(
                MilvusTarget(uri=server.uri, timeout=60), CollectionSpec(name="bench", dimension=DIM)
            )
            m.ensure(wait_loaded=True)
            MilvusSink(m.client, "bench").upsert(rows(args.rows))
            m.client.flush("bench")
            time.sleep(2)
            loaded = server.rss_bytes()
            standalone = {k: outcome(server.uri, **dict(v)) for k, v in cases.items()}
            server.stop()
            warm = server.start()
        finally:
            server.close()
        (Path(tmp) / "lite").mkdir()
        with milvus_lite(Path(tmp) / "lite" / "data") as lite:
            lite_out = {k: outcome(lite.uri, **dict(v)) for k, v in cases.items()}
    print(f"standalone first start (empty data dir, binaries extracted): {cold:.1f} s to /healthz OK")
    print(f"standalone restart (same data): {warm:.1f} s; ratio {warm / cold:.2f}")
    print(f"standalone RSS idle {idle / 2**20:.0f} MiB; with {args.rows} x {DIM} rows loaded {loaded / 2**20:.0f} MiB")
    print("| request | Milvus 2.3.5 standalone | Milvus Lite |\n|---|---|---|")
    for k in cases:
        print(f"| {k} | {standalone[k]} | {lite_out[k]} |")


if __name__ == "__main__":
    main()
