"""What the AgentFleet controller writes to the API server about fleets that cannot run, against the
run's private kube-apiserver, the operator as a real process and the run's Redis: a missing model, a
budget too small for the prompt and an unreachable Redis each named in Ready with the field and the
fix, with a Warning, and nothing rendered that could not work; the autoscaler's and the controller's
status shared by server-side apply; `agentfleet eval --fleet`'s summary kept beside the controller's.
None of it needs a pod to run, so it moved down from the e2e tier (e2e/tests/test_agentfleet.py keeps
the example fleet's journey to Ready with a real model, and the managed Redis's StatefulSet and its
volume claim)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from e2e.harness import operator as fx
from e2e.harness.objects import af_status, apply_stuck_model, bad_fleet, children, cond, warning_events
from e2e.harness.operator import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

operator = fx.operator


def test_bad_fleets_say_what_is_wrong(kube, operator, namespace, redis_server) -> None:
    # A ModelReplicaSet that exists but can never be Ready (no node matches): the budget problem
    # is the fleet's own, and it is what Ready names.
    apply_stuck_model(kube, namespace)
    kube.apply(bad_fleet("no-model", redis_server.url), namespace)
    long_prompt = "Follow the support playbook exactly. " * 300  # ~11k characters, ~2.8k tokens
    kube.apply(
        bad_fleet(
            "tight",
            redis_server.url,
            modelRef={"name": "stuck"},
            systemPrompt={"inline": long_prompt},
            budgets={"maxTokens": 2000},
        ),
        namespace,
    )
    kube.apply(bad_fleet("unreachable", "redis://127.0.0.1:1/0", modelRef={"name": "stuck"}), namespace)

    st = eventually(
        kube,
        operator,
        lambda: (
            (s := af_status(kube, namespace, "no-model")) and cond(s, "Ready").get("reason") == "ModelNotFound" and s
        ),
        timeout=60,
        desc="ModelNotFound",
    )
    assert (
        cond(st, "Ready")["status"] == "False"
        and "spec.modelRef.name" in cond(st, "Ready")["message"]
        and "nowhere" in cond(st, "Ready")["message"]
    )
    assert cond(st, "ModelReady")["reason"] == "ModelNotFound"
    assert cond(st, "Ready")["observedGeneration"] == 1
    eventually(
        kube,
        operator,
        lambda: any(e["reason"] == "ModelNotFound" for e in warning_events(kube, namespace, "no-model")),
        timeout=30,
        desc="ModelNotFound Warning",
    )
    assert not children(kube, namespace, "no-model")  # nothing runs that could not work

    st = eventually(
        kube,
        operator,
        lambda: (s := af_status(kube, namespace, "tight")) and cond(s, "Ready").get("reason") == "BudgetTooSmall" and s,
        timeout=60,
        desc="BudgetTooSmall",
    )
    assert "spec.budgets.maxTokens 2000" in cond(st, "Ready")["message"]
    assert cond(st, "ModelReady")["reason"] == "ModelNotReady" and "stuck" in cond(st, "ModelReady")["message"]
    eventually(
        kube,
        operator,
        lambda: any(e["reason"] == "BudgetTooSmall" for e in warning_events(kube, namespace, "tight")),
        timeout=30,
        desc="BudgetTooSmall Warning",
    )

    st = eventually(
        kube,
        operator,
        lambda: (
            (s := af_status(kube, namespace, "unreachable")) and cond(s, "RedisReady").get("status") == "False" and s
        ),
        timeout=60,
        desc="RedisReady False",
    )
    assert (
        cond(st, "RedisReady")["reason"] == "RedisUnreachable"
        and "redis://127.0.0.1:1/0" in cond(st, "RedisReady")["message"]
    )
    assert cond(st, "Ready")["status"] == "False"
    assert "queueDepth" not in st and "tasksPerHour" not in st  # unknown, not zero

    # Fixing the budget clears the problem (the model is still not ready: Ready says that now).
    kube.run(
        "patch",
        "-n",
        namespace,
        "agentfleet",
        "tight",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"budgets": {"maxTokens": 20000}}}),
    )
    st = eventually(
        kube,
        operator,
        lambda: (
            (s := af_status(kube, namespace, "tight")) and cond(s, "Ready").get("reason") == "WaitingForModel" and s
        ),
        timeout=60,
        desc="WaitingForModel",
    )
    assert cond(st, "Ready")["observedGeneration"] == 2 and st["observedGeneration"] == 2


def test_autoscaler_and_controller_share_the_status_without_overwriting(
    kube, operator, namespace, redis_server
) -> None:
    """Both write an AgentFleet's status by server-side apply under their own managers: the
    autoscaler's desiredWorkers and scaling conditions, the controller's Ready and the rest."""
    apply_stuck_model(kube, namespace)
    kube.apply(
        bad_fleet(
            "scaled",
            redis_server.url,
            modelRef={"name": "stuck"},
            workers={"autoscaling": True, "replicas": 2, "minReplicas": 1, "maxReplicas": 3},
        ),
        namespace,
    )

    def both() -> dict[str, Any] | None:
        st = af_status(kube, namespace, "scaled")
        types = {c["type"] for c in st.get("conditions") or []}
        return (
            st
            if {"Ready", "ModelReady", "RedisReady", "RuntimeReady", "MetricsAvailable"} <= types
            and st.get("desiredWorkers") is not None
            else None
        )

    st = eventually(kube, operator, both, timeout=90, desc="both writers' conditions present")
    # Several passes of each later, neither has dropped the other's part.
    for _ in range(3):
        kube.run("annotate", "-n", namespace, "agentfleet", "scaled", f"poke={time.monotonic()}", "--overwrite")
        time.sleep(6)
        assert both() is not None, af_status(kube, namespace, "scaled")
    af = kube.json("get", "-n", namespace, "agentfleet", "scaled", "--show-managed-fields")
    managers = {m["manager"] for m in af["metadata"]["managedFields"] if m.get("subresource") == "status"}
    assert {"agentfleet-operator", "agentfleet-autoscaler"} <= managers, managers
    st = af["status"]
    worker = kube.json("get", "-n", namespace, "deployment", "scaled-worker")
    assert worker["spec"]["replicas"] == max(1, min(3, st["desiredWorkers"]))
    assert af["metadata"]["generation"] == 1  # no writer touched spec


def test_eval_summary_is_kept_beside_the_controllers_status(kube, operator, namespace, redis_server) -> None:
    """`agentfleet eval --fleet` applies status.evaluation under its own manager: the controller's
    passes keep it, and it keeps the controller's conditions."""
    from agentfleet_client.evaluation.record import FIELD_MANAGER, evaluation_summary, record

    apply_stuck_model(kube, namespace)
    kube.apply(bad_fleet("evaluated", redis_server.url, modelRef={"name": "stuck"}), namespace)
    eventually(
        kube,
        operator,
        lambda: cond(af_status(kube, namespace, "evaluated"), "Ready"),
        timeout=60,
        desc="the controller's Ready",
    )
    summary = {
        "tasks": 21,
        "success": 0.5,
        "grounded": 0.25,
        "recall": 0.75,
        "recallK": 5,
        "latencyP95Seconds": 40.0,
        "costPerTask": "0.0004",
    }
    record("evaluated", namespace, evaluation_summary(summary, "postgres-manual#heldout"), kube.kubeconfig)
    for _ in range(3):  # controller passes after the record
        kube.run("annotate", "-n", namespace, "agentfleet", "evaluated", f"poke={time.monotonic()}", "--overwrite")
        time.sleep(6)
        st = af_status(kube, namespace, "evaluated")
        assert st.get("evaluation", {}).get("taskSet") == "postgres-manual#heldout" and cond(st, "Ready"), st
    af = kube.json("get", "-n", namespace, "agentfleet", "evaluated", "--show-managed-fields")
    owners = {
        m["manager"]: json.dumps(m.get("fieldsV1"))
        for m in af["metadata"]["managedFields"]
        if m.get("subresource") == "status"
    }
    assert '"f:evaluation"' in owners[FIELD_MANAGER] and '"f:evaluation"' not in owners.get("agentfleet-operator", "")
    assert af["status"]["evaluation"]["success"] == 0.5 and af["metadata"]["generation"] == 1
