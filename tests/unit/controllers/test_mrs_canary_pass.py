"""The canary through whole ModelReplicaSet passes (reconcile.py with canarying.py), against the
fake API server of test_reconcile with the AgentFleets of the namespace and ConfigMaps added: a
gated fleet's set keeps its replicas on the promoted model, adds one canary replica, drops it when
the gate held and rolls on when it promoted."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from agentfleet_contract.gate import canary_hash

from agentfleet.controllers.modelreplicaset.caches import Snapshot
from agentfleet.controllers.modelreplicaset.controller import ModelReplicaSetController
from tests.builders import LLAMA_8B, Fleet, Node
from tests.unit.controllers.test_reconcile import NS, FakeKube, cond, mrs

QWEN = "Qwen/Qwen2.5-7B-Instruct"
SERVING = "agentfleet.io/serving"


class GatedKube(FakeKube):
    def __init__(self, clock: list[float]) -> None:
        super().__init__(clock)
        self.fleets: list[dict[str, Any]] = []
        self.unannotated: list[dict[str, Any]] = []  # the annotations the pass removed from the set
        self.status_fails = False

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None):
        if kind == "AgentFleet":
            return copy.deepcopy(self.fleets)
        return super().list(api_version, kind, namespace, label_selector)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        if kind == "ConfigMap":
            return copy.deepcopy(self.children.get((kind, name)))
        return super().get(api_version, kind, name, namespace)

    def snapshot(self) -> Snapshot:
        return replace(super().snapshot(), gated=bool(self.fleets))

    def merge_patch_metadata(
        self, api_version: str, kind: str, name: str, namespace: str, labels: dict, annotations: dict
    ) -> None:
        if kind != "ModelReplicaSet":
            return super().merge_patch_metadata(api_version, kind, name, namespace, labels, annotations)
        assert self.mrs is not None and (api_version, name, labels) == ("agentfleet.io/v1alpha1", "m", {})
        self.unannotated.append(dict(annotations))
        meta = self.mrs["metadata"].setdefault("annotations", {})
        for k, v in annotations.items():
            meta.pop(k) if v is None else meta.__setitem__(k, v)

    def merge_patch_status(self, api_version: str, kind: str, name: str, namespace: str, status: dict) -> dict:
        if self.status_fails:
            raise RuntimeError("operator killed before its status write")
        return super().merge_patch_status(api_version, kind, name, namespace, status)


@pytest.fixture
def world():
    clock = [1_800_000_000.0]
    api = GatedKube(clock)
    rec = ModelReplicaSetController(api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None)  # type: ignore[arg-type]
    events: list[tuple[str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason)) or True  # type: ignore[method-assign]
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(2).obj()
    return api, rec, clock, events


def run(api: GatedKube, rec: ModelReplicaSetController) -> float | None:
    return rec.reconcile((NS, "m"), api.snapshot())


def labels(api: GatedKube) -> dict[str, str]:
    return {
        p["metadata"]["labels"]["agentfleet.io/replica"]: p["metadata"]["labels"][SERVING] for p in api.pods.values()
    }


def gate(api: GatedKube, phase: str | None = None) -> None:
    fleet = Fleet("support").ns(NS).model("m").gate()
    if phase is not None:
        h = canary_hash(api.mrs["spec"])
        fleet = fleet.status({"gate": {"phase": phase, "canaries": [{"modelReplicaSet": "m", "hash": h}]}})
    api.fleets = [fleet.obj()]


def canary_started(api: GatedKube, rec: ModelReplicaSetController) -> tuple[set[str], str]:
    """Two ready replicas on Llama behind a gated fleet; then the model changes to Qwen."""
    run(api, rec)
    api.run_pods()
    run(api, rec)
    gate(api)
    run(api, rec)
    promoted = api.children[("ConfigMap", "m-promoted")]
    assert LLAMA_8B in promoted["data"]["fields"] and api.mrs["status"]["canary"]["phase"] == "Serving"
    old = set(labels(api))
    api.mrs["spec"]["model"] = {"name": QWEN}
    api.mrs["metadata"]["generation"] = 2
    run(api, rec)
    new = set(labels(api)) - old
    assert len(new) == 1
    return old, new.pop()


def test_a_changed_model_keeps_the_replicas_and_starts_one_canary_replica(world) -> None:
    api, rec, _, events = world
    old, canary = canary_started(api, rec)
    assert labels(api) == {**dict.fromkeys(old, "true"), canary: "canary"}
    assert ("Service", "m-canary") in api.children
    pod = next(p for p in api.pods.values() if p["metadata"]["labels"]["agentfleet.io/replica"] == canary)
    assert QWEN in pod["spec"]["containers"][0]["args"]
    st = api.mrs["status"]
    assert st["canary"]["phase"] == "Running" and not st["canary"]["ready"]
    assert st["canary"]["replica"]["name"] == canary and st["canary"]["fleets"] == [
        {"name": "support", "result": "Waiting"}
    ]
    assert {p["name"] for p in st["placements"]} == old  # not one of spec.replicas
    assert cond(api, "Canary")["status"] == "Unknown" and ("Normal", "CanaryStarted") in events
    api.run_pods()
    run(api, rec)
    assert api.mrs["status"]["canary"]["ready"] and api.mrs["status"]["canary"]["replica"]["phase"] == "Ready"
    assert labels(api) == {**dict.fromkeys(old, "true"), canary: "canary"}  # nothing rolls while it runs


def test_a_held_gate_drops_the_canary_and_the_replicas_stay(world) -> None:
    api, rec, clock, events = world
    old, canary = canary_started(api, rec)
    api.run_pods()
    run(api, rec)
    gate(api, "Held")
    run(api, rec)
    assert labels(api)[canary] == "false"  # drained like any outdated replica
    assert api.mrs["status"]["canary"]["phase"] == "Held" and cond(api, "Canary")["status"] == "False"
    assert ("Warning", "CanaryHeld") in events and ("Service", "m-canary") not in api.children
    clock[0] += 31  # the drain timeout (in-flight requests unknown)
    run(api, rec)
    run(api, rec)
    assert labels(api) == dict.fromkeys(old, "true")
    assert LLAMA_8B in api.children[("ConfigMap", "m-promoted")]["data"]["fields"]
    assert all(LLAMA_8B in p["spec"]["containers"][0]["args"] for p in api.pods.values())


def test_every_gate_promoted_rolls_the_set_on_with_the_canary_as_its_first_new_replica(world) -> None:
    api, rec, _, events = world
    old, canary = canary_started(api, rec)
    api.run_pods()
    run(api, rec)
    gate(api, "Promoted")
    run(api, rec)
    got = labels(api)
    assert got[canary] == "true"  # in the set's Services now
    assert sorted(got[r] for r in old) == ["false", "true"]  # the rolling update drains one old replica
    assert QWEN in api.children[("ConfigMap", "m-promoted")]["data"]["fields"]
    assert api.mrs["status"]["canary"]["phase"] == "Promoted" and ("Normal", "CanaryPromoted") in events
    assert canary in {p["name"] for p in api.mrs["status"]["placements"]}


def test_without_a_gated_fleet_a_model_change_rolls_as_always(world) -> None:
    api, rec, _, _ = world
    run(api, rec)
    api.run_pods()
    run(api, rec)
    old = set(labels(api))
    api.mrs["spec"]["model"] = {"name": QWEN}
    run(api, rec)
    new = set(labels(api)) - old
    assert len(new) == 1 and labels(api)[new.pop()] == "true"  # the surge replica, serving at once
    assert "canary" not in api.mrs["status"] and ("ConfigMap", "m-promoted") not in api.children


SQL = {"name": "sql", "source": "/models-cache/adapters/sql"}
SQL2 = {"name": "sql", "source": "/models-cache/adapters/sql-v2"}


@pytest.fixture
def lora():
    from tests.unit.controllers.test_reconcile import FakeAdapters

    clock = [1_800_000_000.0]
    api, fake = GatedKube(clock), FakeAdapters()
    rec = ModelReplicaSetController(
        api, workers=2, clock=lambda: clock[0], metrics=lambda ip, port: None, adapter_client=fake.client
    )  # type: ignore[arg-type]
    events: list[tuple[str, str]] = []
    rec.events.event = lambda obj, t, reason, msg, **_: events.append((t, reason)) or True  # type: ignore[method-assign]
    api.nodes = {"n1": Node("n1").block("b1").obj()}
    api.mrs = mrs().replicas(2).spec(adapters=[SQL]).obj()
    return api, rec, fake, events


def adapter_canary(api: GatedKube, rec: ModelReplicaSetController, fake: Any) -> tuple[set[str], str]:
    """Two ready replicas holding sql v1 behind a gated fleet; sql's source changes to v2."""
    run(api, rec)
    api.run_pods()
    run(api, rec)
    gate(api)
    run(api, rec)
    old = set(labels(api))
    api.mrs["spec"]["adapters"] = [SQL2]
    run(api, rec)
    new = set(labels(api)) - old
    assert len(new) == 1
    canary = new.pop()
    assert labels(api) == {**dict.fromkeys(old, "true"), canary: "canary"}
    api.run_pods()
    run(api, rec)  # Ready: the canary replica loads sql v2
    assert not api.mrs["status"]["canary"]["ready"]  # the gates wait until it holds them
    run(api, rec)  # and says so
    return old, canary


def test_an_adapter_change_is_loaded_on_the_canary_replica_only(lora) -> None:
    api, rec, fake, _ = lora
    old, canary = adapter_canary(api, rec, fake)
    st = api.mrs["status"]
    assert st["canary"]["phase"] == "Running" and st["canary"]["ready"] is True
    endpoints = {p["name"]: p["endpoint"] for p in st["placements"]}
    assert set(endpoints) == old and all(fake.loaded[e] == {"sql": SQL["source"]} for e in endpoints.values())
    assert fake.loaded[st["canary"]["replica"]["endpoint"]] == {"sql": SQL2["source"]}


def test_a_held_adapter_change_deletes_the_canary_and_the_replicas_keep_theirs(lora) -> None:
    api, rec, fake, events = lora
    old, canary = adapter_canary(api, rec, fake)
    gate(api, "Held")
    run(api, rec)
    run(api, rec)
    assert labels(api) == dict.fromkeys(old, "true") and ("Warning", "CanaryHeld") in events
    assert all(fake.loaded[p["endpoint"]] == {"sql": SQL["source"]} for p in api.mrs["status"]["placements"])


def test_a_promoted_adapter_change_reaches_every_replica(lora) -> None:
    api, rec, fake, _ = lora
    old, canary = adapter_canary(api, rec, fake)
    gate(api, "Promoted")
    for _ in range(3):
        run(api, rec)
    # The canary joins the Services; one of three equal replicas is drained back to spec.replicas.
    assert sorted(labels(api).values()) == ["false", "true", "true"]
    assert SQL2["source"] in api.children[("ConfigMap", "m-promoted")]["data"]["fields"]
    serving = [p for p in api.mrs["status"]["placements"] if p["phase"] == "Ready"]
    assert len(serving) == 2 and all(fake.loaded[p["endpoint"]] == {"sql": SQL2["source"]} for p in serving)


GATE = "agentfleet.io/gate"


def annotate(api: GatedKube, value: str) -> None:
    api.mrs["metadata"].setdefault("annotations", {})[GATE] = value


def test_the_promote_annotation_rolls_the_set_on_while_its_gate_still_runs(world) -> None:
    api, rec, _, events = world
    old, canary = canary_started(api, rec)
    api.run_pods()
    run(api, rec)
    gate(api, "Running")
    annotate(api, "promote")
    run(api, rec)
    got = labels(api)
    assert got[canary] == "true" and sorted(got[r] for r in old) == ["false", "true"]  # as when every gate promoted
    assert QWEN in api.children[("ConfigMap", "m-promoted")]["data"]["fields"]
    st = api.mrs["status"]["canary"]
    assert (st["phase"], st["overridden"]) == ("Promoted", "promote")
    assert (cond(api, "Canary")["status"], cond(api, "Canary")["reason"]) == ("True", "Overridden")
    assert ("Normal", "CanaryPromoted") in events
    assert GATE not in api.mrs["metadata"]["annotations"] and api.unannotated == [{GATE: None}]
    run(api, rec)
    assert cond(api, "Canary")["reason"] == "Overridden" and api.unannotated == [{GATE: None}]


def test_the_abort_annotation_removes_the_canary_and_a_later_promotion_does_not_bring_it_back(world) -> None:
    api, rec, clock, events = world
    old, canary = canary_started(api, rec)
    api.run_pods()
    run(api, rec)
    annotate(api, "abort")
    run(api, rec)
    assert labels(api)[canary] == "false" and ("Service", "m-canary") not in api.children
    st = api.mrs["status"]["canary"]
    assert (st["phase"], st["overridden"]) == ("Held", "abort")
    assert (cond(api, "Canary")["status"], cond(api, "Canary")["reason"]) == ("False", "Overridden")
    assert ("Warning", "CanaryHeld") in events and GATE not in api.mrs["metadata"]["annotations"]
    gate(api, "Promoted")
    clock[0] += 31
    run(api, rec)
    run(api, rec)
    assert labels(api) == dict.fromkeys(old, "true") and api.mrs["status"]["canary"]["phase"] == "Held"
    assert LLAMA_8B in api.children[("ConfigMap", "m-promoted")]["data"]["fields"]


def test_an_invalid_annotation_stays_and_the_canary_runs_on(world) -> None:
    api, rec, _, events = world
    old, canary = canary_started(api, rec)
    annotate(api, "yes")
    run(api, rec)
    assert labels(api) == {**dict.fromkeys(old, "true"), canary: "canary"}
    assert api.mrs["status"]["canary"]["phase"] == "Running"
    c = cond(api, "Canary")
    assert (c["status"], c["reason"]) == ("False", "InvalidOverride") and GATE in c["message"]
    assert ("Warning", "InvalidOverride") in events and api.mrs["metadata"]["annotations"][GATE] == "yes"
    api.mrs["metadata"]["annotations"].pop(GATE)
    run(api, rec)
    assert cond(api, "Canary")["reason"] == "Running" and api.unannotated == []


def test_an_annotation_with_nothing_on_trial_is_removed(world) -> None:
    api, rec, _, events = world
    run(api, rec)
    api.run_pods()
    run(api, rec)
    annotate(api, "promote")
    run(api, rec)  # no gated fleet ever: the set reads no fleets and leaves it (as an ungated AgentFleet does)
    assert api.mrs["metadata"]["annotations"][GATE] == "promote"
    gate(api)
    run(api, rec)
    assert api.mrs["status"]["canary"]["phase"] == "Serving" and GATE not in api.mrs["metadata"]["annotations"]
    assert ("Normal", "CanaryOverrideIgnored") in events


def test_the_annotation_goes_only_once_status_says_what_it_did(world) -> None:
    api, rec, _, events = world
    old, canary = canary_started(api, rec)
    annotate(api, "abort")
    api.status_fails = True
    with pytest.raises(RuntimeError):
        run(api, rec)
    assert api.mrs["metadata"]["annotations"][GATE] == "abort" and api.mrs["status"]["canary"]["phase"] == "Running"
    api.status_fails = False
    run(api, rec)  # the next pass applies it again, and says so
    assert api.mrs["status"]["canary"]["phase"] == "Held" and GATE not in api.mrs["metadata"]["annotations"]
