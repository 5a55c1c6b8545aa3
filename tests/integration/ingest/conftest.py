"""Fixtures: the real MiniLM embedder (the run's Milvus Lite server, ``milvus_uri``, is
tests/integration/conftest.py's).

Missing packages are installed into this interpreter with pip (e2e/harness/installers.py, which the
ingestion benchmark uses too). If that fails the tests fail loudly: they never skip.
"""

from __future__ import annotations

import pytest

from e2e.harness.installers import ensure_ingest_packages


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """int8 MiniLM from the default graph cache (built on first use; test_minilm_* builds afresh)."""
    ensure_ingest_packages()
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    return MiniLMEmbedder(precision="int8", batch_size=64)
