"""pytest fixtures for the agentfleet e2e harness (a real local control plane).

Fixtures:
    cluster    (session) -- starts the cluster with ``e2e/cluster.sh up`` (which
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

import json
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e import nodes as node_topology

E2E_DIR = Path(__file__).resolve().parent
CLUSTER_SH = E2E_DIR / "cluster.sh"
LOG_TAIL_LINES = 120


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end test against the local Kubernetes control plane started by e2e/cluster.sh")


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return f"kubectl {shlex.join(self.cmd[3:])} failed with exit code {self.returncode}\nstdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"


class Cluster:
    """Handle on the running e2e cluster.

    Attributes: kubeconfig, kubectl (paths), bin_dir, state_dir, apiserver_url,
    health_urls (component -> URL), k8s_version, info (everything from
    ``cluster.sh info``).
    """

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.kubeconfig: str = info["kubeconfig"]
        self.kubectl: str = info["kubectl"]
        self.bin_dir: str = info["bin_dir"]
        self.state_dir: str = info["state_dir"]
        self.apiserver_url: str = info["apiserver_url"]
        self.health_urls: dict[str, str] = info["health_urls"]
        self.k8s_version: str = info["k8s_version"]
        self.ca_cert: str = info["ca_cert"]

    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG and the built binaries first on PATH."""
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = self.bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def run(self, *args: Any, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run kubectl against the cluster; returns text stdout/stderr.

        Raises KubectlError (a CalledProcessError that shows stderr) when
        check is true and kubectl exits non-zero.
        """
        cmd = [self.kubectl, "--kubeconfig", self.kubeconfig, *map(str, args)]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def json(self, *args: Any) -> Any:
        """``kubectl <args> -o json`` parsed."""
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: str | dict, namespace: str | None = None) -> subprocess.CompletedProcess:
        """kubectl apply a manifest given as YAML/JSON text or as a dict."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        return self.run("apply", *ns, "-f", "-", input=text)

    def health(self, component: str, timeout: float = 5) -> str:
        """GET the component's health endpoint (etcd, kube-apiserver,
        kube-controller-manager, kube-scheduler, kwok); returns the body."""
        url = self.health_urls[component]
        ctx = None
        if url.startswith("https:"):
            ctx = ssl.create_default_context(cafile=self.ca_cert)
            if component == "kube-apiserver":
                ctx.load_cert_chain(self.info["admin_cert"], self.info["admin_key"])
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:  # noqa: S310 (127.0.0.1 only)
            return resp.read().decode()

    @staticmethod
    def wait_for(predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5, desc: str = "condition") -> Any:
        """Poll predicate until it returns a truthy value (returned); fail the
        test with ``desc`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
                last_exc = e
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {desc}" + (f" (last error: {last_exc})" if last_exc else ""))
            time.sleep(interval)


def _script(*args: str, env: dict[str, str], timeout: float, log_path: Path | None = None) -> subprocess.CompletedProcess:
    if log_path is None:
        return subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, env=env, timeout=timeout)
    with open(log_path, "w") as log:
        return subprocess.run([str(CLUSTER_SH), *args], stdout=log, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    env = dict(os.environ)
    # nodes.py runs with this interpreter (it has PyYAML when the tests do).
    env.setdefault("AGENTFLEET_PYTHON", sys.executable)
    keep = os.environ.get("AGENTFLEET_KEEP_CLUSTER") == "1"

    already_up = _script("status", env=env, timeout=60).returncode == 0
    if not already_up:
        # A cold build can take ~40 minutes on 2 cores; a warm start seconds.
        timeout = float(os.environ.get("AGENTFLEET_UP_TIMEOUT_S", "5400"))
        log_path = Path(tempfile.gettempdir()) / f"agentfleet-cluster-up-{os.getpid()}.log"
        try:
            proc = _script("up", env=env, timeout=timeout, log_path=log_path)
        except subprocess.TimeoutExpired:
            pytest.fail(f"e2e/cluster.sh up did not finish in {timeout:.0f}s; log {log_path}:\n" + _tail(log_path), pytrace=False)
        if proc.returncode != 0:
            pytest.fail(f"e2e/cluster.sh up failed with exit code {proc.returncode}; log {log_path}:\n" + _tail(log_path), pytrace=False)
        log_path.unlink(missing_ok=True)

    info_proc = _script("info", env=env, timeout=60)
    if info_proc.returncode != 0:
        pytest.fail(f"e2e/cluster.sh info failed: {info_proc.stderr}", pytrace=False)
    handle = Cluster(json.loads(info_proc.stdout))
    try:
        yield handle
    finally:
        if not already_up and not keep:
            down = _script("down", env=env, timeout=300)
            if down.returncode != 0:
                print(f"e2e/cluster.sh down failed:\n{down.stdout}\n{down.stderr}", file=sys.stderr)


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.run("create", "namespace", name)
    cluster.run("label", "namespace", name, "agentfleet.io/e2e=true")
    # The ServiceAccount admission plugin rejects pods until the
    # controller-manager has created the namespace's default ServiceAccount.
    cluster.wait_for(
        lambda: cluster.run("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        interval=0.2,
        desc=f"default ServiceAccount in {name}",
    )
    yield name
    cluster.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="session")
def topology_nodes(cluster: Cluster) -> list[dict]:
    """The Node manifests generated from the topology the cluster was started with."""
    nodes = node_topology
    return nodes.build_nodes(nodes.load_topology(cluster.info["topology"]))
