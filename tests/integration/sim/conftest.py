"""Fixtures for the simulator's integration tests: a simulated fleet and a real Prometheus.

The Prometheus fixture is shared with the autoscaler's tests (tests/integration/autoscale/conftest.py):

    prometheus_server(targets)  -> PrometheusServer   (function-scoped factory fixture)

It starts e2e/harness/prometheus.py's private server (Debian's package, installed when missing)
and stops it at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.prometheus import PrometheusServer

# Fast enough that a test's calls take tens of milliseconds, slow enough that requests overlap.
FAST_ENGINE = {
    "served_name": "llama-8b",
    "model": "llama-8b",
    "max_model_len": 16384,
    "kv_cache_tokens": 200_000,
    "prefill_tokens_per_s": 200_000.0,
    "decode_base_s": 0.002,
    "decode_per_seq_s": 0.0001,
    "output_tokens_median": 20.0,
}


@pytest.fixture
def fast_engine() -> dict[str, Any]:
    return dict(FAST_ENGINE)


@pytest.fixture(scope="module")
def sim_fleet() -> Iterator[FleetThread]:
    fleet = start_fleet(3, engine=FAST_ENGINE)
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture
def prometheus_server() -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Factory: ``prom = prometheus_server(["127.0.0.1:18000", ...])``; stopped at teardown."""
    started: list[PrometheusServer] = []

    def start(targets: list[str], scrape_interval: str = "1s") -> PrometheusServer:
        server = PrometheusServer(targets, scrape_interval)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
