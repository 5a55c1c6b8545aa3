"""Our objects for other projects' APIs, applied for real to the API server with those projects'
own CRDs: the chart's PodMonitors (Prometheus Operator), every example (Argo CD Applications,
KEDA ScaledObjects, an HPA, our kinds), and the Milvus CR the VectorIndex controller renders
(against facts read from the Milvus Operator's schema, e2e/harness/milvus_operator_facts.py).

The third-party CRDs come from the projects' Go modules at pinned versions
(``e2e/cluster/thirdparty.sh crds``). Every apply uses strict server-side field validation, so a
misspelt or unknown field is an error, not a silently pruned field; each kind's
``test_a_misspelt_field_is_refused`` case shows that this is what makes the acceptance tests able
to fail.
"""

from __future__ import annotations

import base64
import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentfleet_contract.vectorindex import VectorIndex

from agentfleet.render.vectorindex import render_milvus
from e2e.harness import milvus_operator_facts as milvus_facts
from e2e.harness.helm import template
from e2e.harness.neighbours import contains, install_thirdparty_crds, strict_apply
from e2e.harness.operator import install_crds

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
# The chart's objects for the Prometheus Operator; a ServiceMonitor or PrometheusRule added to the
# chart is picked up here by kind.
MONITORING_KINDS = ("PodMonitor", "ServiceMonitor", "PrometheusRule")


@pytest.fixture(scope="module")
def neighbours(kube):
    install_crds(kube)
    install_thirdparty_crds(kube)
    return kube


def in_namespace(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The document moved into the test's namespace (the Argo CD examples name `argocd`)."""
    doc = copy.deepcopy(doc)
    if "namespace" in doc.get("metadata", {}):
        doc["metadata"]["namespace"] = namespace
    return doc


def readback(cluster, doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    api = doc["apiVersion"]
    group = api.split("/")[0] if "/" in api else ""
    kind = doc["kind"].lower() + "s" if not group else f"{doc['kind'].lower()}.{group}"
    if doc["kind"] == "HorizontalPodAutoscaler":
        kind = "horizontalpodautoscalers.autoscaling"
    return cluster.json("get", "-n", namespace, kind, doc["metadata"]["name"])


def body(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    if doc.get("kind") == "Secret" and "stringData" in out:
        # The API server stores a Secret's stringData as base64 data (and never returns stringData).
        encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in out.pop("stringData").items()}
        out["data"] = {**out.get("data", {}), **encoded}
    return out


def misspell(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The document with its first field under spec (or, for kinds without spec, its first field)
    misspelt the way fingers do it: two letters swapped."""
    doc = copy.deepcopy(doc)
    parent = doc["spec"] if "spec" in doc else doc
    key = next(k for k in parent if k not in ("apiVersion", "kind", "metadata"))
    bad = key[0] + key[2] + key[1] + key[3:]
    parent[bad] = parent.pop(key)
    return doc, bad


def refused_for(proc: subprocess.CompletedProcess, path: str) -> bool:
    """The object was refused for the unknown field at ``path`` (dotted). The API server's strict
    field validation words it ".spec.x: field not declared in schema" for server-side apply;
    kubectl's own OpenAPI check, which runs first when the misspelling also leaves a required
    field out, words it 'unknown field "x" in <type>.spec'."""
    err = proc.stderr
    name = path.rsplit(".", 1)[-1]
    return proc.returncode != 0 and (f"{path}: field not declared in schema" in err or f'unknown field "{name}"' in err)


def drop_finalizers(cluster, doc: dict[str, Any], namespace: str) -> None:
    """No Argo CD controller runs here to remove its resources-finalizer on deletion."""
    if doc.get("metadata", {}).get("finalizers"):
        name = f"{doc['kind'].lower()}.{doc['apiVersion'].split('/')[0]}/{doc['metadata']['name']}"
        cluster.run(
            "-n", namespace, "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
        )


def example_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def monitoring_docs(helm_path: str) -> list[dict[str, Any]]:
    docs = template(helm_path, "monitoring.podMonitors.enabled=true", "monitoring.dashboard.enabled=true")
    return [d for d in docs if d["kind"] in MONITORING_KINDS]


# --- the chart's monitoring objects -------------------------------------------------------------


def test_chart_monitoring_objects_are_accepted(neighbours, helm, namespace) -> None:  # noqa: F811
    docs = [in_namespace(d, namespace) for d in monitoring_docs(helm)]
    assert sorted(d["kind"] for d in docs) == ["PodMonitor", "PodMonitor"], (
        "the chart ships two PodMonitors (vLLM, runtime)"
    )
    strict_apply(neighbours, docs, namespace)
    for d in docs:
        live = readback(neighbours, d, namespace)
        assert contains(live["spec"], d["spec"]), f"{d['kind']}/{d['metadata']['name']} lost fields: {live['spec']}"


# --- every example --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT / "examples")))
def test_example_is_accepted(neighbours, namespace, path: Path) -> None:
    docs = [in_namespace(d, namespace) for d in example_docs(path)]
    try:
        strict_apply(neighbours, docs, namespace)
        for d in docs:
            live = readback(neighbours, d, namespace)
            assert contains(body(live), body(d)), f"{d['kind']}/{d['metadata']['name']} lost fields"
    finally:
        for d in docs:
            drop_finalizers(neighbours, d, namespace)


def test_every_kind_of_example_is_covered() -> None:
    kinds = {d["kind"] for p in EXAMPLES for d in example_docs(p)}
    assert {
        "Application",
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "ModelReplicaSet",
        "VectorIndex",
        "AgentFleet",
    } <= kinds, kinds
    # A KEDA ScaledObject for each kind with a scale subresource.
    targets = {
        d["spec"]["scaleTargetRef"]["kind"] for p in EXAMPLES for d in example_docs(p) if d["kind"] == "ScaledObject"
    }
    assert targets == {"ModelReplicaSet", "AgentFleet"}, targets


# --- the schema is what makes those tests able to fail --------------------------------------------


def misspelt_cases() -> list[Any]:
    seen: dict[str, Any] = {}
    for p in EXAMPLES:
        for d in example_docs(p):
            seen.setdefault(d["kind"], pytest.param(p, d["kind"], id=f"{d['kind']}-{p.name}"))
    return list(seen.values())


@pytest.mark.parametrize("path,kind", misspelt_cases())
def test_a_misspelt_field_is_refused(neighbours, namespace, path: Path, kind: str) -> None:
    doc = in_namespace(next(d for d in example_docs(path) if d["kind"] == kind), namespace)
    bad, field = misspell(doc)
    proc = strict_apply(neighbours, [bad], namespace, check=False)
    drop_finalizers(neighbours, doc, namespace)
    assert proc.returncode != 0, f"{kind} with the misspelt field {field!r} was accepted"
    assert refused_for(proc, ("spec." if "spec" in doc else "") + field), proc.stderr


def test_a_misspelt_podmonitor_field_is_refused(neighbours, helm, namespace) -> None:  # noqa: F811
    doc = in_namespace(monitoring_docs(helm)[0], namespace)
    doc["spec"]["podMetricsEndpoints"][0]["prot"] = doc["spec"]["podMetricsEndpoints"][0].pop("port")
    proc = strict_apply(neighbours, [doc], namespace, check=False)
    assert refused_for(proc, "prot") and "podMetricsEndpoints" in proc.stderr, proc.stderr


# --- the Milvus CR against the Milvus Operator's schema facts -------------------------------------


@pytest.fixture(scope="module")
def milvus_kind(neighbours):
    """milvuses.milvus.io from e2e/harness/milvus_operator_facts.py, removed afterwards: other tests
    check how the operator behaves when the Milvus Operator is not installed."""
    crd = milvus_facts.crd()
    neighbours.apply(crd)
    neighbours.run("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s")
    neighbours.wait_for(
        lambda: neighbours.run("get", "milvuses.milvus.io", "-A", check=False).returncode == 0,
        timeout=30,
        desc="discovery of milvus.io",
    )
    yield neighbours
    neighbours.run("delete", "crd", crd["metadata"]["name"], "--ignore-not-found", "--timeout=60s", check=False)


def managed_vectorindexes(cluster, namespace: str) -> list[VectorIndex]:
    """The managed-Milvus example in both modes (one with an image), stored by the API server
    first: the render starts from what the controller would read, defaults and uid included (the
    uid also keeps the garbage collector from taking the Milvus objects it owns)."""
    (doc,) = [
        d for d in example_docs(ROOT / "examples" / "vectorindex-managed-milvus.yaml") if d["kind"] == "VectorIndex"
    ]
    out = []
    for mode, image in (("Cluster", None), ("Standalone", "milvusdb/milvus:v2.6.4")):
        d = copy.deepcopy(doc)
        d["metadata"]["name"] = f"kb-{mode.lower()}"
        d["spec"]["milvus"]["managed"]["mode"] = mode
        if image:
            d["spec"]["milvus"]["managed"]["image"] = image
            d["spec"]["inMemoryReplicas"] = 1  # a standalone Milvus has one query node (CEL)
        d["spec"]["deletionPolicy"] = "Delete" if mode == "Cluster" else "Retain"
        cluster.apply(d, namespace)
        out.append(VectorIndex.model_validate(cluster.json("-n", namespace, "get", "vi", d["metadata"]["name"])))
    return out


def test_rendered_milvus_meets_the_milvus_operator_schema(milvus_kind, namespace) -> None:
    rendered = [render_milvus(vi, expected_rows=5_000_000) for vi in managed_vectorindexes(milvus_kind, namespace)]
    assert {m["apiVersion"] for m in rendered} == {f"{milvus_facts.GROUP}/{milvus_facts.VERSION}"}
    strict_apply(milvus_kind, rendered, namespace)
    for m in rendered:
        live = milvus_kind.json("get", "-n", namespace, "milvuses.milvus.io", m["metadata"]["name"])
        assert live["spec"] == m["spec"], "the server pruned or changed a rendered field"


def test_a_field_outside_the_milvus_operator_schema_is_refused(milvus_kind, namespace) -> None:
    m = render_milvus(managed_vectorindexes(milvus_kind, namespace)[0], expected_rows=5_000_000)
    m["spec"]["components"]["queryNodes"] = m["spec"]["components"].pop(
        "queryNode"
    )  # not a component the Milvus Operator has
    proc = strict_apply(milvus_kind, [m], namespace, check=False)
    assert refused_for(proc, "spec.components.queryNodes"), proc.stderr
    m = render_milvus(managed_vectorindexes(milvus_kind, namespace)[0], expected_rows=5_000_000)
    m["spec"]["mode"] = "Cluster"  # the Milvus Operator's enum is lower case
    proc = strict_apply(milvus_kind, [m], namespace, check=False)
    assert proc.returncode != 0 and "spec.mode" in proc.stderr, proc.stderr
