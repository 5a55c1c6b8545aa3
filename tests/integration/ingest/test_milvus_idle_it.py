"""Milvus clients that sit idle send Milvus Lite no keepalive pings (the CI failure at stop 80:
``test_immutable_conflict_with_existing_collection`` could not connect, "Too many pings").

pymilvus pings every 10 s even with no call in flight; Milvus Lite's gRPC server, on grpc's
defaults, counts a ping with no call in flight less than 5 minutes after the last as a strike and
answers the third with GOAWAY too_many_pings; a call that meets the GOAWAY fails UNAVAILABLE.
Whether one meets it is a race (a call after it redials), so this test counts what causes it: the
keepalive pings each client sends while idle, from grpc's own trace (``http_keepalive``), in a
child process because grpc reads its trace settings once, when it starts. The clients are the
operator's (``MilvusTarget.connect``) and a worker's (``Retriever``), each made as the product
makes it (``CHANNEL_OPTIONS``, shared/agentfleet_milvus/connection.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from e2e.harness.milvus import milvus_lite

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

IDLE_SECONDS = 25  # past pymilvus's second ping (10 s apart)

CLIENTS = textwrap.dedent(
    """
    import asyncio, sys, time
    import numpy as np
    from agentfleet_milvus import CollectionManager, CollectionSpec, MilvusTarget
    from agentfleet_runtime.tools.retriever import Retriever

    class Ones:
        name, max_input_tokens = "ones", 512
        def count_tokens(self, texts): return [1 for _ in texts]
        def embed(self, texts): return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)

    uri, idle = sys.argv[1], float(sys.argv[2])
    target = MilvusTarget(uri)
    CollectionManager.connect(target, CollectionSpec(name="idle", dimension=8)).ensure(wait_loaded=True)
    operator_side = target.connect()
    loop = asyncio.new_event_loop()
    retriever = Retriever(uri, "idle", Ones())
    assert operator_side.list_collections() == ["idle"]
    assert loop.run_until_complete(retriever.search("wal_level")) == []
    print("IDLE START", file=sys.stderr, flush=True)
    time.sleep(idle)
    print("IDLE END", file=sys.stderr, flush=True)
    assert target.connect().list_collections() == ["idle"]
    assert operator_side.list_collections() == ["idle"]
    assert loop.run_until_complete(retriever.search("wal_level")) == []
    loop.run_until_complete(retriever.close())
    print("ANSWERED", file=sys.stderr, flush=True)
    """
)


def test_idle_clients_of_the_operator_and_a_worker_send_no_keepalive_pings(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with milvus_lite(tmp_path / "data") as server:
        env = {**os.environ, "GRPC_TRACE": "http_keepalive", "GRPC_VERBOSITY": "debug"}
        run = subprocess.run(
            [sys.executable, "-c", CLIENTS, server.uri, str(IDLE_SECONDS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    err = run.stderr
    assert run.returncode == 0 and "ANSWERED" in err, err[-3000:]
    idle = err[err.index("IDLE START") : err.index("IDLE END")]
    pings = [line for line in idle.splitlines() if "Finish keepalive ping" in line]
    assert pings == [], f"{len(pings)} keepalive pings while idle {IDLE_SECONDS} s:\n" + "\n".join(pings)
