"""NetworkPolicy enforced on the e2e cluster's real node: kube-router's network policy controller.

The real node runs the bridge CNI, which enforces no NetworkPolicy. :func:`enforcer` runs kube-router
v2.1.0's firewall controller alone (``--run-firewall`` without its router and service proxy, which
kube-proxy and the bridge CNI already are) inside the node's network namespace, where the pods' veths,
the bridge and kube-proxy's rules live, against the cluster's API server through the address the node
reaches it by (nodenet.py's forward). It filters with iptables and ipset in that namespace only:
traffic to the node's pods (FORWARD, bridged traffic included since br_netfilter is on there) and
from them (FORWARD, and INPUT for the node's own addresses), as it does on a user's node.

Why kube-router: kube-network-policies v0.8.0 needs nftables' ``queue`` expression, which this kernel
lacks, and Calico is not on the Go module proxy (e2e/cluster/kube-router.sh builds it, cached).
Stopping it leaves its rules behind (it has no cleanup of its own that touches nothing else), so
:func:`clean` deletes its chains, its jumps and its ipsets, and nothing of kube-proxy's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from e2e.harness.procs import Proc

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("AGENTFLEET_CACHE", Path.home() / ".cache" / "agentfleet"))
VERSION = "v2.1.0"
KUBE_ROUTER = Path(os.environ.get("AGENTFLEET_KUBE_ROUTER", CACHE / f"kube-router-{VERSION}" / "bin" / "kube-router"))
SERVICE_CIDR = os.environ.get("AGENTFLEET_SERVICE_CIDR", "10.96.0.0/16")  # e2e/cluster/cluster.sh's
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-NWPLCY-", "KUBE-POD-FW-")  # kube-router's netpol chains
IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-")


def ensure_built(timeout: float = 5400) -> Path:
    """kube-router, built once by e2e/cluster/kube-router.sh (cold: about 50 minutes on 2 busy cores;
    e2e/test.sh builds it before the tier)."""
    if not KUBE_ROUTER.exists():
        subprocess.run(["bash", str(ROOT / "e2e" / "cluster" / "kube-router.sh")], check=True, timeout=timeout)
    return KUBE_ROUTER


def in_node(netns: str, *cmd: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """CMD in the node's network namespace (nsenter, as cluster.sh runs the kubelet: no /sys remount)."""
    return subprocess.run(
        ["nsenter", f"--net={netns}", *cmd], check=check, capture_output=True, text=True, input=stdin, timeout=60
    )


def kubeconfig(cluster, node: dict, path: Path) -> Path:
    """A kubeconfig for the API server at the address the node reaches it by, with the admin client."""
    info = cluster.info
    server = f"https://{node['gateway']}:{urlparse(info['apiserver_url']).port}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": server, "certificate-authority": info["ca_cert"]}}],
        "users": [
            {"name": "admin", "user": {"client-certificate": info["admin_cert"], "client-key": info["admin_key"]}}
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(doc))
    return path


def running_rules(netns: str) -> bool:
    """Whether kube-router's top-level chain is hooked into FORWARD in the namespace."""
    out = in_node(netns, "iptables", "-S", "FORWARD", check=False).stdout
    return "-j KUBE-ROUTER-FORWARD" in out


def clean(netns: str) -> None:
    """Removes kube-router's netpol chains, the jumps to them and its ipsets from the namespace, in
    one iptables-restore (--noflush: kube-proxy's chains stay as they are) and one ipset restore."""
    rules = in_node(netns, "iptables", "-S").stdout.splitlines()
    mine = sorted({r.split()[1] for r in rules if r.startswith("-N ") and r.split()[1].startswith(CHAIN_PREFIXES)})
    batch = ["*filter"]
    for r in rules:
        parts = shlex.split(r)  # its jumps carry quoted comments
        jumps = any(p.startswith(CHAIN_PREFIXES) for p in parts)
        if parts[0] == "-A" and not parts[1].startswith(CHAIN_PREFIXES) and jumps:
            batch.append("-D" + r[2:])  # iptables -S quotes as iptables-restore reads
    batch += [f"-F {c}" for c in mine] + [f"-X {c}" for c in mine] + ["COMMIT", ""]
    if mine:
        in_node(netns, "iptables-restore", "--noflush", stdin="\n".join(batch))
    names = in_node(netns, "ipset", "list", "-n", check=False).stdout.split()
    sets = [n for n in names if n.startswith(IPSET_PREFIXES)]
    if sets:
        in_node(netns, "ipset", "restore", stdin="".join(f"destroy {n}\n" for n in sets))


@contextlib.contextmanager
def enforcer(cluster, node: dict, sync_period: str = "5s") -> Iterator[Proc]:
    """kube-router's policy controller on the real node for the block; its rules gone after it."""
    binary = ensure_built()
    netns = node["netns"]
    if running_rules(netns):
        raise RuntimeError(f"kube-router's rules are already in {netns}: another enforcer runs on the node")
    with tempfile.TemporaryDirectory(prefix="af-kube-router-") as d:
        config = kubeconfig(cluster, node, Path(d) / "kubeconfig")
        args = [
            "nsenter", f"--net={netns}", str(binary), f"--kubeconfig={config}",
            f"--hostname-override={node['name']}", "--run-firewall=true", "--run-router=false",
            "--run-service-proxy=false", "--enable-cni=false", f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--iptables-sync-period={sync_period}", "--metrics-port=0", "--health-port=0",
        ]  # fmt: skip
        proc = Proc(args, log=Path(d) / "kube-router.log", python_path=False, new_session=True)
        try:
            proc.wait_ready(lambda: running_rules(netns), timeout=120, desc="kube-router's rules in the node")
            yield proc
        finally:
            print(proc.tail(30))
            proc.end(kill=False)
            clean(netns)
