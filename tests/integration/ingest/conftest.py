"""Fixtures: a real Milvus Lite gRPC server process and the real MiniLM embedder.

Missing packages are installed into this interpreter with pip (e2e/harness/installers.py, which the
ingestion benchmark uses too). If that fails the tests fail loudly: they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.harness.installers import ensure_ingest_packages
from e2e.harness.milvus import MilvusLiteServer, milvus_lite


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusLiteServer]:
    with milvus_lite(tmp_path_factory.mktemp("milvus-lite") / "data") as server:
        yield server


@pytest.fixture(scope="session")
def milvus_uri(milvus_server: MilvusLiteServer) -> str:
    return milvus_server.uri


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """int8 MiniLM from the default graph cache (built on first use; test_minilm_* builds afresh)."""
    ensure_ingest_packages()
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    return MiniLMEmbedder(precision="int8", batch_size=64)
