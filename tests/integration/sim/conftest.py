"""Fixtures for the simulator's integration tests: a simulated fleet and a real Prometheus.

The Prometheus fixture is shared with the autoscaler's tests (tests/integration/autoscale/conftest.py):

    prometheus_server(targets)  -> PrometheusServer   (function-scoped factory fixture)

It is e2e/harness/prometheus.py's (Debian's package, installed when missing; stopped at teardown).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.prometheus import prometheus_server  # noqa: F401 - a fixture of these tests
from e2e.harness.sim import FAST_ENGINE


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
