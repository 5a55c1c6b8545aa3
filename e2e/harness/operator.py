"""The agentfleet operator as a real subprocess against the e2e cluster, and GPU node pools that
belong to one test.

Imported by e2e tests (and the cluster benchmarks); not a conftest, so it adds nothing to the
other e2e modules. Fixtures: `crds` (module), `operator` (module), `gpu_pool` (function).

Node pools: a test creates its own kwok nodes, labelled and tainted with its namespace, and its
ModelReplicaSets select and tolerate exactly those. Tests then never compete with each other, nor
with whatever else runs on the shared cluster, for GPUs, and may delete a node without harm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import nodes as node_topology
from e2e.harness.cluster import NAMESPACE_SUFFIX_GLOB, namespace_prefix
from e2e.harness.ports import free_port, http_ok
from e2e.harness.procs import Proc, log_tail, source_path, terminate

ROOT = Path(__file__).resolve().parents[2]
POOL_LABEL = "agentfleet.io/e2e-pool"
H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"
GPU_MEMORY = {H100: 81559, L4: 23034}


def install_crds(cluster) -> None:
    from agentfleet_contract import RESOURCES

    cluster.run("apply", "--server-side", "--field-manager=agentfleet-e2e", "-f", str(ROOT / "crds"))
    for res in RESOURCES:
        cluster.run("wait", "--for=condition=Established", f"crd/{res.crd_name}", "--timeout=60s")
    # Discovery lags Established by a moment; kubectl needs it to resolve the short names.
    cluster.wait_for(
        lambda: cluster.run("get", "mrs,vi,af", "-A", check=False).returncode == 0,
        timeout=30,
        desc="discovery of the new kinds",
    )


def api_server_cidr(kubeconfig: str) -> str:
    """The API server's address in ``kubeconfig`` as a CIDR (a name resolved), for the operator's
    AGENTFLEET_API_SERVER_CIDRS."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    import yaml

    config = yaml.safe_load(Path(kubeconfig).read_text())
    server = (config.get("clusters") or [{}])[0].get("cluster", {}).get("server", "https://127.0.0.1")
    host = urlsplit(server).hostname or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    return str(ipaddress.ip_network(address))


class OperatorProcess:
    """`python -m agentfleet.manager` with the cluster's kubeconfig; its log goes to a file."""

    def __init__(self, cluster, *, args: tuple[str, ...] = (), name: str = "operator") -> None:
        self.cluster = cluster
        self.args = args
        self.log_path = Path(tempfile.gettempdir()) / f"agentfleet-{name}-{os.getpid()}-{int(time.time())}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        assert self.proc is None or self.proc.poll() is not None, "operator already running"
        port = free_port()
        env = self.cluster.env()
        env["PYTHONPATH"] = source_path(env.get("PYTHONPATH"))
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The chart looks the API server's addresses up at install; run as a process, the operator
        # is told the kubeconfig's (the evaluation gate refuses to start without them: issue 76).
        env.setdefault("AGENTFLEET_API_SERVER_CIDRS", api_server_cidr(env["KUBECONFIG"]))
        cmd = [sys.executable, "-m", "agentfleet.manager", "--liveness", f"http://127.0.0.1:{port}/healthz", *self.args]
        with open(self.log_path, "a") as log:
            log.write(f"\n===== start {self.starts + 1}: {' '.join(cmd)}\n")
        # Own session: a Ctrl-C at the terminal reaches pytest, which stops us in order.
        runner = Proc(cmd, env, self.log_path, new_session=True)
        self.proc = runner.proc
        self.starts += 1
        try:
            runner.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout, "the operator's /healthz")
        except RuntimeError as e:
            self.stop()
            pytest.fail(str(e), pytrace=False)

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crashed or evicted operator pod."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> None:
        if self.proc:
            terminate(self.proc, timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines, "operator log")


@pytest.fixture(scope="module")
def crds(cluster):
    install_crds(cluster)
    return cluster


@pytest.fixture(scope="module")
def operator(crds, request: pytest.FixtureRequest) -> Iterator[OperatorProcess]:
    # Serves only its module's namespaces (the ``namespace`` fixture's): other modules' operators
    # run beside it on the parallel workers of the test command.
    served = namespace_prefix(request.module.__name__) + NAMESPACE_SUFFIX_GLOB
    op = OperatorProcess(crds, args=("--resync-seconds", "20", "--namespace", served))
    op.start()
    yield op
    op.stop()


class GpuPool:
    """Simulated GPU nodes owned by one test (namespace): created Ready, deleted afterwards."""

    def __init__(self, cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.names: list[str] = []

    @property
    def selector(self) -> dict[str, Any]:
        """spec.placement fields that confine a ModelReplicaSet to this pool."""
        return {
            "nodeSelector": {POOL_LABEL: self.namespace},
            "tolerations": [{"key": POOL_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
        }

    def add(
        self,
        pool: str,
        *,
        count: int = 1,
        gpus: int = 8,
        product: str = H100,
        block: str | None = None,
        zone: str = "zone-a",
        nvlink: str | None = None,
        kwok: bool = True,
    ) -> list[str]:
        """`count` nodes named <namespace>-<pool>-<i>. nvlink defaults to one domain per node.

        ``kwok=False``: kwok never manages them; the caller is their kubelet (e2e/harness/sleepwake.py)
        and waits for them Ready itself (``wait_ready``)."""
        nodes = node_topology
        spec = {
            "name": pool,
            "count": count,
            "namePrefix": f"{self.namespace}-{pool}-",
            "zone": zone,
            "region": "e2e",
            "topologyBlock": block or f"{self.namespace}-{pool}",
            "nvlinkDomain": nvlink or "nvl-{name}",
            "cpu": "192",
            "memory": "2000Gi",
            "pods": 110,
            "gpu": {"count": gpus, "product": product, "memoryMiB": GPU_MEMORY.get(product, 81559), "family": "sim"},
            "labels": {POOL_LABEL: self.namespace},
            "taints": [
                {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
                {"key": POOL_LABEL, "value": self.namespace, "effect": "NoSchedule"},
            ],
        }
        manifests = nodes.build_nodes({"pools": [spec]})
        if not kwok:
            # Never handed to kwok, not taken from it later: kwok, slow to see an annotation go,
            # could still mark a pod bound there Running and Ready (with an address the node's
            # own kubelet may then not change) before the model in it had loaded.
            for m in manifests:
                m["metadata"]["annotations"].pop(node_topology.KWOK_ANNOTATION[0])
        self.cluster.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))
        names = [m["metadata"]["name"] for m in manifests]
        self.names += names
        if kwok and not self.cluster.info.get("controllers", True):
            self.register(manifests)
        if kwok:
            self.wait_ready(names)
        return names

    def register(self, manifests: list[dict]) -> None:
        """On an API server alone (no kwok, no node lifecycle controller): what a kubelet does when
        it registers, its status Ready, and what the node lifecycle controller then does, lifting the
        not-ready taint that admission put on the new node."""
        for m in manifests:
            name = m["metadata"]["name"]
            ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "registered by the test"}
            status = {**m["status"], "conditions": [ready]}
            self.cluster.run(
                "patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status})
            )
            self.cluster.run(
                "patch",
                "node",
                name,
                "--type=merge",
                "-p",
                json.dumps({"spec": {"taints": m["spec"].get("taints", [])}}),
            )

    def wait_ready(self, names: list[str], timeout: float = 60) -> None:
        def ready() -> bool:
            items = self.cluster.json("get", "nodes", "-l", f"{POOL_LABEL}={self.namespace}")["items"]
            by = {n["metadata"]["name"]: n for n in items}
            for name in names:
                n = by.get(name)
                if n is None:
                    return False
                cond = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
                if cond.get("Ready") != "True":
                    return False
                # The node lifecycle controller taints new nodes not-ready until it sees them Ready.
                if any(t["key"].startswith("node.kubernetes.io/") for t in n.get("spec", {}).get("taints", [])):
                    return False
            return True

        self.cluster.wait_for(ready, timeout=timeout, interval=0.3, desc=f"nodes {names} Ready and untainted")

    def nodes(self) -> list[dict]:
        return self.cluster.json("get", "nodes", "-l", f"{POOL_LABEL}={self.namespace}")["items"]

    def delete_all(self) -> None:
        if self.names:
            # The test's ModelReplicaSets go first: an operator still running would otherwise see
            # their nodes vanish and try to re-place every replica.
            self.cluster.run("-n", self.namespace, "delete", "modelreplicasets", "--all", "--wait=false", check=False)
            self.cluster.run(
                "delete",
                "nodes",
                "-l",
                f"{POOL_LABEL}={self.namespace}",
                "--wait=false",
                "--ignore-not-found",
                check=False,
            )


def scoped(prefix: str, name: str) -> tuple[Any, Any]:
    """The fixtures ``operator`` (module) and ``namespace`` (function) of a module that shares the
    cluster with others' operators: an operator serving only the namespaces named PREFIX*, and a
    fresh such namespace per test. Bind them under those names:
    ``operator, namespace = scoped(PREFIX, "gate-operator")``."""

    @pytest.fixture(scope="module")
    def operator(crds) -> Iterator[OperatorProcess]:
        op = OperatorProcess(crds, args=("--resync-seconds", "20", "--namespace", f"{prefix}*"), name=name)
        op.start()
        yield op
        op.stop()

    @pytest.fixture
    def namespace(crds) -> Iterator[str]:
        with crds.fresh_namespace(f"{prefix}{uuid.uuid4().hex[:6]}") as ns:
            yield ns

    return operator, namespace


@pytest.fixture
def gpu_pool(cluster, namespace) -> Iterator[GpuPool]:
    pool = GpuPool(cluster, namespace)
    yield pool
    pool.delete_all()


def eventually(
    cluster,
    op: OperatorProcess | None,
    predicate: Callable[[], Any],
    *,
    timeout: float,
    desc: str,
    interval: float = 0.3,
) -> Any:
    """cluster.wait_for, with the operator's log attached when it times out."""
    try:
        return cluster.wait_for(predicate, timeout=timeout, interval=interval, desc=desc)
    except pytest.fail.Exception as e:
        raise pytest.fail.Exception(f"{e}\n{op.tail() if op else ''}", pytrace=False) from None


@contextmanager
def running_operator(cluster, *args: str, name: str = "bench-operator") -> Iterator[OperatorProcess]:
    """For a bench: the CRDs installed and the operator running with ``args`` until the block ends."""
    install_crds(cluster)
    op = OperatorProcess(cluster, args=args, name=name)
    op.start()
    try:
        yield op
    finally:
        op.stop()
