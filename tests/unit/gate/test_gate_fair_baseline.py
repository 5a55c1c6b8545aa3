"""A fair baseline (issue 76, finding 2), the pure parts: the current version runs the gate's tasks
on private workers of its own (FLEET~current, rendered from the serving version like the
candidate), and a task that never reached a model is asked again, then reported as not run, never
scored as a failure of either side."""

from __future__ import annotations

import asyncio

import yaml
from agentfleet_contract.agentfleet import GateBudget, GateRule
from agentfleet_contract.gate import GateTaskResult
from agentfleet_eval.scoring import Outcome
from agentfleet_eval.taskset import EvalTask, Fact

from agentfleet.gate import decide
from agentfleet_runtime.gate.tasks import Side
from tests.builders import Fleet
from tests.unit.controllers.test_agentfleet_gating import NEW, OLD, World, api_server_known  # noqa: F401

TASKS = [f"t{i}" for i in range(12)]


def test_a_current_version_that_never_reached_a_model_is_no_reason_to_promote():
    """The review's run: tenants' load kept 7 of 12 of the current version's tasks from a model;
    the candidate answers 6 of 12 wrongly. Counted as failures, those 7 made the candidate look no
    worse; left out, the 5 tasks both answered show the drop."""
    current = [
        GateTaskResult(task_id=t, version="current", success=False, not_run=True)
        if i < 7
        else GateTaskResult(task_id=t, version="current", success=True, tokens=100)
        for i, t in enumerate(TASKS)
    ]
    candidate = [GateTaskResult(task_id=t, version="candidate", success=i < 6, tokens=100) for i, t in enumerate(TASKS)]
    d = decide(GateRule(max_cost_ratio=None), GateBudget(), current, candidate)
    assert d.figures.not_run == 7 and d.figures.tasks == 5
    assert not d.promote and d.reason == "SuccessDropped"


def test_when_no_task_reached_a_model_on_both_sides_nothing_is_decided_but_no_tasks():
    current = [GateTaskResult(task_id=t, version="current", success=False, not_run=True) for t in TASKS]
    candidate = [GateTaskResult(task_id=t, version="candidate", success=True, tokens=1) for t in TASKS]
    d = decide(GateRule(), GateBudget(), current, candidate)
    assert not d.promote and d.reason == "NoTasks" and d.figures.not_run == len(TASKS)


class _Scripted(Side):
    """A Side whose tasks end as scripted: each submission's outcome in turn."""

    def __init__(self, outcomes: list[Outcome]) -> None:
        self.version, self.outcomes, self.asked = "current", outcomes, []

    async def submit(self, run, task):
        self.asked.append(run)
        return f"task-{len(self.asked)}"

    async def ended(self, task_id, stop):
        return True

    async def outcome(self, task_id):
        return self.outcomes[len(self.asked) - 1]


TASK = EvalTask(id="t0", question="What is the default of checkpoint_timeout?", kind="default", part="dev")
LOST = Outcome(status="failed", reason="timeout", error="the task's time budget ran out")
ANSWERED = Outcome(status="done", answer="5min", model_calls=1, tokens=40)


def test_a_task_that_never_reached_a_model_is_asked_once_more():
    side = _Scripted([LOST, ANSWERED])
    got = asyncio.run(side.run("f-gate-1", TASK, asyncio.Event()))
    assert got is not None and not got.not_run and got.tokens == 40
    assert side.asked == ["f-gate-1", "f-gate-1#again"]  # its own idempotency key, not the first one's


def test_twice_so_it_is_reported_as_not_run_not_as_a_failure():
    side = _Scripted([LOST, LOST])
    got = asyncio.run(side.run("f-gate-1", TASK, asyncio.Event()))
    assert got is not None and got.not_run and not got.success


def test_an_answer_made_without_a_model_is_the_versions_answer_not_a_task_not_run():
    """The real node's breaking gate (2026-11-29): the candidate searched an empty index and its
    Cascade declined each task with no model call ("The documents I searched do not mention ...",
    status done); 5 of its 8 tasks were reported not run and left out, so its wrong answers
    never counted against it."""
    declined = Outcome(status="done", reason="final_answer", answer="The documents I searched do not mention it.")
    side = _Scripted([declined, declined])
    task = EvalTask(id="t1", question=TASK.question, kind="default", part="dev", facts=(Fact(texts=("5min",)),))
    got = asyncio.run(side.run("f-gate-1", task, asyncio.Event()))
    assert got is not None and not got.not_run and not got.success and side.asked == ["f-gate-1"]


def test_a_task_that_reached_a_model_and_failed_is_a_failure():
    failed = Outcome(status="failed", reason="error", model_calls=2, tokens=300)
    side = _Scripted([failed])
    got = asyncio.run(side.run("f-gate-1", TASK, asyncio.Event()))
    assert got is not None and not got.not_run and not got.success and side.asked == ["f-gate-1"]


def test_the_current_version_runs_on_private_workers_of_its_own():
    world = World()
    world.decide(Fleet("support").gate(sample=40).prompt(OLD))
    plan = world.decide(Fleet("support").gate(sample=40).prompt(NEW))
    assert plan.gate is not None
    objs = {(o["kind"], o["metadata"]["name"]): o for o in plan.gate.apply}
    doc = yaml.safe_load(objs[("ConfigMap", "support-runtime-baseline")]["data"]["runtime.yaml"])
    assert doc["fleet"] == "support~current" and OLD in doc["systemPrompt"]  # the serving version
    baseline, candidate = objs[("Deployment", "support-baseline")], objs[("Deployment", "support-candidate")]
    assert baseline["spec"]["replicas"] == candidate["spec"]["replicas"] == 1
    labels = baseline["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "baseline"  # no serving selector counts it
    job = objs[("Job", next(n for k, n in objs if k == "Job"))]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["current"]["configMap"]["name"] == "support-runtime-baseline"
