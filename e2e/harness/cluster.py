"""The e2e control plane that e2e/cluster/cluster.sh runs (etcd, kube-apiserver, controller-manager,
scheduler, kwok): ``Cluster``, a handle on it, and the bench's way to bring it up.

The e2e tier's ``cluster`` fixture (e2e/conftest.py) and the cluster benchmarks both use it.
"""

from __future__ import annotations

import json
import os
import shlex
import ssl
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.poll import poll
from e2e.harness.procs import log_tail

CLUSTER_SH = Path(__file__).resolve().parents[1] / "cluster" / "cluster.sh"
LOG_TAIL_LINES = 120


def namespace_prefix(module: str) -> str:
    """The prefix of the namespaces a test module's tests get (``e2e-<module>-``, then 6 hex digits):
    its module-scoped operator serves exactly ``<prefix>??????``, so modules running at once on
    parallel workers never reconcile each other's objects."""
    slug = module.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")[:40]
    return f"e2e-{slug}-"


NAMESPACE_SUFFIX_GLOB = "??????"


class KubectlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (
            f"kubectl {shlex.join(self.cmd[3:])} failed with exit code {self.returncode}\nstdout: "
            f"{self.stdout.strip()}\nstderr: {self.stderr.strip()}"
        )


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

    def run(
        self, *args: Any, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess:
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

    @contextmanager
    def fresh_namespace(self, name: str) -> Iterator[str]:
        """A new namespace NAME, labelled as the e2e tier's, once pods may be created in it; deleted
        (without waiting) after."""
        self.run("create", "namespace", name)
        self.run("label", "namespace", name, "agentfleet.io/e2e=true")
        # The ServiceAccount admission plugin rejects pods until the controller-manager has created
        # the namespace's default ServiceAccount (an API server alone has neither).
        if self.info.get("controllers", True):
            self.wait_for(
                lambda: self.run("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
                timeout=30,
                interval=0.2,
                desc=f"default ServiceAccount in {name}",
            )
        try:
            yield name
        finally:
            self.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    @staticmethod
    def wait_for(
        predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5, desc: str = "condition"
    ) -> Any:
        """Poll predicate until it returns a truthy value (returned); fail the
        test with ``desc`` after ``timeout`` seconds."""
        return poll(predicate, timeout, desc, interval, fail=pytest.fail)


def script(
    *args: str, env: dict[str, str], timeout: float, log_path: Path | None = None
) -> subprocess.CompletedProcess:
    if log_path is None:
        return subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, env=env, timeout=timeout)
    with open(log_path, "w") as log:
        return subprocess.run(
            [str(CLUSTER_SH), *args], stdout=log, stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout
        )


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    return log_tail(path, lines)


def info(env: dict[str, str]) -> dict[str, Any]:
    """What ``cluster.sh info`` prints: paths, URLs and the topology of the running cluster."""
    proc = script("info", env=env, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"e2e/cluster/cluster.sh info failed: {proc.stderr}")
    return json.loads(proc.stdout)


def script_env() -> dict[str, str]:
    """os.environ with AGENTFLEET_PYTHON: nodes.py runs with this interpreter (it has PyYAML when
    the tests do)."""
    env = dict(os.environ)
    env.setdefault("AGENTFLEET_PYTHON", sys.executable)
    return env


@contextmanager
def cluster_up() -> Iterator[Cluster]:
    """For a bench: the cluster named by the AGENTFLEET_* environment, with the CRDs installed;
    started and stopped here when it was not already up."""
    from e2e.harness.operator import install_crds

    env = script_env()
    started = script("status", env=env, timeout=60).returncode != 0
    if started:
        print("starting the cluster (e2e/cluster/cluster.sh up) ...", flush=True)
        subprocess.run([str(CLUSTER_SH), "up"], env=env, check=True, stdout=subprocess.DEVNULL)
    cluster = Cluster(info(env))
    # A bench may create the kinds before any operator runs (the reconcile bench's floor does).
    install_crds(cluster)
    try:
        yield cluster
    finally:
        if started:
            subprocess.run([str(CLUSTER_SH), "down"], env=env, check=False, stdout=subprocess.DEVNULL)


@contextmanager
def bench_namespace(cluster: Cluster, prefix: str) -> Iterator[tuple[str, Any]]:
    """A namespace of one bench run and its own GPU node pool, both deleted afterwards."""
    from e2e.harness.operator import GpuPool

    ns = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.run("create", "namespace", ns)
    cluster.wait_for(
        lambda: cluster.run("-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        desc="default ServiceAccount",
    )
    pool = GpuPool(cluster, ns)
    try:
        yield ns, pool
    finally:
        cluster.run("delete", "namespace", ns, "--wait=false", check=False)
        pool.delete_all()
