"""The generated CRDs on the run's private kube-apiserver: install, examples, columns, scale, validation,
explain. All of it is the API server's (schema, CEL, subresources, OpenAPI), so no node or controller
is needed."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from agentfleet_contract import BY_KIND, RESOURCES

from e2e.harness.operator import install_crds
from tests.cases import contains, invalid_cases

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CASES = invalid_cases()


@pytest.fixture(scope="module")
def crds(kube):
    install_crds(kube)  # applied server-side, each Established, and discovery serving the kinds
    return kube


@pytest.fixture(scope="module")
def shared_ns(crds):
    name = f"it-crds-{uuid.uuid4().hex[:6]}"
    crds.run("create", "namespace", name)
    yield name
    crds.run("delete", "namespace", name, "--wait=false", check=False)


def agentfleet_objects(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["apiVersion"].startswith("agentfleet.io/")]


def test_crds_are_established_with_structural_schemas(crds) -> None:
    for res in RESOURCES:
        crd = crds.json("get", "crd", res.crd_name)
        status = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert status.get("Established") == "True" and status.get("NamesAccepted") == "True", status
        assert "NonStructuralSchema" not in status, status
        assert crd["spec"]["names"]["shortNames"] == list(res.short_names)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_apply_and_read_back(crds, namespace, path: Path) -> None:
    crds.run("apply", "-n", namespace, "-f", str(path))
    for obj in agentfleet_objects(path):
        res = BY_KIND[obj["kind"]]
        live = crds.json("get", "-n", namespace, res.plural, obj["metadata"]["name"])
        assert contains(live["spec"], obj["spec"]), f"{obj['kind']}/{obj['metadata']['name']} lost fields"
        # The operator reads what the server stores, defaults included.
        res.model.model_validate(live)
        # Defaults come from the schema, applied by the server; the operator never writes spec.
        if res.kind == "ModelReplicaSet":
            assert live["spec"]["engine"]["image"].startswith("vllm/vllm-openai:")
            assert live["spec"]["lifecycle"]["drainTimeoutSeconds"] == 600


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(generation: int, reason: str = "AllReplicasReady") -> list[dict]:
    return [
        {
            "type": "Ready",
            "status": "True",
            "reason": reason,
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": _now(),
        }
    ]


def test_get_columns_categories_and_status(crds, namespace) -> None:
    crds.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "agentfleet.yaml"))
    gen = crds.json("get", "-n", namespace, "mrs", "llama-8b")["metadata"]["generation"]
    statuses = {
        ("modelreplicasets", "llama-8b"): {
            "observedGeneration": gen,
            "replicas": 3,
            "readyReplicas": 3,
            "desiredReplicas": 3,
            "selector": "agentfleet.io/modelreplicaset=llama-8b",
            "gpusPerReplica": 1,
            "observed": {"queueDepth": 17, "running": 96, "goodput": 0.97, "kvCacheUsage": 0.61},
            "lastScaleReason": "2 -> 3: 41 waiting > 2 x 8 target",
            "conditions": _ready(gen),
        },
        ("vectorindexes", "docs"): {
            "observedGeneration": 1,
            "phase": "Ready",
            "rowCount": 12840,
            "conditions": _ready(1, "Loaded"),
        },
        ("agentfleets", "support"): {
            "observedGeneration": 1,
            "workers": 2,
            "readyWorkers": 2,
            "selector": "agentfleet.io/agentfleet=support",
            "queueDepth": 5,
            "tasksPerHour": 420,
            "taskP95Seconds": 38.5,
            "costPerTask": "0.0123",
            "conditions": _ready(1, "RuntimeReady"),
        },
    }
    for (plural, name), status in statuses.items():
        before = crds.json("get", "-n", namespace, plural, name)["metadata"]["generation"]
        crds.run(
            "patch",
            "-n",
            namespace,
            plural,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status}),
        )
        live = crds.json("get", "-n", namespace, plural, name)
        assert live["metadata"]["generation"] == before, "a status write must not bump the generation"
        assert contains(live["status"], status)

    mrs = crds.run("get", "-n", namespace, "modelreplicasets").stdout
    print(mrs)
    assert re.split(r"\s{2,}", mrs.splitlines()[0].strip()) == [
        "NAME",
        "READY",
        "MODEL",
        "DESIRED",
        "CURRENT",
        "AVAILABLE",
        "QUEUE",
        "GOODPUT",
        "AGE",
    ]
    assert re.match(
        r"llama-8b\s+True\s+meta-llama/Llama-3.1-8B-Instruct\s+3\s+3\s+3\s+17\s+0.97\s+", mrs.splitlines()[1]
    )
    wide = crds.run("get", "-n", namespace, "mrs", "-o", "wide").stdout
    assert "GPUS/REPLICA" in wide and "2 -> 3: 41 waiting" in wide

    af = crds.run("get", "-n", namespace, "agentfleets").stdout
    print(af)
    assert re.split(r"\s{2,}", af.splitlines()[0].strip()) == [
        "NAME",
        "READY",
        "MODEL",
        "WORKERS",
        "QUEUE",
        "TASKS/H",
        "P95(S)",
        "COST/TASK",
        "GATE",
        "A2A",
        "AGE",
    ]
    assert re.match(r"support\s+True\s+llama-8b\s+2\s+5\s+420\s+38.5\s+0.0123\s+", af.splitlines()[1])

    vi = crds.run("get", "-n", namespace, "vi").stdout
    print(vi)
    assert re.match(r"docs\s+True\s+docs\s+384\s+2\s+12840\s+Ready\s+", vi.splitlines()[1])

    # One category lists all three kinds.
    fleet = crds.run("get", "-n", namespace, "fleet", "-o", "name").stdout.split()
    assert sorted(fleet) == sorted(
        ["modelreplicaset.agentfleet.io/llama-8b", "vectorindex.agentfleet.io/docs", "agentfleet.agentfleet.io/support"]
    )


def test_scale_subresource(crds, namespace) -> None:
    crds.run("apply", "-n", namespace, "-f", str(ROOT / "examples" / "agentfleet.yaml"))
    crds.run(
        "patch",
        "-n",
        namespace,
        "mrs",
        "llama-8b",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"replicas": 2, "selector": "agentfleet.io/modelreplicaset=llama-8b"}}),
    )
    crds.run("scale", "-n", namespace, "mrs/llama-8b", "--replicas=5")
    assert crds.json("get", "-n", namespace, "mrs", "llama-8b")["spec"]["replicas"] == 5
    scale = json.loads(
        crds.run(
            "get", "--raw", f"/apis/agentfleet.io/v1alpha1/namespaces/{namespace}/modelreplicasets/llama-8b/scale"
        ).stdout
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5
    assert scale["status"] == {"replicas": 2, "selector": "agentfleet.io/modelreplicaset=llama-8b"}

    crds.run("scale", "-n", namespace, "af/support", "--replicas=7")
    assert crds.json("get", "-n", namespace, "af", "support")["spec"]["workers"]["replicas"] == 7


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_invalid_objects_are_rejected(crds, shared_ns, case) -> None:
    res = BY_KIND[case.kind]
    if case.update is None:
        proc = crds.run("create", "-n", shared_ns, "-f", "-", input=json.dumps(case.obj), check=False)
    else:
        crds.run("create", "-n", shared_ns, "-f", "-", input=json.dumps(case.obj))
        proc = crds.run(
            "patch", "-n", shared_ns, res.plural, case.id, "--type=merge", "-p", json.dumps(case.update), check=False
        )
    assert proc.returncode != 0, f"{case.id} was accepted"
    assert case.expect in proc.stderr, proc.stderr
    # Nothing half-made is left behind by a refused create.
    if case.update is None:
        assert crds.run("get", "-n", shared_ns, res.plural, case.id, check=False).returncode != 0


def _walk(schema: dict, path: str = ""):
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from _walk(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")


def test_explain_describes_every_field(crds) -> None:
    out = crds.run("explain", "modelreplicaset.spec").stdout
    print(out)
    spec_schema = BY_KIND["ModelReplicaSet"].spec.model_json_schema(by_alias=True)
    for name, field in BY_KIND["ModelReplicaSet"].spec.model_fields.items():
        alias = field.alias or name
        assert re.search(rf"^\s+{alias}\s", out, re.M), f"explain lacks {alias}"
        assert field.description.split(";")[0][:40] in " ".join(out.split()), (
            f"explain lacks the description of {alias}"
        )
    assert spec_schema

    deep = crds.run("explain", "mrs.spec.engine.tensorParallelSize").stdout
    assert "GPUs that split each layer" in deep

    # What kubectl explain reads: the server's published OpenAPI v3, every property described.
    doc = json.loads(crds.run("get", "--raw", "/openapi/v3/apis/agentfleet.io/v1alpha1").stdout)
    schemas = doc["components"]["schemas"]
    for res in RESOURCES:
        key = next(k for k in schemas if k.endswith(f"agentfleet.v1alpha1.{res.kind}"))
        undocumented = [
            p
            for p, prop in _walk(schemas[key])
            if not p.startswith(".metadata") and "$ref" not in prop and not prop.get("description")
        ]
        assert undocumented == [], f"{res.kind}: {undocumented}"
