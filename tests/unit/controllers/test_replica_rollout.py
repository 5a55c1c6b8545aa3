"""Pure decisions of the ModelReplicaSet controller (agentfleet.replica_rollout)."""

from __future__ import annotations

import pytest
from agentfleet_contract.conditions import get_condition
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.replica_rollout import (
    DRAINING_SINCE_ANNOTATION,
    UNSCHEDULABLE_GRACE_SECONDS,
    ConditionCause,
    ReplicaState,
    ReplicaView,
    Summary,
    Timing,
    compose_conditions,
    desired_replicas,
    new_replica_names,
    observe_pod,
    parse_in_flight,
    parse_replica_name,
    removal_order,
    replica_health,
    replica_name,
    replica_phase,
    restart_backoff,
    rollout_step,
)
from tests.builders import Pod

T = Timing(drain_timeout=60, restart_backoff=30, max_restart_backoff=900)
NOW = 1_000_000.0


def spec(**kw) -> ModelReplicaSetSpec:
    return ModelReplicaSetSpec.model_validate({"model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}, **kw})


# --- names -----------------------------------------------------------------------------------


def test_replica_names_use_the_lowest_free_ordinal_of_the_spec_hash() -> None:
    assert replica_name("llama", "0123456789", 3) == "llama-01234-3"
    assert parse_replica_name("llama", "llama-01234-3") == ("01234", 3)
    assert parse_replica_name("llama", "llama-8b-01234-3") is None  # another ModelReplicaSet's
    taken = ["llama-01234-0", "llama-01234-2", "llama-fffff-1"]
    assert new_replica_names("llama", "0123456789", taken, 3) == ["llama-01234-1", "llama-01234-3", "llama-01234-4"]


def test_names_are_recomputed_identically_after_a_restart() -> None:
    # An operator killed after recording two of four new replicas derives the same remaining names.
    first = new_replica_names("m", "abcdef0123", ["m-abcde-0"], 4)
    again = new_replica_names("m", "abcdef0123", ["m-abcde-0", *first[:2]], 2)
    assert again == first[2:]


# --- desired count ---------------------------------------------------------------------------


def test_desired_follows_spec_replicas_without_autoscaling() -> None:
    d = desired_replicas(spec(replicas=3), status_desired=7)
    assert (d.count, d.limited_reason) == (3, None)


def test_desired_follows_the_autoscaler_clamped() -> None:
    s = spec(replicas=2, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 4})
    assert desired_replicas(s, 3).count == 3
    assert desired_replicas(s, None).count == 2  # no decision yet: spec.replicas
    hi = desired_replicas(s, 9)
    assert (hi.count, hi.limited_reason) == (4, "TooManyReplicas")
    lo = desired_replicas(spec(replicas=2, autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4}), 0)
    assert (lo.count, lo.limited_reason) == (2, "TooFewReplicas")


# --- pods and replicas -----------------------------------------------------------------------


def pod(
    name: str,
    replica: str,
    *,
    role: str = "server",
    node: str | None = "n1",
    phase: str = "Running",
    ready: bool = True,
    **kw,
) -> dict:
    """A replica's pod as the ModelReplicaSet controller labels it; kw: the labels and states the
    rollout reads (spec_hash, serving, gang, created, deleting, annotations, unschedulable + since,
    gpus, ip, reason)."""
    p = Pod(name, container="vllm").ns("ns").created(kw.pop("created", "2026-01-01T00:00:00Z"))
    p.labels({"agentfleet.io/modelreplicaset": "m", "agentfleet.io/replica": replica, "agentfleet.io/role": role})
    p.label("agentfleet.io/spec-hash", kw.pop("spec_hash", "abcdef0123"))
    if role != "worker":
        p.label("agentfleet.io/serving", kw.pop("serving", "true"))
    if "gang" in kw:
        p.label("agentfleet.io/gang-size", str(kw.pop("gang")))
    if kw.pop("deleting", False):
        p.deleting()
    for key, value in kw.pop("annotations", {}).items():
        p.annotation(key, value)
    p.gpus(kw.pop("gpus", 8), limits=False).phase(phase, reason=kw.pop("reason", None), ip=kw.pop("ip", None)).ready(
        ready
    )
    if "unschedulable" in kw:
        p.condition(
            "PodScheduled", False, reason="Unschedulable", message=kw.pop("unschedulable"), since=kw.pop("since")
        )
    if node and phase != "Pending":
        p.on_node(node)
    return p.obj()


def view(name: str, pods: list[dict], record: dict | None = None, pinned: str | None = None) -> ReplicaView:
    pvs = [observe_pod(p, pinned) for p in pods]
    assert all(pvs)
    return ReplicaView(name, tuple(sorted(pvs, key=lambda p: p.index)), record)  # type: ignore[arg-type]


def test_observe_pod() -> None:
    p = observe_pod(pod("r-1", "r", role="worker", gang=2, gpus=8))
    assert p is not None and (p.index, p.role, p.serving, p.gang_size, p.gpus) == (1, "worker", None, 2, 8)
    s = observe_pod(
        pod("r", "r", serving="false", annotations={DRAINING_SINCE_ANNOTATION: "2026-01-01T00:00:10Z"}, ip="10.0.0.1")
    )
    assert s is not None and (s.index, s.serving, s.ip) == (0, False, "10.0.0.1")
    assert s.draining_since == pytest.approx(s.created + 10)
    u = observe_pod(
        pod("r", "r", phase="Pending", unschedulable="0/3 nodes are available", since="2026-01-01T00:00:05Z"),
        pinned="n2",
    )
    assert u is not None and (u.bound, u.node, u.unschedulable) == (False, "n2", "0/3 nodes are available")
    assert observe_pod({"metadata": {"name": "x", "labels": {}}}) is None


def test_a_complete_ready_gang_is_ok_and_ready() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Loading"}
    v = view("r", [pod("r-0", "r", role="leader", gang=2), pod("r-1", "r", role="worker", node="n2", gang=2)], rec)
    assert replica_health(v, NOW, startup_timeout=600).kind == "ok"
    assert v.ready and replica_phase(v) == "Ready"


def test_a_gang_being_created_is_completed_not_restarted() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Pending"}
    v = view("r", [pod("r-0", "r", role="leader", gang=2, ready=False)], rec)
    assert replica_health(v, NOW, startup_timeout=600).kind == "creating"
    assert replica_phase(v) == "Pending"


def test_a_started_gang_that_lost_a_member_fails_as_a_whole() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Ready", "restarts": 1}
    v = view("r", [pod("r-0", "r", role="leader", gang=2)], rec)
    h = replica_health(v, NOW, startup_timeout=600)
    assert (h.kind, h.reason, h.replan) == ("failed", "MemberLost", False)
    assert "#1 of 2" in h.message
    # A member being deleted counts as lost too.
    v2 = view(
        "r",
        [pod("r-0", "r", role="leader", gang=2), pod("r-1", "r", role="worker", node="n2", gang=2, deleting=True)],
        rec,
    )
    assert replica_health(v2, NOW, startup_timeout=600).reason == "MemberLost"


def test_a_failed_member_fails_the_gang() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Loading"}
    v = view(
        "r",
        [
            pod("r-0", "r", role="leader", gang=2, ready=False),
            pod("r-1", "r", role="worker", node="n2", gang=2, phase="Failed", reason="Error"),
        ],
        rec,
    )
    h = replica_health(v, NOW, startup_timeout=600)
    assert (h.kind, h.reason) == ("failed", "MemberFailed")
    assert "r-1" in h.message and "Error" in h.message


def test_a_loading_gang_is_not_restarted_before_its_startup_timeout() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Loading"}
    pods = [pod("r-0", "r", role="leader", gang=2, ready=False), pod("r-1", "r", role="worker", node="n2", gang=2)]
    v = view("r", pods, rec)
    created = v.pods[0].created
    assert replica_health(v, created + 599, startup_timeout=600).kind == "ok"
    h = replica_health(v, created + 601, startup_timeout=600)
    assert (h.kind, h.reason) == ("failed", "StartupTimeout")
    # A single-pod replica is the kubelet's to restart (its startup probe), never the controller's.
    single = view("s", [pod("s", "s", ready=False)], {"name": "s", "nodes": ["n1"], "gpus": 8, "phase": "Loading"})
    assert replica_health(single, created + 10_000, startup_timeout=600).kind == "ok"


def test_node_gone_or_unusable_means_lost_and_replaced() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Ready"}
    pods = [pod("r-0", "r", role="leader", gang=2), pod("r-1", "r", role="worker", node="n2", gang=2)]
    h = replica_health(view("r", pods, rec), NOW, startup_timeout=600, gone_nodes={"n2"})
    assert (h.kind, h.reason, h.replan) == ("lost", "NodeLost", True) and "n2" in h.message
    # Cordoned but still running: left alone. Cordoned and a member gone (drained): lost.
    assert replica_health(view("r", pods, rec), NOW, startup_timeout=600, unusable_nodes={"n2"}).kind == "ok"
    assert replica_health(view("r", pods[:1], rec), NOW, startup_timeout=600, unusable_nodes={"n2"}).kind == "lost"
    # A recorded placement whose pods were never created, on a node that went away.
    assert (
        replica_health(
            ReplicaView("r", (), {**rec, "phase": "Pending"}), NOW, startup_timeout=600, gone_nodes={"n1"}
        ).kind
        == "lost"
    )


def test_a_pod_the_scheduler_keeps_refusing_is_replanned() -> None:
    rec = {"name": "r", "nodes": ["n1"], "gpus": 8, "phase": "Pending"}
    p = pod(
        "r",
        "r",
        phase="Pending",
        ready=False,
        unschedulable="0/1 nodes are available: 1 Insufficient cpu.",
        since="2026-01-01T00:00:00Z",
    )
    v = view("r", [p], rec, pinned="n1")
    since = v.pods[0].unschedulable_since
    assert replica_health(v, since + 5, startup_timeout=600).kind == "ok"
    h = replica_health(v, since + UNSCHEDULABLE_GRACE_SECONDS + 1, startup_timeout=600)
    assert (h.kind, h.reason, h.replan) == ("failed", "Unschedulable", True)
    assert "Insufficient cpu" in h.message


def test_terminating_and_drained_replicas() -> None:
    rec = {"name": "r", "nodes": ["n1"], "gpus": 8, "phase": "Draining"}
    assert (
        replica_health(view("r", [pod("r", "r", deleting=True)], rec), NOW, startup_timeout=600).kind == "terminating"
    )
    # Drained and its pods gone: done, not lost.
    assert replica_health(ReplicaView("r", (), rec), NOW, startup_timeout=600).kind == "terminating"
    v = view("r", [pod("r", "r", serving="false")], rec)
    assert v.draining and replica_phase(v) == "Draining"


def test_restart_backoff_doubles_up_to_the_cap() -> None:
    assert [restart_backoff(n, 30, 900) for n in range(0, 8)] == [0, 30, 60, 120, 240, 480, 900, 900]
    assert restart_backoff(10_000, 30, 900) == 900


# --- in-flight work --------------------------------------------------------------------------


def test_parse_in_flight_sums_running_and_waiting_over_engines() -> None:
    text = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 1.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 2.0
vllm:num_requests_running_total 99
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.5
"""
    assert parse_in_flight(text) == 6
    assert parse_in_flight('vllm:num_requests_running{engine="0"} 0.0\n') == 0
    assert parse_in_flight("vllm:kv_cache_usage_perc 0.2\n") is None
    assert parse_in_flight("vllm:num_requests_running NaN\n") is None


def test_parse_in_flight_reads_llama_servers_processing_and_deferred() -> None:
    # llama-server 0.3.36's own /metrics with 2 slots and 5 requests sent (tests/integration/engines
    # reads a live one): no vllm:* series at all.
    text = """# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 3
llamacpp:n_busy_slots_per_decode 2
"""
    assert parse_in_flight(text) == 5
    assert parse_in_flight("llamacpp:requests_processing 0\nllamacpp:requests_deferred 0\n") == 0


# --- rollout_step -------------------------------------------------------------------------------


def rs(name: str, phase: str = "Ready", *, current: bool = True, **kw) -> ReplicaState:
    kw.setdefault("ready", phase == "Ready" or (phase == "Draining" and kw.get("ready", True)))
    return ReplicaState(name, current, phase, **kw)


def test_scale_up_creates_the_missing_replicas() -> None:
    d = rollout_step([rs("a"), rs("b", "Loading")], 4, NOW, T)
    assert (d.create, d.drain, d.delete) == (2, [], [])


def test_scale_up_takes_draining_replicas_back_first() -> None:
    states = [
        rs("a"),
        rs("b", "Draining", draining_since=NOW - 5, in_flight=3),
        rs("c", "Draining", draining_since=NOW - 1, in_flight=3),
    ]
    d = rollout_step(states, 2, NOW, T)
    assert (d.undrain, d.create) == (["c"], 0)


def test_removal_order_not_ready_then_least_in_flight_then_newest() -> None:
    states = [
        rs("busy", in_flight=9, created=1),
        rs("idle", in_flight=0, created=1),
        rs("unknown-old", created=1),
        rs("unknown-new", created=5),
        rs("loading", "Loading", created=0),
    ]
    assert [r.name for r in removal_order(states)] == ["loading", "idle", "busy", "unknown-new", "unknown-old"]
    # Without metrics at all: not ready first, then newest.
    blind = [rs("a", created=1), rs("b", created=3), rs("c", "Pending", created=0)]
    assert [r.name for r in removal_order(blind)] == ["c", "b", "a"]


def test_scale_down_drains_ready_replicas_and_deletes_unready_ones() -> None:
    d = rollout_step(
        [rs("a", created=1, in_flight=5), rs("b", created=2, in_flight=1), rs("c", "Loading", created=3)], 1, NOW, T
    )
    assert d.drain == ["b"]
    assert [r for r, _ in d.delete] == ["c"]
    assert d.create == 0


def test_a_drain_ends_when_idle_unready_or_timed_out() -> None:
    states = [
        rs("idle", "Draining", draining_since=NOW - 1, in_flight=0),
        rs("gone-unready", "Draining", ready=False, draining_since=NOW - 1),
        rs("late", "Draining", draining_since=NOW - 61, in_flight=4),
        rs("busy", "Draining", draining_since=NOW - 10, in_flight=4),
        rs("blind", "Draining", draining_since=NOW - 59.5),
        rs("keep"),
    ]
    d = rollout_step(states, 1, NOW, T)
    deleted = dict(d.delete)
    assert set(deleted) == {"idle", "gone-unready", "late"}
    assert "0 requests in flight" in deleted["idle"] and "drain timeout (60s) with 4" in deleted["late"]
    assert d.requeue_after == pytest.approx(0.5)  # "blind" times out in half a second


def test_failed_replicas_restart_after_their_backoff() -> None:
    waiting = rs("a", "Failed", ready=False, failed_at=NOW - 50, restarts=2)  # backoff 60s
    due = rs("b", "Failed", ready=False, failed_at=NOW - 31, restarts=1)  # backoff 30s
    d = rollout_step([waiting, due], 2, NOW, T)
    assert d.restart == ["b"]
    assert d.requeue_after == pytest.approx(10)
    assert d.create == 0  # a failed replica keeps its slot


def test_rolling_update_surges_one_waits_then_drains_one() -> None:
    old = [rs("o1", current=False, created=1), rs("o2", current=False, created=2)]
    assert rollout_step(old, 2, NOW, T).create == 1
    loading = [*old, rs("n1", "Loading")]
    d = rollout_step(loading, 2, NOW, T)
    assert (d.create, d.drain, d.delete) == (0, [], []) and "n1" in d.waiting
    ready = [*old, rs("n1")]
    d = rollout_step(ready, 2, NOW, T)
    assert d.drain == ["o2"] and d.create == 0
    draining = [old[0], rs("o2", "Draining", current=False, draining_since=NOW, in_flight=2), rs("n1")]
    d = rollout_step(draining, 2, NOW, T)
    assert (d.create, d.drain) == (0, []) and "drain" in d.waiting
    gone = [old[0], rs("o2", "Terminating", current=False), rs("n1")]
    assert rollout_step(gone, 2, NOW, T).create == 0
    assert rollout_step([old[0], rs("n1")], 2, NOW, T).create == 1


def test_rolling_update_waits_for_a_replica_whose_drain_ends_now() -> None:
    # Its pods are deleted in this step but stay until they are gone: a surge replica created in
    # the same step made desired + 2 replicas at once (seen in CI as 4 of 2 + 1).
    states = [rs("o1", current=False), rs("o2", "Draining", current=False, draining_since=NOW - 61), rs("n1")]
    d = rollout_step(states, 2, NOW, T)
    assert [r for r, _ in d.delete] == ["o2"]
    assert (d.create, d.drain) == (0, []) and "1 outdated replica(s) to drain and go" in d.waiting


@pytest.mark.parametrize("desired", [1, 2, 3, 5])
@pytest.mark.parametrize("linger", [0, 1, 3])
def test_rolling_update_never_holds_more_than_one_surge_replica(desired: int, linger: int) -> None:
    # Every replica counts until its pods are gone: deleted ones linger as Terminating for `linger`
    # steps; new ones load for a step, drains take a step (in_flight 0 on the next look).
    states = {f"o{i}": rs(f"o{i}", current=False, created=i) for i in range(desired)}
    going: dict[str, int] = {}
    made = 0
    for _ in range(200):
        for r in [r for r, left in going.items() if left <= 0]:
            states.pop(r)
            del going[r]
        for r in going:
            going[r] -= 1
        assert len(states) <= desired + 1, sorted(states)
        d = rollout_step(list(states.values()), desired, NOW, T)
        if not (
            d.create
            or d.drain
            or d.delete
            or states.keys() - {r for r, s in states.items() if s.current and s.phase == "Ready"}
        ):
            break
        for r, s in list(states.items()):
            if s.phase == "Loading":
                states[r] = rs(r, created=s.created)
        for r in d.drain:
            states[r] = rs(r, "Draining", current=False, draining_since=NOW, in_flight=0)
        for r, _ in d.delete:
            states[r] = rs(r, "Terminating", current=states[r].current, ready=False)
            going[r] = linger
        for _ in range(d.create):
            states[f"n{made}"] = rs(f"n{made}", "Loading", created=100 + made)
            made += 1
    else:
        pytest.fail("the rollout does not finish")
    assert sorted(states) == sorted(f"n{i}" for i in range(desired))


def test_rolling_update_removes_unready_outdated_replicas_at_once() -> None:
    d = rollout_step([rs("o1", "Loading", current=False), rs("o2", current=False)], 2, NOW, T)
    assert [r for r, _ in d.delete] == ["o1"]
    assert d.create == 1


def test_rolling_update_drains_first_when_the_surge_cannot_be_placed() -> None:
    old = [rs("o1", current=False, in_flight=3), rs("o2", current=False, in_flight=0)]
    assert rollout_step(old, 2, NOW, T, surge_blocked=False).create == 1
    d = rollout_step(old, 2, NOW, T, surge_blocked=True)
    assert (d.create, d.drain) == (0, ["o2"])


def test_scale_to_zero_during_a_rollout_removes_everything() -> None:
    d = rollout_step([rs("o1", current=False), rs("n1", "Loading")], 0, NOW, T)
    assert d.drain == ["o1"] and [r for r, _ in d.delete] == ["n1"]


def test_rollout_step_is_idempotent_on_its_own_outcome() -> None:
    # Apply each decision to the states as the controller would, until nothing more is asked.
    states = {f"r{i}": rs(f"r{i}", created=i) for i in range(4)}
    desired = 2
    for _ in range(10):
        d = rollout_step(list(states.values()), desired, NOW, T)
        if not (d.create or d.drain or d.delete or d.undrain or d.restart):
            break
        for r in d.drain:
            states[r] = rs(r, "Draining", draining_since=NOW - 100, in_flight=0)
        for r, _ in d.delete:
            states.pop(r)
        for i in range(d.create):
            states[f"new{i}"] = rs(f"new{i}", "Pending")
    else:
        pytest.fail("rollout_step does not converge")
    assert sorted(states) == ["r0", "r1"]


# --- conditions ------------------------------------------------------------------------------


def summary(**kw) -> Summary:
    base = dict(desired=2, replicas=2, ready=2, current=2, outdated=0)
    base.update(kw)
    return Summary(**base)


def test_ready_only_when_the_desired_replicas_serve() -> None:
    c = compose_conditions([], summary(ready=1, starting=1), 3, now="2026-01-01T00:00:00Z")
    ready = get_condition(c, "Ready")
    assert ready is not None and (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False",
        "ReplicasNotReady",
        3,
    )
    assert get_condition(c, "Progressing")["reason"] == "ReplicasStarting"
    c2 = compose_conditions(c, summary(), 3, now="2026-01-01T00:05:00Z")
    assert get_condition(c2, "Ready")["status"] == "True"
    assert get_condition(c2, "Ready")["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    # Unchanged status keeps its transition time.
    c3 = compose_conditions(c2, summary(), 3, now="2026-01-01T00:09:00Z")
    assert get_condition(c3, "Ready")["lastTransitionTime"] == "2026-01-01T00:05:00Z"


def test_unplaced_replicas_carry_the_planners_reason_and_message() -> None:
    msg = (
        "needs 8 x NVIDIA-H100-80GB-HBM3 in one nvlink domain (one node); the largest free block is 4 on node gpu-12 "
        "(2 eligible nodes, 4 free GPUs in all)"
    )
    c = compose_conditions(
        [],
        summary(replicas=1, ready=1, current=1, unplaced=ConditionCause("InsufficientGPUs", msg), unplaced_count=1),
        1,
    )
    for type_ in ("Ready", "ScalingLimited"):
        cond = get_condition(c, type_)
        assert cond["reason"] == "InsufficientGPUs" and msg in cond["message"]
    assert get_condition(c, "Ready")["status"] == "False"
    assert get_condition(c, "ScalingLimited")["status"] == "True"


def test_capacity_refusal_and_failures() -> None:
    c = compose_conditions([], summary(ready=0, replicas=0, current=0, capacity_error="does not fit: 131.4 GiB"), 1)
    assert (get_condition(c, "Ready")["status"], get_condition(c, "Ready")["reason"]) == ("False", "ModelDoesNotFit")
    c = compose_conditions(
        [],
        summary(failures=[ConditionCause("MemberLost", "replica r lost pod #1 of 2"), ConditionCause("NodeLost", "x")]),
        1,
    )
    deg = get_condition(c, "Degraded")
    assert deg["status"] == "True" and deg["reason"] == "MemberLost" and "(and 1 more)" in deg["message"]
    c = compose_conditions([], summary(outdated=1, current=1, waiting="waiting for new replica n1 to become Ready"), 1)
    assert get_condition(c, "Progressing")["reason"] == "RollingUpdate"


def test_other_writers_conditions_are_kept() -> None:
    theirs = {
        "type": "AbleToScale",
        "status": "True",
        "reason": "X",
        "message": "",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    c = compose_conditions([theirs], summary(), 1)
    assert get_condition(c, "AbleToScale") == theirs


# --- behaviour the mutation report (e2e/bench/mutation_report.py) found unpinned -------------
# Each test below fails on a surviving mutant of agentfleet.replica_rollout (docs/mutation-testing.md).


def test_new_replica_names_start_at_ordinal_zero() -> None:
    assert new_replica_names("m", "abcdef0123", [], 2) == ["m-abcde-0", "m-abcde-1"]


def test_desired_at_a_bound_is_not_limited() -> None:
    # Exactly minReplicas or maxReplicas is what was asked for: no TooFew/TooManyReplicas.
    s = spec(replicas=2, autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 4})
    assert (desired_replicas(s, 1).count, desired_replicas(s, 1).limited_reason) == (1, None)
    assert (desired_replicas(s, 4).count, desired_replicas(s, 4).limited_reason) == (4, None)


def test_removal_order_breaks_a_creation_tie_by_the_highest_ordinal() -> None:
    same_age = [rs("m-abcde-1", created=5, ordinal=1), rs("m-abcde-2", created=5, ordinal=2)]
    assert [r.name for r in removal_order(same_age)] == ["m-abcde-2", "m-abcde-1"]


def test_deadlines_are_inclusive() -> None:
    # A drain that has run exactly drainTimeoutSeconds ends; a backoff that is exactly over restarts.
    late = rs("late", "Draining", draining_since=NOW - 60, in_flight=4)
    due = rs("due", "Failed", ready=False, failed_at=NOW - 30, restarts=1)
    d = rollout_step([late, due, rs("keep")], 2, NOW, T)
    assert [r for r, _ in d.delete] == ["late"]
    assert d.restart == ["due"]


def test_unknown_timestamps_count_from_now() -> None:
    # A draining replica without draining-since and a failed one without failedAt: their clocks
    # start now (a drain poll, a full backoff), never an error.
    d = rollout_step([rs("d", "Draining", in_flight=2), rs("f", "Failed", ready=False, restarts=1), rs("a")], 2, NOW, T)
    assert (d.delete, d.restart) == ([], [])
    assert d.requeue_after == pytest.approx(2.0)  # DRAIN_POLL_SECONDS, sooner than the 30 s backoff
    d = rollout_step([rs("f", "Failed", ready=False, restarts=1), rs("a")], 2, NOW, T)
    assert d.requeue_after == pytest.approx(30)


def test_requeue_is_the_soonest_of_all_waits() -> None:
    # "blind" times out in 0.5 s, "busy" is polled in 2 s: whatever their order, 0.5 s wins.
    blind = rs("blind", "Draining", draining_since=NOW - 59.5)
    busy = rs("busy", "Draining", draining_since=NOW - 10, in_flight=4)
    assert rollout_step([blind, busy, rs("keep")], 1, NOW, T).requeue_after == pytest.approx(0.5)


def test_a_failed_replica_restarts_wherever_it_is_listed() -> None:
    d = rollout_step([rs("a"), rs("b", "Failed", ready=False, failed_at=NOW - 31, restarts=1)], 2, NOW, T)
    assert d.restart == ["b"]


def test_scale_up_never_takes_back_an_outdated_draining_replica() -> None:
    # The drain left over from a finished rollout runs the old spec: scaling up creates a new one.
    old = rs("old", "Draining", current=False, draining_since=NOW - 5, in_flight=3)
    d = rollout_step([rs("a"), old], 2, NOW, T)
    assert (d.undrain, d.create) == ([], 1)


def test_rolling_update_waits_for_draining_and_terminating_replicas_together() -> None:
    states = [
        rs("o1", current=False),
        rs("o2", "Draining", current=False, draining_since=NOW, in_flight=2),
        rs("o3", "Terminating", current=False, ready=False),
        rs("n1"),
    ]
    d = rollout_step(states, 3, NOW, T)
    assert (d.create, d.drain) == (0, [])


def test_rolling_update_creates_nothing_once_the_current_spec_has_desired() -> None:
    # The outdated replica left is not ready (deleted at once); two current ones are the desired two.
    d = rollout_step([rs("o1", "Loading", current=False), rs("n1"), rs("n2")], 2, NOW, T)
    assert [r for r, _ in d.delete] == ["o1"]
    assert d.create == 0


def test_a_replica_whose_record_was_lost_but_whose_pods_run_is_ok() -> None:
    # status.placements lost to a crash: the pods still say what the replica is.
    assert replica_health(view("r", [pod("r", "r")]), NOW, startup_timeout=600).kind == "ok"


def test_a_planned_replica_without_pods_yet_is_being_created() -> None:
    rec = {"name": "r", "nodes": ["n1"], "gpus": 8, "phase": "Pending"}
    assert replica_health(ReplicaView("r", (), rec), NOW, startup_timeout=600).kind == "creating"


def test_health_timeouts_are_inclusive() -> None:
    rec = {"name": "r", "nodes": ["n1", "n2"], "gpus": 16, "phase": "Loading"}
    v = view(
        "r",
        [pod("r-0", "r", role="leader", gang=2, ready=False), pod("r-1", "r", role="worker", node="n2", gang=2)],
        rec,
    )
    assert replica_health(v, v.pods[0].created + 600, startup_timeout=600).reason == "StartupTimeout"
    p = pod(
        "s", "s", phase="Pending", ready=False, unschedulable="0/1 nodes are available", since="2026-01-01T00:00:00Z"
    )
    u = view("s", [p], {"name": "s", "nodes": ["n1"], "gpus": 8, "phase": "Pending"}, pinned="n1")
    assert (
        replica_health(u, u.pods[0].unschedulable_since + UNSCHEDULABLE_GRACE_SECONDS, startup_timeout=600).reason
        == "Unschedulable"
    )


def test_a_complete_bound_replica_that_is_not_ready_is_loading() -> None:
    v = view("s", [pod("s", "s", ready=False)], {"name": "s", "nodes": ["n1"], "gpus": 8, "phase": "Pending"})
    assert replica_phase(v) == "Loading"


def test_observe_pod_worker_index_gang_size_and_scheduling() -> None:
    # A worker's index is the last dash-separated part of its name (replica names hold dashes).
    w = observe_pod(pod("llama-01234-0-2", "llama-01234-0", role="worker", gang=3))
    assert w is not None and w.index == 2
    odd = observe_pod(pod("llama-01234-0-x", "llama-01234-0", role="worker", gang="three"))
    assert odd is not None and (odd.index, odd.gang_size) == (1, 1)
    # Only PodScheduled=False with reason Unschedulable is the scheduler refusing the pod.
    assert observe_pod(pod("r", "r")).unschedulable is None
    gated = pod(
        "g", "g", phase="Pending", ready=False, unschedulable="waiting for a gate", since="2026-01-01T00:00:00Z"
    )
    for c in gated["status"]["conditions"]:
        if c["type"] == "PodScheduled":
            c["reason"] = "SchedulingGated"
    assert observe_pod(gated).unschedulable is None


def test_parse_in_flight_reads_past_other_metrics_and_bad_lines() -> None:
    # vLLM's /metrics lists many series before and between the two gauges.
    text = (
        'vllm:kv_cache_usage_perc{engine="0"} 0.5\nvllm:num_requests_running{engine="0"} '
        'oops\nvllm:num_requests_running{engine="1"} 2.0\nvllm:num_requests_waiting{engine="0"} 1\n'
    )
    assert parse_in_flight(text) == 3


@pytest.mark.parametrize(
    "kw, want",
    [
        # condition type -> (status, reason); messages aside, these are what kubectl wait, Argo CD and alerts read.
        ({"invalid": "bad"}, {"Ready": ("False", "InvalidSpec"), "Progressing": ("False", "InvalidSpec")}),
        (
            {"capacity_error": "too big", "desired": 1, "ready": 1},
            {
                "Ready": ("True", "ModelDoesNotFit"),
                "Progressing": ("False", "ModelDoesNotFit"),
                "ScalingLimited": ("True", "ModelDoesNotFit"),
            },
        ),
        ({"capacity_error": "too big", "desired": 0, "ready": 0}, {"Ready": ("False", "ModelDoesNotFit")}),
        ({"desired": 0, "ready": 0, "replicas": 0, "current": 0}, {"Ready": ("True", "ScaledToZero")}),
        (
            {"desired": 1, "ready": 0, "replicas": 1, "current": 1, "starting": 1},
            {"Ready": ("False", "ReplicasNotReady")},
        ),
        ({}, {"Ready": ("True", "AllReplicasReady"), "Progressing": ("False", "ReplicasUpToDate")}),
        ({"outdated": 1, "current": 1}, {"Progressing": ("True", "RollingUpdate")}),
        (
            {"unplaced": ConditionCause("InsufficientGPUs", "m"), "unplaced_count": 1},
            {"Progressing": ("False", "InsufficientGPUs")},
        ),
        ({"draining": 1}, {"Progressing": ("True", "ScalingDown")}),
        ({"current": 1, "ready": 1}, {"Progressing": ("True", "ScalingUp")}),
        ({"ready": 1, "starting": 1}, {"Progressing": ("True", "ReplicasStarting")}),
        ({}, {"Degraded": ("False", "AsExpected"), "ScalingLimited": ("False", "DesiredReplicasPlaced")}),
        ({"failures": [ConditionCause("NodeLost", "x")]}, {"Degraded": ("True", "NodeLost")}),
        ({"limited": ConditionCause("TooManyReplicas", "x")}, {"ScalingLimited": ("True", "TooManyReplicas")}),
    ],
)
def test_condition_status_and_reason_of_each_case(kw: dict, want: dict) -> None:
    c = compose_conditions([], summary(**kw), 1)
    assert {t: (get_condition(c, t)["status"], get_condition(c, t)["reason"]) for t in want} == want
