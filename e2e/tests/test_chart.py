"""The rendered Helm chart on the e2e cluster: applied server-side into a Pod-Security-"restricted"
namespace, its Deployment's operator pod is made by the ReplicaSet controller, admitted, and run by
kwok on a CPU node. What helm renders and what the operator's ServiceAccount may do need only the API
server: tests/integration/api/test_chart_it.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from agentfleet_contract import RESOURCES

from e2e.harness.helm import apply_rendered, remove_cluster_scoped

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def installed(cluster, helm) -> Iterator[dict[str, str]]:
    """The rendered chart applied server-side into a PSA-restricted namespace; the operator pod
    lands on a kwok CPU node."""
    suffix = uuid.uuid4().hex[:6]
    ns, release = f"e2e-chart-{suffix}", f"chart-{suffix}"
    cluster.run("create", "namespace", ns)
    cluster.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "agentfleet.io/e2e=true")
    apply_rendered(cluster, helm, release, ns, "image.tag=e2e")
    yield {"ns": ns, "release": release}
    remove_cluster_scoped(cluster, release)
    cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


def test_rendered_chart_is_accepted_and_the_operator_pod_is_admitted(cluster, installed) -> None:
    ns, release = installed["ns"], installed["release"]
    dep = cluster.json("get", "-n", ns, "deployment", f"{release}-agentfleet")
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    for res in RESOURCES:
        crd = cluster.json("get", "crd", res.crd_name)
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-10"

    # The ReplicaSet controller creates the pod only if Pod Security "restricted" admits it; kwok
    # then runs it on a CPU node.
    def running() -> bool:
        pods = cluster.json("get", "-n", ns, "pods", "-l", "app.kubernetes.io/component=operator")["items"]
        return bool(pods) and pods[0]["status"].get("phase") == "Running"

    try:
        cluster.wait_for(running, timeout=90, desc="operator pod Running under kwok")
    except Exception:
        rs = cluster.run("get", "-n", ns, "replicasets,pods,events", "-o", "wide", check=False)
        raise AssertionError(f"operator pod not running:\n{rs.stdout}\n{rs.stderr}") from None
