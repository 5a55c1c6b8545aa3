"""A sleeping object's watch of its fleet's task stream, against a real redis-server: a task added
wakes it within a blocking read's round trip (not at the autoscaler's next 1 s poll), a task added
before the watch started is not missed, and a watch no longer wanted wakes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys

from agentfleet.controllers.agentfleet import redis_client
from agentfleet.controllers.wakewatch import WakeWatch
from e2e.harness.redis import redis_server

STREAM = Keys("agents", "team-a").stream  # the fleet team-a/agents (below): its keys hold the namespace
KEY = ("ModelReplicaSet", "team-a", "chat")


@pytest.fixture
def url() -> Iterator[str]:
    with redis_server() as u:
        r = redis.Redis.from_url(u)
        r.xgroup_create(STREAM, CONSUMER_GROUP, id="$", mkstream=True)
        r.close()
        yield u


class Woken:
    def __init__(self) -> None:
        self.at: list[tuple[Any, float]] = []
        self.event = threading.Event()

    def __call__(self, key: Any) -> None:
        self.at.append((key, time.monotonic()))
        self.event.set()


def watch(url: str, woken: Woken, block: float = 5.0) -> WakeWatch:
    return WakeWatch(lambda ns, fleet, timeout: redis_client(url, None, timeout), woken, block_seconds=block)


def delivered_and_acked(r: redis.Redis) -> None:
    """A worker took every task and finished it: the group is idle (lag 0, nothing pending)."""
    for _, entries in r.xreadgroup(CONSUMER_GROUP, "w1", {STREAM: ">"}) or []:
        for eid, _ in entries:
            r.xack(STREAM, CONSUMER_GROUP, eid)


def test_a_task_added_to_a_watched_stream_wakes_the_sleeping_object_at_once(url: str) -> None:
    r = redis.Redis.from_url(url)
    r.xadd(STREAM, {"id": "old"})
    delivered_and_acked(r)  # an old task, served: no work
    woken = Woken()
    w = watch(url, woken)
    w.watch(KEY, "team-a", ["agents"])
    time.sleep(0.5)  # the watch is blocking now
    assert woken.at == []
    t0 = time.monotonic()
    r.xadd(STREAM, {"id": "new"})
    assert woken.event.wait(2.0), "the task did not wake the watch"
    ((key, at),) = woken.at
    assert key == KEY and at - t0 < 0.3, f"woken {at - t0:.3f}s after the task"  # the old poll: up to 1 s
    assert w.watched() == {}  # one wake, then the next evaluation decides whether to watch again
    w.stop()


def test_a_task_added_before_the_watch_started_is_not_missed(url: str) -> None:
    r = redis.Redis.from_url(url)
    r.xadd(STREAM, {"id": "a"})
    delivered_and_acked(r)
    r.xadd(STREAM, {"id": "b"})  # after the evaluation that saw nothing, before the watch
    woken = Woken()
    w = watch(url, woken)
    w.watch(KEY, "team-a", ["agents"])
    assert woken.event.wait(2.0)
    w.stop()


def test_an_object_no_longer_asleep_is_not_woken(url: str) -> None:
    r = redis.Redis.from_url(url)
    woken = Woken()
    w = watch(url, woken, block=0.3)
    w.watch(KEY, "team-a", ["agents"])
    w.watch(KEY, "team-a", [])  # it woke by the poll meanwhile
    time.sleep(0.8)  # the watch notices within one blocking read
    r.xadd(STREAM, {"id": "late"})
    time.sleep(0.5)
    assert woken.at == [] and w.watched() == {}
    w.stop()


def test_an_unreachable_redis_wakes_nothing_and_ends_the_watch() -> None:
    woken = Woken()
    w = watch("redis://127.0.0.1:1", woken, block=0.2)
    w.watch(KEY, "team-a", ["agents"])
    time.sleep(1.0)
    assert woken.at == [] and w.watched() == {}
    w.stop()


# --- the autoscaler: a sleeping fleet's workers woken by the watch, not by the poll ---------------


class Cluster:
    """The API objects the autoscaler reads (one AgentFleet asleep), and the statuses it applies."""

    def __init__(self, redis_url: str) -> None:
        spec = {
            "redis": {"url": redis_url},
            "workers": {"autoscaling": True, "minReplicas": 0, "maxReplicas": 2, "sleepAfterIdleSeconds": 60},
        }
        status = {"desiredWorkers": 0, "sleep": {"state": "Sleeping", "since": "2026-01-01T00:00:00Z"}}
        self.af = {
            "metadata": {"name": "agents", "namespace": "team-a", "generation": 1},
            "spec": spec,
            "status": status,
        }
        self.applied: list[tuple[float, dict[str, Any]]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.af if kind == "AgentFleet" else None

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.applied.append((time.monotonic(), obj["status"]))
        return obj


class NoWorkerMetrics:
    def worker_signals(self, matchers: str) -> Any:
        from agentfleet.autoscale.workers import WorkerSignals

        return WorkerSignals(at=0.0, queued=None, in_flight=None, error="no worker reports")


def test_a_task_wakes_sleeping_workers_through_the_watch_long_before_the_poll(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from agentfleet.controllers import autoscaler
    from agentfleet.reconcile.events import EventRecorder

    # The poll is pushed out of reach: only the watch can wake the fleet within the test.
    monkeypatch.setattr(autoscaler.settings, "SLEEP_POLL_SECONDS", 60.0)
    kube = Cluster(url)
    c = autoscaler.AutoscalerController(
        kube,  # type: ignore[arg-type]
        EventRecorder(lambda *a: None),
        reads=autoscaler.ClusterReads(kube),  # type: ignore[arg-type]
        readers=lambda _: NoWorkerMetrics(),
    )
    key = ("AgentFleet", "team-a", "agents")

    async def scenario() -> float:
        c.enqueue(key)
        while not kube.applied:  # the first evaluation: asleep, nothing queued; the watch starts
            await asyncio.sleep(0.02)
        assert kube.applied[-1][1]["sleep"]["state"] == "Sleeping"
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        redis.Redis.from_url(url).xadd(STREAM, {"id": "t1"})
        while not any(s.get("desiredWorkers") == 1 for _, s in kube.applied):
            if time.monotonic() - t0 > 5:
                raise AssertionError(f"not woken within 5 s: {kube.applied[-1][1]}")
            await asyncio.sleep(0.02)
        woke = next(at for at, s in kube.applied if s.get("desiredWorkers") == 1)
        await c.stop()
        return woke - t0

    took = asyncio.run(scenario())
    c.wake_watch.stop()
    assert took < 0.5, f"woken {took:.2f}s after the task"
