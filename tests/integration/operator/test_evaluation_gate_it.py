"""The evaluation gate against the run's private kube-apiserver (docs/evaluation-gate.md): the operator as
a real process, AgentFleets with spec.rollout.evaluation. Every decision of the gate is the
operator's, on objects the API server holds, so no node, scheduler or controller is needed (it moved
down from the e2e tier; the gate's journey through a real engine is e2e/tests/test_gate_canary.py's).

No Job runs here, so the test plays the evaluation Job: it writes what
``python -m agentfleet_runtime gate`` writes into the gate's results ConfigMap (``sample``, then one
``<version>.<task>`` key per result, GateTaskResult JSON) and checks what the operator does with
it: promote a neutral change, hold one that broke answers (status, condition, Event, the serving
runtime unchanged, the candidate deleted), supersede a gate with a second change, obey the
override annotation, create again a Job deleted by hand, and resume a gate across an operator
restart. The fleets' ModelReplicaSet is never placed and their Redis answers nothing: neither is
needed for the gate's decisions, and the runtime is rendered all the same (Ready waits for them).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from agentfleet_contract.gate import GateTaskResult, sign_result, sign_value

from e2e.harness import operator as fx
from e2e.harness.operator import eventually
from tests.builders import MRS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# The run's API server holds others' work beside this module (other modules' namespaces and CRD
# applies): this module's operator serves only the namespaces it makes, and its CRDs are applied
# over whatever is there (they only add optional fields: no object elsewhere changes).
PREFIX = f"it-gate-{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="module")
def crds(kube):
    kube.run(
        "apply", "--server-side", "--force-conflicts", "--field-manager=agentfleet-e2e", "-f", str(fx.ROOT / "crds")
    )
    for crd in ("agentfleets.agentfleet.io", "modelreplicasets.agentfleet.io", "vectorindexes.agentfleet.io"):
        kube.run("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    return kube


operator, namespace = fx.scoped(PREFIX, "gate-operator")


OLD, NEW, NEWER = "Answer from the manual.", "Answer briefly.", "Answer at length, citing every page."
TASKS = [f"pg-{i}" for i in range(40)]
GATE = "agentfleet.io/gate"


def fleet(name: str, prompt: str) -> dict[str, Any]:
    spec = {
        "modelRef": {"name": "stuck"},
        "redis": {"url": "redis://127.0.0.1:1/0"},
        "systemPrompt": {"inline": prompt},
        "rollout": {"evaluation": {"taskSet": {"shipped": "postgres-manual"}, "sample": len(TASKS)}},
    }
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AgentFleet", "metadata": {"name": name}, "spec": spec}


def status(kube, ns: str, name: str) -> dict[str, Any]:
    return kube.json("get", "-n", ns, "agentfleet", name).get("status") or {}


def cond(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_), {})


def get(kube, ns: str, kind: str, name: str) -> dict[str, Any] | None:
    out = kube.run("get", "-n", ns, kind, name, "-o", "json", "--ignore-not-found", check=False).stdout
    return json.loads(out) if out.strip() else None


def events(kube, ns: str, name: str) -> list[tuple[str, str, str]]:
    items = kube.json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in items]


def wait_phase(kube, op, ns: str, name: str, phase: str, *, other_than: str | None = None) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        st = status(kube, ns, name)
        gate = st.get("gate") or {}
        ok = gate.get("phase") == phase and (other_than is None or gate.get("candidate") != other_than)
        return st if ok else None

    return eventually(kube, op, ready, timeout=60, desc=f"{name}: gate {phase}")


def serving_config(kube, ns: str, name: str) -> str:
    return kube.json("get", "-n", ns, "configmap", f"{name}-runtime")["data"]["runtime.yaml"]


def results_name(name: str, st: dict[str, Any]) -> str:
    return f"{name}-gate-{st['gate']['candidate'][:10]}"


def gate_key(kube, ns: str, results: str) -> bytes:
    """The gate's key, from the Secret the operator made beside its results ConfigMap: the Job gets
    it in its environment and signs every result with it."""
    secret = kube.json("get", "-n", ns, "secret", results)
    return base64.b64decode(secret["data"]["key"])


def play_job(
    kube, ns: str, results: str, tasks: list[str], *, broken: int = 0, sample: bool = True, key: bytes | None = None
) -> None:
    """What the evaluation Job writes, signed with the gate's key (``key``: a forger's, or
    b"" for unsigned): the sample first, then each version's result of each task (the candidate
    answering the first ``broken`` wrongly)."""
    key = gate_key(kube, ns, results) if key is None else key
    data: dict[str, str] = {}
    if sample:
        data["sample"] = json.dumps(TASKS)
        if key:
            data["sample.mac"] = sign_value(key, results, "sample", data["sample"])
    for i, t in enumerate(tasks):
        for version in ("current", "candidate"):
            ok = not (version == "candidate" and i < broken)
            result = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=900)
            data[f"{version}.{t}"] = (sign_result(key, results, result) if key else result).model_dump_json()
    kube.run("patch", "-n", ns, "configmap", results, "--type=merge", "-p", json.dumps({"data": data}))


def start_gate(kube, op, ns: str, name: str) -> dict[str, Any]:
    """A fleet serving OLD behind its gate, then changed to NEW: the gate runs."""
    kube.apply(fleet(name, OLD), ns)
    st = wait_phase(kube, op, ns, name, "Serving")
    assert cond(st, "EvaluationGate")["status"] == "True" and OLD in serving_config(kube, ns, name)
    kube.apply(fleet(name, NEW), ns)
    return wait_phase(kube, op, ns, name, "Running")


@pytest.fixture
def stuck_model(kube, namespace) -> None:
    kube.apply(MRS("stuck").placement(nodeSelector={"no-such": "node"}).obj(), namespace)


def test_a_neutral_change_is_promoted_and_one_that_breaks_answers_is_held(
    kube, operator, namespace, stuck_model
) -> None:
    ns, name = namespace, "gated"
    st = start_gate(kube, operator, ns, name)
    assert cond(st, "EvaluationGate")["status"] == "Unknown"
    results = results_name(name, st)
    # The candidate runs NEW on its own queue; the serving workers keep OLD; the Job and its
    # results ConfigMap (empty, owned by the fleet) exist.
    candidate = kube.json("get", "-n", ns, "configmap", f"{name}-runtime-candidate")["data"]["runtime.yaml"]
    assert NEW in candidate and f"{name}~candidate" in candidate
    assert OLD in serving_config(kube, ns, name) and NEW not in serving_config(kube, ns, name)
    assert get(kube, ns, "deployment", f"{name}-candidate") is not None
    job = kube.json("get", "-n", ns, "job", results)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["gate", "--fleet"] and args[args.index("--results-configmap") + 1] == results
    record = kube.json("get", "-n", ns, "configmap", results)
    assert not record.get("data") and record["metadata"]["ownerReferences"][0]["kind"] == "AgentFleet"
    role = kube.json("get", "-n", ns, "role", f"{name}-gate")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [results], "verbs": ["get", "patch"]}
    ]
    assert "Running" in kube.run("get", "-n", ns, "af", name).stdout  # the Gate column

    play_job(kube, ns, results, TASKS)
    st = wait_phase(kube, operator, ns, name, "Promoted")
    assert (cond(st, "EvaluationGate")["status"], cond(st, "EvaluationGate")["reason"]) == ("True", "Passed")
    assert st["gate"]["figures"]["tasks"] == len(TASKS) and st["gate"]["current"] == st["gate"]["candidate"]
    eventually(kube, operator, lambda: NEW in serving_config(kube, ns, name), timeout=30, desc="NEW serves")
    eventually(
        kube,
        operator,
        lambda: get(kube, ns, "deployment", f"{name}-candidate") is None and get(kube, ns, "job", results) is None,
        timeout=30,
        desc="the candidate and the Job deleted",
    )
    assert get(kube, ns, "configmap", results) is not None  # kept for the record
    assert ("Normal", "GatePromoted") in {e[:2] for e in events(kube, ns, name)}

    # A change that breaks answers: 20 of 40 tasks wrong.
    kube.apply(fleet(name, NEWER), ns)
    st = wait_phase(kube, operator, ns, name, "Running", other_than=st["gate"]["candidate"])
    worker_before = kube.json("get", "-n", ns, "deployment", f"{name}-worker")["spec"]["template"]
    held = results_name(name, st)
    play_job(kube, ns, held, TASKS, broken=20)
    st = wait_phase(kube, operator, ns, name, "Held")
    gate_cond = cond(st, "EvaluationGate")
    assert (gate_cond["status"], gate_cond["reason"]) == ("False", "SuccessDropped")
    assert "task success candidate minus current -50pp" in gate_cond["message"]
    assert st["gate"]["figures"]["success"]["delta"] == -0.5 and st["gate"]["reason"] == "SuccessDropped"
    warnings = [e for e in events(kube, ns, name) if e[:2] == ("Warning", "GateHeld")]
    assert warnings and "-50pp" in warnings[0][2]
    assert "Held" in kube.run("get", "-n", ns, "af", name).stdout
    eventually(
        kube,
        operator,
        lambda: get(kube, ns, "deployment", f"{name}-candidate") is None and get(kube, ns, "job", held) is None,
        timeout=30,
        desc="the held candidate and its Job deleted",
    )
    # The serving workers run what they ran: NEW, the same pod template.
    assert NEW in serving_config(kube, ns, name) and NEWER not in serving_config(kube, ns, name)
    assert kube.json("get", "-n", ns, "deployment", f"{name}-worker")["spec"]["template"] == worker_before


def test_a_second_change_supersedes_and_the_annotation_overrides(kube, operator, namespace, stuck_model) -> None:
    ns, name = namespace, "gated"
    first = start_gate(kube, operator, ns, name)
    old_job = results_name(name, first)
    assert get(kube, ns, "job", old_job) is not None
    kube.apply(fleet(name, NEWER), ns)
    st = wait_phase(kube, operator, ns, name, "Running", other_than=first["gate"]["candidate"])
    new_job = results_name(name, st)
    eventually(
        kube,
        operator,
        lambda: get(kube, ns, "job", old_job) is None and get(kube, ns, "job", new_job) is not None,
        timeout=30,
        desc="the superseded Job deleted, the new one started",
    )
    candidate = kube.json("get", "-n", ns, "configmap", f"{name}-runtime-candidate")["data"]["runtime.yaml"]
    assert NEWER in candidate and OLD in serving_config(kube, ns, name)
    assert any(e[1] == "GateStarted" and "superseded" in e[2] for e in events(kube, ns, name))

    # A value that means nothing is refused, and says how to fix it; the gate runs on.
    kube.run("annotate", "-n", ns, "agentfleet", name, f"{GATE}=yes")
    st = eventually(
        kube,
        operator,
        lambda: (s := status(kube, ns, name)) and cond(s, "EvaluationGate").get("reason") == "InvalidOverride" and s,
        timeout=30,
        desc="InvalidOverride",
    )
    assert "must be promote or abort" in cond(st, "EvaluationGate")["message"] and st["gate"]["phase"] == "Running"

    kube.run("annotate", "--overwrite", "-n", ns, "agentfleet", name, f"{GATE}=promote")
    st = wait_phase(kube, operator, ns, name, "Promoted")
    assert cond(st, "EvaluationGate")["reason"] == "Overridden"
    eventually(
        kube,
        operator,
        lambda: GATE not in (kube.json("get", "-n", ns, "agentfleet", name)["metadata"].get("annotations") or {}),
        timeout=30,
        desc="the annotation removed",
    )
    assert any(e[1] == "GatePromoted" and f"{GATE}=promote" in e[2] for e in events(kube, ns, name))
    eventually(kube, operator, lambda: NEWER in serving_config(kube, ns, name), timeout=30, desc="NEWER serves")


def test_a_gate_resumes_after_a_deleted_job_and_an_operator_restart(kube, operator, namespace, stuck_model) -> None:
    ns, name = namespace, "gated"
    st = start_gate(kube, operator, ns, name)
    results = results_name(name, st)
    play_job(kube, ns, results, TASKS[:25])  # the sample and part of the results
    # A Job deleted by hand while the gate runs is created again, under the same name.
    uid = kube.json("get", "-n", ns, "job", results)["metadata"]["uid"]
    kube.run("delete", "-n", ns, "job", results, "--wait=false")
    eventually(
        kube,
        operator,
        lambda: (j := get(kube, ns, "job", results)) is not None and j["metadata"]["uid"] != uid,
        timeout=60,
        desc="the deleted Job created again",
    )
    assert "GateJobRecreated" in [e[1] for e in events(kube, ns, name)]
    operator.kill()  # mid-gate, without cleanup
    play_job(kube, ns, results, TASKS[25:], sample=False)  # the Job goes on meanwhile
    operator.start()
    after = wait_phase(kube, operator, ns, name, "Promoted")
    # The same gate decided on every result, the ones written before the restart among them:
    # started once (a restarted operator's Start would post its Event again), never run again.
    assert after["gate"]["startedAt"] == st["gate"]["startedAt"] and after["gate"]["figures"]["tasks"] == len(TASKS)
    assert [e[1] for e in events(kube, ns, name)].count("GateStarted") == 1
    eventually(kube, operator, lambda: NEW in serving_config(kube, ns, name), timeout=30, desc="NEW serves")


def forged_results(tasks: list[str]) -> dict[str, str]:
    """What a namespace writer without the gate's key writes: the candidate flawless, the current
    version failing every task."""
    data = {"sample": json.dumps(tasks)}
    for t in tasks:
        for version, ok in (("current", False), ("candidate", True)):
            r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=1)
            data[f"{version}.{t}"] = r.model_dump_json()
    return data


def test_forged_results_are_never_promoted(kube, operator, namespace, stuck_model) -> None:
    """Issue 76, finding 3: the results ConfigMap's name is computable from the spec (here: from a
    second fleet of the same spec, whose candidate hash is the same). A ConfigMap made under that
    name before the gate starts is not adopted (no Job writes there, the condition says what to
    delete); forged keys in the real one, without the gate's key, are not counted and are said;
    the real, signed answers decide."""
    ns, name = namespace, "gated"
    kube.apply(fleet("scout", OLD), ns)
    wait_phase(kube, operator, ns, "scout", "Serving")
    kube.apply(fleet("scout", NEW), ns)
    scout = wait_phase(kube, operator, ns, "scout", "Running")
    results = f"{name}-gate-{scout['gate']['candidate'][:10]}"
    kube.apply(fleet(name, OLD), ns)
    wait_phase(kube, operator, ns, name, "Serving")
    forged = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": results}, "data": forged_results(TASKS)}
    kube.apply(forged, ns)

    kube.apply(fleet(name, NEW), ns)
    st = eventually(
        kube,
        operator,
        lambda: (s := status(kube, ns, name)) and cond(s, "EvaluationGate").get("reason") == "ResultsNotOwned" and s,
        timeout=60,
        desc="the forged ConfigMap refused",
    )
    assert st["gate"]["phase"] == "Running" and results == results_name(name, st)
    assert f"delete ConfigMap {results}" in cond(st, "EvaluationGate")["message"]
    assert ("Warning", "ResultsNotOwned") in {e[:2] for e in events(kube, ns, name)}
    assert get(kube, ns, "job", results) is None  # no Job feeds someone else's ConfigMap
    assert status(kube, ns, name)["gate"]["phase"] == "Running" and OLD in serving_config(kube, ns, name)

    # Deleted, the operator makes its own (owned by the fleet, with the gate's key) and the Job.
    kube.run("delete", "-n", ns, "configmap", results)
    eventually(
        kube,
        operator,
        lambda: get(kube, ns, "job", results) is not None,
        timeout=60,
        desc="the gate's own ConfigMap and Job",
    )
    record = kube.json("get", "-n", ns, "configmap", results)
    fleet_uid = kube.json("get", "-n", ns, "agentfleet", name)["metadata"]["uid"]
    assert record["metadata"]["ownerReferences"][0]["uid"] == fleet_uid and not record.get("data")

    # Forged keys in the real one: not counted, said, never promoted.
    kube.run("patch", "-n", ns, "configmap", results, "--type=merge", "-p", json.dumps({"data": forged_results(TASKS)}))
    st = eventually(
        kube,
        operator,
        lambda: (s := status(kube, ns, name)) and (s["gate"].get("rejectedResults") or 0) > 0 and s,
        timeout=60,
        desc="the forged results rejected",
    )
    assert st["gate"]["phase"] == "Running" and OLD in serving_config(kube, ns, name)
    assert any(e[:2] == ("Warning", "GateResultsRejected") for e in events(kube, ns, name))
    play_job(kube, ns, results, TASKS, key=b"a-guessed-key")  # signed, but not with the gate's key
    play_job(kube, ns, results, TASKS, broken=20)  # the Job's real answers: half the candidate's wrong
    st = wait_phase(kube, operator, ns, name, "Held")
    assert cond(st, "EvaluationGate")["reason"] == "SuccessDropped"
    assert OLD in serving_config(kube, ns, name) and NEW not in serving_config(kube, ns, name)
