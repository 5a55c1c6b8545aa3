"""A private kube-apiserver with its etcd on 127.0.0.1 for integration tests that need the real
Kubernetes API (its RBAC, service account tokens and patch semantics) but no nodes, controllers or
shared cluster: each start has its own CA, ports and data directory and is gone after the test.

The binaries are the ones e2e/cluster/cluster.sh caches (``$AGENTFLEET_K8S_BIN``, default
``~/.cache/agentfleet/k8s-v1.36.3/bin``); ``missing()`` says why a test must skip without them.
Authorization is RBAC: the harness's own token is in system:masters, and ``token_for`` issues a
service account's token (TokenRequest) so a test runs a program with only the verbs its Role grants.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness import shared
from e2e.harness.cluster import Cluster
from e2e.harness.ports import free_ports
from e2e.harness.procs import Proc

CACHE = Path(os.environ.get("AGENTFLEET_CACHE", Path.home() / ".cache" / "agentfleet"))
K8S_BIN = Path(os.environ.get("AGENTFLEET_K8S_BIN", CACHE / "k8s-v1.36.3" / "bin"))
START_SECONDS = 180  # two shared cores running other suites: the API server's start takes its time


def missing() -> str | None:
    """Why this machine cannot start one (None when it can)."""
    for b in ("etcd", "kube-apiserver", "kubectl"):
        if not (K8S_BIN / b).exists():
            return f"needs {K8S_BIN / b} (e2e/cluster/cluster.sh downloads the control plane binaries)"
    return None


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(d: Path) -> None:
    """A CA, the API server's serving certificate for 127.0.0.1, and the service account keys."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
             "-days", "1", "-subj", "/CN=agentfleet-test-ca")  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "apiserver.key"),
             "-out", str(d / "apiserver.csr"), "-subj", "/CN=kube-apiserver")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")
    _openssl("x509", "-req", "-in", str(d / "apiserver.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-out", str(d / "apiserver.crt"), "-days", "1",
             "-extfile", str(d / "san.ext"))  # fmt: skip
    _openssl("genrsa", "-out", str(d / "sa.key"), "2048")
    _openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))


class ApiServer:
    def __init__(self, directory: Path, url: str, procs: list[Proc]) -> None:
        self.dir, self.url, self.procs = directory, url, procs
        self.ca = directory / "ca.crt"
        self.kubeconfig = directory / "kubeconfig"

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        cmd = [str(K8S_BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, *objs: dict) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))

    def as_cluster(self) -> Cluster:
        """The e2e tier's handle (kubectl, apply, wait_for, namespaces) on this API server, for a test
        that moved down from the e2e tier: it has no controllers, so no namespace gets a default
        ServiceAccount, no pod is scheduled and nothing is garbage-collected."""
        return Cluster({
            "kubeconfig": str(self.kubeconfig), "kubectl": str(K8S_BIN / "kubectl"), "bin_dir": str(K8S_BIN),
            "state_dir": str(self.dir), "apiserver_url": self.url, "health_urls": {},
            "k8s_version": K8S_BIN.parent.name.removeprefix("k8s-"), "ca_cert": str(self.ca), "controllers": False,
        })  # fmt: skip

    def token_for(self, namespace: str, service_account: str) -> str:
        """A bound token of the service account (TokenRequest), as a pod's projected volume holds."""
        return self.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").strip()


def start(d: Path, *, own_session: bool = False) -> ApiServer:
    """etcd and kube-apiserver on free loopback ports with their data in ``d``, ready.
    ``own_session``: each leads its own process group, to outlive the process that started it (a
    run-wide server, e2e/harness/shared.py)."""
    d.mkdir(parents=True, exist_ok=True)
    _pki(d)
    admin = uuid.uuid4().hex
    (d / "tokens.csv").write_text(f"{admin},admin,admin,system:masters\n")
    etcd_port, peer_port, api_port = free_ports(3)
    url = f"https://127.0.0.1:{api_port}"
    cluster = {"server": url, "certificate-authority": str(d / "ca.crt")}
    (d / "kubeconfig").write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": admin}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x",
    }))  # fmt: skip
    procs: list[Proc] = []
    try:
        procs.append(Proc([
            str(K8S_BIN / "etcd"), "--data-dir", str(d / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
        ], log=d / "etcd.log", python_path=False, group=own_session))  # fmt: skip
        api = Proc([
            str(K8S_BIN / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={d / 'apiserver.crt'}", f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}", "--service-cluster-ip-range=10.96.0.0/16",
            "--disable-admission-plugins=ServiceAccount", "--profiling=false",
        ], log=d / "kube-apiserver.log", python_path=False, group=own_session)  # fmt: skip
        procs.append(api)
        server = ApiServer(d, url, procs)

        def ready() -> bool:
            try:
                return server.kubectl("get", "--raw=/readyz").strip() == "ok"
            except (RuntimeError, subprocess.TimeoutExpired):
                return False

        api.wait_ready(ready, START_SECONDS, "kube-apiserver to be ready", interval=1.0)
        return server
    except BaseException:
        for p in reversed(procs):
            p.end()
        raise


@contextmanager
def api_server(directory: Path | None = None) -> Iterator[ApiServer]:
    """A private API server for the block (see ``start``), ended and its data removed on exit."""
    d = Path(directory or tempfile.mkdtemp(prefix="af-apiserver-"))
    server = start(d)
    try:
        yield server
    finally:
        for p in reversed(server.procs):
            p.end()
        subprocess.run(["rm", "-rf", str(d)], check=False)


def run_wide() -> ApiServer:
    """The test run's one private API server (e2e/harness/shared.py): every test that needs only the
    Kubernetes API uses it, each in namespaces of its own."""

    def started(d: Path) -> shared.Started:
        s = start(d, own_session=True)
        return {"dir": str(d), "url": s.url}, [p.pid for p in s.procs]

    record = shared.server("kube-apiserver", started)
    return ApiServer(Path(record["dir"]), record["url"], [])
