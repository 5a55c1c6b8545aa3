"""The Argo CD health checks (charts/agentfleet/argocd/health/*.lua) under Lua 5.1, the language of
Argo CD's gopher-lua, against status as the controllers write it; and the argocd-cm snippet in
examples/argocd is the same Lua (python -m agentfleet.chartgen)."""

from __future__ import annotations

from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml
from agentfleet_contract.conditions import set_condition

from agentfleet import chartgen
from agentfleet.replica_rollout import ConditionCause, Summary, compose_conditions

T0 = "2026-01-01T00:00:00Z"


def run_health(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """Evaluate the check the way Argo CD does: the object as global `obj`, the script's return value."""
    rt = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert rt.eval("_VERSION") == "Lua 5.1"
    rt.globals().obj = _to_lua(rt, obj)
    src = (chartgen.HEALTH_DIR / f"{kind.lower()}.lua").read_text()
    out = rt.execute(src)
    return {"status": out["status"], "message": out["message"]}


def _to_lua(rt: Any, v: Any) -> Any:
    # Lists become 1-based sequences (ipairs), as gopher-lua's JSON decoding makes them.
    if isinstance(v, dict):
        return rt.table_from({k: _to_lua(rt, x) for k, x in v.items()})
    if isinstance(v, list):
        return rt.table_from([_to_lua(rt, x) for x in v])
    return v


def obj(kind: str, generation: int, status: dict[str, Any] | None) -> dict[str, Any]:
    o: dict[str, Any] = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "spec": {},
    }
    if status is not None:
        o["status"] = status
    return o


def conds(*items: tuple[str, bool, str, str], generation: int = 1) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for type_, ok, reason, message in items:
        out = set_condition(out, type_, ok, reason, message, generation, T0)
    return out


# --- every kind: generation and missing status -------------------------------------------------

KINDS = ["ModelReplicaSet", "VectorIndex", "AgentFleet"]


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_is_progressing(kind: str) -> None:
    assert run_health(kind, obj(kind, 1, None))["status"] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_ready_for_an_older_generation_is_progressing_not_healthy(kind: str) -> None:
    status = {
        "observedGeneration": 2,
        "phase": "Ready",
        "conditions": conds(("Ready", True, "Ready", "all good"), generation=2),
    }
    assert run_health(kind, obj(kind, 2, status))["status"] == "Healthy"
    h = run_health(kind, obj(kind, 3, status))
    assert h["status"] == "Progressing"
    assert "generation 3" in h["message"]
    # No observedGeneration at all: the operator has not acted on any generation.
    h = run_health(kind, obj(kind, 1, {"conditions": status["conditions"]}))
    assert h["status"] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_degraded_condition_wins_over_ready(kind: str) -> None:
    status = {
        "observedGeneration": 1,
        "conditions": conds(
            ("Ready", True, "Ready", "ok"), ("Degraded", True, "ReplicaCrashLooping", "replica r1 restarted 5 times")
        ),
    }
    h = run_health(kind, obj(kind, 1, status))
    assert h == {"status": "Degraded", "message": "ReplicaCrashLooping: replica r1 restarted 5 times"}


# --- ModelReplicaSet: conditions from the controller's own compose_conditions -------------------


def mrs(summary: Summary, generation: int = 4) -> dict[str, Any]:
    c = compose_conditions([], summary, generation, T0)
    return obj("ModelReplicaSet", generation, {"observedGeneration": generation, "conditions": c})


@pytest.mark.parametrize(
    ("summary", "want", "in_message"),
    [
        (Summary(desired=3, replicas=3, ready=3, current=3, outdated=0), "Healthy", "3 of 3 replicas ready"),
        (Summary(desired=0, replicas=0, ready=0, current=0, outdated=0), "Healthy", "0 replicas"),
        (Summary(desired=3, replicas=1, ready=1, current=1, outdated=0), "Progressing", "1 of 3 replicas ready"),
        (Summary(desired=2, replicas=2, ready=0, current=2, outdated=0, starting=2), "Progressing", "ReplicasNotReady"),
        # Serving at full strength while a rolling update runs: still Progressing, like a Deployment.
        (Summary(desired=2, replicas=3, ready=2, current=1, outdated=1), "Progressing", "RollingUpdate"),
        (
            Summary(
                desired=2,
                replicas=0,
                ready=0,
                current=0,
                outdated=0,
                invalid="spec.engine.tensorParallelSize: must divide 8",
            ),
            "Degraded",
            "InvalidSpec",
        ),
        (
            Summary(
                desired=2,
                replicas=0,
                ready=0,
                current=0,
                outdated=0,
                capacity_error="needs 810 GB of weights per replica",
            ),
            "Degraded",
            "ModelDoesNotFit",
        ),
        (
            Summary(
                desired=2,
                replicas=1,
                ready=1,
                current=1,
                outdated=0,
                unplaced=ConditionCause("InsufficientGPUs", "no NVLink domain has 8 free GPUs"),
                unplaced_count=1,
            ),
            "Degraded",
            "InsufficientGPUs",
        ),
        (
            Summary(
                desired=2,
                replicas=2,
                ready=1,
                current=2,
                outdated=0,
                failures=[ConditionCause("ReplicaRestarting", "r2 lost node n3")],
            ),
            "Degraded",
            "r2 lost node n3",
        ),
    ],
)
def test_modelreplicaset(summary: Summary, want: str, in_message: str) -> None:
    h = run_health("ModelReplicaSet", mrs(summary))
    assert h["status"] == want, h
    assert in_message in h["message"]


# --- VectorIndex: the controller's phases and conditions --------------------------------------


@pytest.mark.parametrize(
    ("phase", "conditions", "want", "in_message"),
    [
        (
            "Ready",
            conds(
                ("Ready", True, "Searchable", "collection docs is loaded with 120 rows"),
                ("Degraded", False, "AsExpected", ""),
                ("Progressing", False, "Idle", ""),
            ),
            "Healthy",
            "120 rows",
        ),
        (
            "Ingesting",
            conds(("Ready", False, "Ingesting", "3 of 10 documents"), ("Progressing", True, "Ingesting", "")),
            "Progressing",
            "3 of 10",
        ),
        (
            "Creating",
            conds(
                ("Ready", False, "WaitingForMilvus", "Milvus docs is not ready"),
                ("Progressing", True, "CreatingMilvus", ""),
            ),
            "Progressing",
            "WaitingForMilvus",
        ),
        ("Creating", conds(("Ready", False, "Loading", "collection docs is Loading")), "Progressing", "Loading"),
        ("Failed", conds(("Ready", False, "InvalidSpec", "spec.dimension must be > 0")), "Degraded", "InvalidSpec"),
        (
            "Failed",
            conds(("Ready", False, "IngestionFailed", "Job docs-ingest-1: BackoffLimitExceeded")),
            "Degraded",
            "BackoffLimitExceeded",
        ),
        (
            "Pending",
            conds(("Ready", False, "MilvusOperatorMissing", "the milvus.io/v1beta1 Milvus kind is not installed")),
            "Degraded",
            "not installed",
        ),
        (
            "Degraded",
            conds(
                ("Ready", False, "MilvusUnavailable", "cannot reach"),
                ("Degraded", True, "MilvusUnavailable", "connection refused"),
            ),
            "Degraded",
            "connection refused",
        ),
        ("Failed", [], "Degraded", "Failed"),
    ],
)
def test_vectorindex(phase: str, conditions: list[dict[str, Any]], want: str, in_message: str) -> None:
    h = run_health(
        "VectorIndex", obj("VectorIndex", 1, {"observedGeneration": 1, "phase": phase, "conditions": conditions})
    )
    assert h["status"] == want, h
    assert in_message in h["message"]


# --- AgentFleet: Ready summarises ModelReady/IndexReady/RedisReady/RuntimeReady -----------------


@pytest.mark.parametrize(
    ("conditions", "want", "in_message"),
    [
        (
            conds(("Ready", True, "Ready", "2 worker(s) ready"), ("RuntimeReady", True, "RuntimeAvailable", "")),
            "Healthy",
            "2 worker(s)",
        ),
        (
            conds(
                ("Ready", False, "WaitingForModel", "ModelReplicaSet llama-8b is not Ready"),
                ("ModelReady", False, "ModelNotReady", ""),
            ),
            "Progressing",
            "WaitingForModel",
        ),
        (conds(("Ready", False, "WaitingForRuntime", "workers 0/2 available")), "Progressing", "0/2"),
        (conds(("Ready", False, "ModelNotFound", "ModelReplicaSet nope not found")), "Degraded", "ModelNotFound"),
        (conds(("Ready", False, "InvalidSpec", "spec.workers.min > max")), "Degraded", "InvalidSpec"),
        (conds(("Ready", False, "RedisSecretNotFound", "Secret redis-pw not found")), "Degraded", "redis-pw"),
        ([], "Progressing", ""),
    ],
)
def test_agentfleet(conditions: list[dict[str, Any]], want: str, in_message: str) -> None:
    h = run_health("AgentFleet", obj("AgentFleet", 1, {"observedGeneration": 1, "conditions": conditions}))
    assert h["status"] == want, h
    assert in_message in h["message"]


# --- shipping ----------------------------------------------------------------------------------


def test_one_check_per_kind_and_nothing_else() -> None:
    files = chartgen.health_files()
    assert sorted(files) == sorted(f"resource.customizations.health.agentfleet.io_{k}" for k in KINDS)
    assert sorted(p.name for p in chartgen.HEALTH_DIR.glob("*.lua")) == sorted(p.name for p in files.values())


def test_argocd_cm_snippet_matches_the_lua_files() -> None:
    doc = yaml.safe_load(chartgen.ARGOCD_CM.read_text())
    assert (doc["kind"], doc["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert doc["data"] == {key: path.read_text() for key, path in chartgen.health_files().items()}
    assert chartgen.ARGOCD_CM not in chartgen.drift(), "run python -m agentfleet.chartgen"
