"""The Helm chart with a real helm (built from Go modules by e2e/cluster/helm.sh) and the run's private
kube-apiserver: lint, schema validation, what each value renders, and the rendered chart applied
server-side, with `kubectl auth can-i` proving the operator's ServiceAccount can do each thing
permissions.py lists and nothing beyond it. That the rendered operator pod is admitted under Pod
Security "restricted" and runs needs the controllers and a node: e2e/tests/test_chart.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from agentfleet import permissions
from e2e.harness.helm import CHART, apply_rendered, by_kind, can_i, remove_cluster_scoped, run_helm, template

pytestmark = pytest.mark.integration

# --- helm lint and the values schema -------------------------------------------------------------


def test_helm_lint_passes_strict(helm: str) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout
    out = run_helm(
        helm,
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "monitoring.podMonitors.enabled=true,monitoring.dashboard.enabled=true,operator.watchNamespaces={a,b}",
    )
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    "bad",
    [
        "operator.workers=0",
        "image.pullPolicy=Sometimes",
        "operator.watchNamespaces={Not_A_Namespace}",
        "securityContext.runAsUser=0",
        "operator.typo=1",
        "operator.logLevel=TRACE",
    ],
)
def test_schema_rejects_bad_values(helm: str, bad: str) -> None:
    proc = run_helm(helm, "template", "af", str(CHART), "--set", bad, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr.lower(), proc.stderr


# --- what the values render ------------------------------------------------------------------------


def test_default_render(helm: str) -> None:
    docs = template(helm)
    kinds = sorted(d["kind"] for d in docs)
    # Least privilege by default: the release's namespace only (RoleBindings for the namespaced and
    # Secret rules), a ClusterRole for nodes and CRDs, and a Role for the leader-election Lease.
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 3
        + ["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment", "Role"]
        + ["RoleBinding"] * 3
    )
    assert sorted((rb["metadata"]["namespace"], rb["roleRef"]["name"]) for rb in by_kind(docs, "RoleBinding")) == [
        ("agentfleet-system", "af-agentfleet-leader"),
        ("agentfleet-system", "af-agentfleet-namespaced"),
        ("agentfleet-system", "af-agentfleet-secrets"),
    ]
    for crd in by_kind(docs, "CustomResourceDefinition"):
        ann = crd["metadata"]["annotations"]
        assert ann["argocd.argoproj.io/sync-wave"] == "-10"
        assert ann["helm.sh/resource-policy"] == "keep"
        assert ann["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    (dep,) = by_kind(docs, "Deployment")
    spec = dep["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"] == {
        "type": "RuntimeDefault"
    }
    (c,) = pod["containers"]
    assert c["command"] == ["python", "-m", "agentfleet.manager"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["AGENTFLEET_RUNTIME_IMAGE"] == c["image"] == "ghcr.io/agentfleet/agentfleet:0.1.0"
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert [a for a in c["args"] if a.startswith("--namespace")] == ["--namespace=agentfleet-system"]
    assert "--leader-elect" in c["args"] and "--lease-name=af-agentfleet" in c["args"]
    assert {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]


def test_cluster_wide_is_an_opt_in(helm: str) -> None:
    docs = template(helm, "operator.clusterWide=true")
    assert [rb["roleRef"]["name"] for rb in by_kind(docs, "RoleBinding")] == ["af-agentfleet-leader"]
    assert sorted(b["roleRef"]["name"] for b in by_kind(docs, "ClusterRoleBinding")) == [
        "af-agentfleet",
        "af-agentfleet-namespaced",
        "af-agentfleet-secrets",
    ]
    (dep,) = by_kind(docs, "Deployment")
    assert not any(a.startswith("--namespace") for a in dep["spec"]["template"]["spec"]["containers"][0]["args"])
    proc = run_helm(
        helm,
        "template",
        "af",
        str(CHART),
        "--set",
        "operator.clusterWide=true,operator.watchNamespaces={a}",
        check=False,
    )
    assert proc.returncode != 0 and "leave operator.watchNamespaces empty" in proc.stderr


def test_without_leader_election_one_replica_and_recreate(helm: str) -> None:
    docs = template(helm, "operator.leaderElection.enabled=false")
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert by_kind(docs, "Role") == []


def test_crds_can_be_left_out(helm: str) -> None:
    assert by_kind(template(helm, "crds.install=false"), "CustomResourceDefinition") == []
    for crd in by_kind(template(helm, "crds.keep=false", "crds.syncWave=-3"), "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-3"}


def test_cluster_role_is_permissions_py(helm: str) -> None:
    docs = template(helm)
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "ClusterRole")}
    cluster_rules = permissions.rules("cluster") + permissions.rules("namespaces")
    strip = [{k: v for k, v in r.items() if k != "why"} for r in cluster_rules]
    assert roles["af-agentfleet"]["rules"] == strip
    assert roles["af-agentfleet-namespaced"]["rules"] == [
        {k: v for k, v in r.items() if k != "why"} for r in permissions.rules("namespaced")
    ]
    (lease,) = by_kind(docs, "Role")
    assert lease["rules"] == [{k: v for k, v in r.items() if k != "why"} for r in permissions.rules("leader")]
    assert roles["af-agentfleet-secrets"]["rules"] == [
        {k: v for k, v in r.items() if k != "why"} for r in permissions.rules("secrets")
    ]


def test_watch_namespaces_limit_secrets_and_add_namespace_watch(helm: str) -> None:
    docs = template(helm, "operator.watchNamespaces={team-a,team-b}")
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    rbs = [rb for rb in by_kind(docs, "RoleBinding") if rb["roleRef"]["name"] != "af-agentfleet-leader"]
    assert sorted((rb["metadata"]["namespace"], rb["roleRef"]["name"]) for rb in rbs) == [
        (ns, f"af-agentfleet-{role}") for ns in ("team-a", "team-b") for role in ("namespaced", "secrets")
    ]
    assert [crb["metadata"]["name"] for crb in by_kind(docs, "ClusterRoleBinding")] == ["af-agentfleet"]
    (role,) = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"] == "af-agentfleet"]
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in role["rules"]


def test_monitoring(helm: str) -> None:
    assert by_kind(template(helm), "PodMonitor") == [] and by_kind(template(helm), "ConfigMap") == []
    docs = template(
        helm,
        "monitoring.podMonitors.enabled=true",
        "monitoring.dashboard.enabled=true",
        "monitoring.podMonitors.labels.release=kube-prometheus",
    )
    pms = {p["metadata"]["name"]: p for p in by_kind(docs, "PodMonitor")}
    assert set(pms) == {"af-agentfleet-vllm", "af-agentfleet-runtime"}
    assert all(p["metadata"]["labels"]["release"] == "kube-prometheus" for p in pms.values())
    endpoints = pms["af-agentfleet-runtime"]["spec"]["podMetricsEndpoints"]
    assert [(e["port"], e.get("scheme", "http")) for e in endpoints] == [
        ("metrics", "http"),
        ("http", "http"),
        ("http", "https"),  # the task API of a fleet with spec.api.tls
    ]
    # Each task API pod is scraped once: in HTTPS exactly where render labels it so (API_SCHEME_LABEL).
    scheme = "__meta_kubernetes_pod_label_agentfleet_io_api_scheme"
    picks = [[(r["action"], r["regex"]) for r in e["relabelings"] if r["sourceLabels"] == [scheme]] for e in endpoints]
    assert picks == [[], [("drop", "https")], [("keep", "https")]]
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["agentfleet.json"]) == json.loads(
        (CHART / "dashboards" / "agentfleet.json").read_text()
    )


# --- on the real API server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(kube, helm) -> Iterator[dict[str, str]]:
    """The rendered chart applied server-side into a PSA-restricted namespace, and a second namespace
    it must not reach."""
    suffix = uuid.uuid4().hex[:6]
    ns, release, other = f"it-chart-{suffix}", f"chart-{suffix}", f"it-chart-other-{suffix}"
    kube.run("create", "namespace", ns)
    kube.run("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    kube.run("create", "namespace", other)
    apply_rendered(kube, helm, release, ns, "image.tag=e2e")
    yield {"ns": ns, "release": release, "sa": f"system:serviceaccount:{ns}:{release}-agentfleet", "other": other}
    remove_cluster_scoped(kube, release)


def test_operator_service_account_can_do_what_permissions_lists(kube, installed) -> None:
    sa, ns, other = installed["sa"], installed["ns"], installed["other"]
    missing, beyond = [], []
    for need in permissions.NEEDS:
        resource, _, sub = need.resource.partition("/")
        qualified = f"{resource}.{need.group}" if need.group else resource
        for verb in need.verbs:
            # By default the chart serves only its own namespace: namespaced rules hold there, and
            # nowhere else.
            where = None if need.scope in ("cluster", "namespaces") else ns
            if not can_i(kube, sa, verb, qualified, namespace=where, subresource=sub or None):
                missing.append((verb, qualified, sub))
            if where is not None and can_i(kube, sa, verb, qualified, namespace=other, subresource=sub or None):
                beyond.append((verb, qualified, sub))
    assert missing == []
    assert beyond == []


@pytest.mark.parametrize(
    ("verb", "resource", "namespaced", "sub"),
    [
        ("*", "*", False, None),
        ("delete", "secrets", True, None),
        ("list", "secrets", False, None),
        ("watch", "secrets", True, None),
        ("update", "secrets", True, None),
        ("patch", "secrets", True, None),
        ("update", "pods", False, None),
        ("create", "pods", True, "exec"),
        ("delete", "customresourcedefinitions.apiextensions.k8s.io", False, None),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", False, None),
        ("create", "clusterroles.rbac.authorization.k8s.io", False, None),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", False, None),
        ("escalate", "roles.rbac.authorization.k8s.io", True, None),
        ("bind", "roles.rbac.authorization.k8s.io", True, None),
        ("impersonate", "serviceaccounts", True, None),
        ("delete", "nodes", False, None),
        ("patch", "nodes", False, None),
        ("delete", "agentfleets.agentfleet.io", True, None),
        ("create", "modelreplicasets.agentfleet.io", True, None),
        ("delete", "deployments.apps", True, None),
        ("list", "configmaps", False, None),
        ("create", "serviceaccounts", True, "token"),
    ],
)
def test_operator_service_account_cannot(
    kube, installed, verb: str, resource: str, namespaced: bool, sub: str | None
) -> None:
    assert not can_i(
        kube, installed["sa"], verb, resource, namespace=installed["other"] if namespaced else None, subresource=sub
    )


def test_secrets_are_readable_cluster_wide_only_in_the_opt_in_cluster_wide_mode(kube, helm, installed) -> None:
    # Default (installed): its own namespace only, by name, never list.
    sa = installed["sa"]
    assert can_i(kube, sa, "get", "secrets", namespace=installed["ns"])
    assert not can_i(kube, sa, "get", "secrets", namespace=installed["other"])
    assert not can_i(kube, sa, "list", "secrets", namespace=installed["ns"])
    assert can_i(kube, sa, "watch", "namespaces")  # kopf follows the namespaces it serves
    # clusterWide=true: get by name anywhere (a VectorIndex or AgentFleet in any namespace names
    # its Secrets), still never list.
    suffix = uuid.uuid4().hex[:6]
    wide = f"chartcw-{suffix}"
    rendered = run_helm(
        helm,
        "template",
        wide,
        str(CHART),
        "--namespace",
        installed["ns"],
        "--set",
        "crds.install=false,operator.clusterWide=true",
    ).stdout
    kube.run("apply", "--server-side", "--field-manager=helm-e2e", "-f", "-", input=rendered, timeout=120)
    try:
        sa_wide = f"system:serviceaccount:{installed['ns']}:{wide}-agentfleet"
        assert can_i(kube, sa_wide, "get", "secrets", namespace=installed["other"])
        assert can_i(kube, sa_wide, "create", "pods", namespace=installed["other"])
        assert not can_i(kube, sa_wide, "list", "secrets", namespace=installed["other"])
        assert not can_i(kube, sa_wide, "watch", "namespaces")
    finally:
        remove_cluster_scoped(kube, wide)
    # With watchNamespaces the Secret role is bound only there.
    release, served, unserved = f"chartns-{suffix}", installed["other"], installed["ns"]
    rendered = run_helm(
        helm,
        "template",
        release,
        str(CHART),
        "--namespace",
        installed["ns"],
        "--set",
        f"crds.install=false,operator.watchNamespaces={{{served}}}",
    ).stdout
    kube.run("apply", "--server-side", "--field-manager=helm-e2e", "-f", "-", input=rendered, timeout=120)
    try:
        sa2 = f"system:serviceaccount:{installed['ns']}:{release}-agentfleet"
        assert can_i(kube, sa2, "get", "secrets", namespace=served)
        assert can_i(kube, sa2, "create", "secrets", namespace=served)
        assert not can_i(kube, sa2, "get", "secrets", namespace=unserved)
        assert not can_i(kube, sa2, "get", "secrets", namespace="kube-system")
        assert can_i(kube, sa2, "watch", "namespaces")
    finally:
        remove_cluster_scoped(kube, release)
