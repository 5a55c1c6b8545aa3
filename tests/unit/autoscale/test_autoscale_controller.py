"""The autoscaler's evaluations: what they write into status and which Events they post (no cluster)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from agentfleet_contract.modelreplicaset import ModelReplicaSetStatus

from agentfleet.autoscale.policy import Capacity, Observation, ReplicaSample
from agentfleet.autoscale.workers import WorkerSignals, fleets_using
from agentfleet.controllers import autoscaler
from agentfleet.controllers.autoscaler import AutoscalerController, AutoscaleState
from agentfleet.reconcile.events import EventRecorder
from tests.builders import MRS
from tests.unit.autoscale.test_autoscale_policy import gp

SPEC: dict[str, Any] = {
    "model": {"name": "meta-llama/Llama-3.1-70B-Instruct", "servedName": "llama-70b"},
    "autoscaling": {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 8,
        "targetQueueDepthPerReplica": 8,
        "evaluationPeriodSeconds": 15,
    },
}


def ready_pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"agentfleet.io/serving": "true"},
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:03:00Z"}],
        },
    }


class FakeReader:
    def __init__(self, obs: Observation) -> None:
        self.obs = obs
        self.calls: list[Any] = []

    def observe(self, target: Any, objectives: Any, window: int) -> Observation:
        self.calls.append((target, objectives, window))
        return self.obs


class FakeReads:
    """The cluster reads besides Prometheus: three ready replicas, room for ten more."""

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [ready_pod("llama-0"), ready_pod("llama-1"), ready_pod("llama-2")]

    def capacity(self, *_: Any) -> Capacity:
        return Capacity(placeable_extra=10)

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}  # the demand profile's, in memory

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.configmaps.get((namespace, name))

    def write_profile(self, owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None:
        self.configmaps[(namespace, name)] = data

    def task_stream(self, namespace: str, name: str, socket_timeout: float) -> Any | None:
        return None  # no fleet's Redis here: a sleeping object falls back to the poll


class FakeKube:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.applied: list[tuple[dict[str, Any], str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.obj

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.applied.append((obj, manager))
        return obj


def controller(
    reader: Any, kube: Any = None, posted: list | None = None, reads: FakeReads | None = None
) -> AutoscalerController:
    post = (
        (lambda obj, type_, reason, message: posted.append((type_, reason, message)))
        if posted is not None
        else (lambda *a: None)
    )
    return AutoscalerController(kube, EventRecorder(post), reads=reads or FakeReads(), readers=lambda url: reader)  # type: ignore[arg-type]


def mrs_obj(status: dict[str, Any], generation: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "llama", "namespace": "team-a", "generation": generation},
        "spec": SPEC,
        "status": status,
    }


def run(
    obs: Observation, status: dict[str, Any], state: AutoscaleState | None = None
) -> tuple[dict[str, Any], list, AutoscaleState]:
    reader = FakeReader(obs)
    state = state or AutoscaleState()
    written, posts = controller(reader).evaluate_modelreplicaset(mrs_obj(status), state, time.time())
    assert reader.calls and reader.calls[0][0].matchers == 'namespace="team-a",model_name="llama-70b"'
    return written, posts, state


def test_scale_up_writes_status_only_and_emits_an_event() -> None:
    samples = tuple(ReplicaSample(f"llama-{i}", 41 / 3, 10.0, 0.4) for i in range(3))
    st, events, _ = run(Observation(at=time.time(), samples=samples, goodput=gp(0.81, n=300)), {"desiredReplicas": 3})
    body = autoscaler.mrs_status_apply(mrs_obj({"desiredReplicas": 3}), st)
    assert set(body) == {"apiVersion", "kind", "metadata", "status"}  # never spec: GitOps owns it
    assert st["desiredReplicas"] == 6
    assert st["lastScaleReason"].startswith("3 -> 6 (reactive): 41 waiting > 3 x 8 target; goodput 0.81 < 0.95")
    assert st["observed"]["queueDepth"] == 41
    types_ = {c["type"]: c for c in st["conditions"]}
    assert types_["ScalingActive"]["status"] == "True" and types_["MetricsAvailable"]["status"] == "True"
    assert types_["ScalingLimited"]["status"] == "False"
    assert all(c["observedGeneration"] == 2 for c in st["conditions"])
    ModelReplicaSetStatus.model_validate(st)  # the patch fits the CRD's status schema
    assert events == [("Normal", "ScaledUp", st["lastScaleReason"])]


def test_prometheus_down_holds_and_warns_once() -> None:
    obs = Observation(at=time.time(), error="ConnectionError: refused")
    st, events, state = run(obs, {"desiredReplicas": 3})
    assert st["desiredReplicas"] == 3 and "lastScaleTime" not in st and "observed" not in st
    m = next(c for c in st["conditions"] if c["type"] == "MetricsAvailable")
    assert m["status"] == "False" and m["reason"] == "PrometheusUnavailable"
    assert [e[:2] for e in events] == [("Warning", "PrometheusUnavailable")]
    # Next period: same cause, no second Warning.
    _, again, _ = run(obs, {"desiredReplicas": 3, "conditions": st["conditions"]}, state)
    assert again == []


def test_each_decision_is_logged_with_the_object_it_is_for(caplog: pytest.LogCaptureFixture) -> None:
    """With several objects evaluated, a bare "holding 3: ..." line says not whose it is (a set's
    and a fleet's lines read as one object's in a CI failure)."""
    samples = tuple(ReplicaSample(f"llama-{i}", 1.0, 2.0, 0.1) for i in range(3))
    ctl = controller(
        FakeReader(Observation(at=time.time(), samples=samples)), FakeKube(mrs_obj({"desiredReplicas": 3}))
    )
    with caplog.at_level(logging.INFO, logger="agentfleet.autoscaler"):
        ctl.reconcile(("ModelReplicaSet", "team-a", "llama"), None)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "agentfleet.autoscaler"]
    assert line.startswith("ModelReplicaSet team-a/llama: ") and "3" in line, line


def test_the_period_gate_skips_early_ticks() -> None:
    reader = FakeReader(Observation(at=time.time()))
    kube = FakeKube(mrs_obj({}))
    ctl = controller(reader, kube)
    key = ("ModelReplicaSet", "team-a", "llama")
    ctl.state(key).last_eval = time.time()
    wait = ctl.reconcile(key, None)
    assert not reader.calls and not kube.applied
    assert 5.0 <= wait <= 15.0  # evaluationPeriodSeconds 15, just evaluated


def test_an_evaluation_applies_under_the_autoscaler_manager_and_comes_back_after_its_period() -> None:
    samples = tuple(ReplicaSample(f"llama-{i}", 1.0, 2.0, 0.1) for i in range(3))
    kube, posted = FakeKube(mrs_obj({"desiredReplicas": 3})), []
    ctl = controller(FakeReader(Observation(at=time.time(), samples=samples)), kube, posted)
    assert ctl.reconcile(("ModelReplicaSet", "team-a", "llama"), None) == 15.0
    ((body, manager),) = kube.applied
    assert manager == "agentfleet-autoscaler" and body["status"]["desiredReplicas"] == 3 and posted == []


def test_learned_load_time_is_written_and_survives_a_restart() -> None:
    samples = tuple(ReplicaSample(f"llama-{i}", 1.0, 2.0, 0.1) for i in range(3))
    obs = Observation(at=time.time(), samples=samples)
    # ready_pod(): created 00:00:00, Ready at 00:03:00 -> 180 s of model load.
    st, _, _ = run(obs, {"desiredReplicas": 3})
    assert st["learnedModelLoadSeconds"] == 180
    # A fresh memo (operator restart) starts from status, not from the 300 s prior; the pods
    # it sees again move the average by alpha only.
    st, _, state = run(obs, {"desiredReplicas": 3, "learnedModelLoadSeconds": 100})
    assert state.policy is not None and state.policy.load_time.samples > 1
    assert 100 < st["learnedModelLoadSeconds"] < 180


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
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllReplicasReady",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
                {
                    "type": "ScalingLimited",
                    "status": "False",
                    "reason": "DesiredWithinRange",
                    "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
            ],
        },
    }
    held = {
        "type": "MetricsAvailable",
        "status": "False",
        "reason": "PrometheusUnavailable",
        "message": "x",
        "lastTransitionTime": "2026-01-01T00:01:00Z",
    }
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


def test_the_task_layer_of_the_agentfleets_using_the_model_reaches_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    obs = Observation(at=1000.0, samples=samples3(), goodput=None)
    reader = TaskReader(obs, {'namespace="team-a",agentfleet="support"': WorkerSignals(1000.0, 5.0, 19.0)})
    ctl = controller(reader)
    ctl.track_fleet_refs("team-a", "support", {"modelRef": {"name": "llama"}}, {}, deleted=False)
    ctl.track_fleet_refs("team-a", "other", {"modelRef": {"name": "mistral"}}, {}, deleted=False)
    seen: list[Observation] = []
    real = autoscaler.plan.decide

    def spy(
        config: Any, state: Any, fleet: Any, o: Observation, capacity: Any = None, floors: Any = (), hold: Any = None
    ) -> Any:
        seen.append(o)
        return real(config, state, fleet, o, capacity, floors, hold)

    monkeypatch.setattr(autoscaler.plan, "decide", spy)
    ctl.evaluate_modelreplicaset(mrs_obj({}, generation=1), AutoscaleState(), time.time())
    assert reader.asked == ['namespace="team-a",agentfleet="support"']
    assert seen and seen[0].tasks == 24.0


def test_listing_agentfleets_failing_leaves_the_task_layer_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(ns: str) -> list[dict[str, Any]]:
        raise RuntimeError("API server unreachable")

    ctl = controller(FakeReader(Observation(at=time.time())))
    monkeypatch.setattr(ctl, "fleets_in", boom)
    with caplog.at_level(logging.WARNING, logger="agentfleet.autoscaler"):
        assert ctl.task_layer("team-a", "llama", "http://prom") is None
    assert "without the task layer" in caplog.text


def samples3() -> tuple[ReplicaSample, ...]:
    return tuple(ReplicaSample(f"llama-{i}", 0.0, 2.0, 0.2) for i in range(3))


def test_the_agentfleets_of_a_namespace_come_from_the_watch() -> None:
    """The task layer lists no AgentFleets per evaluation: their model references are kept from
    the watch events, and a deleted fleet leaves them."""
    ctl = controller(None)
    spec = {"modelRef": {"name": "llama"}, "routineModelRef": {"name": "small"}, "workers": {"replicas": 2}}
    ctl.track_fleet_refs("team-b", "support", spec, {}, deleted=False)
    ctl.track_fleet_refs("team-c", "other", {"modelRef": {"name": "llama"}}, {}, deleted=False)
    assert fleets_using(ctl.fleets_in("team-b"), "llama") == ["support"]
    assert fleets_using(ctl.fleets_in("team-b"), "small") == ["support"]
    ctl.track_fleet_refs("team-b", "support", spec, {}, deleted=True)
    assert ctl.fleets_in("team-b") == []


def test_a_cancelled_burst_order_is_a_warning_next_to_the_scale_down() -> None:
    from agentfleet.autoscale.common import ConditionUpdate, Decision

    reason = (
        "10 -> 4: ...; cancelling 6 replicas still loading; the burst ended before the replicas ordered for it loaded"
    )
    d = Decision(
        10,
        4,
        4,
        reason,
        (ConditionUpdate("MetricsAvailable", True, "MetricsRead", "4 of 4 replicas reporting"),),
        warning="BurstShorterThanModelLoad",
    )
    metrics_ok = [{"type": "MetricsAvailable", "status": "True", "reason": "MetricsRead"}]
    assert autoscaler.scale_events(d, metrics_ok) == [
        ("Normal", "ScaledDown", reason),
        ("Warning", "BurstShorterThanModelLoad", reason),
    ]


def _evaluate(
    spec: dict[str, Any],
    obs: Observation,
    status: dict[str, Any],
    state: AutoscaleState,
    reads: FakeReads | None = None,
) -> tuple[dict[str, Any], list]:
    obj = MRS("llama").ns("team-a").meta(uid="u1", generation=2).whole_spec(spec).status(status).obj()
    return controller(FakeReader(obs), reads=reads).evaluate_modelreplicaset(obj, state, time.time())


def _quiet() -> Observation:
    return Observation(
        at=time.time(),
        samples=tuple(ReplicaSample(f"llama-{i}", 0.0, 2.0, 0.1) for i in range(3)),
        goodput=gp(0.99, n=300),
    )


def test_a_schedule_window_scales_up_and_the_decision_names_the_term() -> None:
    spec = {
        **SPEC,
        "autoscaling": {
            **SPEC["autoscaling"],
            "schedules": [{"name": "batch", "start": "* * * * *", "durationSeconds": 3600, "replicas": 7}],
        },
    }
    st, events = _evaluate(spec, _quiet(), {"desiredReplicas": 3}, AutoscaleState())
    assert st["desiredReplicas"] == 7 and st["lastScaleTerm"] == "scheduled"
    assert st["lastScaleReason"].startswith("3 -> 7 (scheduled): schedule 'batch' from")
    assert st["forecast"]["scheduledReplicas"] == 7
    ModelReplicaSetStatus.model_validate(st)
    assert events == [("Normal", "ScaledUp", st["lastScaleReason"])]


def test_the_learned_profile_outlives_the_operator_process() -> None:
    import json

    from agentfleet.autoscale.forecast import ForecastConfig, Profile

    # What an earlier operator process stored: 40 agent tasks all day, 4 per replica.
    stored = Profile(capacity=4.0, curve=(40.0,) * ForecastConfig().bins, started_at=time.time() - 3 * 86400)
    reads = FakeReads()
    reads.configmaps[("team-a", "llama-demand-profile")] = {"profile.json": json.dumps(stored.to_json())}
    state = AutoscaleState()  # a new process: nothing in memory
    predictive = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "predictive": True}}
    st, _ = _evaluate(predictive, _quiet(), {"desiredReplicas": 3}, state, reads)
    # ceil(40 / 4) = 10 wanted by the learned curve: 3 + maxScaleUpStep 4 now.
    assert st["desiredReplicas"] == 7 and st["lastScaleTerm"] == "predictive"
    assert st["forecast"]["predictedReplicas"] == 10 and st["forecast"]["tasksPerReplica"] == 4.0
    assert st["forecast"]["profileConfigMap"] == "llama-demand-profile" and st["forecast"]["daysObserved"] >= 3
    # The failure level the reactive task term uses came back with it (capacity / 0.8).
    assert state.policy is not None and state.policy.tight_tasks_per_replica == pytest.approx(
        5.0, rel=0.01
    )  # forgotten slowly upward
    ModelReplicaSetStatus.model_validate(st)
    # Kept in the ConfigMap (owned by the ModelReplicaSet).
    assert json.loads(reads.configmaps[("team-a", "llama-demand-profile")]["profile.json"])["capacity"] == 4.0


def test_status_says_when_the_standby_of_the_burst_season_was_released() -> None:
    import json

    from agentfleet.autoscale.forecast import ForecastConfig, Onset, Profile

    # Pins status.forecast.standbyReleasedAt: a burst came once a day near this time on the two
    # days before, today's came 5 min ago and ended 200 s ago, so nothing stands for the season.
    now = float(int(time.time()))  # whole seconds: the ConfigMap keeps onset times to 0.1 s
    day = 86400.0
    onsets = (
        Onset(now - 2 * day + 600, 40.0, 150.0),
        Onset(now - day - 600, 40.0, 150.0),
        Onset(now - 300.0, 40.0, 100.0),
    )
    stored = Profile(capacity=4.0, curve=(4.0,) * ForecastConfig().bins, onsets=onsets, started_at=now - 3 * day)
    reads = FakeReads()
    reads.configmaps[("team-a", "llama-demand-profile")] = {"profile.json": json.dumps(stored.to_json())}
    covered = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "predictive": True, "burstCoveragePercent": 50}}
    st, _ = _evaluate(covered, _quiet(), {"desiredReplicas": 3}, AutoscaleState(), reads)
    assert st["forecast"]["standbyReleasedAt"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 200.0))
    assert "standingReplicas" not in st["forecast"]
    ModelReplicaSetStatus.model_validate(st)


def test_a_schedule_in_an_unknown_time_zone_is_one_warning_and_ignored() -> None:
    spec = {
        **SPEC,
        "autoscaling": {
            **SPEC["autoscaling"],
            "schedules": [
                {"name": "b", "start": "0 9 * * *", "durationSeconds": 600, "replicas": 7, "timeZone": "Mars/Olympus"}
            ],
        },
    }
    state = AutoscaleState()
    posted: list = []
    for _ in range(2):
        st, events = _evaluate(spec, _quiet(), {"desiredReplicas": 3}, state)
        posted.extend(events)
    assert st["desiredReplicas"] == 3
    warnings = [e for e in posted if e[0] == "Warning"]
    assert len(warnings) == 1 and warnings[0][1] == "ScheduleInvalid" and "Mars/Olympus" in warnings[0][2]


def test_the_profile_configmap_is_owned_by_the_modelreplicaset() -> None:
    from agentfleet.controllers import demand

    owner = MRS("llama").meta(uid="u1").obj()
    cm = demand.configmap(owner, "team-a", "llama-demand-profile", {"profile.json": "{}"})
    ref = cm["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("ModelReplicaSet", "llama", "u1", True)
