"""Leader election (agentfleet.leader): the pure decision with a fake clock, and the Elector's
optimistic writes against an in-memory Lease store that enforces resourceVersion like the API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import ConflictError

from agentfleet import leader
from agentfleet.leader import Decision, Record, Seen, Timing, decide

T = Timing(15, 10, 2)


def test_no_lease_is_created_with_me_as_holder() -> None:
    d = decide(None, False, "a", 100.0, "W", T)
    assert d == Decision("create", Record("a", 15, "W", "W", 0), 0.0)


def test_the_holder_renews_and_keeps_its_acquire_time() -> None:
    seen = Seen(Record("a", 15, "W0", "W0", 3), changed_at=100.0)
    d = decide(seen, True, "a", 200.0, "W1", T)  # even long after: it is still the holder
    assert d.action == "renew" and d.record == Record("a", 15, "W0", "W1", 3)


def test_a_follower_waits_while_the_record_keeps_changing() -> None:
    seen = Seen(Record("a", 15, "W0", "W0", 0), changed_at=100.0)
    d = decide(seen, True, "b", 110.0, "W", T)
    assert d.action == "wait" and d.record is None and d.wait_s == pytest.approx(5.0)


def test_a_silent_holder_is_replaced_after_the_duration_on_the_followers_clock() -> None:
    seen = Seen(Record("a", 15, "W0", "W0", 2), changed_at=100.0)
    assert decide(seen, True, "b", 114.9, "W", T).action == "wait"
    d = decide(seen, True, "b", 115.0, "W9", T)
    assert d == Decision("acquire", Record("b", 15, "W9", "W9", 3), 0.0)


def test_the_holders_renew_time_is_never_compared_with_the_followers_clock() -> None:
    # A renewTime far in the past (the holder's clock is behind) does not shorten the wait: only how
    # long the record has stood unchanged, as this replica saw it, counts.
    seen = Seen(Record("a", 15, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z", 0), changed_at=100.0)
    assert decide(seen, True, "b", 101.0, "W", T).action == "wait"


def test_a_released_lease_is_taken_at_once() -> None:
    seen = Seen(Record("", 15, "W0", "W1", 4), changed_at=100.0)
    d = decide(seen, True, "b", 100.0, "W", T)
    assert d.action == "acquire" and d.record is not None and d.record.transitions == 5


def test_timing_must_let_the_old_leader_stop_before_a_takeover() -> None:
    with pytest.raises(ValueError):
        Timing(10, 10, 2)
    with pytest.raises(ValueError):
        Timing(15, 10, 10)


class LeaseStore:
    """The API server's part: create refuses an existing name, a patch carrying a stale
    resourceVersion is a Conflict."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.writes: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return copy.deepcopy(self.obj)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.obj is not None:
            raise ConflictError(_Exc())
        self.rv += 1
        self.obj = copy.deepcopy(obj)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        self.writes.append(obj["spec"]["holderIdentity"])
        return self.obj

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any], *, limited: bool = True
    ) -> dict[str, Any]:
        assert self.obj is not None and not limited
        if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
            raise ConflictError(_Exc())
        self.rv += 1
        self.obj["spec"].update(body["spec"])
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        self.writes.append(self.obj["spec"]["holderIdentity"])
        return self.obj


class _Exc(Exception):
    status = 409
    reason = "Conflict"
    body = "{}"
    headers: dict[str, str] = {}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def electors(store: LeaseStore, clock: Clock, *names: str) -> list[leader.Elector]:
    kube: Any = store
    return [leader.Elector(kube, namespace="ops", name="af", identity=n, timing=T, clock=clock) for n in names]


def test_one_of_two_replicas_leads_and_the_other_takes_over_only_after_the_holder_goes_silent() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = electors(store, clock, "a", "b")
    assert a.try_once() is True
    assert b.try_once() is False
    for _ in range(10):  # a renews every 2 s: b keeps seeing a changing record and never takes over
        clock.t += 2
        assert a.try_once() is True
        assert b.try_once() is False
    clock.t += 14.9  # a is killed: no renewal for just under the duration
    assert b.try_once() is False
    clock.t += 0.2
    assert b.try_once() is True
    assert (
        store.obj is not None
        and store.obj["spec"]["holderIdentity"] == "b"
        and store.obj["spec"]["leaseTransitions"] == 1
    )
    assert a.try_once() is False  # the old holder, back, follows


def test_two_replicas_racing_for_a_free_lease_get_one_winner() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = electors(store, clock, "a", "b")
    assert a.try_once() is True
    a.release()
    # Both read the released record, then both write: the second write carries a stale
    # resourceVersion and loses.
    lease = store.get("", "", "")
    a2, b2 = electors(store, clock, "a2", "b2")
    for e in (a2, b2):
        e.kube = _Frozen(store, lease)  # type: ignore[assignment]
    assert [a2.try_once(), b2.try_once()] == [True, False]
    assert store.obj is not None and store.obj["spec"]["holderIdentity"] == "a2"


class _Frozen:
    """Reads return one snapshot; writes go to the store (a read-then-write race)."""

    def __init__(self, store: LeaseStore, snapshot: dict[str, Any] | None) -> None:
        self.store, self.snapshot = store, snapshot

    def get(self, *_: Any, **__: Any) -> dict[str, Any] | None:
        return copy.deepcopy(self.snapshot)

    def merge_patch(self, *a: Any, **k: Any) -> dict[str, Any]:
        return self.store.merge_patch(*a, **k)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.store.create(obj)


def test_a_clean_stop_releases_the_lease_for_an_immediate_takeover() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = electors(store, clock, "a", "b")
    assert a.try_once() and not b.try_once()
    a.release()
    assert store.obj is not None and store.obj["spec"]["holderIdentity"] == ""
    assert b.try_once() is True  # no wait for the duration


class _Down(LeaseStore):
    def get(self, *_: Any, **__: Any) -> dict[str, Any] | None:
        raise OSError("connection refused")


def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline() -> None:
    import threading
    import time

    store = LeaseStore()
    kube: Any = store
    e = leader.Elector(kube, namespace="ops", name="af", identity="a", timing=Timing(0.9, 0.5, 0.05))
    assert e.try_once()
    lost = threading.Event()
    t0 = time.monotonic()
    e.kube = _Down()  # type: ignore[assignment]
    e.keep(lambda why: lost.set())
    assert lost.wait(3)
    took = time.monotonic() - t0
    # Not before the renew deadline (a blip is retried), and well before the 0.9 s a follower waits.
    assert 0.45 <= took < 0.9, took


def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    import threading

    store, clock = LeaseStore(), Clock()
    a, b = electors(store, clock, "a", "b")
    assert a.try_once() and not b.try_once()
    a.timing = Timing(30, 20, 0.05)
    clock.t += 16
    assert b.try_once()  # a looked silent to b (its renewals never reached the store)
    why: list[str] = []
    done = threading.Event()
    a.keep(lambda w: (why.append(w), done.set()))
    assert done.wait(2) and "holder now b" in why[0]
