"""The AgentFleet's status as this controller writes it, composed (pure) from the plan and what act
read back: its fields, its condition types (Ready summarising the others), the Events that go with
them and when the next pass is due. The autoscaler owns desiredWorkers while
spec.workers.autoscaling, and its own condition types, under another field manager."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentfleet_contract.conditions import READY, get_condition, is_true, set_condition

from agentfleet.controllers.agentfleet.records import (
    BUSY_RESYNC_SECONDS,
    EVALUATION_GATE,
    INDEX_READY,
    MODEL_READY,
    OWN_FIELDS,
    REDIS_READY,
    RUNTIME_READY,
    STATS_RESYNC_SECONDS,
    Acted,
    Observed,
    Plan,
    Post,
    Subject,
    Verdict,
)
from agentfleet.render import agentfleet as render
from agentfleet.render.budgets import SpecProblem

# The condition Ready waits on first, and the reason it then says.
WAITING_FOR = (
    (MODEL_READY, "WaitingForModel"),
    (INDEX_READY, "WaitingForIndex"),
    (REDIS_READY, "WaitingForRedis"),
    (RUNTIME_READY, "WaitingForRuntime"),
)


@dataclass(frozen=True)
class Report:
    """What write sends: this controller's part of status, the Events, the next pass."""

    status: dict[str, Any]
    own: tuple[str, ...]  # the fields it owns (what it leaves out of status is released)
    posts: tuple[Post, ...]
    again: float


def after_act(plan: Plan, acted: Acted) -> tuple[dict[str, Any], list[Verdict], bool]:
    """The status fields and conditions of what act applied and read back; busy: something starts."""
    fields: dict[str, Any] = {"selector": plan.selector, "taskApiEndpoint": plan.endpoint}
    if plan.a2a_endpoint is not None:
        fields["a2aEndpoint"] = plan.a2a_endpoint
    if plan.redis_identity is not None:
        fields["redis"] = plan.redis_identity.model_dump(by_alias=True, exclude_none=True)
    verdicts: list[Verdict] = []
    busy = False
    if plan.redis is not None:
        ok, why = render.statefulset_ready(dict(acted.redis_set) if acted.redis_set is not None else None)
        sts = plan.redis.statefulset
        busy = busy or not ok
        verdicts.append(
            Verdict(REDIS_READY, True, "RedisReady", f"StatefulSet {sts} {why}")
            if ok
            else Verdict(REDIS_READY, False, "RedisStarting", f"StatefulSet {sts}: {why}")
        )
    if plan.runtime is not None:
        if plan.runtime.desired_workers is not None:
            fields["desiredWorkers"] = plan.runtime.desired_workers
        wst = (acted.worker or {}).get("status") or {}
        fields["workers"] = int(wst.get("replicas") or 0)
        fields["readyWorkers"] = int(wst.get("readyReplicas") or 0)
        w_ok, w_why = render.deployment_available(dict(acted.worker) if acted.worker is not None else None)
        a_ok, a_why = render.deployment_available(dict(acted.api) if acted.api is not None else None)
        msg = f"workers {w_why}; task API {a_why}"
        busy = busy or not (w_ok and a_ok)
        verdicts.append(
            Verdict(RUNTIME_READY, True, "RuntimeAvailable", msg)
            if w_ok and a_ok
            else Verdict(RUNTIME_READY, False, "RuntimeProgressing", msg)
        )
    if (stats := plan.stats) is not None:
        fields["queueDepth"] = stats.queue_depth
        fields["inFlightTasks"] = stats.in_flight
        fields["awaitingApproval"] = stats.awaiting_approval
        fields["tasksPerHour"] = stats.tasks_per_hour
        if stats.p95_seconds is not None:
            fields["taskP95Seconds"] = stats.p95_seconds
        if stats.mean_cost is not None:
            fields["costPerTask"] = render.format_cost(stats.mean_cost)
    return fields, verdicts, busy


def summary(conditions: list[dict[str, Any]], problems: tuple[SpecProblem, ...], fields: dict[str, Any]) -> Verdict:
    """Ready: the first problem (and how many more), else the first condition not True, else ready."""
    if problems:
        p, rest = problems[0], problems[1:]
        more = f" (and {len(rest)} more: {', '.join(q.reason for q in rest)})" if rest else ""
        return Verdict(READY, False, p.reason, p.message + more)
    for type_, reason in WAITING_FOR:
        c = get_condition(conditions, type_)
        if c is not None and c["status"] != "True":
            return Verdict(READY, False, reason, c["message"])
    return Verdict(
        READY,
        True,
        "Ready",
        f"{fields.get('readyWorkers', 0)} worker(s) ready; tasks at {fields.get('taskApiEndpoint')}",
    )


def with_verdicts(
    conds: list[dict[str, Any]], verdicts: list[Verdict], generation: int, at: str
) -> list[dict[str, Any]]:
    """``conds`` with ``verdicts`` set (a condition's time moves only when its status flips)."""
    for v in verdicts:
        conds = set_condition(conds, v.type, v.ok, v.reason, v.message[:4096], generation, at)
    return conds


def gate_part(plan: Plan) -> tuple[dict[str, Any], list[Verdict], list[Post]]:
    """status.gate, the EvaluationGate condition and the gate's Events (gating.py decided them)."""
    g = plan.gate
    if g is None:
        return {}, [], []
    status, reason, message = g.report.condition
    posts = [Post(*g.report.event, once=False)] if g.report.event is not None else []
    verdict = g.verdict or Verdict(EVALUATION_GATE, status, reason, message)
    return {"gate": g.report.gate.wire()}, [verdict], [*posts, *g.posts]


def compose(obs: Observed, plan: Plan, acted: Acted, at: str) -> Report:
    fields, late, busy = after_act(plan, acted)
    gate_fields, gate_verdicts, gate_posts = gate_part(plan)
    fields.update(gate_fields)
    gen = obs.subject.generation
    conds = with_verdicts(obs.subject.own_conditions, [*plan.verdicts, *late, *gate_verdicts], gen, at)
    was = is_true(conds, READY)
    ready = summary(conds, plan.problems, fields)
    conds = with_verdicts(conds, [ready], gen, at)
    posts = [*plan.posts, *(Post("Normal", "SecretGenerated", f"generated Secret {n}") for n in acted.created)]
    posts += gate_posts
    if ready.ok and not was:
        posts.append(Post("Normal", "Ready", "the fleet takes and runs tasks"))
    status = {**fields, "observedGeneration": gen, "conditions": conds}
    own = (*OWN_FIELDS, "desiredWorkers") if "desiredWorkers" in status else OWN_FIELDS
    again = STATS_RESYNC_SECONDS
    if plan.problems or busy or not ready.ok:
        again = BUSY_RESYNC_SECONDS * (3 if plan.problems else 1)
    if plan.gate is not None and plan.gate.running:
        again = BUSY_RESYNC_SECONDS  # the Job's results are read by polling (no ConfigMap watch)
    return Report(status, own, tuple(posts), again)


def refusal(s: Subject, reason: str, message: str, at: str) -> dict[str, Any]:
    """The status of a refused fleet: Ready False with the refusal, nothing else."""
    conds = with_verdicts(s.own_conditions, [Verdict(READY, False, reason, message)], s.generation, at)
    out: dict[str, Any] = {"observedGeneration": s.generation, "conditions": conds}
    if s.status.get("gate"):
        out["gate"] = s.status["gate"]  # a refused spec changes nothing: the gate's record stays
    return out
