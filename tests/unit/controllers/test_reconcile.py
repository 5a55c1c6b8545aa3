"""The ModelReplicaSet reconcile against an in-memory API: the controller's I/O sequence without a
cluster (e2e/tests/test_modelreplicaset.py runs the same behaviours on the real control plane)."""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from agentfleet.controllers.modelreplicaset.adapters import AdapterError, adapter_actions
from agentfleet.controllers.modelreplicaset.caches import Snapshot, trim_node, trim_pod
from agentfleet.controllers.modelreplicaset.controller import ModelReplicaSetController
from agentfleet.controllers.modelreplicaset.reconcile import CHILDREN_AFTER_PODS_SECONDS
from agentfleet.replica_rollout import DRAINING_SINCE_ANNOTATION, rfc3339
from tests.builders import MRS, Node

NS = "ns"


CONSENTED = {"agentfleet.io/consent": "true"}


class FakeKube:
    """Just enough of the API server: one ModelReplicaSet, its pods, nodes."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.mrs: dict[str, Any] | None = None
        self.applied_condition_types: set[str] = set()
        self.pods: dict[str, dict] = {}
        self.nodes: dict[str, dict] = {}
        self.children: dict[tuple, dict] = {}
        self.created: dict[tuple, dict] = {}  # by create (made once)
        self.secrets: dict[str, dict] = {}
        # PersistentVolumeClaims by name; "weights" (the cache tests' claim) carries the consent label.
        self.claims: dict[str, dict] = {"weights": {"metadata": {"name": "weights", "labels": CONSENTED}}}
        self.creates: list[tuple] = []
        self.rv = 1
        self.fail_after_pods: int | None = None
        self.lock = threading.Lock()
        self.served: set[tuple[str, str]] = set()  # other projects' kinds whose CRDs are installed

    # what the controller calls (agentfleet.kube.Kube's methods)
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        if kind == "Secret":
            return copy.deepcopy(self.secrets.get(name))
        if kind == "PersistentVolumeClaim":
            return copy.deepcopy(self.claims.get(name))
        if kind in ("Job", "Service"):
            return copy.deepcopy(self.children.get((kind, name)))
        assert kind == "ModelReplicaSet"
        return copy.deepcopy(self.mrs) if self.mrs and self.mrs["metadata"]["name"] == name else None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict]:
        assert kind == "Pod"
        return [copy.deepcopy(p) for p in self.pods.values()]

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        assert kind == "Node"
        return name in self.nodes

    def serves(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self.served

    def create(self, obj: dict) -> dict:
        """Objects made once (the generated API key Secret)."""
        key = (obj["kind"], obj["metadata"]["name"])
        self.creates.append(key)
        self.created.setdefault(key, copy.deepcopy(obj))
        return obj

    def apply_status(self, obj: dict, *, manager: str) -> dict:
        """Server-side apply of a list-map keyed by type: the types this manager applied before
        and leaves out now are removed, other managers' types stay."""
        assert self.mrs is not None and set(obj["status"]) == {"conditions"}
        conditions = obj["status"]["conditions"]
        st = self.mrs.setdefault("status", {})
        mine = {c["type"] for c in conditions}
        gone = self.applied_condition_types - mine
        kept = [c for c in st.get("conditions") or [] if c["type"] not in mine and c["type"] not in gone]
        st["conditions"] = kept + copy.deepcopy(conditions)
        self.applied_condition_types = mine
        self.rv += 1
        self.mrs["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.mrs)

    def merge_patch_status(self, api_version: str, kind: str, name: str, namespace: str, status: dict) -> dict:
        assert self.mrs is not None
        st = self.mrs.setdefault("status", {})
        for k, v in status.items():
            if isinstance(v, dict) and isinstance(st.get(k), dict):
                st[k] = {**st[k], **{kk: vv for kk, vv in v.items() if vv is not None}}
            elif v is None:
                st.pop(k, None)
            else:
                st[k] = copy.deepcopy(v)
        self.rv += 1
        self.mrs["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.mrs)

    def merge_patch_metadata(
        self, api_version: str, kind: str, name: str, namespace: str, labels: dict, annotations: dict
    ) -> None:
        p = self.pods.get(name)
        if p is None:
            return
        for field, values in (("labels", labels), ("annotations", annotations)):
            m = p["metadata"].setdefault(field, {})
            for k, v in values.items():
                if v is None:
                    m.pop(k, None)
                else:
                    m[k] = v

    def apply(self, obj: dict) -> None:
        with self.lock:
            if obj["kind"] != "Pod":
                self.children[(obj["kind"], obj["metadata"]["name"])] = obj
                return
            if self.fail_after_pods is not None:
                if self.fail_after_pods <= 0:
                    raise RuntimeError("operator killed")
                self.fail_after_pods -= 1
            pod = copy.deepcopy(obj)
            pod["metadata"]["creationTimestamp"] = rfc3339(self.clock[0])
            pod["status"] = {"phase": "Pending"}
            self.pods.setdefault(pod["metadata"]["name"], pod)

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool:
        if kind == "Pod":
            return self.pods.pop(name, None) is not None  # kwok finalizes at once
        return self.children.pop((kind, name), None) is not None

    # what the scheduler and kwok would do
    def run_pods(self) -> None:
        for i, p in enumerate(self.pods.values()):
            terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ]
            p["spec"]["nodeName"] = terms[0]["matchFields"][0]["values"][0]
            p["status"] = {
                "phase": "Running",
                "podIP": f"10.0.0.{i + 1}",
                "conditions": [{"type": "Ready", "status": "True"}],
            }

    def snapshot(self) -> Snapshot:
        pods = [t for p in self.pods.values() if (t := trim_pod(p))]
        return Snapshot([trim_node(n) for n in self.nodes.values()], pods, {})


@pytest.fixture
def env():
    clock = [1_800_000_000.0]
    api = FakeKube(clock)
    rec = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
    return api, rec, clock


def mrs() -> MRS:
    """The ModelReplicaSet every test here reconciles (tests set replicas, parallelism, ...)."""
    return MRS("m").ns(NS).meta(uid="uid-1", generation=1, resourceVersion="1").lifecycle(30, 10, 40)


def reconcile(api: FakeKube, rec: ModelReplicaSetController) -> float | None:
    return rec.reconcile((NS, "m"), api.snapshot())


def cond(api: FakeKube, type_: str) -> dict:
    return next(c for c in api.mrs["status"]["conditions"] if c["type"] == type_)


def replicas_of(api: FakeKube) -> set[str]:
    return {p["metadata"]["labels"]["agentfleet.io/replica"] for p in api.pods.values()}


def test_create_then_ready(env) -> None:
    api, rec, _ = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1", "n2")}
    api.mrs = mrs().replicas(2).tp(4).obj()
    # A new object's first pass makes its pods only; status, Services and the PDB follow a pass
    # later, so that in a storm of new objects all pods reach the API server first.
    assert reconcile(api, rec) == CHILDREN_AFTER_PODS_SECONDS
    assert len(api.pods) == 2 and not api.children and "status" not in api.mrs
    # The replicas' API key Secret exists before the pods that read it.
    assert api.creates == [("Secret", "m-vllm-api-key")]
    reconcile(api, rec)
    assert len(api.pods) == 2 and {("Service", "m"), ("Service", "m-replicas"), ("PodDisruptionBudget", "m")} <= set(
        api.children
    )
    st = api.mrs["status"]
    assert [p["phase"] for p in st["placements"]] == ["Pending", "Pending"]
    assert cond(api, "Ready")["status"] == "False" and cond(api, "Progressing")["status"] == "True"
    api.run_pods()
    reconcile(api, rec)
    st = api.mrs["status"]
    assert (st["replicas"], st["readyReplicas"], st["desiredReplicas"]) == (2, 2, 2)
    assert cond(api, "Ready")["status"] == "True"
    assert all(p["phase"] == "Ready" and p["endpoint"].endswith(":8000") for p in st["placements"])
    # Idempotent: nothing more to do, nothing written.
    rv = api.rv
    reconcile(api, rec)
    assert api.rv == rv and len(api.pods) == 2
    assert api.creates == [("Secret", "m-vllm-api-key")]  # created once, never regenerated


def test_a_crash_in_the_middle_of_a_scale_up_leaves_no_duplicates(env) -> None:
    api, rec, clock = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1", "n2", "n3")}
    api.mrs = mrs().replicas(12).obj()
    api.fail_after_pods = 5
    with pytest.raises(RuntimeError):
        reconcile(api, rec)
    assert 0 < len(api.pods) < 12 and "status" not in api.mrs  # died before writing status
    api.fail_after_pods = None
    fresh = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
    reconcile(api, fresh)
    assert len(api.pods) == 12 and len(replicas_of(api)) == 12
    ordinals = sorted(int(r.rsplit("-", 1)[1]) for r in replicas_of(api))
    assert ordinals == list(range(12))
    reconcile(api, fresh)
    assert len(api.pods) == 12


def test_scale_down_drains_then_deletes_after_the_timeout(env) -> None:
    api, rec, clock = env
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(2).obj()
    reconcile(api, rec)
    api.run_pods()
    reconcile(api, rec)
    api.mrs["spec"]["replicas"] = 1
    api.mrs["metadata"]["generation"] = 2
    wake = reconcile(api, rec)
    draining = [p for p in api.pods.values() if p["metadata"]["labels"]["agentfleet.io/serving"] == "false"]
    assert len(draining) == 1 and DRAINING_SINCE_ANNOTATION in draining[0]["metadata"]["annotations"]
    assert wake is not None and wake <= 2.0
    assert len(api.pods) == 2 and api.mrs["status"]["replicas"] == 2
    clock[0] += 10
    reconcile(api, rec)
    assert len(api.pods) == 2  # metrics unknown: waits for the drain timeout
    clock[0] += 21
    reconcile(api, rec)
    assert len(api.pods) == 1
    reconcile(api, rec)
    st = api.mrs["status"]
    assert (st["replicas"], st["readyReplicas"], len(st["placements"])) == (1, 1, 1)
    assert st["lastScaleReason"] == "spec.replicas 2 -> 1"


def test_scale_down_takes_the_least_loaded_replica(env) -> None:
    api, rec, clock = env
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(3).obj()
    reconcile(api, rec)
    api.run_pods()
    reconcile(api, rec)
    load = {"10.0.0.1": 7, "10.0.0.2": 0, "10.0.0.3": 3}
    busy = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: load[ip])  # type: ignore[arg-type]
    api.mrs["spec"]["replicas"] = 2
    reconcile(api, busy)
    draining = [p for p in api.pods.values() if p["metadata"]["labels"]["agentfleet.io/serving"] == "false"]
    assert [p["status"]["podIP"] for p in draining] == ["10.0.0.2"]
    reconcile(api, busy)  # idle: deleted without waiting for the timeout
    assert "10.0.0.2" not in {p["status"]["podIP"] for p in api.pods.values()}


def test_a_gang_member_lost_restarts_the_group_after_the_backoff(env) -> None:
    api, rec, clock = env
    api.nodes = {"n1": Node("n1").block("rack").obj(), "n2": Node("n2").block("rack").obj()}
    api.mrs = mrs().replicas(1).tp(8).pp(2).obj()
    reconcile(api, rec)
    assert sorted(p["metadata"]["labels"]["agentfleet.io/role"] for p in api.pods.values()) == ["leader", "worker"]
    api.run_pods()
    reconcile(api, rec)
    nodes = api.mrs["status"]["placements"][0]["nodes"]
    worker = next(n for n, p in api.pods.items() if p["metadata"]["labels"]["agentfleet.io/role"] == "worker")
    del api.pods[worker]
    wake = reconcile(api, rec)
    assert api.pods == {}  # the whole group
    pl = api.mrs["status"]["placements"][0]
    assert (pl["phase"], pl["restarts"], pl["nodes"]) == ("Failed", 1, nodes)
    assert cond(api, "Degraded")["status"] == "True" and wake == pytest.approx(10)
    clock[0] += 5
    reconcile(api, rec)
    assert api.pods == {}  # still backing off
    clock[0] += 6
    reconcile(api, rec)
    assert len(api.pods) == 2 and sorted(
        p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
            "matchFields"
        ][0]["values"][0]
        for p in api.pods.values()
    ) == sorted(nodes)
    api.run_pods()
    reconcile(api, rec)
    pl = api.mrs["status"]["placements"][0]
    assert (pl["phase"], pl["restarts"]) == ("Ready", 1)
    assert cond(api, "Degraded")["status"] == "False"


def test_an_operator_restart_does_not_restart_the_group_backoff(env) -> None:
    api, rec, clock = env
    api.nodes = {"n1": Node("n1").block("rack").obj(), "n2": Node("n2").block("rack").obj()}
    api.mrs = mrs().replicas(1).tp(8).pp(2).obj()
    reconcile(api, rec)
    api.run_pods()
    reconcile(api, rec)
    del api.pods[next(iter(api.pods))]
    reconcile(api, rec)  # failed at t0; restart 1 due at t0 + 10 s
    assert api.mrs["status"]["placements"][0]["failedAt"]
    for _ in range(2):
        clock[0] += 5.5
        # A new operator process: nothing in memory, only what status holds.
        rec = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
        reconcile(api, rec)
    # t0 + 11 s: restarted on time; counting the backoff from the restart would wait until t0 + 15.5 s.
    assert len(api.pods) == 2


def test_a_lost_node_means_a_replacement_elsewhere(env) -> None:
    api, rec, _ = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1", "n2")}
    api.mrs = mrs().replicas(1).tp(8).obj()
    reconcile(api, rec)
    api.run_pods()
    reconcile(api, rec)
    old = api.mrs["status"]["placements"][0]
    del api.nodes[old["nodes"][0]]
    reconcile(api, rec)
    pods = list(api.pods.values())
    assert len(pods) == 1 and pods[0]["metadata"]["labels"]["agentfleet.io/replica"] != old["name"]
    api.run_pods()
    reconcile(api, rec)
    pl = api.mrs["status"]["placements"]
    assert len(pl) == 1 and pl[0]["nodes"] != old["nodes"] and pl[0]["phase"] == "Ready"


def test_unplaceable_and_unfitting_specs_create_nothing(env) -> None:
    api, rec, _ = env
    api.nodes = {"n1": Node("n1").gpus(4).block("b1").obj()}
    api.mrs = mrs().replicas(1).tp(8).obj()
    reconcile(api, rec)
    assert api.pods == {}
    limited = cond(api, "ScalingLimited")
    assert (
        limited["status"] == "True"
        and limited["reason"] in ("InsufficientGPUs", "NoTopologyBlock")
        and "needs" in limited["message"]
    )
    assert cond(api, "Ready")["reason"] == limited["reason"]
    # The fleets' workers read the replicas' API key even while no replica can be placed.
    assert api.creates == [("Secret", "m-vllm-api-key")]

    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(1).tp(1).model("meta-llama/Llama-3.1-70B-Instruct").obj()
    reconcile(api, rec)
    assert api.pods == {}
    assert (
        cond(api, "Ready")["reason"] == "ModelDoesNotFit"
        and "smallest tensorParallelSize that fits is 4" in cond(api, "Ready")["message"]
    )


def test_autoscaler_owns_desired_replicas_when_enabled(env) -> None:
    api, rec, _ = env
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(1).autoscaling(enabled=True, minReplicas=1, maxReplicas=3).obj()
    api.mrs["status"] = {"desiredReplicas": 5}
    reconcile(api, rec)
    assert len(api.pods) == 3  # clamped to maxReplicas
    assert api.mrs["status"]["desiredReplicas"] == 5  # never overwritten
    # With autoscaling on, ScalingLimited is the autoscaler's condition (applied under its own
    # manager): the controller clamps silently and never writes that type.
    assert not any(c["type"] == "ScalingLimited" for c in api.mrs["status"].get("conditions") or [])
    assert api.mrs["spec"]["replicas"] == 1  # spec is never written


def test_the_first_pass_reads_the_watch_event_and_skips_an_empty_listing(env) -> None:
    """The first pass of an object in this process takes the object from its watch event and, when
    the pod cache holds none of its pods, lists none; every later pass reads both fresh."""
    api, rec, _ = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1", "n2")}
    api.mrs = mrs().replicas(1).obj()
    calls: Counter = Counter()
    get, lst = api.get, api.list
    api.get = lambda *a: calls.update(["get"]) or get(*a)  # type: ignore[method-assign]
    api.list = lambda *a: calls.update(["list"]) or lst(*a)  # type: ignore[method-assign]
    snap = replace(api.snapshot(), body=copy.deepcopy(api.mrs))
    rec.reconcile((NS, "m"), snap)
    assert calls == Counter() and len(api.pods) == 1
    reconcile(api, rec)
    assert calls == Counter(get=1, list=1)


def test_a_first_pass_lists_the_pods_the_cache_shows(env) -> None:
    """After an operator restart the cache shows pods made by the process before: they are listed
    (in full) before anything is decided, and nothing is created twice."""
    api, rec, clock = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1", "n2")}
    api.mrs = mrs().replicas(2).obj()
    reconcile(api, rec)
    made = set(api.pods)
    fresh = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
    listed: list = []
    lst = api.list
    api.list = lambda *a: listed.append(a) or lst(*a)  # type: ignore[method-assign]
    fresh.reconcile((NS, "m"), replace(api.snapshot(), body=copy.deepcopy(api.mrs)))
    assert listed and set(api.pods) == made


def test_a_named_secret_without_consent_creates_nothing_and_says_how_to_label_it(env) -> None:
    api, rec, _ = env
    api.nodes = {n: Node(n).block("b1").obj() for n in ("n1",)}
    api.mrs = mrs().replicas(1).engine(apiKeySecretRef={"name": "billing", "key": "k"}).obj()
    api.secrets["billing"] = {"metadata": {"name": "billing", "labels": {}}, "data": {"k": "eA=="}}
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    reconcile(api, rec)
    assert api.pods == {} and api.creates == []
    ready = cond(api, "Ready")
    assert ready["status"] == "False" and "spec.engine.apiKeySecretRef" in ready["message"]
    assert "kubectl label secret -n ns billing agentfleet.io/consent=true" in ready["message"]
    assert ("Warning", "SecretNotConsented") in {(t, r) for t, r, _ in events}
    api.secrets["billing"]["metadata"]["labels"]["agentfleet.io/consent"] = "true"
    reconcile(api, rec)
    assert len(api.pods) == 1 and api.creates == []  # a named key: nothing generated


def test_an_invalid_spec_is_refused_once_creates_nothing_and_names_the_field(env) -> None:
    """Only with a CRD older than the operator: the framework's refuse-and-report (reconcile.shape)."""
    api, rec, clock = env
    posted: list[tuple[str, str, str]] = []
    rec.events.post = lambda obj, t, reason, msg: posted.append((t, reason, msg))  # type: ignore[method-assign]
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(1).engine(port="not-a-port").obj()
    for _ in range(2):
        assert reconcile(api, rec) is None
        clock[0] += 60.0  # past the recorder's window for repeated actions, within that of problems
    assert api.pods == {} and api.creates == []
    ready = cond(api, "Ready")
    assert ready["status"] == "False" and ready["message"].startswith("engine.port")
    assert [(t, r) for t, r, _ in posted] == [("Warning", "InvalidSpec")]  # once, not once per pass


def test_a_pod_template_colliding_with_the_operators_creates_nothing_and_names_the_field(env) -> None:
    api, rec, _ = env
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    bad = {"spec": {"containers": [{"name": "vllm", "env": [{"name": "HF_HOME", "value": "/x"}]}]}}
    api.mrs = mrs().replicas(1).pod_template(bad).obj()
    reconcile(api, rec)
    assert api.pods == {} and api.creates == []
    ready = cond(api, "Ready")
    assert ready["status"] == "False" and "spec.podTemplate.spec.containers[vllm].env[HF_HOME]" in ready["message"]
    assert ("Warning", "InvalidSpec") in {(t, r) for t, r, _ in events}
    api.mrs = mrs().replicas(1).pod_template({"metadata": {"annotations": {"team": "search"}}}).obj()
    reconcile(api, rec)
    [pod] = api.pods.values()
    assert pod["metadata"]["annotations"]["team"] == "search"


def test_a_volume_without_consent_is_neither_mounted_nor_filled_and_says_how_to_label_it(env) -> None:
    """modelCache.claimName is mounted read-write into the image the author chose (and the fill
    Job), a pvc:// model read-only: without the PVC's consent, any volume of the namespace could
    be read or changed by whoever may create a ModelReplicaSet (issue 57, finding 12)."""
    api, rec, _ = env
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.claims["payroll"] = {"metadata": {"name": "payroll", "labels": {}}}
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    api.mrs = mrs().replicas(1).engine(modelCache={"claimName": "payroll"}).obj()
    reconcile(api, rec)
    assert api.pods == {} and not [k for k in api.children if k[0] == "Job"]
    ready = cond(api, "Ready")
    assert ready["status"] == "False" and "spec.engine.modelCache.claimName" in ready["message"]
    assert "kubectl label pvc -n ns payroll agentfleet.io/consent=true" in ready["message"]
    assert ("Warning", "PersistentVolumeClaimNotConsented") in {(t, r) for t, r, _ in events}
    # A claim that does not exist is refused the same way; a pvc:// model's claim needs consent too.
    api.mrs = mrs().replicas(1).engine(modelCache={"claimName": "nowhere"}).obj()
    reconcile(api, rec)
    assert api.pods == {} and "PersistentVolumeClaim nowhere does not exist" in cond(api, "Ready")["message"]
    api.mrs = mrs().replicas(1).spec(model={"name": "pvc://payroll/llama"}).obj()
    reconcile(api, rec)
    assert api.pods == {} and "spec.model.name: PersistentVolumeClaim payroll" in cond(api, "Ready")["message"]
    # Labelled, it is mounted.
    api.claims["payroll"]["metadata"]["labels"] = dict(CONSENTED)
    api.mrs = mrs().replicas(1).engine(modelCache={"claimName": "payroll", "fill": False}).obj()
    reconcile(api, rec)
    (pod,) = api.pods.values()
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "payroll"}} in pod["spec"]["volumes"]


# --- the InferencePool (spec.inferencePool) -----------------------------------------------------

POOL = ("inference.networking.k8s.io/v1", "InferencePool")


def ready_set(api: FakeKube, rec: ModelReplicaSetController, m: MRS) -> None:
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = m.obj()
    reconcile(api, rec)
    api.run_pods()
    reconcile(api, rec)


def test_an_inference_pool_selects_the_serving_replicas_and_names_the_picker(env) -> None:
    api, rec, _ = env
    api.served.add(POOL)
    # The picker's Service (its pods read the replicas' /metrics, so their NetworkPolicy admits them).
    api.children[("Service", "epp")] = {"kind": "Service", "spec": {"selector": {"app": "epp"}}}
    ready_set(api, rec, mrs().replicas(2).spec(inferencePool={"endpointPicker": {"serviceName": "epp", "port": 9002}}))
    pool = api.children[("InferencePool", "m")]
    admitted = api.children[("NetworkPolicy", "m")]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"app": "epp"}}} in admitted
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    # The Services' selector: a draining replica (serving=false) leaves the pool with its drain.
    assert pool["spec"]["selector"] == {"matchLabels": api.children[("Service", "m-replicas")]["spec"]["selector"]}
    assert pool["spec"]["selector"]["matchLabels"]["agentfleet.io/serving"] == "true"
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {
        "group": "",
        "kind": "Service",
        "name": "epp",
        "port": {"number": 9002},
        "failureMode": "FailClose",
    }
    assert pool["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_an_inference_pool_no_longer_asked_for_is_deleted(env) -> None:
    api, rec, clock = env
    api.served.add(POOL)
    ready_set(api, rec, mrs().spec(inferencePool={}))
    assert ("InferencePool", "m") in api.children and "endpointPickerRef" not in api.children[("InferencePool", "m")][
        "spec"
    ]
    del api.mrs["spec"]["inferencePool"]
    api.mrs["metadata"]["generation"] = 2
    reconcile(api, rec)
    assert ("InferencePool", "m") not in api.children
    # Also after an operator restart, which forgets what it applied.
    api.children[("InferencePool", "m")] = {"kind": "InferencePool"}
    fresh = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
    reconcile(api, fresh)
    assert ("InferencePool", "m") not in api.children


def test_an_inference_pool_without_its_crd_is_a_warning_not_a_failed_pass(env) -> None:
    api, rec, _ = env
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    ready_set(api, rec, mrs().spec(inferencePool={}))
    assert api.mrs["status"]["readyReplicas"] == 1 and ("Service", "m") in api.children
    assert ("InferencePool", "m") not in api.children
    warning = next(msg for t, reason, msg in events if (t, reason) == ("Warning", "InferencePoolUnavailable"))
    assert "spec.inferencePool" in warning and "gateway-api-inference-extension" in warning


# --- the model cache's fill (spec.engine.modelCache) --------------------------------------------


def cache_events(rec: ModelReplicaSetController) -> list[tuple[str, str, str]]:
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    return events


def fill_job(api: FakeKube) -> dict:
    jobs = [obj for (kind, _), obj in api.children.items() if kind == "Job"]
    assert len(jobs) == 1, jobs
    return jobs[0]


def finish_job(api: FakeKube, type_: str, **status: Any) -> None:
    job = fill_job(api)
    job["status"] = {"conditions": [{"type": type_, "status": "True", **status.pop("condition", {})}], **status}


def cached(m: MRS, **cache: Any) -> MRS:
    return m.spec(engine={"modelCache": {"claimName": "weights", **cache}})


def test_new_replicas_wait_for_the_cache_fill_then_load_from_it(env) -> None:
    api, rec, _ = env
    events = cache_events(rec)
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = cached(mrs().replicas(2)).obj()
    wake = reconcile(api, rec)
    job = fill_job(api)
    assert not api.pods, "no replica starts before its weights are in the cache"
    assert wake is not None and wake <= 10
    env_of = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_of["AGENTFLEET_MODEL"] == api.mrs["spec"]["model"]["name"]
    reconcile(api, rec)  # the pass after the first writes status
    st = api.mrs["status"]["modelCache"]
    assert (st["phase"], st["job"]) == ("Filling", job["metadata"]["name"])
    assert "model cache weights" in cond(api, "Progressing")["message"]
    assert [r for _, r, _ in events].count("FillingModelCache") == 1
    finish_job(api, "Complete", startTime="2027-01-15T08:00:00Z", completionTime="2027-01-15T08:03:20Z")
    reconcile(api, rec)
    assert len(api.pods) == 2
    reconcile(api, rec)
    st = api.mrs["status"]["modelCache"]
    assert (st["phase"], st["fillSeconds"]) == ("Filled", 200)
    assert ("Normal", "ModelCacheFilled") in {(t, r) for t, r, _ in events}
    # Filled is remembered: the Job may be deleted (by hand, or a TTL) without a second fill.
    del api.children[("Job", job["metadata"]["name"])]
    reconcile(api, rec)
    assert not [k for k in api.children if k[0] == "Job"]


def test_a_failed_fill_lets_replicas_download_themselves_and_says_why(env) -> None:
    api, rec, _ = env
    events = cache_events(rec)
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = cached(mrs()).obj()
    reconcile(api, rec)
    finish_job(
        api,
        "Failed",
        condition={"reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"},
    )
    reconcile(api, rec)
    assert len(api.pods) == 1
    kind, warning = next((t, m) for t, r, m in events if r == "ModelCacheFillFailed")
    assert kind == "Warning"
    assert "BackoffLimitExceeded" in warning and "download the weights themselves" in warning
    reconcile(api, rec)
    assert api.mrs["status"]["modelCache"]["phase"] == "Failed"


def test_a_new_revision_is_filled_by_a_new_job_and_no_fill_applies_without_a_claim(env) -> None:
    api, rec, _ = env
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = cached(mrs()).obj()
    reconcile(api, rec)
    first = fill_job(api)["metadata"]["name"]
    finish_job(api, "Complete")
    reconcile(api, rec)
    api.mrs["spec"]["model"]["revision"] = "v2"
    api.mrs["metadata"]["generation"] = 2
    reconcile(api, rec)
    names = {k[1] for k in api.children if k[0] == "Job"}
    assert len(names) == 2 and first in names
    assert api.mrs["status"]["modelCache"]["model"].endswith("@v2")
    # Without a claim (or for an object-store model) there is nothing to fill.
    for engine in ({}, {"modelCache": {"claimName": "weights", "fill": False}}):
        api.children.clear()
        api.mrs["spec"]["engine"] = engine
        api.mrs["metadata"]["generation"] += 1
        reconcile(api, rec)
        assert not [k for k in api.children if k[0] == "Job"]
        assert api.mrs["status"].get("modelCache") is None


# --- LoRA adapters (spec.adapters) --------------------------------------------------------------


class FakeAdapters:
    """vLLM's adapter API on each replica endpoint (adapters.AdapterClient's methods)."""

    def __init__(self) -> None:
        self.loaded: dict[str, dict[str, str]] = {}  # endpoint -> name -> source
        self.down: set[str] = set()
        self.calls: list[tuple[str, str, str]] = []

    def client(self, endpoint: str, key: str | None) -> FakeAdapters._Client:
        return FakeAdapters._Client(self, endpoint)

    class _Client:
        def __init__(self, api: FakeAdapters, endpoint: str) -> None:
            self.api, self.endpoint = api, endpoint

        def _check(self) -> None:
            if self.endpoint in self.api.down:
                raise AdapterError("GET /v1/models: connection refused")

        def loaded(self) -> dict[str, str]:
            self._check()
            return dict(self.api.loaded.setdefault(self.endpoint, {}))

        def load(self, name: str, source: str) -> None:
            self._check()
            self.api.calls.append((self.endpoint, "load", name))
            self.api.loaded.setdefault(self.endpoint, {})[name] = source

        def unload(self, name: str) -> None:
            self._check()
            self.api.calls.append((self.endpoint, "unload", name))
            del self.api.loaded[self.endpoint][name]


def lora_env(clock: list[float]) -> tuple[FakeKube, ModelReplicaSetController, FakeAdapters]:
    api, fake = FakeKube(clock), FakeAdapters()
    rec = ModelReplicaSetController(
        api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None, adapter_client=fake.client
    )  # type: ignore[arg-type]
    return api, rec, fake


SQL = {"name": "sql", "source": "/models-cache/adapters/sql"}
CHAT = {"name": "chat", "source": "org/chat-lora", "maxRank": 32}


def test_adapter_actions_load_missing_unload_removed_and_reload_a_moved_source() -> None:
    acts = adapter_actions({"a": "/a", "b": "/b2", "c": "/c"}, {"b": "/b1", "x": "/x", "c": "/c"})
    assert acts.unload == ["x", "b"] and acts.load == [("a", "/a"), ("b", "/b2")]
    assert adapter_actions({}, {}) == adapter_actions({"a": "/a"}, {"a": "/a"}) == type(acts)()


def test_every_ready_replica_holds_the_specs_adapters_and_status_says_so() -> None:
    clock = [1_800_000_000.0]
    api, rec, fake = lora_env(clock)
    ready_set(api, rec, mrs().replicas(2).spec(adapters=[SQL, CHAT]))
    reconcile(api, rec)
    endpoints = {p["endpoint"] for p in api.mrs["status"]["placements"]}
    assert len(endpoints) == 2
    assert all(fake.loaded[e] == {"sql": SQL["source"], "chat": CHAT["source"]} for e in endpoints)
    assert all(p["adapters"] == ["chat", "sql"] for p in api.mrs["status"]["placements"])
    # The pods were started for LoRA: slots and the largest rank, and the run-time API switched on.
    pod = next(iter(api.pods.values()))["spec"]["containers"][0]
    args = pod["args"] if "args" in pod else pod["command"]
    assert (
        "--enable-lora" in args
        and args[args.index("--max-lora-rank") + 1] == "32"
        and args[args.index("--max-loras") + 1] == "4"
    )
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in pod["env"]
    # A removed adapter is unloaded, an added one loaded, on the next pass, without a new pod.
    pods_before = set(api.pods)
    api.mrs["spec"]["adapters"] = [CHAT, {"name": "code", "source": "/models-cache/adapters/code", "maxRank": 32}]
    api.mrs["metadata"]["generation"] = 2
    reconcile(api, rec)
    reconcile(api, rec)
    assert set(api.pods) == pods_before
    assert all(set(fake.loaded[e]) == {"chat", "code"} for e in endpoints)
    assert all(p["adapters"] == ["chat", "code"] for p in api.mrs["status"]["placements"])
    calls_before = len(fake.calls)
    reconcile(api, rec)
    assert len(fake.calls) == calls_before, "a replica that holds the list is asked nothing more"


def test_a_replica_that_cannot_be_reached_is_a_warning_and_keeps_its_record() -> None:
    clock = [1_800_000_000.0]
    api, rec, fake = lora_env(clock)
    events: list[tuple[str, str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason, msg))  # type: ignore[method-assign]
    ready_set(api, rec, mrs().replicas(2).spec(adapters=[SQL]))
    endpoint = api.mrs["status"]["placements"][0]["endpoint"]
    fake.down.add(endpoint)
    reconcile(api, rec)
    reconcile(api, rec)
    byname = {p["endpoint"]: p for p in api.mrs["status"]["placements"]}
    assert byname[endpoint]["adapters"] == [] and all(
        p["adapters"] == ["sql"] for e, p in byname.items() if e != endpoint
    )
    warning = next(m for t, r, m in events if r == "AdapterSyncFailed")
    assert "connection refused" in warning
    fake.down.clear()
    reconcile(api, rec)
    reconcile(api, rec)
    assert all(p["adapters"] == ["sql"] for p in api.mrs["status"]["placements"])


def test_no_adapter_api_call_for_a_set_without_adapters(env) -> None:
    api, _, clock = env
    api2, rec, fake = lora_env(clock)
    ready_set(api2, rec, mrs().replicas(2))
    reconcile(api2, rec)
    assert fake.calls == [] and fake.loaded == {}
    pod = next(iter(api2.pods.values()))["spec"]["containers"][0]
    assert "--enable-lora" not in (pod.get("args") or pod.get("command") or [])
