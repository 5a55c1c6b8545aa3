"""The controllers' work queue (coalescing, delays, error backoff) and the manager's kopf settings."""

from __future__ import annotations

import asyncio
from collections import Counter

import kopf
import pytest

from agentfleet.manager import WATCH_ONLY_KINDS, LeanDiffBaseStorage
from agentfleet.reconcile.workqueue import WorkQueue
from agentfleet_sim.clock import run_virtual

# The queue's delays are read from loop.time(): on a virtual clock (it jumps to the next timer when
# nothing is ready) every due time is exact and no assertion races a busy machine's scheduler.
run = run_virtual


def test_requests_for_a_running_key_coalesce_into_one_more_run() -> None:
    runs: Counter = Counter()
    concurrent = {"now": 0, "max": 0}

    async def work(key):
        runs[key] += 1
        concurrent["now"] += 1
        concurrent["max"] = max(concurrent["max"], concurrent["now"])
        await asyncio.sleep(0.05)
        concurrent["now"] -= 1
        return None

    async def main():
        q = WorkQueue(work, workers=4, resync=3600)
        q.start()
        q.add("a")
        await asyncio.sleep(0.01)
        for _ in range(10):  # a burst of events while "a" runs
            q.add("a")
        await asyncio.sleep(0.3)
        await q.stop()

    run(main())
    assert runs["a"] == 2
    assert concurrent["max"] == 1  # never two reconciles of one key at once


def test_delayed_requeue_keeps_the_earliest_and_workers_bound_parallelism() -> None:
    started: dict[str, float] = {}
    active = {"now": 0, "max": 0}

    async def work(key):
        started.setdefault(key, asyncio.get_running_loop().time())
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.05)
        active["now"] -= 1
        return None

    async def main():
        q = WorkQueue(work, workers=2, resync=3600)
        q.start()
        t0 = asyncio.get_running_loop().time()
        q.add("late", 0.5)
        q.add("late", 0.1)  # sooner wins
        q.add("late", 0.9)  # later is ignored
        for k in "wxyz":
            q.add(k)
        await asyncio.sleep(0.4)
        await q.stop()
        return t0

    t0 = run(main())
    assert started["late"] - t0 == pytest.approx(0.1)
    assert active["max"] == 2


def test_urgent_keys_go_first_when_workers_are_scarce() -> None:
    order: list[str] = []

    async def work(key):
        order.append(key)
        await asyncio.sleep(0.02)
        return None

    async def main():
        q = WorkQueue(work, workers=1, resync=3600)
        for k in ("pod-event-1", "pod-event-2", "pod-event-3"):
            q.add(k)
        q.add("new-object", urgent=True)
        q.start()
        await asyncio.sleep(0.3)
        await q.stop()

    run(main())
    assert order[0] == "new-object" and sorted(order[1:]) == ["pod-event-1", "pod-event-2", "pod-event-3"]


def test_a_failing_reconcile_is_retried_with_backoff_and_a_requeue_is_honoured() -> None:
    calls: list[str] = []

    async def work(key):
        calls.append(key)
        if key == "bad" and calls.count("bad") < 3:
            raise RuntimeError("API down")
        if key == "poll" and calls.count("poll") < 3:
            return 0.05  # e.g. a drain in progress
        return None

    async def main():
        q = WorkQueue(work, workers=2, resync=3600)
        q.start()
        q.add("bad")
        q.add("poll")
        await asyncio.sleep(2.0)  # backoff 0.5 s, then 1 s
        await q.stop()

    run(main())
    assert calls.count("bad") == 3
    assert calls.count("poll") == 3


def test_backoff_bounds_are_per_queue_and_quiet_failures_log_one_line(caplog) -> None:
    calls: list[float] = []

    class Waiting(Exception):
        pass

    async def work(key):
        calls.append(asyncio.get_running_loop().time())
        raise Waiting("Milvus unreachable")

    async def main():
        q = WorkQueue(work, workers=1, resync=3600, backoff=(0.1, 0.2), quiet=(Waiting,))
        q.start()
        q.add("vi")
        await asyncio.sleep(0.75)
        await q.stop()

    with caplog.at_level("WARNING", logger="agentfleet.reconcile.workqueue"):
        run(main())
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    # 0.1, then 0.2, then capped at 0.2: runs at 0, 0.1, 0.3, 0.5 and 0.7 s.
    assert gaps == pytest.approx([0.1, 0.2, 0.2, 0.2])
    assert caplog.records and all(r.exc_info is None and "Milvus unreachable" in r.getMessage() for r in caplog.records)


def test_forget_stops_reconciles_and_resync_covers_known_keys() -> None:
    calls: Counter = Counter()

    async def work(key):
        calls[key] += 1
        return None

    async def main():
        q = WorkQueue(work, workers=2, resync=0.2)
        q.start()
        q.add("kept")
        q.add("gone", 0.1)
        q.forget("gone")
        await asyncio.sleep(0.5)
        await q.stop()

    run(main())
    assert calls["gone"] == 0
    assert calls["kept"] == 3  # once on request, again on the resyncs at 0.2 and 0.4 s


@pytest.mark.parametrize("extra", [None, ["status.phase"]])
def test_lean_diffbase_builds_the_same_essence_as_kopf(extra) -> None:
    body = kopf.Body(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": "ns",
                "uid": "u",
                "labels": {"a": "b"},
                "annotations": {
                    "k": "v",
                    "agentfleet.io/last-handled-configuration": "{}",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "agentfleet.io/v1alpha1",
                        "kind": "ModelReplicaSet",
                        "name": "m",
                        "uid": "1",
                        "controller": True,
                    }
                ],
                "managedFields": [{"manager": "x", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "8"}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    full = kopf.AnnotationsDiffBaseStorage(prefix="agentfleet.io", key="last-handled-configuration")
    lean = LeanDiffBaseStorage(prefix="agentfleet.io", key="last-handled-configuration", watch_only=frozenset())
    assert lean.build(body=body, extra_fields=extra) == full.build(body=body, extra_fields=extra)
    # A watch-only kind has no essence at all (nothing compares it).
    assert LeanDiffBaseStorage(prefix="agentfleet.io").build(body=body) == {}


def test_watch_only_kinds_have_no_change_handlers() -> None:
    """LeanDiffBaseStorage drops the essence of these kinds; a change handler, daemon or timer on
    one of them would need it (kopf's registry internals, read only here)."""
    registry = kopf.get_default_registry()
    for api_version, kind in WATCH_ONLY_KINDS:
        group, _, version = api_version.rpartition("/")
        resource = kopf.Resource(group, version, kind.lower() + "s", kind=kind, namespaced=kind != "Node")
        assert not registry._changing.has_handlers(resource=resource), kind
        assert not registry._spawning.has_handlers(resource=resource), kind
        assert registry._watching.has_handlers(resource=resource), kind  # the check sees our handlers
    # The one kind with a change handler (VectorIndex: on.delete drops its collection) keeps its essence.
    vi = kopf.Resource("agentfleet.io", "v1alpha1", "vectorindexes", kind="VectorIndex", namespaced=True)
    assert registry._changing.has_handlers(resource=vi)
    assert ("agentfleet.io/v1alpha1", "VectorIndex") not in WATCH_ONLY_KINDS


def _started_identity(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """The identity kopf ends up with when the manager starts in a container whose uid has no
    passwd entry (what containerd and CRI-O give a pod stating only runAsUser)."""
    import getpass

    from kopf._core.engines import peering

    import agentfleet.manager as manager

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 65532")

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    for var in ("POD_NAME", "POD_ID", "USER", "LOGNAME"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    seen: dict = {}
    monkeypatch.setattr(manager.kopf, "run", lambda **kw: seen.update(kw))
    assert manager.main([]) == 0
    # kopf's own resolution (running.py): its default would ask getpass.getuser().
    identity = seen.get("identity")
    return identity if identity is not None else peering.detect_own_id(manual=False)


def test_the_operator_starts_without_a_passwd_entry_named_by_its_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        _started_identity(monkeypatch, {"POD_NAME": "agentfleet-operator-7d9f-abcde"})
        == "agentfleet-operator-7d9f-abcde"
    )


def test_the_operator_starts_without_a_passwd_entry_outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    assert _started_identity(monkeypatch, {}) == f"{socket.gethostname()}/{os.getpid()}"
