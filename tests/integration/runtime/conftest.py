"""Fixtures of the runtime's integration tests: a real redis-server (installed if missing),
helpers to run workers and the task API in-process or as subprocesses, and the scripted model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import milvus
from e2e.harness.installers import ensure_redis_server
from e2e.harness.procs import Proc
from e2e.harness.redis import RedisServer


@pytest.fixture(scope="session")
def redis_binary() -> str:
    return ensure_redis_server()


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis shared by the session's tests; each test isolates itself with its own fleet name."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


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
def milvus_lite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus Lite gRPC server (``python -m milvus_lite server``); installs milvus-lite if missing."""
    with milvus.milvus_lite(tmp_path_factory.mktemp("milvus") / "data", ("milvus_lite",), start_seconds=90) as server:
        yield server.uri
