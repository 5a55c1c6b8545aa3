"""Plain data of the agent runtime: tasks, steps, model replies, tool calls and observations.

Everything here is JSON-serialisable through ``to_json``/``from_json`` so checkpoints in Redis
and the task API share one shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from agentfleet_runtime.core.fastjson import loads


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"  # parked until a person decides its proposed calls (approvals.py)
    DONE = "done"  # ended with an answer: the final one, or the best so far when a budget stopped it
    CANCELLED = "cancelled"
    DEAD = "dead"  # failed max attempts times; its error is on the dead-letter stream

    @property
    def terminal(self) -> bool:
        return self in (Status.DONE, Status.CANCELLED, Status.DEAD)


class StopReason(StrEnum):
    FINAL_ANSWER = "final_answer"
    MAX_STEPS = "max_steps"
    MAX_TOKENS = "max_tokens"
    TIMEOUT = "timeout"
    MAX_COST = "max_cost"
    # The tenant's maxSpendPerDay left no room for the next call's worst case (model/spend.py).
    MAX_SPEND = "max_spend"
    # The history outgrew the served context: no call can fit, so the task ends as a budget does.
    MAX_CONTEXT = "max_context"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The model calls these tokens are of: one reply's is 1, and a step's sums its calls (the answer-first
    # call and its second reading, a decision asked again with a repair turn), so a step that carries
    # several calls is counted as several (agentfleet eval's model calls per task).
    calls: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.calls + other.calls,
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ToolCall:
        return cls(id=d["id"], name=d["name"], arguments=d.get("arguments") or {})


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One chat-completion answer, normalised: text, tool calls (native or parsed from text), usage."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    finish_reason: str = "stop"
    model: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """What a tool call returned, as the model will read it. Failures are observations too."""

    call_id: str
    name: str
    ok: bool
    output: str
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies field by field, a visible cost per step.
        return {
            "call_id": self.call_id,
            "name": self.name,
            "ok": self.ok,
            "output": self.output,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Observation:
        return cls(
            call_id=d["call_id"],
            name=d["name"],
            ok=bool(d["ok"]),
            output=d["output"],
            seconds=float(d.get("seconds", 0.0)),
        )


@dataclass(slots=True)
class Step:
    """One model call and the tool calls it asked for.

    ``observations`` is None between the plan checkpoint (model reply stored) and the completion
    checkpoint (tool results stored): a worker resuming such a step re-runs only its tools.
    """

    n: int
    content: str
    tool_calls: list[ToolCall]
    usage: Usage
    model_seconds: float = 0.0
    observations: list[Observation] | None = None
    # The answer-first reply's answer, on the step that follows it (the cascade's first stage), so
    # the task API shows what the first answer was beside the final one (agentfleet eval's balance).
    first_answer: str = ""

    @property
    def complete(self) -> bool:
        return self.observations is not None or not self.tool_calls

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "content": self.content,
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens],
            # Apart from usage's pair: a worker of the release before reads usage as two numbers, and
            # may resume a task this one checkpointed during a rolling update.
            "model_calls": self.usage.calls,
            "model_seconds": round(self.model_seconds, 6),
            **({"first_answer": self.first_answer} if self.first_answer else {}),
            # Last, always: the completion checkpoint splices the observations into the stored
            # plan in place of its closing '"observations":null}' (lua.COMPLETE).
            "observations": None if self.observations is None else [o.to_json() for o in self.observations],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        obs = d.get("observations")
        return cls(
            n=int(d["n"]),
            content=d.get("content") or "",
            tool_calls=[ToolCall.from_json(c) for c in d.get("tool_calls") or []],
            usage=Usage(*d.get("usage", [0, 0])[:2], calls=int(d.get("model_calls", 0))),
            model_seconds=float(d.get("model_seconds", 0.0)),
            observations=None if obs is None else [Observation.from_json(o) for o in obs],
            first_answer=d.get("first_answer") or "",
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets one task runs under (the fleet's, lowered by per-task overrides)."""

    max_steps: int = 30
    max_tokens: int = 200_000
    timeout_seconds: float = 900.0
    max_cost: Decimal | None = None
    max_fan_out: int = 4
    max_depth: int = 2

    def to_json(self) -> dict[str, Any]:
        return {
            "maxSteps": self.max_steps,
            "maxTokens": self.max_tokens,
            "timeoutSeconds": self.timeout_seconds,
            "maxCost": None if self.max_cost is None else str(self.max_cost),
            "maxFanOut": self.max_fan_out,
            "maxDepth": self.max_depth,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Limits:
        cost = d.get("maxCost")
        return cls(
            max_steps=int(d["maxSteps"]),
            max_tokens=int(d["maxTokens"]),
            timeout_seconds=float(d["timeoutSeconds"]),
            max_cost=None if cost in (None, "") else Decimal(str(cost)),
            max_fan_out=int(d["maxFanOut"]),
            max_depth=int(d["maxDepth"]),
        )


@dataclass(slots=True)
class TaskRecord:
    """A task as checkpointed in Redis: identity, budget, progress and outcome."""

    id: str
    goal: str
    status: Status
    limits: Limits
    created_at: float
    deadline: float  # absolute wall-clock time; a child's never exceeds its parent's
    root: str
    parent: str = ""
    depth: int = 0
    session: str = ""
    tenant: str = ""  # from the caller's token (tenants.py), never from the body; sub-agents inherit it
    submitter: str = ""  # the submitting token's identity (tenants.Caller.id): it may not approve the task's calls
    attempts: int = 0
    failures: int = 0
    reason: str = ""
    answer: str = ""
    error: str = ""
    lease: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanos: int = 0  # cost in 1e-9 currency units: integers add exactly across workers
    cancel: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    trace: str = ""  # W3C traceparent the task's spans continue (tracing.py); "" until its first traced attempt

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    @property
    def cost(self) -> Decimal:
        return Decimal(self.cost_nanos) / Decimal(1_000_000_000)

    def to_hash(self) -> dict[str, str]:
        """The Redis hash fields of a new task."""
        import json

        return {
            "id": self.id,
            "goal": self.goal,
            "status": self.status.value,
            "limits": json.dumps(self.limits.to_json()),
            "created_at": repr(self.created_at),
            "deadline": repr(self.deadline),
            "root": self.root,
            "parent": self.parent,
            "depth": str(self.depth),
            "session": self.session,
            "tenant": self.tenant,
            "submitter": self.submitter,
            "attempts": str(self.attempts),
            "failures": str(self.failures),
            "reason": self.reason,
            "answer": self.answer,
            "error": self.error,
            "lease": self.lease,
            "started_at": repr(self.started_at),
            "finished_at": repr(self.finished_at),
            "prompt_tokens": str(self.prompt_tokens),
            "completion_tokens": str(self.completion_tokens),
            "cost_nanos": str(self.cost_nanos),
            "cancel": "1" if self.cancel else "0",
            "metadata": json.dumps(self.metadata),
            # Absent until known: the first traced attempt stores it with HSETNX.
            **({"trace": self.trace} if self.trace else {}),
        }

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> TaskRecord:
        return cls(
            id=h["id"],
            goal=h.get("goal", ""),
            status=Status(h.get("status", "queued")),
            limits=Limits.from_json(loads(h["limits"])),
            created_at=float(h.get("created_at") or 0),
            deadline=float(h.get("deadline") or 0),
            root=h.get("root") or h["id"],
            parent=h.get("parent", ""),
            depth=int(h.get("depth") or 0),
            session=h.get("session", ""),
            tenant=h.get("tenant", ""),
            submitter=h.get("submitter", ""),
            attempts=int(h.get("attempts") or 0),
            failures=int(h.get("failures") or 0),
            reason=h.get("reason", ""),
            answer=h.get("answer", ""),
            error=h.get("error", ""),
            lease=h.get("lease", ""),
            started_at=float(h.get("started_at") or 0),
            finished_at=float(h.get("finished_at") or 0),
            prompt_tokens=int(h.get("prompt_tokens") or 0),
            completion_tokens=int(h.get("completion_tokens") or 0),
            cost_nanos=int(h.get("cost_nanos") or 0),
            cancel=h.get("cancel") == "1",
            metadata=loads(h.get("metadata") or "{}"),
            trace=h.get("trace", ""),
        )
