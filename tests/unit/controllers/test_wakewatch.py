"""Where a watch of a sleeping fleet's task stream starts (controllers/wakewatch.py), and the
autoscaler evaluating a woken object at once instead of at its next poll."""

from __future__ import annotations

from typing import Any

from agentfleet.autoscale.sleep import SLEEPING, SleepState
from agentfleet.controllers.autoscaler import MRS
from agentfleet.controllers.wakewatch import EVERY_ENTRY, resume_id
from tests.unit.autoscale.test_autoscale_controller import FakeKube, FakeReader, controller
from tests.unit.autoscale.test_autoscale_sleep import ZERO_SPEC


def group(lag: int | None, pending: int, last: str) -> dict[str, Any]:
    return {"name": "workers", "lag": lag, "pending": pending, "last-delivered-id": last}


def test_an_idle_stream_is_read_from_the_groups_last_delivered_id() -> None:
    # Anything added after the workers' last read is returned: nothing slips in before the watch.
    assert resume_id(5, [group(0, 0, "1700000000000-3")]) == "1700000000000-3"


def test_work_already_queued_or_in_flight_wakes_without_blocking() -> None:
    assert resume_id(5, [group(1, 0, "1-0")]) is None
    assert resume_id(5, [group(0, 1, "1-0")]) is None
    assert resume_id(3, []) is None  # before the group exists, every entry is a queued task


def test_before_the_stream_or_the_group_exists_every_entry_wakes() -> None:
    assert resume_id(None, []) == EVERY_ENTRY
    assert resume_id(0, []) == EVERY_ENTRY
    assert resume_id(0, [{"name": "other", "lag": 0, "pending": 0, "last-delivered-id": "9-0"}]) == EVERY_ENTRY


def test_a_woken_sleeping_model_is_evaluated_at_once_not_at_its_next_poll() -> None:
    asleep = {"desiredReplicas": 0, "sleep": {"state": "Sleeping", "since": "2026-01-01T00:00:00Z"}}
    obj = {"metadata": {"name": "llama", "namespace": "team-a", "generation": 1}, "spec": ZERO_SPEC, "status": asleep}
    now = [1000.0]
    c = controller(FakeReader(None), kube=FakeKube(obj))
    c.clock = lambda: now[0]
    c.queue.add_threadsafe = lambda key, **_: None  # no event loop here
    key = (MRS, "team-a", "llama")
    state = c.state(key)
    state.sleep, state.last_eval = SleepState(SLEEPING, 900.0), 999.9
    assert c.reconcile(key, None) > 0.5  # polled: the last evaluation was 0.1 s ago
    assert len(c.kube.applied) == 0
    c.woken(key)
    c.reconcile(key, None)
    assert len(c.kube.applied) == 1 and not state.woken
