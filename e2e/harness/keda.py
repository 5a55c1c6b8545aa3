"""KEDA's operator and metrics API server as processes against the e2e control plane.

The binaries come from ``e2e/cluster/thirdparty.sh keda`` (KEDA's own Go module at the version pinned by
e2e/cluster/keda/go.mod). What a Helm install of KEDA would set up, done here by hand and undone at stop:

- TLS: one CA and one certificate (server and client use) for KEDA's internal gRPC link (the
  adapter asks the operator for metric values; both sides require the other's certificate) and
  for the adapter's HTTPS endpoint, whose name the kube-apiserver checks: the Service's
  ``<name>.<namespace>.svc``. KEDA's own certificate rotation is off: nothing here runs in a pod.
- An address for the adapter that an EndpointSlice may hold. The API server refuses loopback
  endpoints, so an address from TEST-NET-2 (198.51.100.0/24, never routed anywhere) is made local
  (``ip route replace local IP/32 dev lo``, as test_modelreplicaset's drain test does for pod
  IPs) and the adapter listens on it.
- A Service without a selector and an EndpointSlice naming that address, and the APIService
  ``v1beta1.external.metrics.k8s.io`` pointing at the Service with the CA as its caBundle. The
  kube-apiserver (``--enable-aggregator-routing``, front-proxy certificates from e2e/cluster/cluster.sh)
  dials the endpoint directly: there is no kube-proxy for a ClusterIP.

The APIService is cluster-wide and an unavailable one stalls namespace deletion (the namespace
controller needs complete discovery), so ``stop`` removes it before the adapter goes, and ``start``
first removes one a killed run left behind. ``stop`` deletes the namespace's ScaledObjects before
that, while KEDA's operator still runs to take its finalizer off them. Both KEDA processes watch
only the test's namespace (WATCH_NAMESPACE), so ScaledObjects other tests apply are not acted on.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.certs import make_certs
from e2e.harness.poll import poll
from e2e.harness.ports import free_port, http_ok
from e2e.harness.procs import Proc, log_tail

APISERVICE = "v1beta1.external.metrics.k8s.io"
SERVICE = "keda-metrics-apiserver"
E2E_LABEL = {"agentfleet.io/e2e": "keda"}


class LocalAddress:
    """A TEST-NET-2 address routed to loopback (Linux AnyIP), removed again by ``release``."""

    def __init__(self) -> None:
        self.sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        self.ip = ""
        for _ in range(20):
            ip = f"198.51.100.{random.randint(10, 250)}"
            probe = subprocess.run(
                ["ip", "route", "show", "table", "local", f"{ip}/32"], capture_output=True, text=True, timeout=10
            )
            if probe.returncode == 0 and not probe.stdout.strip():
                self.ip = ip
                break
        if not self.ip:
            pytest.fail("no free address in 198.51.100.0/24 to make local", pytrace=False)
        cmd = [*self.sudo, "ip", "route", "replace", "local", f"{self.ip}/32", "dev", "lo"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            pytest.fail(
                (
                    f"cannot make {self.ip} local for KEDA's metrics API server ({' '.join(cmd)}: "
                    f"{proc.stderr.strip()}); needs root or passwordless sudo"
                ),
                pytrace=False,
            )

    def release(self) -> None:
        if self.ip:
            subprocess.run(
                [*self.sudo, "ip", "route", "del", "local", f"{self.ip}/32", "dev", "lo"],
                capture_output=True,
                timeout=10,
                check=False,
            )
            self.ip = ""


class KedaProcess:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        # Own session, as the operator fixture does: a Ctrl-C reaches pytest, which stops us in order.
        self.runner = Proc(cmd, env, log_path, python_path=False, new_session=True)
        self.proc = self.runner.proc

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines, f"{self.name} log")

    def stop(self) -> None:
        self.runner.end(kill=False, timeout=15)


class Keda:
    """keda-operator and keda-adapter for one namespace, and the aggregated API that reaches them."""

    def __init__(self, cluster: Any, namespace: str, bin_dir: Path) -> None:
        self.cluster, self.namespace, self.bin_dir = cluster, namespace, bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="agentfleet-keda-"))
        self.certs = self.dir / "certs"
        self.procs: list[KedaProcess] = []
        self.address: LocalAddress | None = None
        self.registered = False

    # --- lifecycle ---

    def start(self, timeout: float = 120) -> Keda:
        self._remove_apiservice()  # a killed run's leftover would point at nothing
        self.address = LocalAddress()
        svc_dns = f"{SERVICE}.{self.namespace}.svc"
        make_certs(
            self.certs,
            [svc_dns, f"{svc_dns}.cluster.local", "keda-operator", "localhost"],
            ["127.0.0.1", self.address.ip],
            name="keda",
        )
        grpc_port, adapter_port = free_port(), free_port(self.address.ip)
        probe_port = free_port()
        env = self.cluster.env()
        env.update(
            WATCH_NAMESPACE=self.namespace, KEDA_CLUSTER_OBJECT_NAMESPACE=self.namespace, POD_NAMESPACE=self.namespace
        )
        kubeconfig = self.cluster.kubeconfig
        self.procs.append(
            KedaProcess(
                "keda-operator",
                [
                    str(self.bin_dir / "keda-operator"),
                    "--leader-elect=false",
                    f"--metrics-bind-address=127.0.0.1:{free_port()}",
                    f"--health-probe-bind-address=127.0.0.1:{probe_port}",
                    f"--metrics-service-bind-address=127.0.0.1:{grpc_port}",
                    f"--cert-dir={self.certs}",
                    "--enable-cert-rotation=false",
                    "--enable-webhook-patching=false",
                    "--enable-apiservice-patching=false",
                    "--zap-log-level=info",
                ],
                env,
                self.dir / "keda-operator.log",
            )
        )
        self.procs.append(
            KedaProcess(
                "keda-adapter",
                [
                    str(self.bin_dir / "keda-adapter"),
                    f"--bind-address={self.address.ip}",
                    f"--secure-port={adapter_port}",
                    f"--tls-cert-file={self.certs / 'tls.crt'}",
                    f"--tls-private-key-file={self.certs / 'tls.key'}",
                    f"--cert-dir={self.certs}",  # the gRPC client's ca.crt, tls.crt, tls.key
                    f"--lister-kubeconfig={kubeconfig}",
                    f"--authentication-kubeconfig={kubeconfig}",
                    f"--authorization-kubeconfig={kubeconfig}",
                    f"--metrics-service-address=127.0.0.1:{grpc_port}",
                    "--metrics-service-grpc-authority=keda-operator",
                    f"--port={free_port()}",
                    "--zap-log-level=info",
                ],
                env,
                self.dir / "keda-adapter.log",
            )
        )
        self._wait(lambda: http_ok(f"http://127.0.0.1:{probe_port}/readyz"), timeout, "keda-operator /readyz")
        self._register(adapter_port)
        self._wait(self.available, timeout, f"APIService {APISERVICE} Available")
        return self

    def stop(self) -> None:
        # ScaledObjects first, while the operator runs to remove its finalizer (finalizer.keda.sh)
        # and its HPAs: a ScaledObject left with it would hold the namespace in Terminating.
        self._remove_scaled_objects()
        # Then the APIService: once the adapter is gone an APIService that names it would make
        # discovery incomplete, and namespace deletion waits on complete discovery.
        if self.registered:
            self._remove_apiservice()
        for p in reversed(self.procs):
            p.stop()
        if self.address is not None:
            self.address.release()

    # --- the aggregated API ---

    def _register(self, port: int) -> None:
        assert self.address is not None
        ns = self.namespace
        ca = base64.b64encode((self.certs / "ca.crt").read_bytes()).decode()
        docs = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": ns, "labels": E2E_LABEL},
                "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{SERVICE}-local",
                    "namespace": ns,
                    "labels": {
                        **E2E_LABEL,
                        "kubernetes.io/service-name": SERVICE,
                        "endpointslice.kubernetes.io/managed-by": "agentfleet-e2e",
                    },
                },
                "addressType": "IPv4",
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [self.address.ip], "conditions": {"ready": True}}],
            },
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": APISERVICE, "labels": E2E_LABEL},
                "spec": {
                    "service": {"name": SERVICE, "namespace": ns, "port": 443},
                    "group": "external.metrics.k8s.io",
                    "version": "v1beta1",
                    "caBundle": ca,
                    "groupPriorityMinimum": 100,
                    "versionPriority": 100,
                },
            },
        ]
        self.cluster.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
        self.registered = True

    def _remove_scaled_objects(self) -> None:
        ns = self.namespace
        self.cluster.run("-n", ns, "delete", "scaledobjects.keda.sh", "--all", "--timeout=60s", check=False, timeout=90)
        # The operator did not finish in time (or had exited): drop its finalizer ourselves.
        for name in self.cluster.run(
            "-n", ns, "get", "scaledobjects.keda.sh", "-o", "name", check=False
        ).stdout.split():
            self.cluster.run(
                "-n", ns, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
            )

    def _remove_apiservice(self) -> None:
        self.cluster.run("delete", "apiservice", APISERVICE, "--ignore-not-found", "--timeout=30s", check=False)

    def available(self) -> bool:
        obj = self.cluster.run("get", "apiservice", APISERVICE, "-o", "json", check=False)
        if obj.returncode != 0:
            return False
        conds = json.loads(obj.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

    def external_metric(self, metric: str, scaled_object: str) -> list[dict[str, Any]]:
        """The metric's items as the HPA controller reads them, through the kube-apiserver."""
        path = (
            f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{self.namespace}/{metric}"
            f"?labelSelector=scaledobject.keda.sh%2Fname%3D{scaled_object}"
        )
        return list(json.loads(self.cluster.run("get", "--raw", path).stdout).get("items", []))

    # --- helpers ---

    def _wait(self, predicate: Any, timeout: float, desc: str) -> None:
        def holds() -> Any:
            for p in self.procs:
                if not p.alive():
                    pytest.fail(
                        f"{p.name} exited with {p.proc.returncode} while waiting for {desc}:\n{p.tail()}", pytrace=False
                    )
            return predicate()

        poll(holds, timeout, desc, fail=lambda m: pytest.fail(m, pytrace=False), last=self.tails)

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self.procs)
