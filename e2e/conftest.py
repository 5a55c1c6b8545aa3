"""pytest fixtures for the agentfleet e2e harness (a real local control plane).

Fixtures:
    cluster    (session) -- starts the cluster with ``e2e/cluster/cluster.sh up`` (which
                            builds the binaries first if needed) unless it is
                            already up; stops it at the end of the session if
                            this session started it, unless
                            AGENTFLEET_KEEP_CLUSTER=1 or it runs on a parallel
                            worker. Fails (never skips) when the cluster cannot
                            start.
    namespace  (function) -- a fresh namespace ``e2e-<module>-<random>``, deleted
                            afterwards without waiting for finalization.
    topology_nodes (session) -- the Node manifests the topology should yield.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from e2e.harness import nodes as node_topology
from e2e.harness import shared, testplan
from e2e.harness.cluster import Cluster, info, namespace_prefix, script, script_env, tail
from e2e.harness.helm import helm  # noqa: F401 - a fixture


def pytest_configure(config: pytest.Config) -> None:
    testplan.register(config)
    shared.register(config)
    config.addinivalue_line(
        "markers", "e2e: end-to-end test against the local Kubernetes control plane started by e2e/cluster/cluster.sh"
    )


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    env = script_env()
    # Parallel workers (pytest-xdist) share one cluster: the first to come starts it under a lock,
    # and none takes it down, since another may still use it (e2e/test.sh starts and stops it
    # around the run; by hand: bash e2e/cluster/cluster.sh down).
    parallel = "PYTEST_XDIST_WORKER" in os.environ
    keep = os.environ.get("AGENTFLEET_KEEP_CLUSTER") == "1" or parallel
    with cluster_lock(env):
        already_up = start_unless_up(env)
    try:
        handle = Cluster(info(env))
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield handle
    finally:
        if not already_up and not keep:
            down = script("down", env=env, timeout=300)
            if down.returncode != 0:
                print(f"e2e/cluster/cluster.sh down failed:\n{down.stdout}\n{down.stderr}", file=sys.stderr)


def cluster_lock(env: dict[str, str]) -> AbstractContextManager[None]:
    state = Path(env.get("AGENTFLEET_CLUSTER_DIR", "/tmp/agentfleet-cluster"))
    return shared.locked(state.parent / f".{state.name}.lock")


def start_unless_up(env: dict[str, str]) -> bool:
    """Starts the cluster unless it is up; whether it was up already."""
    already_up = script("status", env=env, timeout=60).returncode == 0
    if not already_up:
        # A cold build can take ~40 minutes on 2 cores; a warm start seconds.
        timeout = float(os.environ.get("AGENTFLEET_UP_TIMEOUT_S", "5400"))
        log_path = Path(tempfile.gettempdir()) / f"agentfleet-cluster-up-{os.getpid()}.log"
        try:
            proc = script("up", env=env, timeout=timeout, log_path=log_path)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"e2e/cluster/cluster.sh up did not finish in {timeout:.0f}s; log {log_path}:\n" + tail(log_path),
                pytrace=False,
            )
        if proc.returncode != 0:
            pytest.fail(
                f"e2e/cluster/cluster.sh up failed with exit code {proc.returncode}; log {log_path}:\n"
                + tail(log_path),
                pytrace=False,
            )
        log_path.unlink(missing_ok=True)
    return already_up


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    # Named after the module: the module's operator serves only these (e2e/harness/operator.py).
    with cluster.fresh_namespace(f"{namespace_prefix(request.module.__name__)}{uuid.uuid4().hex[:6]}") as name:
        yield name


@pytest.fixture(scope="session")
def topology_nodes(cluster: Cluster) -> list[dict]:
    """The Node manifests generated from the topology the cluster was started with."""
    nodes = node_topology
    return nodes.build_nodes(nodes.load_topology(cluster.info["topology"]))
