"""Shared set-up of the cluster benchmarks: the e2e cluster (started if it is down), the CRDs, a
node pool of their own, and the operator as a subprocess. Not a benchmark itself."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from e2e import fixtures_operator as fx  # noqa: E402

CLUSTER_SH = ROOT / "e2e" / "cluster.sh"


def _conftest():
    spec = importlib.util.spec_from_file_location("agentfleet_e2e_conftest", ROOT / "e2e" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@contextmanager
def cluster_up():
    """The cluster named by the AGENTFLEET_* environment (e2e/cluster.sh); started and stopped
    here when it was not already up."""
    env = dict(os.environ)
    env.setdefault("AGENTFLEET_PYTHON", sys.executable)
    started = subprocess.run([str(CLUSTER_SH), "status"], env=env, capture_output=True).returncode != 0
    if started:
        print("starting the cluster (e2e/cluster.sh up) ...", flush=True)
        subprocess.run([str(CLUSTER_SH), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    info = json.loads(subprocess.run([str(CLUSTER_SH), "info"], env=env, check=True, capture_output=True, text=True).stdout)
    cluster = _conftest().Cluster(info)
    # A bench may create the kinds before any operator runs (the reconcile bench's floor does).
    fx.install_crds(cluster)
    try:
        yield cluster
    finally:
        if started:
            subprocess.run([str(CLUSTER_SH), "down"], env=env, check=False, stdout=subprocess.DEVNULL)


@contextmanager
def bench_namespace(cluster, prefix: str):
    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.run("create", "namespace", ns)
    cluster.wait_for(lambda: cluster.run("-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0, timeout=30, desc="default ServiceAccount")
    pool = fx.GpuPool(cluster, ns)
    try:
        yield ns, pool
    finally:
        cluster.run("delete", "namespace", ns, "--wait=false", check=False)
        pool.delete_all()


@contextmanager
def operator(cluster, *args: str):
    fx.install_crds(cluster)
    op = fx.OperatorProcess(cluster, args=args, name="bench-operator")
    op.start()
    try:
        yield op
    finally:
        op.stop()
