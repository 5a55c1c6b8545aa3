"""Budgets: effective limits of a task, cost of tokens, and which budget (if any) stops a task.

Pure: callers pass the clock and the usage; nothing here touches Redis or the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agentfleet_runtime.core.types import Limits, StopReason, Usage

NANOS = Decimal(1_000_000_000)
MILLION = Decimal(1_000_000)
MAX_BUDGET_NUMBER = 2**53  # above this a float loses integers and a 400-digit int overflows one
MAX_COST = Decimal(10**9)  # a task's maxCost in currency units: above it, nanos leave Redis' exact integers


@dataclass(frozen=True, slots=True)
class Prices:
    """Token prices per million, as the AgentFleet's spec.pricing gives them (decimal strings)."""

    input_per_million: Decimal = Decimal(0)
    output_per_million: Decimal = Decimal(0)
    currency: str = "USD"
    # Nanos per token when both prices are whole nanos per token (at most 3 decimals per million
    # tokens, the usual case): the cost of a step is then integer arithmetic, exact and cheap.
    _nanos_per_token: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        per_in, per_out = Decimal(self.input_per_million) * 1000, Decimal(self.output_per_million) * 1000
        if (
            per_in.is_finite()
            and per_out.is_finite()
            and per_in == per_in.to_integral_value()
            and per_out == per_out.to_integral_value()
        ):
            object.__setattr__(self, "_nanos_per_token", (int(per_in), int(per_out)))

    def cost_nanos(self, usage: Usage) -> int:
        """Cost in 1e-9 currency units, rounded up so that many tiny calls never round to free."""
        if self._nanos_per_token is not None:
            return usage.prompt_tokens * self._nanos_per_token[0] + usage.completion_tokens * self._nanos_per_token[1]
        cost = (
            Decimal(usage.prompt_tokens) * self.input_per_million
            + Decimal(usage.completion_tokens) * self.output_per_million
        ) / MILLION
        nanos = cost * NANOS
        whole = int(nanos)
        return whole + (1 if nanos > whole else 0)


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """What a task tree (the root task and all its sub-agents) has spent so far."""

    tokens: int = 0
    cost_nanos: int = 0


def effective_limits(fleet: Limits, overrides: dict[str, Any] | None) -> Limits:
    """The fleet's budgets lowered by a caller's overrides; a caller can never raise a fleet limit.

    ``overrides`` uses the API's camelCase names (maxSteps, maxTokens, timeoutSeconds, maxCost).
    Raises ValueError with a readable message for a malformed override.
    """
    if not overrides:
        return fleet
    known = {"maxSteps", "maxTokens", "timeoutSeconds", "maxCost", "maxFanOut", "maxDepth"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown budget field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")

    def lowered(name: str, current: int | float, kind: type) -> Any:
        value = overrides.get(name)
        if value is None:
            return current
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"budgets.{name} must be a number")
        # Before any arithmetic: math.isfinite and float() of a 400-digit integer raise OverflowError.
        if isinstance(value, int) and not -MAX_BUDGET_NUMBER <= value <= MAX_BUDGET_NUMBER:
            raise ValueError(f"budgets.{name} must be at most {MAX_BUDGET_NUMBER} (leave it out for the fleet's limit)")
        if not math.isfinite(value):  # NaN compares false with everything and would pass below
            raise ValueError(f"budgets.{name} must be a finite number, not NaN or Infinity")
        if value < (0 if name in ("maxFanOut", "maxDepth") else 1):
            raise ValueError(f"budgets.{name} must be positive")
        return kind(min(value, current))

    cost = fleet.max_cost
    if overrides.get("maxCost") is not None:
        raw = overrides["maxCost"]
        if isinstance(raw, bool) or not isinstance(raw, int | float | str) or len(str(raw)) > 40:
            raise ValueError('budgets.maxCost must be a decimal string such as "0.25" (at most 40 characters)')
        try:
            asked = Decimal(str(raw))
        except ArithmeticError as e:
            raise ValueError('budgets.maxCost must be a decimal string such as "0.25"') from e
        if not asked.is_finite() or asked < 0 or asked > MAX_COST:
            raise ValueError(f"budgets.maxCost must be a non-negative decimal of at most {MAX_COST}")
        cost = asked if cost is None else min(asked, cost)
    return Limits(
        max_steps=lowered("maxSteps", fleet.max_steps, int),
        max_tokens=lowered("maxTokens", fleet.max_tokens, int),
        timeout_seconds=lowered("timeoutSeconds", fleet.timeout_seconds, float),
        max_cost=cost,
        max_fan_out=lowered("maxFanOut", fleet.max_fan_out, int),
        max_depth=lowered("maxDepth", fleet.max_depth, int),
    )


def exhausted(
    limits: Limits,
    root_limits: Limits,
    steps_done: int,
    tree: TreeUsage,
    now: float,
    deadline: float,
) -> StopReason | None:
    """The budget that forbids another model call, or None.

    Steps are counted per task; tokens, cost and time per task tree, against the root's limits,
    because sub-agents spend their parent's budget.
    """
    if now >= deadline:
        return StopReason.TIMEOUT
    if steps_done >= limits.max_steps:
        return StopReason.MAX_STEPS
    if tree.tokens >= root_limits.max_tokens:
        return StopReason.MAX_TOKENS
    if root_limits.max_cost is not None and Decimal(tree.cost_nanos) / NANOS >= root_limits.max_cost:
        return StopReason.MAX_COST
    return None


def child_deadline(parent_deadline: float, now: float, child_timeout: float) -> float:
    """A sub-agent never outlives its parent's time budget."""
    return min(parent_deadline, now + child_timeout)


# -- a call's worst case ---------------------------------------------------------------------------
# Spend is a bound only if every model call is priced before it is made at the most it can cost,
# and refused or shortened when that would pass a limit. The most a call can cost is its prompt's
# tokens plus its max_tokens, all at the dearer of the two prices. A prompt's tokens are bounded
# by its UTF-8 bytes: byte-level BPE (GPT-2 style, Qwen, Llama 3) and SentencePiece with byte
# fallback never emit more tokens than bytes. The bytes of the messages' JSON already over-count
# the chat template's per-message tokens (a role's JSON is ~30 bytes, its template ~5 tokens);
# TEMPLATE_TOKENS covers the one thing the JSON lacks, the template's own preamble (a tools
# instruction of ~100 tokens in Qwen's). A quarter of the characters (routing/ratelimit.py's
# estimate, right on average for English) is no bound: code and JSON run denser.
TEMPLATE_TOKENS = 128


def prompt_bound(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *extra: Any) -> int:
    """The most tokens a chat request's prompt can be (see TEMPLATE_TOKENS)."""
    size = sum(len(json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode()) for m in messages)
    for part in (tools, *extra):
        if part:
            size += len(json.dumps(part, ensure_ascii=False, separators=(",", ":")).encode())
    return size + TEMPLATE_TOKENS


def dearer_nanos_per_token(prices: Prices) -> Decimal:
    """The dearer of the two prices, in 1e-9 units per token (0: nothing is priced)."""
    return max(Decimal(prices.input_per_million), Decimal(prices.output_per_million)) * NANOS / MILLION


def worst_call_nanos(per_token: Decimal, prompt_tokens: int, max_tokens: int) -> int:
    """The most one call of ``prompt_tokens`` and ``max_tokens`` can cost, rounded up."""
    return math.ceil(per_token * (prompt_tokens + max_tokens))


def task_cap_nanos(limits: Limits) -> int | None:
    """A task tree's spend limit in 1e-9 units (its maxCost, rounded down), or None."""
    return None if limits.max_cost is None else int(limits.max_cost * NANOS)
