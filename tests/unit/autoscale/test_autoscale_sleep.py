"""Scale to zero: the sleep machine's pure decisions (autoscale/sleep.py) and what the autoscaler's
evaluations write with it (no cluster: the queue reads are faked, the decisions are real)."""

from __future__ import annotations

from typing import Any

from agentfleet_contract.agentfleet import AgentFleetStatus
from agentfleet_contract.modelreplicaset import ModelReplicaSetStatus

from agentfleet.autoscale.policy import Observation
from agentfleet.autoscale.sleep import (
    AWAKE,
    SLEEPING,
    WAKING,
    Activity,
    SleepConfig,
    SleepState,
    decide_sleep,
    restore,
    to_status,
)
from agentfleet.autoscale.workers import WorkerSignals
from agentfleet.controllers.autoscaler import AF, MRS, AutoscaleState, combined_work
from tests.unit.autoscale.test_autoscale_controller import SPEC, FakeReader, FakeReads, controller

CFG = SleepConfig(enabled=True, idle_seconds=600)


def step(state: SleepState, work: float | None, ready: int, now: float) -> Any:
    return decide_sleep(CFG, state, Activity(work, ready), now)


def test_sleeps_only_after_the_whole_idle_time() -> None:
    s = SleepState(AWAKE, 0.0)
    d = step(s, 0, 1, 100.0)
    assert d.override is None and d.floor == 1 and d.state.idle_since == 100.0
    d = step(d.state, 0, 1, 699.0)
    assert d.override is None and d.state.phase == AWAKE  # 599 s idle: not yet
    d = step(d.state, 0, 1, 700.0)
    assert d.override == 0 and d.state.phase == SLEEPING and d.event is not None and d.event[1] == "Sleeping"


def test_any_work_restarts_the_idle_clock() -> None:
    d = step(SleepState(AWAKE, 0.0), 0, 1, 0.0)
    d = step(d.state, 3, 1, 500.0)  # a task came and went
    assert d.state.idle_since is None
    d = step(d.state, 0, 1, 510.0)
    d = step(d.state, 0, 1, 1000.0)
    assert d.state.phase == AWAKE  # 490 s since the last work
    assert step(d.state, 0, 1, 1110.0).state.phase == SLEEPING


def test_unknown_activity_never_sleeps_nor_wakes() -> None:
    d = step(SleepState(AWAKE, 0.0, idle_since=0.0), None, 1, 5000.0)
    assert d.state.phase == AWAKE and d.state.idle_since is None
    asleep = SleepState(SLEEPING, 0.0)
    d = step(asleep, None, 0, 10.0)
    assert d.state.phase == SLEEPING and d.override == 0


def test_a_queued_task_wakes_and_the_wake_latency_is_reported() -> None:
    d = step(SleepState(SLEEPING, 0.0), 1, 0, 50.0)
    assert d.state.phase == WAKING and d.override is None and d.floor == 1
    assert d.event == ("Normal", "Waking", "waking: 1 tasks queued or in flight")
    # Loading: still waking, even if the task was cancelled meanwhile (no flapping back to sleep).
    d = step(d.state, 0, 0, 120.0)
    assert d.state.phase == WAKING and d.floor == 1 and d.override is None
    d = step(d.state, 0, 1, 171.5)
    assert d.state.phase == AWAKE and d.state.last_wake_seconds == 121.5
    assert d.event is not None and d.event[1] == "Woke" and "121.5s" in d.event[2]


def test_a_woken_fleet_waits_a_whole_idle_time_before_sleeping_again() -> None:
    d = step(SleepState(WAKING, 0.0, woken_at=0.0), 0, 1, 60.0)  # ready, and nothing to do
    assert d.state.phase == AWAKE and d.state.idle_since == 60.0
    assert step(d.state, 0, 1, 600.0).state.phase == AWAKE
    assert step(d.state, 0, 1, 660.0).state.phase == SLEEPING


def test_disabled_is_always_awake_with_no_floor() -> None:
    d = decide_sleep(SleepConfig(False, 600), SleepState(SLEEPING, 0.0), Activity(0, 0), 10.0)
    assert d.state.phase == AWAKE and d.override is None and d.floor == 0


def test_status_round_trip() -> None:
    s = SleepState(WAKING, 1_800_000_000.0, woken_at=1_800_000_000.0, last_wake_seconds=12.34)
    st = to_status(s)
    assert st == {"state": "Waking", "since": "2027-01-15T08:00:00Z", "lastWakeSeconds": 12.3}
    back = restore(st, 0.0)
    assert back.phase == WAKING and back.since == s.since and back.woken_at == s.since
    assert restore(None, 7.0) == SleepState(AWAKE, 7.0)


def test_combined_work_sees_work_anywhere_and_idleness_only_everywhere() -> None:
    assert combined_work([None, 2.0]) == 2.0
    assert combined_work([None, 0.0]) is None
    assert combined_work([0.0, 0.0]) == 0.0


# --- the autoscaler's evaluations with the sleep machine ---------------------------------------


class QueueReads(FakeReads):
    """No replica pods; the fleets' queues as set."""

    def __init__(self, work: dict[str, float | None]) -> None:
        super().__init__()
        self.work = work

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []

    def fleet_work(self, namespace: str, name: str) -> float | None:
        return self.work.get(name)


ZERO_SPEC = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "minReplicas": 0, "sleepAfterIdleSeconds": 300}}


class Reader(FakeReader):
    """Prometheus for a model whose fleets' workers report nothing yet."""

    def worker_signals(self, matchers: str) -> WorkerSignals:
        return WorkerSignals(at=0.0, queued=None, in_flight=None, error="no worker reports")


def mrs(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "llama", "namespace": "team-a", "generation": 1}, "spec": ZERO_SPEC, "status": status}


def with_fleet(c: Any, sleep: str | None = None) -> Any:
    c.track_fleet_refs(
        "team-a",
        "support",
        {"modelRef": {"name": "llama"}},
        {},
        deleted=False,
        status={"sleep": {"state": sleep}} if sleep else {},
    )
    return c


def test_a_sleeping_model_holds_zero_without_asking_prometheus_and_wakes_on_a_queued_task() -> None:
    reads = QueueReads({"support": 0.0})
    reader = Reader(Observation(at=1000.0))
    c = with_fleet(controller(reader, reads=reads))
    state = AutoscaleState()
    asleep = {"desiredReplicas": 0, "sleep": {"state": "Sleeping", "since": "2026-01-01T00:00:00Z"}}
    written, posts = c.evaluate_modelreplicaset(mrs(asleep), state, 1000.0)
    assert written["desiredReplicas"] == 0 and written["sleep"]["state"] == "Sleeping" and posts == []
    assert reader.calls == []  # nothing runs: nothing to measure
    ModelReplicaSetStatus.model_validate(written)
    reads.work["support"] = 1.0
    written, posts = c.evaluate_modelreplicaset(mrs(asleep), state, 1001.0)
    assert written["desiredReplicas"] == 1 and written["sleep"]["state"] == "Waking"
    assert ("Normal", "Waking", "waking: 1 tasks queued or in flight") in posts
    assert c.period(MRS, mrs(asleep), state.sleep) == 1.0  # polled every second until ready


def test_the_wake_orders_its_first_replica_without_waiting_for_prometheus_or_the_planner() -> None:
    reads = QueueReads({"support": 1.0})
    reads.capacity = lambda *a: (_ for _ in ()).throw(AssertionError("the planner was asked"))  # type: ignore[method-assign]
    reader = Reader(Observation(at=1000.0))
    c = with_fleet(controller(reader, reads=reads))
    state = AutoscaleState()
    asleep = {"desiredReplicas": 0, "sleep": {"state": "Sleeping", "since": "2026-01-01T00:00:00Z"}}
    written, posts = c.evaluate_modelreplicaset(mrs(asleep), state, 1000.0)
    assert written["desiredReplicas"] == 1 and written["sleep"]["state"] == "Waking"
    assert reader.calls == []  # nothing to measure yet: the policy decides from the next evaluation
    assert [p[1] for p in posts] == ["ScaledUp", "Waking"]
    ModelReplicaSetStatus.model_validate(written)


def test_a_waking_fleet_enqueues_and_wakes_its_sleeping_model() -> None:
    reads = QueueReads({"support": 1.0})
    c = with_fleet(controller(Reader(Observation(at=0.0)), reads=reads))
    state = c.state((MRS, "team-a", "llama"))
    state.sleep = SleepState(SLEEPING, 0.0)
    asked: list[Any] = []
    c.enqueue = lambda key, delay=0.0, **_: asked.append((key, delay))
    with_fleet(c, "Waking")
    assert asked == [((MRS, "team-a", "llama"), 0.0)]  # at once, not at the next poll
    written, posts = c.evaluate_modelreplicaset(mrs({"desiredReplicas": 0}), state, 10.0)
    assert written["desiredReplicas"] == 1 and any(p[1] == "Waking" for p in posts)


def test_an_idle_model_at_one_replica_goes_to_zero_after_the_idle_time() -> None:
    reads = QueueReads({"support": 0.0})
    c = with_fleet(controller(Reader(Observation(at=0.0)), reads=reads))
    state = AutoscaleState(sleep=SleepState(AWAKE, 0.0, idle_since=0.0))
    written, _ = c.evaluate_modelreplicaset(mrs({"desiredReplicas": 1}), state, 299.0)
    assert written["desiredReplicas"] == 1  # the policy's floor is one while awake
    written, posts = c.evaluate_modelreplicaset(mrs({"desiredReplicas": 1}), state, 301.0)
    assert written["desiredReplicas"] == 0 and written["sleep"]["state"] == "Sleeping"
    assert [p[1] for p in posts] == ["ScaledDown", "Sleeping"]


class WorkerReader:
    def __init__(self) -> None:
        self.asked = 0

    def worker_signals(self, matchers: str) -> WorkerSignals:
        self.asked += 1
        return WorkerSignals(at=0.0, queued=None, in_flight=None, error="no worker reports")


def fleet(status: dict[str, Any]) -> dict[str, Any]:
    spec = {"workers": {"autoscaling": True, "minReplicas": 0, "maxReplicas": 4, "sleepAfterIdleSeconds": 60}}
    return {"metadata": {"name": "support", "namespace": "team-a", "generation": 1}, "spec": spec, "status": status}


def test_workers_at_zero_wake_on_their_queue_though_no_worker_reports_metrics() -> None:
    reads = QueueReads({"support": 0.0})
    reader = WorkerReader()
    c = controller(reader, reads=reads)
    state = AutoscaleState(sleep=SleepState(SLEEPING, 0.0))
    written, posts = c.evaluate_workers(fleet({"desiredWorkers": 0}), state, 10.0)
    assert written["desiredWorkers"] == 0 and reader.asked == 0
    reads.work["support"] = 2.0
    written, posts = c.evaluate_workers(fleet({"desiredWorkers": 0}), state, 11.0)
    assert written["desiredWorkers"] == 1 and written["sleep"]["state"] == "Waking"
    AgentFleetStatus.model_validate(written)
    # Ready: awake, and the wake's latency is an Event.
    written, posts = c.evaluate_workers(fleet({"desiredWorkers": 1, "readyWorkers": 1}), state, 14.0)
    assert written["sleep"]["state"] == "Awake" and written["sleep"]["lastWakeSeconds"] == 3.0
    assert any(p[1] == "Woke" for p in posts)
    assert c.period(AF, fleet({}), state.sleep) == 15.0
