"""Fixtures of the runtime's integration tests: a real redis-server (installed if missing),
helpers to run workers and the task API in-process or as subprocesses, and the scripted model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness.installers import ensure_redis_server
from e2e.harness.procs import Proc
from e2e.harness.redis import RedisServer


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return ensure_redis_server()


@pytest.fixture
def own_redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for one test that restarts it (AOF persistence on, fsync on every write)."""
    server = RedisServer(redis_binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop(kill=True)


@pytest.fixture
def fleet() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.end()


@pytest.fixture(scope="session")
def decider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The deciding model's base URL: llama-server with the Qwen GGUF, the run's one (llama_server
    run_wide, which e2e/tests/test_agentfleet.py's example fleet decides with too),
    or (AGENTFLEET_IT_DECIDER=scripted, to show those tests fail without a deciding model) the
    scripted model."""
    tmp = tmp_path_factory.mktemp("decider")
    if os.environ.get("AGENTFLEET_IT_DECIDER") == "scripted":
        from runtime_helpers import start_scripted_model

        started: list[Proc] = []
        yield start_scripted_model(started, tmp)
        for p in started:
            p.end()
    else:
        from e2e.harness import llama_server

        yield llama_server.run_wide(os.environ.get("AGENTFLEET_IT_QWEN", "qwen2.5-coder-1.5b"))
