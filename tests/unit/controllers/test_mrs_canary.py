"""The ModelReplicaSet canary's pure decision (controllers/modelreplicaset/canary.py): which spec the
replicas run, whether one canary replica of the spec as written runs, when the set rolls on."""

from __future__ import annotations

import json

from agentfleet_contract.gate import canary_hash
from agentfleet_contract.modelreplicaset import CanaryStatus

from agentfleet.controllers.modelreplicaset.canary import (
    CanaryPlan,
    FleetGate,
    canary_fields,
    decide_canary,
    fleet_gates,
    read_promoted,
    render_promoted,
)
from tests.builders import LLAMA_8B, MRS, Fleet

NOW = "2026-11-27T02:00:00Z"
QWEN = "Qwen/Qwen2.5-7B-Instruct"
OLD = {"model": {"name": LLAMA_8B}, "adapters": None}


def spec(model: str = QWEN) -> dict:
    return MRS("llama-8b").model(model).obj()["spec"]


def gated(name: str, phase: str | None = None, canary: str | None = None) -> FleetGate:
    return FleetGate(name, phase, {"llama-8b": canary} if canary else {})


def decide(
    s: dict, promoted: dict | None, fleets: tuple[FleetGate, ...], before: CanaryStatus | None = None
) -> CanaryPlan:
    return decide_canary("llama-8b", s, promoted, fleets, before, NOW)


def test_without_a_gated_fleet_the_spec_as_written_serves_and_nothing_is_kept() -> None:
    plan = decide(spec(), OLD, ())
    assert plan.serving == spec()
    assert (plan.canary, plan.keep, plan.status, plan.condition, plan.posts) == (None, None, None, None, ())


def test_the_first_gated_version_is_adopted_and_kept() -> None:
    plan = decide(spec(), None, (gated("support"),))
    assert plan.serving == spec() and plan.canary is None
    assert plan.keep == canary_fields(spec())
    # status.canary tells the fleets' gates that nothing of this hash is on trial.
    assert plan.status == CanaryStatus(hash=canary_hash(spec()), phase="Serving")
    assert plan.condition is not None and plan.condition[:2] == ("True", "Serving")
    again = decide(spec(), canary_fields(spec()), (gated("support"),), plan.status)
    assert again.keep is None and again.status == plan.status and again.canary is None


def test_a_changed_model_keeps_the_replicas_on_the_promoted_one_and_starts_one_canary() -> None:
    plan = decide(spec(QWEN), OLD, (gated("support"), gated("billing")))
    assert plan.serving["model"] == {"name": LLAMA_8B}
    assert plan.serving["engine"] == spec()["engine"]  # the rest of the spec as written
    assert plan.canary == spec(QWEN)
    assert plan.keep is None
    assert plan.status is not None and plan.status.phase == "Running"
    assert plan.status.hash == canary_hash(spec(QWEN))
    assert [(f.name, f.result) for f in plan.status.fleets] == [("billing", "Waiting"), ("support", "Waiting")]
    assert plan.condition is not None and plan.condition[:2] == ("Unknown", "Running")
    assert [p.reason for p in plan.posts] == ["CanaryStarted"]


def test_a_running_canary_says_started_once_and_when_it_is_ready() -> None:
    first = decide(spec(), OLD, (gated("support"),))
    assert first.status is not None and not first.status.ready
    again = decide_canary("llama-8b", spec(), OLD, (gated("support"),), first.status, "later", ready=True)
    assert again.canary == spec() and again.posts == ()
    assert again.status is not None and again.status.started_at == first.status.started_at == NOW
    assert again.status.ready


def test_the_set_rolls_on_only_when_every_gated_fleet_promoted_this_canary() -> None:
    h = canary_hash(spec())
    one = decide(spec(), OLD, (gated("billing", "Running", h), gated("support", "Promoted", h)))
    assert one.canary == spec() and one.serving["model"] == OLD["model"] and one.keep is None
    assert [(f.name, f.result) for f in one.status.fleets] == [("billing", "Running"), ("support", "Promoted")]
    stale = decide(spec(), OLD, (gated("billing", "Promoted", "another"), gated("support", "Promoted", h)))
    assert stale.canary == spec() and stale.keep is None  # a promotion of an older canary is no vote
    both = decide(spec(), OLD, (gated("billing", "Promoted", h), gated("support", "Promoted", h)))
    assert both.serving == spec() and both.canary is None
    assert both.keep == canary_fields(spec())
    assert both.status.phase == "Promoted" and both.condition[:2] == ("True", "Promoted")
    assert [p.reason for p in both.posts] == ["CanaryPromoted"]


def test_one_held_gate_holds_the_canary_and_the_replicas_stay() -> None:
    h = canary_hash(spec())
    for phase in ("Held", "Aborted"):
        plan = decide(spec(), OLD, (gated("billing", "Promoted", h), gated("support", phase, h)))
        assert plan.canary is None and plan.keep is None
        assert plan.serving["model"] == OLD["model"]
        assert plan.status.phase == "Held" and plan.status.finished_at == NOW
        assert plan.condition[:2] == ("False", "Held") and "support" in plan.condition[2]
        assert [(p.type, p.reason) for p in plan.posts] == [("Warning", "CanaryHeld")]
        assert "support" in plan.posts[0].message and "billing" not in plan.posts[0].message


def test_a_held_change_stays_held_until_the_spec_changes() -> None:
    h = canary_hash(spec())
    held = decide(spec(), OLD, (gated("support", "Held", h),)).status
    # The fleet's gate starts over for another change of its own: the held set does not restart its canary.
    plan = decide(spec(), OLD, (gated("support", "Running", "other"),), held)
    assert plan.canary is None and plan.status == held and plan.posts == ()
    other = spec("mistralai/Mistral-7B-Instruct-v0.3")
    plan = decide(other, OLD, (gated("support", "Running", "other"),), held)
    assert plan.canary == other and [p.reason for p in plan.posts] == ["CanaryStarted"]


def test_an_adapter_only_change_is_tried_on_a_canary_with_the_same_pods() -> None:
    with_adapters = MRS("llama-8b").spec(adapters=[{"name": "sql", "source": "hf://org/sql"}]).obj()["spec"]
    other = MRS("llama-8b").spec(adapters=[{"name": "sql", "source": "hf://org/sql2"}]).obj()["spec"]
    plan = decide(other, canary_fields(with_adapters), (gated("support"),))
    assert plan.serving["adapters"] == with_adapters["adapters"] and plan.canary == other and plan.same_pods
    assert plan.keep is None and plan.status is not None and plan.status.phase == "Running"
    model = decide(spec(QWEN), OLD, (gated("support"),))
    assert not model.same_pods


def test_fleet_gates_reads_the_gated_fleets_that_use_the_set() -> None:
    h = canary_hash(spec())
    gate = {"phase": "Running", "canaries": [{"modelReplicaSet": "llama-8b", "hash": h}]}
    fleets = [
        Fleet("b").gate().status({"gate": gate}).obj(),
        Fleet("a").routine_model("llama-8b", ["Summaries"]).model("qwen").gate().obj(),
        Fleet("ungated").obj(),
        Fleet("elsewhere").model("qwen").gate().obj(),
    ]
    got = fleet_gates("llama-8b", fleets)
    assert [g.name for g in got] == ["a", "b"]
    assert got[1].result("llama-8b", h) == "Running" and got[0].result("llama-8b", h) == "Waiting"


def test_promoted_record_round_trips_and_refuses_what_it_cannot_read() -> None:
    from agentfleet_contract.modelreplicaset import ModelReplicaSet

    obj = ModelReplicaSet.model_validate(MRS("llama-8b").meta(namespace="ns", uid="u1").obj())
    cm = render_promoted(obj, canary_fields(spec()))
    assert cm["metadata"]["name"] == "llama-8b-promoted"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert read_promoted(cm) == canary_fields(spec())
    assert read_promoted({"data": {"fields": "[1]"}}) is None
    assert read_promoted({"data": {"fields": json.dumps({"model": {}})}}) is None
    assert read_promoted(None) is None


def test_the_canary_replica_is_in_its_canary_service_only() -> None:
    from agentfleet_contract.modelreplicaset import ModelReplicaSet

    from agentfleet.placement import Assignment
    from agentfleet.render.modelreplicaset import render_canary_service, render_pod, render_services, serving_selector
    from agentfleet.replica_rollout import observe_pod

    mrs = ModelReplicaSet.model_validate(MRS("llama-8b").ns("ns").meta(uid="u1").obj())
    a = Assignment(key="ns/llama-8b-abcde-0", owner="ns/llama-8b", nodes=("n1",), gpus_per_node=1)
    pod = render_pod(mrs, a, 0, canary=True)
    labels = pod["metadata"]["labels"]
    svc = render_canary_service(mrs)
    assert svc["metadata"]["name"] == "llama-8b-canary" and svc["spec"]["clusterIP"] == "None"
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    for other in render_services(mrs):
        assert any(labels.get(k) != v for k, v in other["spec"]["selector"].items())
    assert any(labels.get(k) != v for k, v in serving_selector("llama-8b").items())
    seen = observe_pod({**pod, "status": {"phase": "Running"}})
    assert seen is not None and seen.canary and seen.serving
    plain = observe_pod({**render_pod(mrs, a, 0), "status": {"phase": "Running"}})
    assert plain is not None and not plain.canary


def test_a_candidate_tier_on_a_canary_watches_the_canary_service() -> None:
    from agentfleet_contract.runtime_config import TierConfig

    from agentfleet_runtime.routing.factory import _source
    from agentfleet_runtime.routing.kube import EndpointSliceSource

    src = _source(TierConfig(model_replica_set="llama-8b", service="llama-8b-canary"), "ns")
    assert isinstance(src, EndpointSliceSource) and src.service == "llama-8b-canary"
    plain = _source(TierConfig(model_replica_set="llama-8b"), "ns")
    assert isinstance(plain, EndpointSliceSource) and plain.service == "llama-8b-replicas"


def test_to_canaries_rewrites_only_the_named_sets() -> None:
    from agentfleet.render.gate import to_canaries

    doc = {
        "modelRouting": {
            "primary": {"modelReplicaSet": "llama-8b", "endpoints": ["http://llama-8b.ns.svc:8000/v1"]},
            "routine": {"modelReplicaSet": "small"},
        }
    }
    out = to_canaries(doc, frozenset({"llama-8b"}))
    assert out["modelRouting"]["primary"]["service"] == "llama-8b-canary"
    assert out["modelRouting"]["primary"]["endpoints"] == ["http://llama-8b-canary.ns.svc:8000/v1"]
    assert "service" not in out["modelRouting"]["routine"]
    assert "service" not in doc["modelRouting"]["primary"]  # the input is not changed
    assert to_canaries(doc, frozenset()) is doc


def test_the_caches_wake_a_set_when_a_fleet_starts_stops_or_moves_its_gate_on_it() -> None:
    from agentfleet.controllers.modelreplicaset.caches import Caches

    caches = Caches(indices={"mrs_nodes": {}, "mrs_gpu_pods": {}, "mrs_placements": {}})
    assert caches.fleet_changed(("ns", "support"), frozenset({"llama-8b"}), "running") == {"llama-8b"}
    assert caches.snapshot(("ns", "llama-8b")).gated and not caches.snapshot(("other", "llama-8b")).gated
    assert caches.fleet_changed(("ns", "support"), frozenset({"llama-8b"}), "running") == frozenset()
    assert caches.fleet_changed(("ns", "support"), frozenset({"llama-8b"}), "held") == {"llama-8b"}
    assert caches.fleet_changed(("ns", "support"), frozenset({"qwen"}), "held") == {"llama-8b", "qwen"}
    assert caches.fleet_changed(("ns", "support"), frozenset(), "") == {"qwen"}
    assert not caches.snapshot(("ns", "qwen")).gated
    assert caches.fleet_changed(("ns", "support"), frozenset(), "") == frozenset()


def test_canary_step_keeps_one_canary_replica_and_replaces_a_failed_one() -> None:
    from agentfleet_contract.modelreplicaset import ModelReplicaSet

    from agentfleet.controllers.modelreplicaset.canary import CanaryObserved, canary_step
    from agentfleet.replica_rollout import PodView, ReplicaView

    plan = decide(spec(), OLD, (gated("support"),))
    assert plan.status is not None and plan.status.spec_hash
    prefix = plan.status.spec_hash[:5]
    written = ModelReplicaSet.model_validate(MRS("llama-8b").obj())

    def view(name: str, phase: str = "Running", deleting: bool = False) -> ReplicaView:
        pod = PodView(name, name, 0, "server", "n1", True, phase, True, deleting, True, "", 1, 0.0)
        return ReplicaView(name, (pod,))

    def step(*views: ReplicaView):
        c = CanaryObserved(plan, written, {v.name: v for v in views}, None)
        return canary_step("llama-8b", c, {v.name for v in views})

    first = f"llama-8b-{prefix}-0"
    assert step().create == first
    assert step(view(first)).keep == first and step(view(first)).create is None
    two = step(view(first), view(f"llama-8b-{prefix}-1"))
    assert two.keep == first and two.delete == (f"llama-8b-{prefix}-1",)
    failed = step(view(first, "Failed"))
    assert failed.delete == (first,) and failed.keep is None and failed.create is None
    assert step(view(first, deleting=True)) == type(failed)()  # its pods still go: the name is not free yet
    none = CanaryObserved(decide(spec(), None, (gated("support"),)), written, {}, None)
    assert canary_step("llama-8b", none, set()) == type(failed)()


def test_status_names_at_most_the_crds_bound_of_fleets_the_held_ones_first() -> None:
    h = canary_hash(spec())
    many = tuple(gated(f"f{i:03d}", "Promoted", h) for i in range(150)) + (gated("zz-held", "Held", h),)
    plan = decide(spec(), OLD, many)
    assert plan.status is not None and len(plan.status.fleets) == 100
    assert plan.status.fleets[0].name == "zz-held" and plan.status.phase == "Held"
    plan.status.model_validate(plan.status.wire())  # within the CRD's bound


GATE = "agentfleet.io/gate"  # the AgentFleet's override annotation: one name, one meaning


def overridden(value: str | None, before: CanaryStatus | None, *fleets: FleetGate, promoted: dict = OLD) -> CanaryPlan:
    annotations = {GATE: value} if value is not None else {"other": "x"}
    return decide_canary("llama-8b", spec(), promoted, fleets, before, "later", annotations=annotations)


def running(*fleets: FleetGate) -> CanaryStatus:
    status = decide(spec(), OLD, fleets).status
    assert status is not None and status.phase == "Running"
    return status


def test_promote_on_a_running_canary_rolls_the_set_on_as_if_every_gate_promoted() -> None:
    h = canary_hash(spec())
    fleets = (gated("billing", "Running", h), gated("support"))
    plan = overridden("Promote", running(*fleets), *fleets)  # read by agentfleet.gate.override: any case
    assert plan.serving == spec() and plan.canary is None and plan.keep == canary_fields(spec())
    assert plan.status.phase == "Promoted" and plan.status.overridden == "promote"
    assert plan.status.started_at == NOW and plan.status.finished_at == "later"
    assert plan.condition[:2] == ("True", "Overridden") and "agentfleet.io/gate=promote" in plan.condition[2]
    assert [(p.type, p.reason) for p in plan.posts] == [("Normal", "CanaryPromoted")]
    assert "by the agentfleet.io/gate=promote annotation" in plan.posts[0].message
    assert plan.unannotate
    # The next pass finds the promoted fields kept: the status (and what the condition says) stays.
    after = decide(spec(), canary_fields(spec()), fleets, plan.status)
    assert after.status == plan.status and after.condition == plan.condition and not after.unannotate


def test_abort_on_a_running_canary_holds_it_for_good() -> None:
    h = canary_hash(spec())
    fleets = (gated("support", "Running", h),)
    plan = overridden("abort", running(*fleets), *fleets)
    assert plan.canary is None and plan.keep is None and plan.serving["model"] == OLD["model"]
    assert plan.status.phase == "Held" and plan.status.overridden == "abort"
    assert plan.condition[:2] == ("False", "Overridden") and "agentfleet.io/gate=abort" in plan.condition[2]
    assert [(p.type, p.reason) for p in plan.posts] == [("Warning", "CanaryHeld")]
    assert "by the agentfleet.io/gate=abort annotation" in plan.posts[0].message and plan.unannotate
    # Every gate promoting it afterwards does not bring it back: held until the spec changes.
    later = decide(spec(), OLD, (gated("support", "Promoted", h),), plan.status)
    assert later.canary is None and later.status == plan.status and later.condition == plan.condition


def test_promote_on_a_held_canary_promotes_it_and_abort_is_ignored() -> None:
    h = canary_hash(spec())
    fleets = (gated("support", "Held", h),)
    held = decide(spec(), OLD, fleets).status
    assert held is not None and held.phase == "Held" and held.overridden is None
    plan = overridden("promote", held, *fleets)
    assert plan.serving == spec() and plan.keep == canary_fields(spec()) and plan.unannotate
    assert plan.status.phase == "Promoted" and plan.status.overridden == "promote"
    assert [p.reason for p in plan.posts] == ["CanaryPromoted"]
    again = overridden("abort", held, *fleets)
    assert again.status == held and again.canary is None and again.unannotate
    assert [(p.reason, p.once) for p in again.posts] == [("CanaryOverrideIgnored", False)]


def test_an_annotation_with_no_canary_shown_running_is_removed_and_ignored() -> None:
    fleets = (gated("support"),)
    # A change this pass starts: the annotation was not written for it (status showed no canary of it).
    start = overridden("promote", None, *fleets)
    assert start.canary == spec() and start.status.phase == "Running" and start.unannotate
    assert [p.reason for p in start.posts] == ["CanaryStarted", "CanaryOverrideIgnored"]
    older = running(*fleets).model_copy(update={"hash": "an older change"})
    assert overridden("abort", older, *fleets).canary == spec()
    # Nothing on trial, a canary already promoted, no gated fleet left: nothing to decide.
    serving = overridden("abort", None, *fleets, promoted=canary_fields(spec()))
    assert serving.status.phase == "Serving" and serving.unannotate
    assert [p.reason for p in serving.posts] == ["CanaryOverrideIgnored"]
    gone = overridden("promote", running(*fleets))
    assert gone.status is None and gone.unannotate and [p.reason for p in gone.posts] == ["CanaryOverrideIgnored"]
    unrelated = overridden(None, running(*fleets), *fleets)
    assert not unrelated.unannotate and unrelated.posts == ()


def test_an_invalid_value_is_kept_and_said_and_changes_nothing_else() -> None:
    fleets = (gated("support"),)
    before = running(*fleets)
    plain = decide_canary("llama-8b", spec(), OLD, fleets, before, "later")
    plan = overridden("yes", before, *fleets)
    assert (plan.serving, plan.canary, plan.keep, plan.status) == (
        plain.serving,
        plain.canary,
        plain.keep,
        plain.status,
    )
    assert plan.condition == (
        "False",
        "InvalidOverride",
        "annotation agentfleet.io/gate must be promote or abort: fix or remove it",
    )
    assert [(p.type, p.reason) for p in plan.posts] == [("Warning", "InvalidOverride")]
    assert not plan.unannotate


def test_a_promote_whose_status_was_not_written_is_said_on_the_next_pass() -> None:
    fleets = (gated("support"),)
    # MRS-promoted holds the new fields (applied by the pass), status.canary still says Running.
    plan = overridden("promote", running(*fleets), *fleets, promoted=canary_fields(spec()))
    assert plan.serving == spec() and plan.canary is None and plan.unannotate and plan.posts == ()
    assert plan.status.phase == "Promoted" and plan.status.overridden == "promote"
    assert plan.condition[:2] == ("True", "Overridden")
