"""The demo's wait for the printer columns its tasks fill (e2e/demo/driver.py unfilled_columns)."""

from __future__ import annotations

import time

from e2e.demo.driver import unfilled_columns

SINCE = time.time() - 5
FRESH = {
    "observed": {
        "queueDepth": 0,
        "goodput": 0.93,
        "observedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SINCE + 2)),
    }
}


def test_a_pass_that_counted_every_finished_task_fills_the_columns():
    assert unfilled_columns("m", FRESH, "f", {"tasksPerHour": 4, "taskP95Seconds": 3.2}, since=SINCE, finished=4) == []
    # Tasks of an earlier run in the hour count too.
    assert unfilled_columns("m", FRESH, "f", {"tasksPerHour": 9, "taskP95Seconds": 3.2}, since=SINCE, finished=4) == []


def test_a_pass_that_read_redis_while_the_last_task_was_finishing_is_still_short():
    missing = unfilled_columns("m", FRESH, "f", {"tasksPerHour": 3, "taskP95Seconds": 3.2}, since=SINCE, finished=4)
    assert missing == ["AgentFleet f status.tasksPerHour (3 counted of 4 finished)"]


def test_an_observation_from_before_the_tasks_does_not_fill_queue_and_goodput():
    stale = {
        "observed": {
            "queueDepth": 0,
            "goodput": 0.9,
            "observedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SINCE - 30)),
        },
        "conditions": [{"type": "MetricsAvailable", "reason": "Observed", "message": "ok"}],
    }
    missing = unfilled_columns("m", stale, "f", {}, since=SINCE, finished=2)
    assert missing == [
        "ModelReplicaSet m status.observed.queueDepth (Observed: ok)",
        "ModelReplicaSet m status.observed.goodput (Observed: ok)",
        "AgentFleet f status.tasksPerHour (0 counted of 2 finished)",
        "AgentFleet f status.taskP95Seconds",
    ]
