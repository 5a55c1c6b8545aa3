"""e2e/cluster/cluster.sh's configuration files (e2e/cluster/config/, filled by its ``render``) and its
``info`` JSON, run by bash without a cluster: a path with quotes or backslashes must survive both."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from e2e.harness.cluster import CLUSTER_SH

CONFIG = CLUSTER_SH.parent / "config"
ODD = 'odd "dir" \\ with\ttab'  # what a careless AGENTFLEET_CLUSTER_DIR could hold


def bash(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``script`` after sourcing cluster.sh's functions (its command dispatch gets ``help``)."""
    prelude = f"set -- help; source {CLUSTER_SH} >/dev/null; "
    return subprocess.run(
        ["bash", "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), **(env or {})},
    )


@pytest.mark.parametrize("real_node", ["0", "1"])
def test_info_is_plain_json_even_for_odd_paths(tmp_path: Path, real_node: str) -> None:
    state = tmp_path / ODD
    proc = subprocess.run(
        ["bash", str(CLUSTER_SH), "info"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(Path.home()),
            "AGENTFLEET_CLUSTER_DIR": str(state),
            "AGENTFLEET_REAL_NODE": real_node,
        },
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["state_dir"] == str(state) and info["kubeconfig"] == str(state / "kubeconfig")
    assert info["ca_cert"] == str(state / "pki" / "ca.crt")
    assert set(info["health_urls"]) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    if real_node == "1":
        assert info["real_node"]["pod_logs"] == str(state / "node" / "pod-logs")
    else:
        assert info["real_node"] is None


def test_each_template_is_filled_completely_and_parses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "NODE_DIR=/state/node; PKI=/pki; NODE_IP=10.0.0.2; NODE_GW=10.0.0.1; CGROUP_ROOT=/af; NETNS=af-1; "
        "NODE_NAME=n1; NODE_POD_CIDR=10.1.0.0/24; PAUSE_IMAGE=pause:1; REAL_NODE_LABEL=agentfleet.io/real; "
        "EGRESS_SOCKET=/run/e.sock; "
        f"render kubelet.yaml {out}/kubelet.yaml CGROUP_ROOT NODE_DIR NODE_GW NODE_IP PKI REAL_NODE_LABEL && "
        f"render kube-proxy.yaml {out}/kube-proxy.yaml NODE_DIR NODE_NAME NODE_POD_CIDR && "
        f"render cni.conflist {out}/cni.conflist NETNS NODE_DIR NODE_POD_CIDR && "
        f"render egress-selector.yaml {out}/egress.yaml EGRESS_SOCKET && "
        f"server=https://h:6443 user=u ca_data=Q0E= cert_data=Y2VydA== key_data=a2V5 && "
        f"render kubeconfig.yaml {out}/kubeconfig server user ca_data cert_data key_data"
    )
    proc = bash(script)
    assert proc.returncode == 0, proc.stderr
    kubelet = yaml.safe_load((out / "kubelet.yaml").read_text())
    assert kubelet["address"] == "10.0.0.2" and kubelet["podLogsDir"] == "/state/node/pod-logs"
    assert kubelet["registerWithTaints"] == [{"key": "agentfleet.io/real", "value": "true", "effect": "NoSchedule"}]
    assert yaml.safe_load((out / "kube-proxy.yaml").read_text())["clusterCIDR"] == "10.1.0.0/24"
    kubeconfig = yaml.safe_load((out / "kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://h:6443"
    assert kubeconfig["users"][0] == {
        "name": "u",
        "user": {"client-certificate-data": "Y2VydA==", "client-key-data": "a2V5"},
    }
    assert yaml.safe_load((out / "egress.yaml").read_text())["egressSelections"][0]["connection"]["transport"] == {
        "uds": {"udsName": "/run/e.sock"}
    }
    # Every template the script names exists, and every ${...} in them is a variable render is given.
    assert {p.name for p in CONFIG.iterdir()} >= {"ca.cnf", "containerd.toml", "kubelet.yaml", "kubeconfig.yaml"}


def test_a_placeholder_the_caller_did_not_name_fails_the_render(tmp_path: Path) -> None:
    proc = bash(f"NODE_IP=1.2.3.4; render kubelet.yaml {tmp_path}/k.yaml NODE_IP")
    assert proc.returncode != 0
    assert "kubelet.yaml: unfilled placeholder(s)" in proc.stderr and "${PKI}" in proc.stderr
    assert not (tmp_path / "k.yaml").exists()
