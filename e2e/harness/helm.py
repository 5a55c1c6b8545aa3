"""The real helm (built from Go modules by e2e/cluster/helm.sh, cached) and the chart it renders: what
the chart tests of both tiers and the e2e journeys that install the chart share."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "agentfleet"


def build() -> str:
    """helm's path: cached after the first build; a cold build compiles helm (minutes on 2 cores).
    RuntimeError with the script's output when it fails."""
    proc = subprocess.run(
        ["bash", str(ROOT / "e2e" / "cluster" / "helm.sh")],
        capture_output=True,
        text=True,
        timeout=float(os.environ.get("AGENTFLEET_HELM_BUILD_TIMEOUT_S", "2400")),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"e2e/cluster/helm.sh failed:\n{proc.stderr[-4000:]}")
    path = proc.stdout.strip().splitlines()[-1]
    if not Path(path).is_file():
        raise RuntimeError(f"e2e/cluster/helm.sh printed {path!r}, which is no file")
    return path


@pytest.fixture(scope="session")
def helm() -> str:
    """The real helm's path, for the chart tests of both tiers (their conftests import this fixture)."""
    try:
        return build()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/agentfleet-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/agentfleet-helm/config",
        "HELM_DATA_HOME": "/tmp/agentfleet-helm/data",
    }
    proc = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def template(helm: str, *sets: str, release: str = "af", namespace: str = "agentfleet-system") -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(run_helm(helm, *args).stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def apply_rendered(cluster: Any, helm: str, release: str, namespace: str, *sets: str) -> None:
    """``helm template`` applied server-side, as Argo CD syncs the chart."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    rendered = run_helm(helm, *args).stdout
    cluster.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=helm-e2e",
        "-f",
        "-",
        input=rendered,
        timeout=120,
    )


def remove_cluster_scoped(cluster: Any, release: str) -> None:
    """The release's ClusterRoles and bindings (a namespace's deletion leaves them)."""
    for kind in ("clusterrolebinding", "clusterrole"):
        cluster.run("delete", kind, "-l", f"app.kubernetes.io/instance={release}", "--ignore-not-found", check=False)


def can_i(
    cluster: Any, sa: str, verb: str, resource: str, *, namespace: str | None = None, subresource: str | None = None
) -> bool:
    """`kubectl auth can-i --as=<sa>`; for a kind the server does not serve (milvus.io without the
    Milvus Operator) kubectl cannot resolve the group, so the same question goes to the API server
    as a SubjectAccessReview."""
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    if subresource:
        args.append(f"--subresource={subresource}")
    proc = cluster.run(*args, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    if "doesn't have a resource type" not in proc.stderr:
        return answer == "yes"
    name, _, group = resource.partition(".")
    ns_name = sa.split(":")[2]
    attrs = {
        "verb": verb,
        "group": group,
        "resource": name,
        "namespace": namespace or "",
        "subresource": subresource or "",
    }
    sar = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": sa,
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns_name}", "system:authenticated"],
            "resourceAttributes": attrs,
        },
    }
    out = cluster.run("create", "-o", "json", "-f", "-", input=json.dumps(sar))
    return bool(json.loads(out.stdout)["status"].get("allowed"))
