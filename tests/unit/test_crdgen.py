"""The CRDs in crds/ are generated from the models and obey the structural-schema rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from agentfleet_contract import RESOURCES, Resource

from agentfleet import crdgen

IDS = [r.kind for r in RESOURCES]


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path or ".", schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    """Follow a printer-column / scale JSONPath like .status.observed.goodput through the schema."""
    node = schema
    for part in re.sub(r"\[\?\(.*?\)\]", "[]", json_path).strip(".").split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        node = node.get("properties", {}).get(name)
        if node is None:
            return None
        if is_list:
            node = node["items"]
    return node


def test_crds_on_disk_match_the_models() -> None:
    assert crdgen.drift() == [], "run `python -m agentfleet.crdgen` and commit crds/"


def test_drift_is_detected(tmp_path) -> None:
    out, chart = tmp_path / "crds", tmp_path / "chart"
    crdgen.write(out, chart)
    assert crdgen.drift(out, chart) == []
    assert crdgen.main(["--check", "--out", str(out), "--chart", str(chart)]) == 0
    victim = out / crdgen.file_name(RESOURCES[0])
    victim.write_text(victim.read_text().replace("description: Number of transformer layers.", "description: changed"))
    (out / "stray.yaml").write_text("{}")
    (chart / crdgen.file_name(RESOURCES[1])).unlink()
    assert crdgen.drift(out, chart) == sorted([victim.name, "stray.yaml"]) + [f"chart:{crdgen.file_name(RESOURCES[1])}"]
    assert crdgen.main(["--check", "--out", str(out), "--chart", str(chart)]) == 1


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_chart_template_is_the_same_crd(res: Resource) -> None:
    text = crdgen.render_chart(res)
    assert text.count("{{- if .Values.crds.install }}") == 1 and text.rstrip().endswith("{{- end }}")
    # Rendered with crds.install=true and crds.keep=true, the template is the plain CRD plus the keep
    # policy for helm and Argo CD (the sync-wave line is templated, so dropped here; helm renders it
    # in tests/integration/api/test_chart_it.py).
    rendered = "\n".join(line for line in text.splitlines() if "{{" not in line)
    doc = yaml.safe_load(rendered)
    want = crdgen.crd(res)
    want["metadata"]["annotations"] = {
        "helm.sh/resource-policy": "keep",
        "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    }
    assert doc == want


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_every_field_has_a_description(res: Resource) -> None:
    schema = crdgen.openapi_schema(res)
    # metadata is ObjectMeta, documented by the API server itself.
    missing = [
        p for p, node in walk(schema) if not node.get("description") and not p.endswith(("[]", "{}", ".metadata"))
    ]
    assert missing == []


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_property_names_are_lower_camel_case(res: Resource) -> None:
    # to_camel capitalises after a digit (e2ELatency...); CEL rules name fields as users write them.
    for path, node in walk(crdgen.openapi_schema(res)):
        for name in node.get("properties", {}):
            assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", name) and not re.search(r"[0-9][A-Z]{2}", name), f"{path}.{name}"


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_schema_is_structural(res: Resource) -> None:
    for path, node in walk(crdgen.openapi_schema(res)):
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "const"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: CEL cost needs a bound"
        if "default" in node:
            assert node["default"] is not None, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, True), bool), path


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_rules_have_messages_that_name_a_field(res: Resource) -> None:
    schema = crdgen.openapi_schema(res)
    rules = [(p, r) for p, node in walk(schema) for r in node.get("x-kubernetes-validations", [])]
    assert rules
    for path, rule in rules:
        assert rule["message"], path
        assert re.search(r"spec\.[a-zA-Z]", rule["message"]), f"{path}: message must name the field: {rule['message']}"
        if "fieldPath" in rule:
            target = resolve(next(n for p, n in walk(schema) if p == path), rule["fieldPath"])
            assert target is not None, f"{path}: fieldPath {rule['fieldPath']} is not in the schema"


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_conditions_and_list_maps(res: Resource) -> None:
    schema = crdgen.openapi_schema(res)
    cond = schema["properties"]["status"]["properties"]["conditions"]
    assert cond["x-kubernetes-list-type"] == "map" and cond["x-kubernetes-list-map-keys"] == ["type"]
    assert {"type", "status", "reason", "lastTransitionTime"} <= set(cond["items"]["required"])
    assert "observedGeneration" in cond["items"]["properties"]
    assert "observedGeneration" in schema["properties"]["status"]["properties"]
    for path, node in walk(schema):
        for key in node.get("x-kubernetes-list-map-keys", []):
            assert key in node["items"].get("required", []), f"{path}: list-map key {key} must be required"


@pytest.mark.parametrize("res", RESOURCES, ids=IDS)
def test_columns_and_scale_point_into_the_schema(res: Resource) -> None:
    schema = crdgen.openapi_schema(res)
    for col in res.columns:
        if col.path.startswith(".metadata"):
            continue
        assert resolve(schema, col.path) is not None, f"column {col.name}: {col.path}"
    names = [c.name for c in res.columns]
    assert names[0] == "Ready" and names[-1] == "Age"
    if res.scale:
        assert resolve(schema, res.scale.spec_replicas)["type"] == "integer"
        assert resolve(schema, res.scale.status_replicas)["type"] == "integer"
        assert resolve(schema, res.scale.selector)["type"] == "string"


def test_crd_metadata() -> None:
    docs = {name: yaml.safe_load(text) for name, text in crdgen.render_all().items()}
    assert len(docs) == 3
    short = {d["spec"]["names"]["kind"]: d["spec"]["names"]["shortNames"] for d in docs.values()}
    assert short == {"ModelReplicaSet": ["mrs"], "VectorIndex": ["vi"], "AgentFleet": ["af"]}
    for doc in docs.values():
        (version,) = doc["spec"]["versions"]
        assert doc["spec"]["group"] == "agentfleet.io" and version["name"] == "v1alpha1"
        assert version["subresources"]["status"] == {}
        assert doc["spec"]["names"]["categories"] == ["fleet"]
    scaled = {d["spec"]["names"]["kind"] for d in docs.values() if "scale" in d["spec"]["versions"][0]["subresources"]}
    assert scaled == {"ModelReplicaSet", "AgentFleet"}


def test_defaults_are_in_the_schema_not_the_operator() -> None:
    spec = crdgen.openapi_schema(RESOURCES[0])["properties"]["spec"]["properties"]
    # Fully defaulted objects: the API server checks defaults against CEL rules as they are.
    assert spec["engine"]["default"]["tensorParallelSize"] == 1
    assert spec["autoscaling"]["default"]["goodput"]["targetFraction"] == 0.95
    assert "extraArgs" not in spec["engine"]["default"]
    assert spec["engine"]["properties"]["tensorParallelSize"]["default"] == 1
    assert spec["replicas"]["default"] == 1
