"""A gate nobody can fool (issue 76), as the controller decides it, pure: results that do not verify
under the gate's key are not counted and are said (finding 3), a results ConfigMap that is not the
fleet's own is neither read nor fed (finding 3), the promoted version's rule judges a change that
rewrites it (finding 5), and a gate whose Job's egress could not be limited to the API server does
not start (residual 7)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.gate import GateTaskResult

from agentfleet.controllers.agentfleet import gating
from agentfleet.controllers.agentfleet.records import Plan
from agentfleet.gate import evaluation_hash
from agentfleet.render.agentfleet import Egress
from tests.builders import Fleet
from tests.unit.controllers.test_agentfleet_gating import (
    NEW,
    OLD,
    T0,
    TASKS,
    Api,
    World,
    api_server_known,  # noqa: F401 (autouse: the operator knows the API server's addresses)
    applied,
    ready_model,
    run_pass,
    serving_text,
)


def results_of(world: World) -> dict[str, str]:
    assert world.gate is not None
    return world.results[f"support-gate-{world.gate['candidate'][:10]}"]


def forge(data: dict[str, str], tasks: list[str]) -> None:
    """What anyone who may write ConfigMaps in the namespace can write: the sample and every
    result, the candidate flawless and the current version failing, without the gate's key."""
    data["sample"] = json.dumps(tasks)
    for t in tasks:
        for version, ok in (("current", False), ("candidate", True)):
            r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=1)
            data[f"{version}.{t}"] = r.model_dump_json(by_alias=True)


def test_forged_keys_in_the_real_results_are_not_counted_and_are_said() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    world.decide(Fleet("support").gate(sample=40).prompt(NEW))
    forge(results_of(world), TASKS)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=30))
    assert plan.gate is not None
    # Nothing verifies, so nothing is decided: no promotion, the serving version keeps serving.
    assert plan.gate.report.gate.phase == "Running" and OLD in serving_text(plan)
    assert plan.gate.report.gate.rejected_results == 1 + 2 * len(TASKS)
    warnings = [p for p in plan.gate.posts if p.reason == "GateResultsRejected"]
    assert warnings and warnings[0].type == "Warning" and "do not verify under the gate's key" in warnings[0].message
    # The Job then writes the real answers (signed) over the forged ones: half the candidate's broken.
    world.job_writes(broken=20)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=60))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Held"
    assert plan.gate.report.condition[1] == "SuccessDropped" and OLD in serving_text(plan)


def test_a_results_configmap_that_is_not_the_fleets_own_is_neither_read_nor_fed() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    started = world.decide(Fleet("support").gate(sample=40).prompt(NEW))
    job = next(name for kind, name in applied(started) if kind == "Job")
    obs = world.observe(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=30))
    plan = gating.decide(replace(obs, gate_foreign=f"ConfigMap {job}", results=None, gate_key=None))
    assert isinstance(plan, Plan) and plan.gate is not None
    assert plan.gate.verdict is not None and plan.gate.verdict.reason == "ResultsNotOwned"
    assert f"delete ConfigMap {job}" in plan.gate.verdict.message
    assert ("batch/v1", "Job", job) in plan.gate.delete  # its Job would write there
    assert ("Job", job) not in applied(plan) and plan.gate.create is None and plan.gate.key is None
    assert [p.reason for p in plan.gate.posts] == ["ResultsNotOwned"]


def test_a_precreated_results_configmap_is_never_adopted_by_the_pass() -> None:
    """Through the pass (observe reads ownerReferences, act starts no Job into someone else's
    ConfigMap): the name is computable from the spec, so it is made before the gate starts."""
    api = Api(ready_model())
    run_pass(api, Fleet("support").gate(sample=40).prompt(OLD))
    # Learn the candidate's name the way an attacker would: from a dry pass on a copy of the API.
    probe = Api(ready_model())
    probe.objects, probe.status = json.loads(json.dumps(list(api.objects.items()))), dict(api.status)
    probe.objects = {tuple(k): v for k, v in probe.objects}
    run_pass(probe, Fleet("support").gate(sample=40).prompt(NEW))
    name = f"support-gate-{probe.status['gate']['candidate'][:10]}"
    forged: dict[str, str] = {}
    forge(forged, TASKS)
    api.objects[("ConfigMap", name)] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": forged,
    }
    run_pass(api, Fleet("support").gate(sample=40).prompt(NEW))
    assert api.status["gate"]["phase"] == "Running"
    assert ("Job", name) not in api.applied  # not started to write into someone else's ConfigMap
    run_pass(api, Fleet("support").gate(sample=40).prompt(NEW))
    gate_cond = next(c for c in api.status["conditions"] if c["type"] == "EvaluationGate")
    assert (gate_cond["status"], gate_cond["reason"]) == ("False", "ResultsNotOwned")
    assert ("Warning", "ResultsNotOwned") in {e[:2] for e in api.events}
    assert (
        api.status["gate"]["phase"] == "Running"
        and OLD in api.objects[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]
    )


def test_a_change_that_loosens_its_own_rule_is_judged_by_the_promoted_rule() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    # One apply: a prompt that breaks half the answers, and a rule that would let anything through.
    loose = Fleet("support").gate(sample=4, rule={"maxSuccessDropPoints": 100, "maxGroundedDropPoints": None})
    plan = world.decide(loose.prompt(NEW))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running"
    judge = plan.gate.report.gate.judge
    promoted = AgentFleet.model_validate(Fleet("support").gate(sample=40).ns("team-a").obj()).spec.evaluation
    assert judge is not None and judge.evaluation == evaluation_hash(promoted)
    job = next(o for o in plan.gate.apply if o["kind"] == "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--sample") + 1] == "40"  # the promoted sample, not the change's 4
    assert "EvaluationChanged" in [p.reason for p in plan.gate.posts]
    world.job_writes(broken=20)
    plan = world.decide(loose.prompt(NEW), T0 + timedelta(seconds=30))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Held"
    assert plan.gate.report.condition[1] == "SuccessDropped" and OLD in serving_text(plan)


def test_a_change_to_the_evaluation_alone_is_gated_and_takes_effect_when_promoted() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    plan = world.decide(Fleet("support").gate(sample=10).prompt(OLD))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running"
    assert world.promoted is not None and world.promoted["rollout"]["evaluation"]["sample"] == 40
    world.job_writes()
    plan = world.decide(Fleet("support").gate(sample=10).prompt(OLD), T0 + timedelta(seconds=30))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Promoted"
    assert world.promoted["rollout"]["evaluation"]["sample"] == 10


def test_removing_the_gate_with_a_change_is_judged_by_the_gate_it_removes() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    plan = world.decide(Fleet("support").prompt(NEW))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running" and OLD in serving_text(plan)


def test_a_gate_does_not_start_without_the_api_servers_addresses() -> None:
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    obs = world.observe(Fleet("support").gate(sample=40).prompt(NEW))
    plan = gating.decide(replace(obs, egress=Egress()))
    assert isinstance(plan, Plan) and plan.gate is not None
    assert plan.gate.verdict is not None and plan.gate.verdict.reason == "ApiServerUnknown"
    assert "workerEgress.apiServerCIDRs" in plan.gate.verdict.message
    assert plan.gate.apply == () and plan.gate.create is None and OLD in serving_text(plan)
    # Without an egress policy at all nothing is narrowed, so nothing is widened either: it starts.
    started = gating.decide(replace(obs, egress=None))
    assert isinstance(started, Plan) and started.gate is not None
    assert started.gate.report.gate.phase == "Running"


def test_a_running_gate_without_its_key_gets_one_and_its_job_comes_back_with_it() -> None:
    """A gate started before keys existed (an upgrade), or whose Secret was deleted: its Job could
    sign nothing, so its results would never count; it is given a key and its Job goes, to come
    back (the next pass) with the key in its environment."""
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    started = world.decide(Fleet("support").gate(sample=40).prompt(NEW))
    job = next(name for kind, name in applied(started) if kind == "Job")
    world.keys.clear()
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=30))
    assert plan.gate is not None and plan.gate.key is not None and plan.gate.key["metadata"]["name"] == job
    assert ("batch/v1", "Job", job) in plan.gate.delete
    world.jobs.discard(job)
    again = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=35))
    assert again.gate is not None and ("Job", job) in applied(again) and again.gate.key is None
