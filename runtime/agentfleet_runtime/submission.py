"""Task submission and presentation, pure: validate a request, build the task, render a task."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from agentfleet_runtime.budget import effective_limits
from agentfleet_runtime.citations import parse_citations
from agentfleet_runtime.tools.retrieval import parse_passages
from agentfleet_runtime.types import Limits, Status, Step, TaskRecord

MAX_KEY_CHARS = 256
MAX_SESSION_CHARS = 256
MAX_METADATA_CHARS = 16_384


class SubmitError(ValueError):
    """A submission the API refuses with 400; the message tells the caller what to fix."""


@dataclass(frozen=True, slots=True)
class Submission:
    goal: str
    session: str
    limits: Limits
    idempotency_key: str | None
    request_hash: str
    metadata: dict[str, Any]


def parse_submission(body: Any, header_key: str | None, max_goal_chars: int, fleet_limits: Limits) -> Submission:
    if not isinstance(body, dict):
        raise SubmitError('body must be a JSON object such as {"goal": "..."}')
    unknown = sorted(set(body) - {"goal", "session", "tenant", "budgets", "idempotencyKey", "metadata"})
    if unknown:
        raise SubmitError(f"unknown field(s): {', '.join(unknown)}")
    goal = body.get("goal")
    if not isinstance(goal, str) or not goal.strip():
        raise SubmitError("goal is required: a non-empty string")
    if len(goal) > max_goal_chars:
        raise SubmitError(f"goal has {len(goal)} characters; the limit is {max_goal_chars}")
    session = body.get("session") or ""
    if not isinstance(session, str) or len(session) > MAX_SESSION_CHARS:
        raise SubmitError(f"session must be a string of at most {MAX_SESSION_CHARS} characters")
    key = header_key or body.get("idempotencyKey")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS):
        raise SubmitError(f"Idempotency-Key must be a non-empty string of at most {MAX_KEY_CHARS} characters")
    budgets = body.get("budgets")
    if budgets is not None and not isinstance(budgets, dict):
        raise SubmitError('budgets must be an object, e.g. {"maxSteps": 10}')
    try:
        limits = effective_limits(fleet_limits, budgets)
    except ValueError as e:
        raise SubmitError(str(e)) from e
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict) or len(json.dumps(metadata)) > MAX_METADATA_CHARS:
        raise SubmitError(f"metadata must be an object of at most {MAX_METADATA_CHARS} characters as JSON")
    tenant = body.get("tenant")
    if tenant is not None:
        if not isinstance(tenant, str) or not tenant or len(tenant) > MAX_SESSION_CHARS:
            raise SubmitError(f"tenant must be a non-empty string of at most {MAX_SESSION_CHARS} characters")
        metadata = {**metadata, "tenant": tenant}
    canonical = json.dumps({"goal": goal, "session": session, "budgets": budgets or {}, "metadata": metadata}, sort_keys=True)  # tenant is in metadata
    return Submission(goal, session, limits, key, hashlib.sha256(canonical.encode()).hexdigest(), metadata)


def new_task(task_id: str, sub: Submission, now: float) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        goal=sub.goal,
        status=Status.QUEUED,
        limits=sub.limits,
        created_at=now,
        deadline=now + sub.limits.timeout_seconds,
        root=task_id,
        session=sub.session,
        metadata=sub.metadata,
    )


def retrieved_passages(steps: list[Step], retrieval_tools: frozenset[str]) -> list[dict[str, Any]]:
    """Every passage the task's own searches returned, in order: what its citations may name."""
    out = []
    for s in steps:
        for i, obs in enumerate(s.observations or ()):
            if obs.ok and obs.name in retrieval_tools:
                out += [{"step": s.n, "call": i, **p} for p in parse_passages(obs.output)]
    return out


def task_view(
    rec: TaskRecord,
    raw: dict[str, str],
    steps: list[Step] | None,
    step_count: int,
    children: list[str],
    currency: str,
    retrieval_tools: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The API's JSON for a task (camelCase). With its steps, it lists the passages the task
    retrieved (``retrieved``: step, call, rank, source, score, text) beside the sources its answer
    cites (``citations``), so a client can tell a grounded citation from one that names nothing
    the task read. A sub-agent's searches are on the sub-agent's own task (``children``)."""
    end = rec.finished_at or None
    out: dict[str, Any] = {
        "id": rec.id,
        "goal": rec.goal,
        "status": rec.status.value,
        "reason": rec.reason or None,
        "answer": rec.answer if rec.status.terminal else None,
        "error": rec.error or None,
        "session": rec.session or None,
        "parent": rec.parent or None,
        "root": rec.root,
        "depth": rec.depth,
        "attempts": rec.attempts,
        "failures": rec.failures,
        "createdAt": rec.created_at,
        "startedAt": rec.started_at or None,
        "finishedAt": end,
        "durationSeconds": round(end - rec.created_at, 3) if end else None,
        "stepCount": step_count,
        "usage": {"promptTokens": rec.prompt_tokens, "completionTokens": rec.completion_tokens, "totalTokens": rec.prompt_tokens + rec.completion_tokens},
        "cost": format(rec.cost.normalize(), "f") if rec.cost_nanos else "0",
        "currency": currency,
        "budgets": rec.limits.to_json(),
        "children": children,
        "metadata": rec.metadata,
        "citations": parse_citations(rec.answer) if rec.status.terminal else [],
    }
    if rec.root == rec.id:
        out["treeUsage"] = {
            "totalTokens": int(raw.get("tree_tokens") or 0),
            "cost": format((int(raw.get("tree_cost_nanos") or 0) / 1e9), ".9f").rstrip("0").rstrip(".") or "0",
        }
    if steps is not None:
        out["retrieved"] = retrieved_passages(steps, retrieval_tools)
        out["steps"] = [
            {
                "n": s.n,
                "content": s.content,
                "toolCalls": [c.to_json() for c in s.tool_calls],
                "observations": None if s.observations is None else [o.to_json() for o in s.observations],
                "usage": {"promptTokens": s.usage.prompt_tokens, "completionTokens": s.usage.completion_tokens},
                "modelSeconds": s.model_seconds,
            }
            for s in steps
        ]
    return out
