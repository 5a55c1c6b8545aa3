"""Task submission and presentation, pure: validate a request, build the task, render a task."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agentfleet_runtime.core.budget import effective_limits
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Limits, Status, Step, TaskRecord
from agentfleet_runtime.tools.retrieval import parse_passages

MAX_KEY_CHARS = 256
MAX_SESSION_CHARS = 256
MAX_METADATA_CHARS = 16_384
MAX_DEPTH = 32  # nesting of a request body; a task needs 3 (metadata objects a few more)
STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")  # a Redis stream entry id: ms[-seq]
MAX_U64 = 2**64 - 1  # each part of a stream id: Redis refuses more mid-stream (the fuzz test found it)


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


def _where(path: list[str]) -> str:
    return ".".join(path) or "the body"


def _check_value(value: Any, path: list[str]) -> None:
    """Refuse what JSON parses but nothing downstream can hold: non-finite numbers (NaN,
    Infinity, 1e400 overflowing to inf), text that is not Unicode (a lone surrogate such as
    "\\ud800", which no UTF-8 encoder writes) and nesting deeper than MAX_DEPTH."""
    if len(path) > MAX_DEPTH:
        raise SubmitError(f"{_where(path[:MAX_DEPTH])} nests deeper than {MAX_DEPTH} levels: flatten it")
    if isinstance(value, float) and not math.isfinite(value):
        raise SubmitError(f"{_where(path)} must be a finite number (not NaN or Infinity, at most about 1.8e308)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = "holds a lone surrogate (an unpaired \\ud800-\\udfff escape): send valid Unicode"
            raise SubmitError(f"{_where(path)} {problem}") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, [*path, "<key>"])
            _check_value(v, [*path, k if isinstance(k, str) and k.isprintable() else "<key>"])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, [*path, str(i)])


def check_json(value: Any) -> None:
    """SubmitError for a parsed JSON value nothing downstream can hold (non-finite numbers, lone
    surrogates, deep nesting): for a caller that parses its own body (A2A's JSON-RPC)."""
    _check_value(value, [])


def parse_body(raw: bytes) -> Any:
    """A request body as JSON the API can store: SubmitError (400) names the field otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmitError("body must be UTF-8 encoded JSON") from None
    try:
        body = json.loads(text or "null")  # NaN and Infinity parse; _check_value names where
    except RecursionError:
        raise SubmitError(f"body nests deeper than {MAX_DEPTH} levels: flatten it") from None
    except ValueError:
        raise SubmitError('body must be JSON, e.g. {"goal": "..."}') from None
    _check_value(body, [])
    return body


def stream_position(value: str, field: str) -> str:
    """A client's resume point in an event stream (Last-Event-ID or ?after=): an entry id it was sent."""
    if not STREAM_ID.match(value) or any(int(part) > MAX_U64 for part in value.split("-")):
        raise SubmitError(f"{field} must be an event id the stream sent, such as 1700000000000-0 (got {value[:40]!r})")
    return value


def parse_submission(body: Any, header_key: str | None, max_goal_chars: int, fleet_limits: Limits) -> Submission:
    if not isinstance(body, dict):
        raise SubmitError('body must be a JSON object such as {"goal": "..."}')
    if "tenant" in body:
        raise SubmitError("tenant is not a field of a task: it is the tenant of your bearer token; remove it")
    unknown = sorted(set(body) - {"goal", "session", "budgets", "idempotencyKey", "metadata"})
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
    if key is not None:
        _check_value(key, ["Idempotency-Key"])  # a header's non-UTF-8 bytes arrive as lone surrogates
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
    fields = {"goal": goal, "session": session, "budgets": budgets or {}, "metadata": metadata}
    canonical = json.dumps(fields, sort_keys=True)
    return Submission(goal, session, limits, key, hashlib.sha256(canonical.encode()).hexdigest(), metadata)


def new_task(task_id: str, sub: Submission, now: float, tenant: str = "", submitter: str = "") -> TaskRecord:
    return TaskRecord(
        id=task_id,
        goal=sub.goal,
        status=Status.QUEUED,
        limits=sub.limits,
        created_at=now,
        deadline=now + sub.limits.timeout_seconds,
        root=task_id,
        session=sub.session,
        tenant=tenant,
        submitter=submitter,
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


def tree_usage(raw: Mapping[str, str]) -> dict[str, Any]:
    """A root task's usage with its sub-agents': tokens, and cost as a decimal string (exact, never a float)."""
    cost = (Decimal(int(raw.get("tree_cost_nanos") or 0)) / 10**9).normalize()
    return {"totalTokens": int(raw.get("tree_tokens") or 0), "cost": format(cost, "f")}


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
        "usage": {
            "promptTokens": rec.prompt_tokens,
            "completionTokens": rec.completion_tokens,
            "totalTokens": rec.prompt_tokens + rec.completion_tokens,
        },
        "cost": format(rec.cost.normalize(), "f") if rec.cost_nanos else "0",
        "currency": currency,
        "budgets": rec.limits.to_json(),
        "children": children,
        "metadata": rec.metadata,
        "citations": parse_citations(rec.answer) if rec.status.terminal else [],
    }
    if rec.root == rec.id:
        out["treeUsage"] = tree_usage(raw)
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
                "modelCalls": s.usage.calls,
                **({"firstAnswer": s.first_answer} if s.first_answer else {}),
            }
            for s in steps
        ]
    return out
