"""The operator's RBAC (agentfleet.permissions -> the chart) covers what the code calls, and no more
than the rules allow: no wildcard, no escalation verbs, Secrets only by name.

What the code calls is read from the code itself: kopf's handler registry (every watched or
indexed resource needs list+watch, a changing handler also patch for kopf's finalizer and
annotations), the Kube/DynamicClient calls in the controllers (get/list/delete of a kind), and
every object the renderers build (applied with server-side apply: create+patch)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import kopf
import pytest
from agentfleet_contract.resources import RESOURCES

import agentfleet.manager  # noqa: F401 - registers every controller's handlers
import agentfleet.render.agentfleet as render_af
from agentfleet import chartgen, permissions

OPERATOR = Path(permissions.__file__).resolve().parent

# Kind -> (API group, plural) for every kind the operator touches; a new kind fails the test below
# until it is added here and granted in permissions.py.
KINDS = {
    "Pod": ("", "pods"),
    "Node": ("", "nodes"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "ServiceAccount": ("", "serviceaccounts"),
    "Event": ("", "events"),
    "Deployment": ("apps", "deployments"),
    "StatefulSet": ("apps", "statefulsets"),
    "Job": ("batch", "jobs"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "Milvus": ("milvus.io", "milvuses"),
    "InferencePool": ("inference.networking.k8s.io", "inferencepools"),
    **{r.kind: ("agentfleet.io", r.plural) for r in RESOURCES},
}


def granted(group: str, resource: str, verb: str) -> bool:
    return permissions.allowed(group, resource, verb)


def test_chart_rules_are_generated_from_permissions() -> None:
    assert chartgen.RBAC_RULES not in chartgen.drift(), "run python -m agentfleet.chartgen"
    text = chartgen.RBAC_RULES.read_text()
    for name in chartgen.RULE_TEMPLATES:
        assert f'define "{name}"' in text


def test_no_wildcards_no_escalation_and_no_unused_verbs() -> None:
    for n in permissions.NEEDS:
        assert "*" not in (n.group, n.resource) and "*" not in n.verbs, n
        assert not set(n.verbs) & {"escalate", "bind", "impersonate", "deletecollection", "update"}, n
        assert set(n.verbs) <= set(permissions.VERB_ORDER), n
        assert n.why, n


def test_secrets_are_read_by_name_only_and_never_changed_or_removed() -> None:
    secret_needs = [n for n in permissions.NEEDS if n.resource == "secrets"]
    assert secret_needs and all(n.scope == "secrets" for n in secret_needs)
    assert {v for n in secret_needs for v in n.verbs} == {"get", "create"}
    assert permissions.rules("secrets") == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "create"],
            "why": [f"{n.who}: {n.why}" for n in secret_needs],
        }
    ]
    assert all(r["resources"] != ["secrets"] for r in permissions.rules("cluster"))


def test_namespaces_only_for_a_namespaced_operator() -> None:
    assert [r["resources"] for r in permissions.rules("namespaces")] == [["namespaces"]]
    assert not granted("", "namespaces", "get")


# --- derived from the code -----------------------------------------------------------------------


def kopf_handlers() -> list[tuple[str, str, str]]:
    reg = kopf.get_default_registry()
    out = []
    for kind, sub in (
        ("watching", reg._watching),
        ("indexing", reg._indexing),
        ("changing", reg._changing),
        ("spawning", reg._spawning),
    ):
        for h in sub.get_all_handlers():
            s = h.selector
            out.append((kind, s.group or "", s.plural or s.any_name))
    return out


def test_kopf_can_list_and_watch_everything_it_serves() -> None:
    handlers = kopf_handlers()
    assert {("", "pods"), ("", "nodes"), ("batch", "jobs"), ("agentfleet.io", "modelreplicasets")} <= {
        (g, p) for _, g, p in handlers
    }
    for kind, group, plural in handlers:
        assert granted(group, plural, "list") and granted(group, plural, "watch"), (kind, group, plural)
        if kind in ("changing", "spawning"):
            # kopf patches its finalizer and progress annotations onto these objects.
            assert granted(group, plural, "patch"), (group, plural)
    assert granted("apiextensions.k8s.io", "customresourcedefinitions", "list")
    assert granted("apiextensions.k8s.io", "customresourcedefinitions", "watch")
    assert granted("", "events", "create")


CALL = re.compile(
    r"\.(get|list|delete|exists|merge_patch_metadata)\(\s*(?:\"((?:[\w.]+/)?v\d\w*)\"|API_VERSION|f\"\{GROUP\}/\{VERSION\}\")\s*,\s*(?:\"(\w+)\"|(KIND|kind|MRS|AF))"
)
VERB = {"exists": "get", "merge_patch_metadata": "patch"}
NAMED_KINDS = {"MRS": "ModelReplicaSet", "AF": "AgentFleet"}


def controller_calls() -> set[tuple[str, str, str]]:
    """(verb, group, resource) of every Kube read and write call in the controllers (agentfleet.kube.Kube
    methods), and the Secrets they create (only in a function whose name says secret)."""
    out: set[tuple[str, str, str]] = set()
    for path in sorted((OPERATOR / "controllers").rglob("*.py")):
        src = path.read_text()
        own_kind = re.search(r'^KIND = "(\w+)"', src, re.M)
        for m in CALL.finditer(src):
            verb, kind = VERB.get(m.group(1), m.group(1)), m.group(3)
            if kind is None and m.group(4) in NAMED_KINDS:
                kinds = [NAMED_KINDS[m.group(4)]]
            elif kind is None:  # KIND or a variable: the controller's own kind(s)
                kinds = [own_kind.group(1)] if m.group(4) == "KIND" and own_kind else [r.kind for r in RESOURCES]
            else:
                kinds = [kind]
            for k in kinds:
                assert k in KINDS, f"{path.name}: {k} is not in KINDS"
                out.add((verb, *KINDS[k]))
        for fn in ast.walk(ast.parse(src)):
            if isinstance(fn, ast.FunctionDef) and "secret" in fn.name and "kube.create(" in ast.unparse(fn):
                out.add(("create", *KINDS["Secret"]))
    return out


def test_every_get_list_delete_and_create_in_the_controllers_is_granted() -> None:
    calls = controller_calls()
    assert (
        ("get", "", "secrets") in calls and ("delete", "batch", "jobs") in calls and ("create", "", "secrets") in calls
    )
    missing = [c for c in sorted(calls) if not granted(c[1], c[2], c[0])]
    assert missing == []


def rendered_kinds() -> set[str]:
    """Kinds of the objects the renderers build (owner references, which carry a uid, excluded)."""
    out: set[str] = set()
    # Every module of agentfleet.render: the renderers of one kind span several (names, Redis, egress).
    render_dir = Path(render_af.__file__).parent
    for path in sorted(render_dir.glob("*.py")):
        mod = importlib.import_module(f"agentfleet.render.{path.stem}")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Dict):
                continue
            keys = {k.value: v for k, v in zip(node.keys, node.values, strict=True) if isinstance(k, ast.Constant)}
            if "kind" not in keys or "apiVersion" not in keys or "uid" in keys:
                continue
            v: Any = keys["kind"]
            kind = (
                v.value
                if isinstance(v, ast.Constant)
                else getattr(mod, v.id, None)
                if isinstance(v, ast.Name)
                else None
            )
            if kind:
                out.add(kind)
    return out


def test_every_rendered_kind_can_be_applied() -> None:
    kinds = rendered_kinds()
    assert {"Pod", "Service", "Job", "Deployment", "StatefulSet", "Role", "RoleBinding", "Milvus", "Secret"} <= kinds
    for kind in kinds:
        assert kind in KINDS, f"{kind} is not in KINDS"
        group, plural = KINDS[kind]
        assert granted(group, plural, "create"), kind
        # Secrets are created once (never applied again); everything else goes through apply.
        if kind != "Secret":
            assert granted(group, plural, "patch"), kind


@pytest.mark.parametrize("plural", [r.plural for r in RESOURCES])
def test_status_of_every_kind_is_writable(plural: str) -> None:
    assert granted("agentfleet.io", f"{plural}/status", "patch")
    assert granted("agentfleet.io", plural, "get")


def test_the_workers_role_grants_nothing_the_operator_lacks() -> None:
    # RBAC refuses to create a Role with permissions its creator does not hold (no escalate verb).
    src = Path(render_af.__file__).read_text()
    roles = re.findall(r'"rules": \[\s*(\{.*?\})\s*,?\s*\]', src, re.S)
    assert roles, "no Role rules found in render/agentfleet.py"
    for text in roles:
        rule = ast.literal_eval(text)
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                for verb in rule["verbs"]:
                    assert granted(group, res, verb), (group, res, verb)
