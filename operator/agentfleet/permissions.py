"""Every Kubernetes permission the operator uses, with the call that needs it: the one place the
chart's RBAC comes from (`python -m agentfleet.chartgen` renders it into
charts/agentfleet/templates/_rbac_rules.tpl; a unit test fails when either drifts, and another when
a kind the code watches or renders has no rule here).

Each need names the controller that has it and why, so a rule can be dropped when its caller goes.
Verbs follow from the client calls: server-side apply is `patch`, plus `create` because an apply of
a missing object creates it; kopf watches (`kopf.on.event`, `kopf.index`) are `list` + `watch`;
`Kube.get` is `get`; deletes of our own children are `delete`. No `update` (nothing PUTs), no
`deletecollection`, no wildcard.

Scopes:
- ``cluster``: cluster-scoped kinds, bound cluster-wide in every mode: CRDs (kopf scans them) and
  nodes, read-only (the planner's GPU inventory).
- ``namespaced``: everything the controllers watch, apply and delete in the namespaces they serve.
  By default the chart binds it with a RoleBinding in each served namespace (its own namespace when
  none is given); cluster-wide (a ClusterRoleBinding) only with the opt-in ``operator.clusterWide``.
- ``secrets``: Secrets only, bound like ``namespaced``. Never list/watch (the operator cannot
  enumerate Secrets, only read the ones a spec names, and uses one only if it carries the consent
  label), never update/patch/delete (the Secrets it generates are created once and go with their
  owner by ownerReference).
- ``namespaces``: kopf lists and watches Namespaces only when it serves a given set of namespaces
  (kopf/_core/reactor/observation.py: namespace_observer); cluster-wide it does not.
- ``leader``: the leader-election Lease, in the operator's own namespace only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["cluster", "namespaced", "secrets", "namespaces", "leader"]

READ = ("get", "list", "watch")
OWN = ("get", "list", "watch", "create", "patch", "delete")  # children the operator applies and removes


@dataclass(frozen=True)
class Need:
    who: str  # the code that makes the call
    group: str  # API group, "" for core
    resource: str  # plural, or plural/subresource
    verbs: tuple[str, ...]
    why: str
    scope: Scope = "namespaced"


NEEDS: tuple[Need, ...] = (
    # kopf itself (manager.py: standalone, so no peering objects) and leader election (leader.py).
    Need(
        "kopf",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "kopf scans CRDs to find the resources it serves",
        scope="cluster",
    ),
    Need(
        "kopf",
        "",
        "events",
        ("create",),
        "kopf posts WARNING+ log lines as Events; Kube.event and kopf.event post the controllers' own",
    ),
    Need(
        "kopf",
        "",
        "namespaces",
        ("list", "watch"),
        "kopf follows namespaces when it serves a given set of them",
        scope="namespaces",
    ),
    Need(
        "manager",
        "coordination.k8s.io",
        "leases",
        ("get", "create", "patch"),
        "leader election: the Lease is read, created once, renewed by conditional merge patch",
        scope="leader",
    ),
    # The three kinds: kopf watches them (on.event / index) and patches its finalizer and progress
    # annotations (VectorIndex delete handler); controllers get them and write status.
    Need(
        "kopf",
        "agentfleet.io",
        "modelreplicasets",
        ("get", "list", "watch", "patch"),
        "watched and indexed; read by the MRS controller and the autoscaler",
    ),
    Need(
        "kopf",
        "agentfleet.io",
        "vectorindexes",
        ("get", "list", "watch", "patch"),
        "watched; kopf's finalizer for the drop-collection delete handler",
    ),
    Need(
        "kopf",
        "agentfleet.io",
        "agentfleets",
        ("get", "list", "watch", "patch"),
        "watched; read by the AgentFleet controller and the autoscaler",
    ),
    Need(
        "controllers",
        "agentfleet.io",
        "modelreplicasets/status",
        ("patch",),
        "status by merge patch and server-side apply of conditions",
    ),
    Need("controllers", "agentfleet.io", "vectorindexes/status", ("patch",), "status by merge patch"),
    Need(
        "controllers",
        "agentfleet.io",
        "agentfleets/status",
        ("patch",),
        "status by merge patch / apply (controller and autoscaler)",
    ),
    # ModelReplicaSet controller and planner.
    Need(
        "modelreplicaset",
        "",
        "nodes",
        READ,
        "the planner's GPU inventory (kopf.index mrs_nodes); node_exists()",
        scope="cluster",
    ),
    Need(
        "modelreplicaset",
        "",
        "pods",
        OWN,
        "replica pods: applied, relabelled (merge patch), deleted; GPU pods indexed cluster-wide",
    ),
    Need(
        "modelreplicaset",
        "",
        "services",
        ("get", "create", "patch", "delete"),
        "serving, replicas and gang Services; the endpoint picker's selector (its pods reach the replicas)",
    ),
    Need(
        "modelreplicaset",
        "policy",
        "poddisruptionbudgets",
        ("create", "patch", "delete"),
        "one PDB per ModelReplicaSet",
    ),
    Need(
        "modelreplicaset",
        "batch",
        "jobs",
        ("get", "create", "patch"),
        "the Job that fills spec.engine.modelCache, applied and read",
    ),
    Need(
        "modelreplicaset",
        "inference.networking.k8s.io",
        "inferencepools",
        ("create", "patch", "delete"),
        "the InferencePool spec.inferencePool publishes, deleted when it is unset",
    ),
    Need(
        "modelreplicaset",
        "networking.k8s.io",
        "networkpolicies",
        ("create", "patch"),
        "who may reach the replicas (the fleets' workers, operator, Prometheus)",
    ),
    Need(
        "modelreplicaset",
        "",
        "secrets",
        ("create",),
        "the replicas' generated API key Secret, created once",
        scope="secrets",
    ),
    Need(
        "modelreplicaset",
        "",
        "persistentvolumeclaims",
        ("get",),
        "the consent label of a volume the spec names (spec.engine.modelCache.claimName, a pvc:// model)",
    ),
    Need(
        "modelreplicaset",
        "",
        "configmaps",
        ("get", "create", "patch"),
        "the canary's promoted model and adapters, <modelreplicaset>-promoted (controllers/modelreplicaset/canary.py)",
    ),
    # Autoscaler: lists pods per set and cluster-wide with nodes (same verbs as above).
    Need(
        "autoscaler",
        "",
        "configmaps",
        ("get", "create", "patch"),
        "the learned demand profile, <modelreplicaset>-demand-profile (controllers/demand.py)",
    ),
    # VectorIndex controller.
    Need("vectorindex", "batch", "jobs", OWN, "ingestion Jobs: watched (kopf.on.event), applied, old ones deleted"),
    Need(
        "vectorindex",
        "",
        "configmaps",
        ("get", "create", "patch"),
        "reads spec.source.configMap; applies the URL list ConfigMap",
    ),
    Need(
        "vectorindex",
        "milvus.io",
        "milvuses",
        ("get", "create", "patch"),
        "the managed Milvus (Milvus Operator's kind), applied and read",
    ),
    Need(
        "vectorindex",
        "",
        "secrets",
        ("get",),
        "spec.milvus credentials Secret named by the VectorIndex",
        scope="secrets",
    ),
    Need(
        "vectorindex",
        "",
        "persistentvolumeclaims",
        ("get",),
        "the consent label of the volume spec.source.persistentVolumeClaim names",
    ),
    # AgentFleet controller (controllers/agentfleet/, render/agentfleet.py): children applied with
    # an ownerReference (garbage-collected with the AgentFleet, never deleted by the operator);
    # the Deployments and the Redis StatefulSet are watched and read for readiness.
    Need(
        "agentfleet",
        "apps",
        "deployments",
        ("get", "list", "watch", "create", "patch"),
        "worker and task API Deployments (kopf.on.event)",
    ),
    Need(
        "agentfleet",
        "apps",
        "statefulsets",
        ("get", "list", "watch", "create", "patch"),
        "the managed Redis (kopf.on.event)",
    ),
    Need("agentfleet", "", "services", ("create", "patch"), "task API and Redis Services"),
    Need(
        "agentfleet",
        "",
        "configmaps",
        ("get", "create", "patch"),
        "the runtime ConfigMap; reads spec.systemPrompt.configMapRef",
    ),
    Need("agentfleet", "", "serviceaccounts", ("create", "patch"), "the workers' ServiceAccount"),
    Need("agentfleet", "policy", "poddisruptionbudgets", ("create", "patch"), "worker PDB"),
    Need(
        "agentfleet",
        "networking.k8s.io",
        "networkpolicies",
        ("create", "patch"),
        "who may reach the managed Redis; what the workers may reach",
    ),
    Need(
        "agentfleet",
        "rbac.authorization.k8s.io",
        "roles",
        ("create", "patch"),
        "the workers' Role (EndpointSlices, for sticky routing)",
    ),
    Need(
        "agentfleet",
        "rbac.authorization.k8s.io",
        "rolebindings",
        ("create", "patch"),
        "binds the workers' Role to their ServiceAccount",
    ),
    # The evaluation gate (controllers/agentfleet/gating.py, render/gate.py): the candidate's
    # Deployment, ConfigMap and egress policy and the Job are deleted when the gate ends or is
    # superseded (its results ConfigMap stays); the Job's ServiceAccount, Role and RoleBinding are
    # applied with the rules above (the Role grants get/patch on one ConfigMap, which the operator holds).
    Need("gate", "batch", "jobs", ("create", "patch", "delete"), "the evaluation Job: applied, deleted when it ends"),
    Need("gate", "apps", "deployments", ("delete",), "the candidate's workers, deleted when the gate ends"),
    Need(
        "gate",
        "",
        "configmaps",
        ("delete",),
        "the candidate's runtime ConfigMap, deleted when the gate ends (FLEET-promoted and the results are applied)",
    ),
    Need("gate", "networking.k8s.io", "networkpolicies", ("delete",), "the candidate's egress policy, deleted with it"),
    Need(
        "agentfleet",
        "discovery.k8s.io",
        "endpointslices",
        READ,
        (
            "granted to workers by the Role above: RBAC lets the operator grant only what it holds (so no "
            "escalate/bind verbs)"
        ),
    ),
    Need(
        "agentfleet",
        "",
        "secrets",
        ("get", "create"),
        (
            "creates the generated Redis password and API token Secrets once (never updates them); reads those and "
            "spec.redis.passwordSecretRef"
        ),
        scope="secrets",
    ),
)

VERB_ORDER = ("get", "list", "watch", "create", "update", "patch", "delete")


def rules(scope: Scope) -> list[dict[str, object]]:
    """PolicyRules for one scope: one rule per (group, resource), verbs the union of every need,
    sorted so the rendered chart is stable."""
    merged: dict[tuple[str, str], set[str]] = {}
    whys: dict[tuple[str, str], list[str]] = {}
    for n in NEEDS:
        if n.scope != scope:
            continue
        key = (n.group, n.resource)
        merged.setdefault(key, set()).update(n.verbs)
        whys.setdefault(key, []).append(f"{n.who}: {n.why}")
    out: list[dict[str, object]] = []
    for (group, resource), verbs in sorted(merged.items()):
        out.append(
            {
                "apiGroups": [group],
                "resources": [resource],
                "verbs": [v for v in VERB_ORDER if v in verbs],
                "why": whys[(group, resource)],
            }
        )
    return out


def allowed(group: str, resource: str, verb: str, scope: Scope | None = None) -> bool:
    return any(
        n.group == group and n.resource == resource and verb in n.verbs and (scope is None or n.scope == scope)
        for n in NEEDS
    )
