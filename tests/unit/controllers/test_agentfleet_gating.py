"""The evaluation gate as a step of the AgentFleet pass's decide (gating.py), pure: observations
built with the test builders, the plan's serving runtime and gate part checked. A small ``World``
keeps what the API server would between passes (status.gate, FLEET-promoted, the results
ConfigMap), so a gate is followed from its start to its end as the controller sees it."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.fleet_stats import FleetStats
from agentfleet_contract.gate import GateTaskResult, sign_result, sign_value

from agentfleet.controllers.agentfleet import gating, status
from agentfleet.controllers.agentfleet.deciding import decide as plain_decide
from agentfleet.controllers.agentfleet.deciding import generated_names, secret_names
from agentfleet.controllers.agentfleet.records import Acted, Observed, Plan, ProbeResult, Subject
from agentfleet.render.agentfleet import Egress
from agentfleet.render.common import Peers
from tests.builders import MRS, Fleet

NS = "team-a"
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
UP = ProbeResult(True, "", FleetStats(queue_depth=0, in_flight=0, tasks_per_hour=0, p95_seconds=None, mean_cost=None))
OLD, NEW, NEWER = "Answer from the manual.", "Answer briefly.", "Answer at length."
TASKS = [f"t{i}" for i in range(40)]


def ready_model() -> dict[str, Any]:
    return MRS("llama-8b").condition("Ready", True, "Ready", "1/1").obj()


def read(fleet: AgentFleet, obj: dict[str, Any], prompt: str | None = None) -> Observed:
    models = {"llama-8b": ready_model()}
    names = secret_names(fleet, models, None)
    return Observed(
        subject=Subject.of(obj),
        fleet=fleet,
        models=models,
        index=None,
        prompt={"data": {"prompt": prompt}} if prompt is not None else None,
        secrets=dict.fromkeys(names),
        fresh={n: f"fresh-{n}" for n in generated_names(fleet)},
        egress=Egress(api_server=("10.0.0.1",)),
        peers=Peers(),
        probed=UP,
    )


class World:
    """What the API server keeps between passes, and what the passes did to it."""

    def __init__(self) -> None:
        self.gate: dict[str, Any] | None = None
        self.promoted: dict[str, Any] | None = None
        self.results: dict[str, dict[str, str]] = {}  # results ConfigMaps by name
        self.prompt: str | None = None  # the text of the prompt ConfigMap a fleet may name
        self.conditions: list[dict[str, Any]] = []  # as write left them
        self.jobs: set[str] = set()  # the evaluation Jobs that exist
        self.keys: dict[str, bytes] = {}  # the gates' key Secrets by name

    def observe(self, fleet: Fleet, clock: datetime = T0) -> Observed:
        st: dict[str, Any] = {"conditions": self.conditions, **({"gate": self.gate} if self.gate else {})}
        obj = fleet.ns(NS).meta(generation=2, uid="u-1").status(st).obj()
        af = AgentFleet.model_validate(obj)
        obs = replace(
            read(af, obj, self.prompt),
            clock=clock,
            runtime_image="agentfleet:test",
            promoted=self.promoted,
            fresh_gate_key=f"fresh-key-{clock.timestamp()}",
        )
        gate = gating.gate_status(obs)
        if gate is not None and gate.phase == "Running" and gate.candidate:
            name = f"support-gate-{gate.candidate[:10]}"
            obs = replace(obs, results=self.results.get(name), gate_job=name in self.jobs, gate_key=self.keys.get(name))
        serving = gating.serving_fleet(af, self.promoted)
        return replace(obs, serving=read(serving, obj, self.prompt) if serving is not None else None)

    def decide(self, fleet: Fleet, clock: datetime = T0) -> Plan:
        obs = self.observe(fleet, clock)
        plan = gating.decide(obs)
        assert isinstance(plan, Plan), plan
        self.conditions = status.compose(obs, plan, Acted(), gating._at(clock)).status["conditions"]
        if plan.gate is not None:
            self.gate = plan.gate.report.gate.wire()
            if plan.gate.promoted is not None:
                self.promoted = json.loads(plan.gate.promoted["data"]["fields"])
            if plan.gate.create is not None:
                self.results.setdefault(plan.gate.create["metadata"]["name"], {})
            if plan.gate.key is not None:
                made = plan.gate.key
                self.keys.setdefault(made["metadata"]["name"], made["stringData"]["key"].encode())
            self.jobs |= {o["metadata"]["name"] for o in plan.gate.apply if o["kind"] == "Job"}
        return plan

    def job_writes(
        self, *, broken: int = 0, tasks: list[str] = TASKS, sample: bool = True, sampled: list[str] | None = None
    ) -> None:
        """The evaluation Job's writes: the sample, then both versions' results (the candidate
        answering ``broken`` of the tasks wrongly)."""
        assert self.gate is not None
        name = f"support-gate-{self.gate['candidate'][:10]}"
        data, key = self.results[name], self.keys[name]
        if sample:
            data["sample"] = json.dumps(tasks if sampled is None else sampled)
            data["sample.mac"] = sign_value(key, name, "sample", data["sample"])
        for i, t in enumerate(tasks):
            for version in ("current", "candidate"):
                ok = not (version == "candidate" and i < broken)
                r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=100)
                data[f"{version}.{t}"] = sign_result(key, name, r).model_dump_json()


def serving_text(plan: Plan) -> str:
    assert plan.runtime is not None
    cm = next(
        o for o in plan.runtime.children if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-runtime")
    )
    return cm["data"]["runtime.yaml"]


def applied(plan: Plan) -> list[tuple[str, str]]:
    assert plan.gate is not None
    return [(o["kind"], o["metadata"]["name"]) for o in plan.gate.apply]


def started(world: World) -> Plan:
    """A fleet that serves OLD behind a gate, whose spec now says NEW: the gate starts."""
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    return world.decide(Fleet("support").gate(sample=40).prompt(NEW))


def test_without_a_gate_the_plan_is_the_plain_one_and_says_nothing_of_a_gate() -> None:
    world = World()
    obs = world.observe(Fleet("support").prompt(NEW))
    plan = gating.decide(obs)
    assert plan == plain_decide(obs) and isinstance(plan, Plan) and plan.gate is None


def test_the_first_version_is_adopted_and_kept_as_the_promoted_one() -> None:
    world = World()
    plan = world.decide(Fleet("support").gate().prompt(OLD))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Serving"
    assert plan.gate.report.condition[0] == "True" and OLD in serving_text(plan)
    assert world.promoted is not None and world.promoted["systemPrompt"] == {"inline": OLD}
    assert plan.gate.apply == () and plan.gate.create is None and plan.gate.delete == ()


def test_a_change_to_answers_starts_a_gate_and_the_serving_workers_keep_the_old_answers() -> None:
    world = World()
    plan = started(world)
    assert plan.gate is not None
    assert OLD in serving_text(plan) and NEW not in serving_text(plan)
    assert plan.gate.report.gate.phase == "Running" and plan.gate.report.condition[:2] == ("Unknown", "Running")
    assert plan.gate.report.event is not None and plan.gate.report.event[1] == "GateStarted"
    job = f"support-gate-{world.gate['candidate'][:10]}"  # type: ignore[index]
    assert plan.gate.create is not None and plan.gate.create["metadata"]["name"] == job
    assert plan.gate.create["data"] == {}
    assert applied(plan) == [
        ("ConfigMap", "support-runtime-candidate"),
        ("NetworkPolicy", "support-worker-egress-candidate"),
        ("Deployment", "support-candidate"),
        ("ConfigMap", "support-runtime-baseline"),
        ("NetworkPolicy", "support-worker-egress-baseline"),
        ("Deployment", "support-baseline"),
        ("ServiceAccount", "support-gate"),
        ("Role", "support-gate"),
        ("RoleBinding", "support-gate"),
        ("NetworkPolicy", "support-gate"),
        ("Job", job),
    ]
    candidate_cm = plan.gate.apply[0]["data"]["runtime.yaml"]
    assert NEW in candidate_cm and "support~candidate" in candidate_cm
    assert world.promoted is not None and world.promoted["systemPrompt"] == {"inline": OLD}
    assert plan.gate.running and plan.gate.promoted is None


def test_a_change_to_worker_counts_applies_at_once_while_the_answers_wait() -> None:
    world = World()
    started(world)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW).workers(replicas=5))
    assert plan.runtime is not None and plan.runtime.replicas == 5 and OLD in serving_text(plan)
    assert plan.gate is not None and plan.gate.create is None  # the same gate runs on: nothing new
    assert [k for k, _ in applied(plan)] == ["ConfigMap", "NetworkPolicy", "Deployment"] * 2  # candidate, baseline


def test_a_change_of_what_a_reference_resolves_to_starts_a_gate_too() -> None:
    """The prompt's ConfigMap changes, the spec does not: the answers change all the same."""
    world = World()
    fleet = Fleet("support").gate(sample=40).spec(systemPrompt={"configMapRef": {"name": "p", "key": "prompt"}})
    world.prompt = OLD
    first = world.decide(fleet)
    assert first.gate is not None and first.gate.report.gate.phase == "Serving"
    world.prompt = NEW
    plan = world.decide(fleet)
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running" and plan.gate.create is not None
    # The serving workers keep the text they were promoted with; the candidate runs the new one.
    assert OLD in serving_text(plan) and NEW not in serving_text(plan)
    assert NEW in plan.gate.apply[0]["data"]["runtime.yaml"]


def test_until_the_job_wrote_its_sample_the_gate_runs_with_nothing_to_decide() -> None:
    world = World()
    started(world)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=30))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running"
    assert plan.gate.delete == () and plan.gate.report.event is None and OLD in serving_text(plan)


def test_a_job_deleted_by_hand_is_created_again_and_the_results_kept() -> None:
    world = World()
    plan = started(world)
    job = next(name for kind, name in applied(plan) if kind == "Job")
    world.job_writes(tasks=TASKS[:5], sampled=TASKS)  # 5 of 40 tasks done
    again = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=30))
    assert plan.gate is not None and again.gate is not None
    assert ("Job", job) not in applied(again) and again.gate.posts == ()  # level-based: it is there
    world.jobs.clear()  # kubectl delete job
    again = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=60))
    assert again.gate is not None and ("Job", job) in applied(again) and again.gate.create is None
    assert [p.reason for p in again.gate.posts] == ["GateJobRecreated"]
    assert again.gate.key is None  # the gate's key is there: not made again
    assert len(world.results[job]) == 2 + 2 * 5  # the signed sample and the results written before stay


def test_a_neutral_change_is_promoted_the_candidate_deleted_and_the_results_kept() -> None:
    world = World()
    started(world)
    candidate = world.gate["candidate"]  # type: ignore[index]
    # Results of tasks outside the sample (a superseded sample's, a key written by hand) count for nothing.
    world.job_writes(broken=20, tasks=[f"other{i}" for i in range(20)])
    world.job_writes()
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=60))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Promoted"
    assert plan.gate.report.condition[:2] == ("True", "Passed") and NEW in serving_text(plan)
    assert plan.gate.report.event is not None and plan.gate.report.event[:2] == ("Normal", "GatePromoted")
    assert world.promoted is not None and world.promoted["systemPrompt"] == {"inline": NEW}
    assert [(k, n) for _, k, n in plan.gate.delete] == [
        ("Job", f"support-gate-{candidate[:10]}"),
        ("Deployment", "support-candidate"),
        ("ConfigMap", "support-runtime-candidate"),
        ("NetworkPolicy", "support-worker-egress-candidate"),
        ("Deployment", "support-baseline"),
        ("ConfigMap", "support-runtime-baseline"),
        ("NetworkPolicy", "support-worker-egress-baseline"),
    ]
    # The next pass serves it, with no gate left to run.
    again = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=90))
    assert NEW in serving_text(again) and again.gate is not None and again.gate.delete == ()
    assert again.gate.report.gate.current == candidate


def test_a_change_that_breaks_answers_is_held_and_the_old_answers_keep_serving() -> None:
    world = World()
    started(world)
    world.job_writes(broken=20)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=60))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Held"
    assert plan.gate.report.condition[:2] == ("False", "SuccessDropped")
    assert plan.gate.report.event is not None and plan.gate.report.event[:2] == ("Warning", "GateHeld")
    assert OLD in serving_text(plan) and plan.gate.promoted is None
    assert ("apps/v1", "Deployment", "support-candidate") in plan.gate.delete
    figures = plan.gate.report.gate.figures
    assert figures is not None and figures.success is not None and figures.success.delta == -0.5
    # Held stays held, and the old answers keep serving; the condition keeps the decision's figures.
    again = world.decide(Fleet("support").gate(sample=40).prompt(NEW), T0 + timedelta(seconds=90))
    assert again.gate is not None and again.gate.report.gate.phase == "Held" and OLD in serving_text(again)
    held = next(c for c in world.conditions if c["type"] == "EvaluationGate")
    assert (held["status"], held["reason"]) == ("False", "SuccessDropped") and "-50pp" in held["message"]
    assert again.gate.delete == () and again.gate.apply == ()
    # Taken back, the change no longer waits: the fleet says it serves, not that it holds.
    back = world.decide(Fleet("support").gate(sample=40).prompt(OLD), T0 + timedelta(seconds=120))
    assert back.gate is not None and back.gate.report.gate.phase == "Serving" and OLD in serving_text(back)
    assert back.gate.report.condition[0] == "True"


def test_a_second_change_supersedes_the_running_gate() -> None:
    world = World()
    first = started(world)
    old = world.gate["candidate"]  # type: ignore[index]
    assert first.gate is not None
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEWER), T0 + timedelta(seconds=10))
    assert plan.gate is not None and world.gate is not None and world.gate["candidate"] != old
    assert plan.gate.report.gate.phase == "Running" and plan.gate.create is not None
    # The old gate's Job goes; the candidate is applied again with the newer spec in its place.
    assert plan.gate.delete == (("batch/v1", "Job", f"support-gate-{old[:10]}"),)
    assert NEWER in plan.gate.apply[0]["data"]["runtime.yaml"] and OLD in serving_text(plan)
    assert plan.gate.report.event is not None and "superseded" in plan.gate.report.event[2]


def test_going_back_to_what_serves_stops_the_gate_and_deletes_its_candidate() -> None:
    world = World()
    started(world)
    old = world.gate["candidate"]  # type: ignore[index]
    plan = world.decide(Fleet("support").gate(sample=40).prompt(OLD), T0 + timedelta(seconds=10))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Serving"
    assert ("batch/v1", "Job", f"support-gate-{old[:10]}") in plan.gate.delete
    assert ("apps/v1", "Deployment", "support-candidate") in plan.gate.delete


def test_the_promote_annotation_decides_the_running_gate_and_is_removed() -> None:
    world = World()
    started(world)
    fleet = Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "promote")
    plan = world.decide(fleet, T0 + timedelta(seconds=10))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Promoted" and plan.gate.unannotate
    assert plan.gate.report.condition[:2] == ("True", "Overridden") and NEW in serving_text(plan)
    assert plan.gate.report.event is not None and "agentfleet.io/gate=promote" in plan.gate.report.event[2]
    assert ("apps/v1", "Deployment", "support-candidate") in plan.gate.delete


def test_the_abort_annotation_holds_and_a_held_change_can_still_be_promoted() -> None:
    world = World()
    started(world)
    abort = Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "abort")
    plan = world.decide(abort, T0 + timedelta(seconds=10))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Aborted" and OLD in serving_text(plan)
    promote = Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "promote")
    plan = world.decide(promote, T0 + timedelta(seconds=20))
    assert plan.gate is not None and plan.gate.report.gate.phase == "Promoted" and NEW in serving_text(plan)


def test_a_bad_override_value_is_refused_with_the_fix_and_the_gate_runs_on() -> None:
    world = World()
    started(world)
    fleet = Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "yes")
    plan = world.decide(fleet, T0 + timedelta(seconds=10))
    assert plan.gate is not None and plan.gate.verdict is not None and not plan.gate.unannotate
    assert plan.gate.verdict.reason == "InvalidOverride" and "must be promote or abort" in plan.gate.verdict.message
    assert plan.gate.report.gate.phase == "Running" and OLD in serving_text(plan)
    report = status.compose(world.observe(fleet), plan, Acted(), "2026-11-26T12:00:10Z")
    cond = next(c for c in report.status["conditions"] if c["type"] == "EvaluationGate")
    assert (cond["status"], cond["reason"]) == ("False", "InvalidOverride")
    assert ("Warning", "InvalidOverride") in {(p.type, p.reason) for p in report.posts}


def test_an_override_with_no_gate_running_is_removed_and_said_so() -> None:
    world = World()
    world.decide(Fleet("support").gate().prompt(OLD))
    plan = world.decide(Fleet("support").gate().prompt(OLD).annotation("agentfleet.io/gate", "abort"))
    assert plan.gate is not None and plan.gate.unannotate
    assert [p.reason for p in plan.gate.posts] == ["GateOverrideIgnored"]
    # A value that means nothing is never removed: the condition names the fix, the person makes it.
    plan = world.decide(Fleet("support").gate().prompt(OLD).annotation("agentfleet.io/gate", "yes"))
    assert plan.gate is not None and not plan.gate.unannotate and plan.gate.verdict is not None


def test_the_budget_ends_a_gate_whose_job_never_sampled() -> None:
    world = World()
    started(world)
    late = T0 + timedelta(seconds=3601)
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW), late)
    assert plan.gate is not None and plan.gate.report.gate.phase == "Held"
    assert plan.gate.report.condition[1] == "BudgetExhausted" and OLD in serving_text(plan)


def test_status_carries_the_gate_and_polls_while_it_runs() -> None:
    world = World()
    plan = started(world)
    report = status.compose(world.observe(Fleet("support").gate().prompt(NEW)), plan, Acted(), "2026-11-26T12:00:00Z")
    assert report.status["gate"]["phase"] == "Running" and report.again == 5.0
    # A transition, not a problem: the next gate's identical Event is posted too, not held back
    # for the ten minutes a persisting problem's repeat waits.
    assert ("Normal", "GateStarted", False) in {(p.type, p.reason, p.once) for p in report.posts}


# --- the pass: act applies, creates, deletes and unannotates what the gate's part says ----------


class Api:
    """An in-memory API: objects by (kind, name); what the pass created, applied and deleted."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {(o["kind"], o["metadata"]["name"]): o for o in objects}
        self.applied: list[tuple[str, str]] = []
        self.created: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.status: dict[str, Any] = {}
        self.annotations: dict[str, str | None] = {}
        self.events: list[tuple[str, str, str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.objects[(kind, name)])) if (kind, name) in self.objects else None

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        key = (obj["kind"], obj["metadata"]["name"])
        self.applied.append(key)
        self.objects[key] = json.loads(json.dumps(obj))
        return obj

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import ConflictError

        key = (obj["kind"], obj["metadata"]["name"])
        if key in self.objects:
            raise ConflictError(type("E", (), {"status": 409, "reason": "AlreadyExists", "body": "", "headers": {}})())
        self.created.append(key)
        self.objects[key] = stored = json.loads(json.dumps(obj))
        if "stringData" in stored:  # as the API server stores a Secret
            import base64

            data = {k: base64.b64encode(v.encode()).decode() for k, v in stored.pop("stringData").items()}
            stored["data"] = {**stored.get("data", {}), **data}
        return obj

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool:
        self.deleted.append((kind, name))
        return self.objects.pop((kind, name), None) is not None

    def merge_patch_metadata(
        self, api_version: str, kind: str, name: str, namespace: str, labels: Any, annotations: Any
    ) -> None:
        self.annotations.update(annotations)

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.status = obj["status"]
        return obj

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def run_pass(api: Api, fleet: Fleet) -> float | None:
    from agentfleet.controllers.agentfleet import AgentFleetPass
    from agentfleet.reconcile.events import EventRecorder, post_with_kube

    api.events = []
    obj = fleet.ns(NS).meta(generation=2, uid="u-1").status(api.status).obj()
    return AgentFleetPass(api, EventRecorder(post_with_kube(api)), obj, probe=lambda *_: (True, "", None)).run()


@pytest.fixture(autouse=True)
def api_server_known(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator knows the API server's addresses (the chart's workerEgress.apiServerCIDRs)."""
    from agentfleet.controllers.settings import CONFIG

    monkeypatch.setattr(CONFIG, "api_server_cidrs", ("10.0.0.1",))


def test_a_pass_starts_resumes_and_aborts_a_gate_through_the_api() -> None:
    api = Api(ready_model())
    run_pass(api, Fleet("support").gate(sample=40).prompt(OLD))
    assert api.status["gate"]["phase"] == "Serving" and ("ConfigMap", "support-promoted") in api.applied
    assert OLD in api.objects[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]

    api.applied.clear()
    api.created.clear()
    again = run_pass(api, Fleet("support").gate(sample=40).prompt(NEW))
    gate = api.status["gate"]
    results = f"support-gate-{gate['candidate'][:10]}"
    assert gate["phase"] == "Running" and again == 5.0
    assert api.created == [("ConfigMap", results), ("Secret", results)] and ("Job", results) in api.applied
    assert ("Deployment", "support-candidate") in api.applied
    assert OLD in api.objects[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]
    assert ("Normal", "GateStarted") in {e[:2] for e in api.events}

    # The operator restarts mid-gate: a pass with nothing but the API's state runs the same gate on,
    # starting nothing again (the results so far are the Job's to resume from).
    api.applied.clear()
    run_pass(api, Fleet("support").gate(sample=40).prompt(NEW))
    assert (
        api.status["gate"] == gate
        and ("Job", results) not in api.applied
        and api.created == [("ConfigMap", results), ("Secret", results)]
    )

    world = World()
    world.gate, world.results = gate, {results: {}}
    world.keys[results] = base64.b64decode(api.objects[("Secret", results)]["data"]["key"])
    world.job_writes()
    api.objects[("ConfigMap", results)]["data"] = world.results[results]
    run_pass(api, Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "abort"))
    # abort wins over the results: the person decided
    assert api.status["gate"]["phase"] == "Aborted" and api.annotations == {"agentfleet.io/gate": None}
    assert {("Job", results), ("Deployment", "support-candidate")} <= set(api.deleted)
    assert ("ConfigMap", results) not in api.deleted and ("ConfigMap", results) in api.objects
    assert OLD in api.objects[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]
    cond = next(c for c in api.status["conditions"] if c["type"] == "EvaluationGate")
    assert (cond["status"], cond["reason"]) == ("False", "Overridden")
    assert ("Warning", "GateAborted") in {e[:2] for e in api.events}


def test_the_abort_annotation_goes_only_once_status_says_the_gate_was_aborted() -> None:
    """An operator that dies between its actions and its status write keeps the annotation: the
    next pass aborts the gate again instead of running it on."""

    class DiesBeforeStatus(Api):
        def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
            raise RuntimeError("operator killed before its status write")

    api = Api(ready_model())
    run_pass(api, Fleet("support").gate(sample=40).prompt(OLD))
    run_pass(api, Fleet("support").gate(sample=40).prompt(NEW))
    assert api.status["gate"]["phase"] == "Running"
    abort = Fleet("support").gate(sample=40).prompt(NEW).annotation("agentfleet.io/gate", "abort")
    dying = DiesBeforeStatus(ready_model())
    dying.objects, dying.status = api.objects, api.status
    with pytest.raises(RuntimeError):
        run_pass(dying, abort)
    assert dying.annotations == {} and dying.status["gate"]["phase"] == "Running"
    api.annotations = {}
    run_pass(api, abort)
    assert api.status["gate"]["phase"] == "Aborted" and api.annotations == {"agentfleet.io/gate": None}


def _names_entered(decide_once: Any) -> tuple[list[str], int]:
    """Calls from the gate's decide modules (gating.py, render/gate.py) into the fleet's naming
    functions (render/agentfleet_names.py) while ``decide_once`` runs, each as caller>callee, left
    out those made while the gate's names are made (under render.gate.gate_names); and how many
    times gate_names ran."""
    import sys

    from agentfleet.render import agentfleet_names
    from agentfleet.render import gate as rg

    names_file, gate_files = agentfleet_names.__file__, {rg.__file__, gating.__file__}
    not_names = {"_container_security", "_pod_security", "redis_password_ref"}  # security and a Secret ref
    outside: list[str] = []
    made = 0

    def under_gate_names(frame: Any) -> bool:
        while frame is not None:
            if frame.f_code.co_filename == rg.__file__ and frame.f_code.co_name == "gate_names":
                return True
            frame = frame.f_back
        return False

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal made
        if event != "call":
            return
        code, caller = frame.f_code, frame.f_back
        if code.co_filename == rg.__file__ and code.co_name == "gate_names":
            made += 1
        elif code.co_filename == names_file and code.co_name not in not_names and caller is not None:
            if caller.f_code.co_filename in gate_files and not under_gate_names(caller):
                outside.append(f"{caller.f_code.co_name}>{code.co_name}")

    sys.setprofile(profile)
    try:
        decide_once()
    finally:
        sys.setprofile(None)
    return outside, made


def test_the_gates_decide_makes_its_names_once_and_reads_them_from_there() -> None:
    """Issue 77: the gate's decide re-entered render/agentfleet_names.py at every name it rendered
    (16 calls of the naming functions from render/gate.py alone, 22 with the metadata's)."""
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    outside, made = _names_entered(lambda: world.decide(Fleet("support").gate(sample=40).prompt(NEW)))
    assert world.gate is not None and world.gate["phase"] == "Running"  # it started: every renderer ran
    assert outside == [] and made == 1, (outside, made)
