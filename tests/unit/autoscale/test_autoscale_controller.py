"""The kopf timer's wiring: what it patches into status and which Events it emits (no cluster)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import kopf
import pytest
from agentfleet_contract.modelreplicaset import ModelReplicaSetStatus

from agentfleet.autoscale.goodput import Goodput
from agentfleet.autoscale.policy import Capacity, Observation, ReplicaSample
from agentfleet.autoscale.workers import WorkerSignals, fleets_using
from agentfleet.controllers import autoscaler

SPEC: dict[str, Any] = {
    "model": {"name": "meta-llama/Llama-3.1-70B-Instruct", "servedName": "llama-70b"},
    "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 8, "targetQueueDepthPerReplica": 8, "evaluationPeriodSeconds": 15},
}


def ready_pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"agentfleet.io/serving": "true"}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:03:00Z"}]},
    }


class FakeReader:
    def __init__(self, obs: Observation) -> None:
        self.obs = obs
        self.calls: list[Any] = []

    def observe(self, target: Any, objectives: Any, window: int) -> Observation:
        self.calls.append((target, objectives, window))
        return self.obs


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    got: list[tuple[str, str, str]] = []
    monkeypatch.setattr(kopf, "event", lambda body, *, type, reason, message: got.append((type, reason, message)))
    monkeypatch.setattr(autoscaler, "_list_pods", lambda ns, sel: [ready_pod("llama-0"), ready_pod("llama-1"), ready_pod("llama-2")])
    monkeypatch.setattr(autoscaler, "capacity_for", lambda *a: Capacity(placeable_extra=10))
    monkeypatch.setattr(autoscaler, "_list_agentfleets", lambda ns: [])
    return got


def run(monkeypatch: pytest.MonkeyPatch, obs: Observation, status: dict[str, Any], memo: Any = None) -> tuple[kopf.Patch, Any]:
    reader = FakeReader(obs)
    monkeypatch.setattr(autoscaler, "reader", lambda url: reader)
    patch = kopf.Patch()
    memo = memo or types.SimpleNamespace()
    logger = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)
    autoscaler.evaluate_modelreplicaset(
        body={}, spec=SPEC, status=status, meta={"generation": 2}, name="llama", namespace="team-a", memo=memo, patch=patch, logger=logger
    )
    assert reader.calls and reader.calls[0][0].matchers == 'namespace="team-a",model_name="llama-70b"'
    return patch, memo


def test_scale_up_patches_status_only_and_emits_an_event(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str, str]]) -> None:
    import time

    samples = tuple(ReplicaSample(f"llama-{i}", 41 / 3, 10.0, 0.4) for i in range(3))
    patch, _ = run(monkeypatch, Observation(at=time.time(), samples=samples, goodput=Goodput(0.81, 300, (), ())), {"desiredReplicas": 3})
    assert set(patch) == {"status"}  # never spec: GitOps owns it
    st = patch["status"]
    assert st["desiredReplicas"] == 6
    assert st["lastScaleReason"].startswith("3 -> 6: 41 waiting > 3 x 8 target; goodput 0.81 < 0.95")
    assert st["observed"]["queueDepth"] == 41
    types_ = {c["type"]: c for c in st["conditions"]}
    assert types_["ScalingActive"]["status"] == "True" and types_["MetricsAvailable"]["status"] == "True"
    assert types_["ScalingLimited"]["status"] == "False"
    assert all(c["observedGeneration"] == 2 for c in st["conditions"])
    ModelReplicaSetStatus.model_validate(st)  # the patch fits the CRD's status schema
    assert events == [("Normal", "ScaledUp", st["lastScaleReason"])]


def test_prometheus_down_holds_and_warns_once(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str, str]]) -> None:
    import time

    obs = Observation(at=time.time(), error="ConnectionError: refused")
    patch, memo = run(monkeypatch, obs, {"desiredReplicas": 3})
    st = patch["status"]
    assert st["desiredReplicas"] == 3 and "lastScaleTime" not in st and "observed" not in st
    m = next(c for c in st["conditions"] if c["type"] == "MetricsAvailable")
    assert m["status"] == "False" and m["reason"] == "PrometheusUnavailable"
    assert [e[:2] for e in events] == [("Warning", "PrometheusUnavailable")]
    # Next period (gate passed by rewinding the memo): same cause, no second Warning.
    memo.autoscale_last_eval = 0.0
    run(monkeypatch, obs, {"desiredReplicas": 3, "conditions": st["conditions"]}, memo)
    assert len(events) == 1


def test_the_period_gate_skips_early_ticks(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str, str]]) -> None:
    import time

    memo = types.SimpleNamespace(autoscale_last_eval=time.time())
    reader = FakeReader(Observation(at=time.time()))
    monkeypatch.setattr(autoscaler, "reader", lambda url: reader)
    patch = kopf.Patch()
    logger = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)
    autoscaler.evaluate_modelreplicaset(body={}, spec=SPEC, status={}, meta={}, name="llama", namespace="team-a", memo=memo, patch=patch, logger=logger)
    assert not reader.calls and not patch


def test_learned_load_time_is_written_and_survives_a_restart(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str, str]]) -> None:
    import time

    samples = tuple(ReplicaSample(f"llama-{i}", 1.0, 2.0, 0.1) for i in range(3))
    obs = Observation(at=time.time(), samples=samples)
    # ready_pod(): created 00:00:00, Ready at 00:03:00 -> 180 s of model load.
    patch, _ = run(monkeypatch, obs, {"desiredReplicas": 3})
    assert patch["status"]["learnedModelLoadSeconds"] == 180
    # A fresh memo (operator restart) starts from status, not from the 300 s prior; the pods
    # it sees again move the average by alpha only.
    patch, memo = run(monkeypatch, obs, {"desiredReplicas": 3, "learnedModelLoadSeconds": 100})
    assert memo.autoscale_state.load_time.samples > 1
    assert 100 < patch["status"]["learnedModelLoadSeconds"] < 180


def test_status_apply_carries_own_fields_and_only_own_conditions() -> None:
    obj = {
        "metadata": {"name": "llama", "namespace": "team-a"},
        "status": {
            "replicas": 3,
            "desiredReplicas": 3,
            "lastScaleTime": "2026-01-01T00:00:00Z",
            "lastScaleReason": "2 -> 3: 20 waiting > 2 x 8 target",
            "observed": {"queueDepth": 4, "observedAt": "2026-01-01T00:00:00Z"},
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": "ScalingLimited", "status": "False", "reason": "DesiredWithinRange", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            ],
        },
    }
    held = {"type": "MetricsAvailable", "status": "False", "reason": "PrometheusUnavailable", "message": "x", "lastTransitionTime": "2026-01-01T00:01:00Z"}
    body = autoscaler.mrs_status_apply(obj, {"desiredReplicas": 3, "conditions": [held]})
    st = body["status"]
    assert body["kind"] == "ModelReplicaSet" and body["metadata"] == {"name": "llama", "namespace": "team-a"}
    # Omitted from an apply = removed: so the last scale and observation are carried over ...
    assert st["lastScaleReason"].startswith("2 -> 3") and st["observed"]["queueDepth"] == 4
    # ... and the controller's fields and condition types are never part of the autoscaler's intent.
    assert "replicas" not in st
    assert [c["type"] for c in st["conditions"]] == ["MetricsAvailable", "ScalingLimited"]
    ModelReplicaSetStatus.model_validate(st)


class TaskReader(FakeReader):
    def __init__(self, obs: Observation, signals: dict[str, WorkerSignals]) -> None:
        super().__init__(obs)
        self.signals = signals
        self.asked: list[str] = []

    def worker_signals(self, matchers: str) -> WorkerSignals:
        self.asked.append(matchers)
        return self.signals[matchers]


def test_the_task_layer_of_the_agentfleets_using_the_model_reaches_the_policy(monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, str, str]]) -> None:
    fleets = [
        {"metadata": {"name": "support"}, "spec": {"modelRef": {"name": "llama"}}},
        {"metadata": {"name": "other"}, "spec": {"modelRef": {"name": "mistral"}}},
    ]
    monkeypatch.setattr(autoscaler, "_list_agentfleets", lambda ns: fleets if ns == "team-a" else [])
    obs = Observation(at=1000.0, samples=samples3(), goodput=None)
    reader = TaskReader(obs, {'namespace="team-a",agentfleet="support"': WorkerSignals(1000.0, 5.0, 19.0)})
    monkeypatch.setattr(autoscaler, "reader", lambda url: reader)
    seen: list[Observation] = []
    real = autoscaler.decide

    def spy(config: Any, state: Any, fleet: Any, o: Observation, capacity: Any = None) -> Any:
        seen.append(o)
        return real(config, state, fleet, o, capacity)

    monkeypatch.setattr(autoscaler, "decide", spy)
    logger = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)
    autoscaler.evaluate_modelreplicaset(
        body={}, spec=SPEC, status={}, meta={"generation": 1}, name="llama", namespace="team-a", memo=types.SimpleNamespace(), patch=kopf.Patch(), logger=logger
    )
    assert reader.asked == ['namespace="team-a",agentfleet="support"']
    assert seen and seen[0].tasks == 24.0


def test_listing_agentfleets_failing_leaves_the_task_layer_out(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(ns: str) -> list[dict[str, Any]]:
        raise RuntimeError("API server unreachable")

    warned: list[str] = []
    monkeypatch.setattr(autoscaler, "_list_agentfleets", boom)
    assert autoscaler.task_layer("team-a", "llama", types.SimpleNamespace(warning=warned.append)) is None
    assert warned and "without the task layer" in warned[0]


def samples3() -> tuple[ReplicaSample, ...]:
    return tuple(ReplicaSample(f"llama-{i}", 0.0, 2.0, 0.2) for i in range(3))


def test_the_agentfleets_of_a_namespace_come_from_the_watch() -> None:
    """The task layer lists no AgentFleets per evaluation: their model references are kept from
    the watch events, and a deleted fleet leaves them."""
    spec = {"modelRef": {"name": "llama"}, "routineModelRef": {"name": "small"}, "workers": {"replicas": 2}}
    asyncio.run(autoscaler.track_agentfleet(type="ADDED", spec=spec, meta={}, namespace="team-b", name="support"))
    asyncio.run(autoscaler.track_agentfleet(type="ADDED", spec={"modelRef": {"name": "llama"}}, meta={}, namespace="team-c", name="other"))
    assert fleets_using(autoscaler._list_agentfleets("team-b"), "llama") == ["support"]
    assert fleets_using(autoscaler._list_agentfleets("team-b"), "small") == ["support"]
    asyncio.run(autoscaler.track_agentfleet(type="DELETED", spec=spec, meta={}, namespace="team-b", name="support"))
    assert autoscaler._list_agentfleets("team-b") == []
    asyncio.run(autoscaler.track_agentfleet(type="DELETED", spec={}, meta={}, namespace="team-c", name="other"))


def test_a_cancelled_burst_order_is_a_warning_next_to_the_scale_down() -> None:
    from agentfleet.autoscale.common import ConditionUpdate, Decision

    got: list[tuple[str, str, str]] = []
    reason = "10 -> 4: ...; cancelling 6 replicas still loading; the burst ended before the replicas ordered for it loaded"
    d = Decision(
        10, 4, 4, reason, (ConditionUpdate("MetricsAvailable", True, "MetricsRead", "4 of 4 replicas reporting"),), warning="BurstShorterThanModelLoad"
    )
    metrics_ok = [{"type": "MetricsAvailable", "status": "True", "reason": "MetricsRead"}]
    autoscaler._emit({}, d, metrics_ok, post=lambda body, *, type, reason, message: got.append((type, reason, message)))
    assert got == [("Normal", "ScaledDown", reason), ("Warning", "BurstShorterThanModelLoad", reason)]
