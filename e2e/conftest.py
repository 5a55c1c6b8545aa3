"""pytest fixtures for the agentfleet e2e harness (a real local control plane).

Fixtures:
    cluster    (session) -- starts the cluster with ``e2e/cluster/cluster.sh up`` (which
                            builds the binaries first if needed) unless it is
                            already up; stops it at the end of the session if
                            this session started it, unless
                            AGENTFLEET_KEEP_CLUSTER=1. Fails (never skips) when
                            the cluster cannot start.
    namespace  (function) -- a fresh namespace ``e2e-<random>``, deleted
                            afterwards without waiting for finalization.
    topology_nodes (session) -- the Node manifests the topology should yield.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from e2e.harness import nodes as node_topology
from e2e.harness.cluster import Cluster, info, script, script_env, tail


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test against the local Kubernetes control plane started by e2e/cluster/cluster.sh"
    )


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    env = script_env()
    keep = os.environ.get("AGENTFLEET_KEEP_CLUSTER") == "1"

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


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    with cluster.fresh_namespace(f"e2e-{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture(scope="session")
def topology_nodes(cluster: Cluster) -> list[dict]:
    """The Node manifests generated from the topology the cluster was started with."""
    nodes = node_topology
    return nodes.build_nodes(nodes.load_topology(cluster.info["topology"]))
