"""The ModelReplicaSet canary on the real control plane (docs/evaluation-gate.md, "The ModelReplicaSet
canary"): the operator as a real process with its watches, a ModelReplicaSet placed on kwok GPU
nodes, a gated AgentFleet that uses it.

A change of the set's model must not roll its replicas: one canary replica of the new model starts
(serving label ``canary``, its own Service), the fleet's gate runs its candidate against it (the
candidate's runtime document names the canary's Service; the gate records the canary's hash and
its Job waits for the canary to be Ready), and only the gate's decision moves the set: promoted,
the set rolls on to the new model; held, the canary goes and the replicas keep the old one. No
container runs on kwok nodes, so the test plays the evaluation Job's results as
tests/integration/operator/test_evaluation_gate_it.py does; the real node's run of the same with real models is
``python -m e2e.bench.gate_realnode --scenarios model``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from agentfleet_contract.gate import GateTaskResult, sign_result, sign_value
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.render.modelreplicaset import spec_hash
from e2e.harness import operator as fx
from e2e.harness.operator import H100, eventually
from tests.builders import MRS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# This module's operator serves only the namespaces it makes (the shared cluster may run others'
# operators and fleets beside it).
PREFIX = f"e2e-canary-{uuid.uuid4().hex[:6]}-"
OLD_MODEL, NEW_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct"
TASKS = [f"pg-{i}" for i in range(40)]  # 40 agreeing results clear the default rule (15 points at the low end)
SERVING = "agentfleet.io/serving"
MRS_LABEL = "agentfleet.io/modelreplicaset"
SPEC_HASH = "agentfleet.io/spec-hash"

crds, gpu_pool = fx.crds, fx.gpu_pool  # the harness's fixtures (gpu_pool uses this module's namespace)


operator, namespace = fx.scoped(PREFIX, "canary-operator")


def model_set(pool: fx.GpuPool, model: str) -> dict[str, Any]:
    lifecycle = {"drainTimeoutSeconds": 3, "restartBackoffSeconds": 2, "maxRestartBackoffSeconds": 8}
    m = MRS("llm").model(model, served="llm").tp(1).gpu(H100).replicas(1).placement(**pool.selector)
    return m.spec(lifecycle=lifecycle).obj()


def hash_of(manifest: dict[str, Any]) -> str:
    return spec_hash(ModelReplicaSetSpec.model_validate(manifest["spec"]))


def fleet() -> dict[str, Any]:
    spec = {
        "modelRef": {"name": "llm"},
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "systemPrompt": {"inline": "Answer from the manual."},
        "rollout": {"evaluation": {"taskSet": {"shipped": "postgres-manual"}, "sample": len(TASKS)}},
    }
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AgentFleet", "metadata": {"name": "gated"}, "spec": spec}


def get(cluster, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    out = cluster.run("get", "-n", ns, kind, name, "-o", "json", "--ignore-not-found", check=False).stdout
    return json.loads(out) if out.strip() else None


def pods(cluster, ns: str) -> dict[str, tuple[str, str]]:
    """Live pod -> (serving label, spec hash label) of the set's pods."""
    items = cluster.json("get", "-n", ns, "pods", "-l", f"{MRS_LABEL}=llm")["items"]
    return {
        p["metadata"]["name"]: (p["metadata"]["labels"].get(SERVING, ""), p["metadata"]["labels"].get(SPEC_HASH, ""))
        for p in items
        if not p["metadata"].get("deletionTimestamp")
    }


def gate(cluster, ns: str) -> dict[str, Any]:
    return ((cluster.json("get", "-n", ns, "agentfleet", "gated").get("status") or {}).get("gate")) or {}


def canary(cluster, ns: str) -> dict[str, Any]:
    return (cluster.json("get", "-n", ns, "mrs", "llm").get("status") or {}).get("canary") or {}


def reasons(cluster, ns: str, kind: str, name: str) -> list[str]:
    """The object's Events' reasons, each as often as it was posted (an Event's count holds its repeats)."""
    sel = f"involvedObject.kind={kind},involvedObject.name={name}"
    items = cluster.json("get", "events", "-n", ns, "--field-selector", sel)["items"]
    return [e["reason"] for e in items for _ in range(int(e.get("count") or 1))]


def play_job(cluster, ns: str, results: str, *, broken: int = 0) -> None:
    """What the evaluation Job writes, signed with the gate's key (the Secret the operator made
    beside the results ConfigMap, issue 76): the sample, then both versions' result of each task
    (the candidate, on the canary's model, answering the first ``broken`` wrongly)."""
    key = base64.b64decode(cluster.json("get", "-n", ns, "secret", results)["data"]["key"])
    data: dict[str, str] = {"sample": json.dumps(TASKS)}
    data["sample.mac"] = sign_value(key, results, "sample", data["sample"])
    for i, t in enumerate(TASKS):
        for version in ("current", "candidate"):
            ok = not (version == "candidate" and i < broken)
            r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=900)
            data[f"{version}.{t}"] = sign_result(key, results, r).model_dump_json()
    cluster.run("patch", "-n", ns, "configmap", results, "--type=merge", "-p", json.dumps({"data": data}))


def start_canary(cluster, op, ns: str, pool: fx.GpuPool) -> tuple[dict[str, Any], str, str]:
    """The set serving OLD_MODEL behind a gated fleet, then changed to NEW_MODEL: the canary runs and
    the fleet's gate runs against it. Returns the gate's status, the old and the new spec hash."""
    pool.add("h100", count=1)  # 8 GPUs: the set's replica and the canary's
    old, new = model_set(pool, OLD_MODEL), model_set(pool, NEW_MODEL)
    cluster.apply(old, ns)
    eventually(
        cluster,
        op,
        lambda: list(pods(cluster, ns).values()) == [("true", hash_of(old)[:10])] or None,
        timeout=60,
        desc="one serving replica of the old model",
    )
    cluster.apply(fleet(), ns)
    eventually(cluster, op, lambda: gate(cluster, ns).get("phase") == "Serving", timeout=60, desc="the gate adopts")
    cluster.apply(new, ns)

    def canary_running() -> dict[str, Any] | None:
        c = canary(cluster, ns)
        return c if c.get("phase") == "Running" and c.get("ready") else None

    c = eventually(cluster, op, canary_running, timeout=60, desc="the canary replica Running and Ready")
    st = eventually(
        cluster,
        op,
        lambda: (g := gate(cluster, ns)).get("phase") == "Running" and g.get("canaries") and g,
        timeout=60,
        desc="the fleet's gate running against the canary",
    )
    assert st["canaries"] == [{"modelReplicaSet": "llm", "hash": c["hash"]}]
    # Nothing of the users' traffic reaches the new model: the serving replica is the old spec's,
    # the canary is the only pod of the new one, in no Service but its own.
    assert sorted(pods(cluster, ns).values()) == sorted([("true", hash_of(old)[:10]), ("canary", hash_of(new)[:10])])
    svc = cluster.json("get", "-n", ns, "service", "llm-canary")
    assert svc["spec"]["selector"] == {MRS_LABEL: "llm", SERVING: "canary"}
    candidate = cluster.json("get", "-n", ns, "configmap", "gated-runtime-candidate")["data"]["runtime.yaml"]
    serving = cluster.json("get", "-n", ns, "configmap", "gated-runtime")["data"]["runtime.yaml"]
    baseline = cluster.json("get", "-n", ns, "configmap", "gated-runtime-baseline")["data"]["runtime.yaml"]
    assert "llm-canary" in candidate and "llm-canary" not in serving and "llm-canary" not in baseline
    assert get(cluster, ns, "job", f"gated-gate-{st['candidate'][:10]}") is not None
    assert "CanaryStarted" in reasons(cluster, ns, "ModelReplicaSet", "llm")
    return st, hash_of(old)[:10], hash_of(new)[:10]


def test_a_model_change_promoted_by_the_gate_rolls_the_set_on(cluster, operator, namespace, gpu_pool) -> None:
    ns = namespace
    st, old, new = start_canary(cluster, operator, ns, gpu_pool)
    canary_before = canary(cluster, ns)
    # The operator dies mid-canary, without cleanup: what it knew is in the objects (status.canary,
    # MRS-promoted, the fleet's status.gate), so the one it starts again goes on with the same canary.
    operator.kill()
    operator.start()
    play_job(cluster, ns, f"gated-gate-{st['candidate'][:10]}")
    eventually(cluster, operator, lambda: gate(cluster, ns).get("phase") == "Promoted", timeout=60, desc="promoted")
    assert reasons(cluster, ns, "ModelReplicaSet", "llm").count("CanaryStarted") == 1
    assert gate(cluster, ns)["startedAt"] == st["startedAt"]
    eventually(
        cluster,
        operator,
        lambda: list(pods(cluster, ns).values()) == [("true", new)] or None,
        timeout=90,
        desc="the set rolled on: one serving replica of the new model, none of the old",
    )
    mrs = cluster.json("get", "-n", ns, "mrs", "llm")
    assert mrs["status"]["canary"]["phase"] in ("Promoted", "Serving")
    assert mrs["status"]["canary"]["hash"] == canary_before["hash"]
    assert mrs["status"]["canary"]["startedAt"] == canary_before["startedAt"]
    assert "CanaryPromoted" in reasons(cluster, ns, "ModelReplicaSet", "llm")
    promoted = json.loads(cluster.json("get", "-n", ns, "configmap", "llm-promoted")["data"]["fields"])
    assert promoted["model"]["name"] == NEW_MODEL


def test_a_model_change_held_by_the_gate_leaves_the_old_model_serving(cluster, operator, namespace, gpu_pool) -> None:
    ns = namespace
    st, old, new = start_canary(cluster, operator, ns, gpu_pool)
    play_job(cluster, ns, f"gated-gate-{st['candidate'][:10]}", broken=20)
    eventually(cluster, operator, lambda: gate(cluster, ns).get("phase") == "Held", timeout=60, desc="held")
    eventually(
        cluster,
        operator,
        lambda: list(pods(cluster, ns).values()) == [("true", old)] or None,
        timeout=60,
        desc="the canary gone, the old model's replica serving",
    )
    mrs = cluster.json("get", "-n", ns, "mrs", "llm")
    assert mrs["status"]["canary"]["phase"] == "Held"
    assert mrs["status"]["canary"]["fleets"] == [{"name": "gated", "result": "Held"}]
    canary_cond = next(c for c in mrs["status"]["conditions"] if c["type"] == "Canary")
    assert (canary_cond["status"], canary_cond["reason"]) == ("False", "Held")
    assert "CanaryHeld" in reasons(cluster, ns, "ModelReplicaSet", "llm")
    promoted = json.loads(cluster.json("get", "-n", ns, "configmap", "llm-promoted")["data"]["fields"])
    assert promoted["model"]["name"] == OLD_MODEL
    # Still held on the next passes (a held change stays held until the spec changes again).
    assert list(pods(cluster, ns).values()) == [("true", old)]
