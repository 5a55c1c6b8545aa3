"""What a tool is to the agent loop: a name, a schema, a timeout and an async ``run``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet_runtime.core.types import TaskRecord


class ToolError(Exception):
    """A tool call that failed; the message becomes the model's observation.

    ``unhealthy`` says whether the failure is the tool's (5xx, unreachable: counts against its
    circuit breaker) or the caller's (bad arguments, 4xx: the tool itself is fine).
    """

    def __init__(self, message: str, *, unhealthy: bool = True) -> None:
        super().__init__(message)
        self.unhealthy = unhealthy


@dataclass(frozen=True, slots=True)
class ToolContext:
    task: TaskRecord
    step: int
    call_index: int
    deadline: float  # wall-clock time the task's budget runs out
    dry_run: bool = False  # a gate task's side effect, called marked as a dry run (DryRunHeader)

    @property
    def idempotency_key(self) -> str:
        """Same for every attempt of this call, so a resumed step's side effect is deduplicated."""
        return f"{self.task.id}:{self.step}:{self.call_index}"


class Tool(Protocol):
    name: str
    description: str
    timeout: float
    side_effects: bool  # results are recorded and reused; HTTP calls carry an Idempotency-Key

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry the model sees."""
        ...

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """The observation text; raise ToolError for a failure the model should read about."""
        ...
