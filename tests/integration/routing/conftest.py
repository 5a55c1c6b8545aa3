"""Fixtures of the routing client's integration tests: simulator replicas over real HTTP and a real
redis-server (the runtime tests' fixture code, imported rather than copied)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.installers import ensure_redis_server
from e2e.harness.redis import RedisServer

# Short, exact calls: 4 output tokens at 20 ms per decode step, so one call is ~0.1 s.
FAST_ENGINE = {"output_length_mode": "max_tokens", "prefill_tokens_per_s": 200_000.0}


@pytest.fixture
def fleet4() -> Iterator[FleetThread]:
    fleet = start_fleet(4, engine=FAST_ENGINE)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(ensure_redis_server(), Path(tmp_path_factory.mktemp("routing-redis")))
    server.start()
    yield server.url
    server.stop()
