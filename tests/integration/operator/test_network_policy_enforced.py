"""The replicas' NetworkPolicy as a real enforcer applies it (issue 57, finding 7).

The e2e node runs no policy-enforcing CNI, so this test builds one node of its own: a private
network namespace holding a bridge, a kube-apiserver with its etcd, and kube-router's network
policy controller (iptables + ipset, the only enforcer of the Go module proxy that runs on this
kernel: kube-network-policies needs nftables' queue, which the kernel lacks). Each "pod" is a
network namespace on the bridge, its Pod object (node, IP, labels) written to the API server; the
"replica" serves HTTP on the vLLM port. The policy is what ``render_network_policy`` renders.

What it shows: with the rendered policy, pods of another namespace carrying the operator's,
Prometheus's, a worker's or the gateway's labels cannot open a connection to the replica, while
the operator (its namespace), Prometheus (its namespace), the fleet's worker, the gateway (its
namespace) and the endpoint picker can; with 4df5bad's policy (``namespaceSelector: {}``) the
forged pods get in. Needs root, ``ip``, the control plane binaries e2e/cluster/cluster.sh caches
and kube-router (``e2e/cluster/kube-router.sh`` builds it); skipped without them.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agentfleet_contract import ModelReplicaSet

from agentfleet.render.common import OPERATOR_POD_LABELS, PROMETHEUS_POD_LABELS, Peer, Peers
from agentfleet.render.modelreplicaset import render_network_policy

pytestmark = pytest.mark.integration

CACHE = Path(os.environ.get("AGENTFLEET_CACHE", Path.home() / ".cache" / "agentfleet"))
K8S_BIN = Path(os.environ.get("AGENTFLEET_K8S_BIN", CACHE / "k8s-v1.36.3" / "bin"))
KUBE_ROUTER = Path(os.environ.get("AGENTFLEET_KUBE_ROUTER", CACHE / "kube-router-v2.1.0" / "bin" / "kube-router"))
SUBNET = "10.77.0"
NODE_IP = f"{SUBNET}.1"
PORT = 8000
GATEWAY_LABELS = {"app.kubernetes.io/name": "envoy", "gateway": "inference"}
PICKER_LABELS = {"app": "llama-epp"}
PEERS = Peers(
    operator=Peer("agentfleet-system", OPERATOR_POD_LABELS),
    prometheus=Peer("monitoring", PROMETHEUS_POD_LABELS),
    gateway=Peer("gateway-system", GATEWAY_LABELS),
)


def mrs(pool: bool = False) -> ModelReplicaSet:
    spec: dict[str, Any] = {"model": {"name": "org/llama"}}
    if pool:
        spec["inferencePool"] = {"endpointPicker": {"serviceName": "llama-epp"}}
    meta = {"name": "llama", "namespace": "serving", "uid": "u1"}
    return ModelReplicaSet.model_validate(
        {"apiVersion": "agentfleet.io/v1alpha1", "kind": "ModelReplicaSet", "metadata": meta, "spec": spec}
    )


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    netns: str = ""


# The replica, and every client: who is meant to get in, and pods that forge their labels.
REPLICA = Pod("llama-r0", "serving", {"agentfleet.io/modelreplicaset": "llama", "agentfleet.io/serving": "true"}, "10")
ALLOWED = [
    Pod("operator", "agentfleet-system", dict(OPERATOR_POD_LABELS), "20"),
    Pod("prometheus", "monitoring", dict(PROMETHEUS_POD_LABELS), "21"),
    Pod("worker", "serving", {"agentfleet.io/model": "llama"}, "22"),
    Pod("gateway", "gateway-system", dict(GATEWAY_LABELS), "23"),
    Pod("epp", "serving", dict(PICKER_LABELS), "24"),
]
FORGED = [
    Pod("fake-operator", "attacker", dict(OPERATOR_POD_LABELS), "30"),
    Pod("fake-prometheus", "attacker", dict(PROMETHEUS_POD_LABELS), "31"),
    Pod("fake-worker", "attacker", {"agentfleet.io/model": "llama"}, "32"),
    Pod("fake-gateway", "attacker", dict(GATEWAY_LABELS), "33"),
    Pod("plain", "serving", {"app": "debug"}, "34"),
]


def _need() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables", "ipset"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    for b in (K8S_BIN / "etcd", K8S_BIN / "kube-apiserver", K8S_BIN / "kubectl", KUBE_ROUTER):
        if not b.exists():
            return f"needs {b} (e2e/cluster/kube-router.sh builds kube-router)"
    return None


@dataclass
class Node:
    netns: str
    tmp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    netnses: list[str] = field(default_factory=list)

    def sh(self, *cmd: str, netns: str | None = None, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
        full = ["ip", "netns", "exec", netns or self.netns, *cmd]
        return subprocess.run(full, check=check, capture_output=True, text=True, **kw)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        out = self.sh(str(K8S_BIN / "kubectl"), f"--kubeconfig={self.tmp / 'kubeconfig'}", *args, input=stdin)
        return out.stdout

    def start(self, name: str, *cmd: str, netns: str | None = None) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(["ip", "netns", "exec", netns or self.netns, *cmd], stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def connects(self, client: Pod, target: Pod, timeout: float = 1.5) -> bool:
        r = self.sh(
            "curl", "-s", "-o", "/dev/null", "-m", str(timeout), "-w", "%{http_code}",
            f"http://{SUBNET}.{target.ip}:{PORT}/metrics", netns=client.netns, check=False,
        )  # fmt: skip
        return r.stdout.strip() == "200"


def _plumb(node: Node, pods: list[Pod]) -> None:
    node.sh("ip", "link", "set", "lo", "up")
    node.sh("ip", "link", "add", "br0", "type", "bridge")
    node.sh("ip", "addr", "add", f"{NODE_IP}/24", "dev", "br0")
    node.sh("ip", "link", "set", "br0", "up")
    # Bridged pod-to-pod traffic passes the node's iptables (per network namespace since 5.3).
    node.sh("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
    for i, pod in enumerate(pods):
        pod.netns = f"{node.netns}-p{i}"
        subprocess.run(["ip", "netns", "add", pod.netns], check=True)
        node.netnses.append(pod.netns)
        node.sh("ip", "link", "add", f"vp{i}", "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        node.sh("ip", "link", "set", f"vp{i}", "master", "br0")
        node.sh("ip", "link", "set", f"vp{i}", "up")
        node.sh("ip", "addr", "add", f"{SUBNET}.{pod.ip}/24", "dev", "eth0", netns=pod.netns)
        node.sh("ip", "link", "set", "eth0", "up", netns=pod.netns)
        node.sh("ip", "link", "set", "lo", "up", netns=pod.netns)


def _control_plane(node: Node) -> None:
    t = node.tmp
    subprocess.run(["openssl", "genrsa", "-out", str(t / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(t / "sa.key"), "-pubout", "-out", str(t / "sa.pub")], check=True,
                   capture_output=True)  # fmt: skip
    token = uuid.uuid4().hex
    (t / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    (t / "kubeconfig").write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    node.start("etcd", str(K8S_BIN / "etcd"), "--data-dir", str(t / "etcd"), "--listen-client-urls",
               "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
               "--listen-peer-urls", "http://127.0.0.1:2380")  # fmt: skip
    api = node.start(
        "kube-apiserver", str(K8S_BIN / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
        f"--advertise-address={NODE_IP}", "--bind-address=127.0.0.1", "--secure-port=6443", f"--cert-dir={t / 'certs'}",
        f"--token-auth-file={t / 'tokens.csv'}", "--authorization-mode=AlwaysAllow",
        "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={t / 'sa.pub'}",
        f"--service-account-signing-key-file={t / 'sa.key'}", "--service-cluster-ip-range=10.96.0.0/16",
        "--disable-admission-plugins=ServiceAccount",
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and api.poll() is None:
        r = node.sh(str(K8S_BIN / "kubectl"), f"--kubeconfig={t / 'kubeconfig'}", "get", "--raw=/readyz", check=False)
        if r.returncode == 0:
            return
        time.sleep(2)
    raise AssertionError("kube-apiserver not ready: " + (t / "kube-apiserver.log").read_text()[-2000:])


def _objects(node: Node, pods: list[Pod]) -> None:
    for ns in sorted({p.namespace for p in pods}):
        node.kubectl("create", "namespace", ns)
    node.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "np-node"}, "spec": {"podCIDR": f"{SUBNET}.0/24"}}
    ))  # fmt: skip
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": "np-node"}]
        }
    }
    node.kubectl("patch", "node", "np-node", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    for pod in pods:
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels},
            "spec": {"nodeName": "np-node", "containers": [{"name": "c", "image": "none"}]},
        }
        node.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
        ip = f"{SUBNET}.{pod.ip}"
        st = {"status": {"phase": "Running", "hostIP": NODE_IP, "podIP": ip, "podIPs": [{"ip": ip}]}}
        node.kubectl("patch", "pod", "-n", pod.namespace, pod.name, "--subresource=status", "--type=merge",
                     "-p", json.dumps(st))  # fmt: skip


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    why = _need()
    if why:
        pytest.skip(why)
    name = f"afnp{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="af-netpol-"))
    subprocess.run(["ip", "netns", "add", name], check=True)
    n = Node(name, tmp, netnses=[name])
    try:
        pods = [REPLICA, *ALLOWED, *FORGED]
        _plumb(n, pods)
        _control_plane(n)
        _objects(n, pods)
        n.start("replica", sys.executable, "-m", "http.server", str(PORT), "--bind", f"{SUBNET}.{REPLICA.ip}",
                "--directory", str(tmp), netns=REPLICA.netns)  # fmt: skip
        (tmp / "metrics").write_text("vllm:num_requests_running 0\n")
        n.start(
            "kube-router", str(KUBE_ROUTER), f"--kubeconfig={tmp / 'kubeconfig'}", "--hostname-override=np-node",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--iptables-sync-period=5s", "--metrics-port=0", "--health-port=0",
        )  # fmt: skip
        yield n
    finally:
        for p in reversed(n.procs):
            p.terminate()
        for p in n.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for ns in reversed(n.netnses):
            subprocess.run(["ip", "netns", "delete", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _apply_policy(node: Node, policy: dict[str, Any]) -> None:
    policy = copy.deepcopy(policy)
    policy["metadata"].pop("ownerReferences", None)
    node.kubectl("apply", "-f", "-", stdin=json.dumps(policy))


def _reach(node: Node) -> dict[str, bool]:
    return {p.name: node.connects(p, REPLICA) for p in [*ALLOWED, *FORGED]}


def _settle(node: Node, want: dict[str, bool], timeout: float = 90) -> dict[str, bool]:
    """Who reaches the replica, once kube-router has applied the policy (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    got = _reach(node)
    while got != want and time.monotonic() < deadline:
        time.sleep(3)
        got = _reach(node)
    return got


def test_the_rendered_policy_blocks_forged_labels_and_admits_the_operator_prometheus_gateway_and_picker(
    node: Node,
) -> None:
    # Without a policy every pod reaches the replica (once its server listens): the test's network
    # itself lets them through.
    everyone = {p.name: True for p in [*ALLOWED, *FORGED]}
    assert _settle(node, everyone, timeout=60) == everyone, _reach(node)
    rendered = render_network_policy(mrs(pool=True), PEERS, PICKER_LABELS)
    _apply_policy(node, rendered)
    want = {**{p.name: True for p in ALLOWED}, **{p.name: False for p in FORGED}}
    got = _settle(node, want)
    assert got == want, (got, (node.tmp / "kube-router.log").read_text()[-3000:])


def test_4df5bads_policy_let_forged_labels_in(node: Node) -> None:
    """The same enforcer with the policy as 4df5bad rendered it: any namespace's pods with the
    operator's or Prometheus's labels reached every route of the replica."""
    old = render_network_policy(mrs(), PEERS)
    for peer in old["spec"]["ingress"][0]["from"]:
        if "namespaceSelector" in peer:
            peer["namespaceSelector"] = {}
    _apply_policy(node, old)
    want = {
        "operator": True,
        "prometheus": True,
        "worker": True,
        "gateway": False,
        "epp": False,
        "fake-operator": True,
        "fake-prometheus": True,
        "fake-worker": False,
        "fake-gateway": False,
        "plain": False,
    }
    got = _settle(node, want)
    assert got == want, (got, (node.tmp / "kube-router.log").read_text()[-3000:])
