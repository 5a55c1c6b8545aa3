"""KEDA's operator and metrics API server as processes against the e2e control plane.

Built from KEDA's Go module by ``e2e/thirdparty.sh keda``; its CRDs come from the same module
(``e2e/thirdparty.sh crds``). What a KEDA install does in a cluster, done here by hand:

- certificates: one CA, and one key pair (server and client auth) that the operator's gRPC metrics
  service, the metrics API server's gRPC client (mutual TLS) and its HTTPS endpoint all use (KEDA's
  ``--cert-dir`` layout: ``ca.crt``, ``tls.crt``, ``tls.key``);
- the metrics API server's Service ``keda/keda-metrics-apiserver``: no selector, one EndpointSlice
  (and Endpoints) address routed to loopback (Linux AnyIP, as the drain tests do for pod IPs), on
  which the process listens; the kube-apiserver runs with ``--enable-aggregator-routing`` and so
  dials that endpoint, verifying the certificate for ``keda-metrics-apiserver.keda.svc``;
- the APIService ``v1beta1.external.metrics.k8s.io`` pointing at that Service with the CA bundle.

The HPA controller in kube-controller-manager then reads External metrics through the aggregation
layer exactly as in a cluster. Both processes use the admin kubeconfig (a KEDA install gives them
ServiceAccounts with KEDA's RBAC; RBAC is not what these tests are about). ``stop()`` removes the
APIService first: an APIService whose backend is gone makes discovery, and so namespace deletion,
fail for everyone else on the cluster.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
APISERVICE = "v1beta1.external.metrics.k8s.io"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoint_ip(apiserver_port: int) -> str:
    """A non-loopback address for the metrics API server's endpoint (EndpointSlices refuse
    127.0.0.0/8), distinct per cluster so parallel clusters on one machine do not collide."""
    return os.environ.get("AGENTFLEET_KEDA_IP") or f"10.253.{apiserver_port // 256 % 256}.{apiserver_port % 256}"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def make_certs(d: Path, ip: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "ca.key"),
             "-out", str(d / "ca.crt"), "-days", "2", "-subj", "/CN=agentfleet-e2e-keda-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    names = [
        f"DNS:{SERVICE}.{NAMESPACE}.svc",
        f"DNS:{SERVICE}.{NAMESPACE}.svc.cluster.local",
        "DNS:keda-operator.keda.svc",
        "DNS:localhost",
        "IP:127.0.0.1",
        f"IP:{ip}",
    ]
    (d / "tls.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={','.join(names)}\n"
    )
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / "tls.key"),
             "-out", str(d / "tls.csr"), "-subj", "/CN=keda")  # fmt: skip
    _openssl("x509", "-req", "-in", str(d / "tls.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
             "-days", "2", "-sha256", "-extfile", str(d / "tls.ext"), "-out", str(d / "tls.crt"))  # fmt: skip


class Keda:
    def __init__(self, cluster: Any, bin_dir: str) -> None:
        self.cluster = cluster
        self.bin_dir = Path(bin_dir)
        self.dir = Path(tempfile.mkdtemp(prefix="agentfleet-keda-"))
        self.ip = endpoint_ip(int(cluster.apiserver_url.rsplit(":", 1)[1]))
        self.adapter_port = free_port()
        self.grpc_port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.routed = False

    # -- set-up ------------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> None:
        make_certs(self.dir, self.ip)
        self._route()
        self.cluster.run("create", "namespace", NAMESPACE, check=False)
        self._service()
        env = self.cluster.env()
        env.update(KEDA_CLUSTER_OBJECT_NAMESPACE=NAMESPACE, POD_NAMESPACE=NAMESPACE, WATCH_NAMESPACE="")
        kc = self.cluster.kubeconfig
        self._spawn(
            "keda-operator",
            [
                f"--kubeconfig={kc}",
                f"--metrics-bind-address=127.0.0.1:{free_port()}",
                f"--health-probe-bind-address=127.0.0.1:{free_port()}",
                f"--metrics-service-bind-address=127.0.0.1:{self.grpc_port}",
                f"--cert-dir={self.dir}",
                f"--ca-dir={self.dir}",
                "--enable-cert-rotation=false",
                "--enable-webhook-patching=false",
                "--enable-apiservice-patching=false",
                "--zap-log-level=info",
            ],
            env,
        )
        self._spawn(
            "keda-adapter",
            [
                f"--secure-port={self.adapter_port}",
                f"--bind-address={self.ip}",
                f"--cert-dir={self.dir}",
                f"--tls-cert-file={self.dir / 'tls.crt'}",
                f"--tls-private-key-file={self.dir / 'tls.key'}",
                f"--client-ca-file={self.dir / 'ca.crt'}",
                f"--lister-kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                f"--metrics-service-address=127.0.0.1:{self.grpc_port}",
                f"--port={free_port()}",
                "--zap-log-level=info",
            ],
            env,
        )
        self._apiservice()
        deadline = time.monotonic() + timeout
        while True:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.tail(name)}")
            if self.available():
                return
            if time.monotonic() > deadline:
                st = self.cluster.run("get", "apiservice", APISERVICE, "-o", "yaml", check=False).stdout
                raise RuntimeError(f"APIService {APISERVICE} not Available after {timeout}s:\n{st}\n{self.tail('keda-adapter')}\n{self.tail('keda-operator')}")
            time.sleep(1)

    def _route(self) -> None:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        subprocess.run([*sudo, "ip", "route", "replace", "local", f"{self.ip}/32", "dev", "lo"], check=True, capture_output=True, text=True, timeout=10)
        self.routed = True

    def _service(self) -> None:
        port = {"name": "https", "port": self.adapter_port, "protocol": "TCP"}
        docs = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": self.adapter_port, "protocol": "TCP"}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": SERVICE}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.ip], "conditions": {"ready": True}}],
                "ports": [port],
            },
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE},
                "subsets": [{"addresses": [{"ip": self.ip}], "ports": [port]}],
            },
        ]
        self.cluster.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))

    def _apiservice(self) -> None:
        ca = base64.b64encode((self.dir / "ca.crt").read_bytes()).decode()
        self.cluster.apply(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE},
                "spec": {
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                    "caBundle": ca,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            }
        )

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child
        self.procs[name] = subprocess.Popen([str(self.bin_dir / name), *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    # -- state ---------------------------------------------------------------------------------------
    def available(self) -> bool:
        proc = self.cluster.run("get", "apiservice", APISERVICE, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conds = {c["type"]: c["status"] for c in json.loads(proc.stdout).get("status", {}).get("conditions", [])}
        return conds.get("Available") == "True"

    def tail(self, name: str, lines: int = 40) -> str:
        try:
            text = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError as e:
            return f"(no {name} log: {e})"
        return f"--- {name} log (last {lines} lines)\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        self.cluster.run("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.cluster.run("delete", "namespace", NAMESPACE, "--wait=false", "--ignore-not-found", check=False)
        if self.routed:
            sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
            subprocess.run([*sudo, "ip", "route", "del", "local", f"{self.ip}/32", "dev", "lo"], capture_output=True, timeout=10)
