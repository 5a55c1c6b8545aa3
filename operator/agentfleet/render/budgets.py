"""Budgets no task of an AgentFleet could meet: what the CRD schema cannot check (pure)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from agentfleet_contract.agentfleet import AgentFleetSpec

# Rough tokens per character of English text and JSON (tokenizers average ~4 characters per
# token); the budget check only has to catch budgets that are off by far, not by a few percent.
CHARS_PER_TOKEN = 4.0
# Same protocol text the runtime adds when tools are described in the prompt (prompt.TEXT_PROTOCOL).
TOOL_PROTOCOL_TOKENS = 80


@dataclass(frozen=True)
class SpecProblem:
    """Why the fleet cannot run as specified: a Ready=False reason and a message naming the field."""

    reason: str
    message: str


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def fixed_prompt_tokens(spec: AgentFleetSpec, system_prompt: str) -> int:
    """Tokens every model call of a task re-sends: the system prompt and the tool schemas."""
    schemas = [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in spec.tools
    ]
    tools = estimate_tokens(json.dumps(schemas)) + (TOOL_PROTOCOL_TOKENS if schemas else 0)
    return estimate_tokens(system_prompt) + tools


def budget_problems(spec: AgentFleetSpec, system_prompt: str, max_model_len: int | None = None) -> list[SpecProblem]:
    """Budgets no task can meet: the first model call alone would exceed them."""
    out: list[SpecProblem] = []
    fixed = fixed_prompt_tokens(spec, system_prompt)
    reply = spec.model_calls.max_output_tokens
    first_call = fixed + reply
    b = spec.budgets
    if b.max_tokens < first_call:
        out.append(
            SpecProblem(
                "BudgetTooSmall",
                f"spec.budgets.maxTokens {b.max_tokens} is less than one model call needs: ~{fixed} tokens of system "
                f"prompt and tool schemas plus {reply} for the reply (spec.modelCalls.maxOutputTokens); raise "
                f"spec.budgets.maxTokens to at least {first_call} or shorten spec.systemPrompt / spec.tools",
            )
        )
    if max_model_len is not None and fixed >= max_model_len:
        out.append(
            SpecProblem(
                "PromptExceedsContext",
                f"the system prompt and tool schemas (~{fixed} tokens) do not fit the model's context of "
                f"{max_model_len} tokens "
                "(its engine.maxModelLen): shorten spec.systemPrompt / spec.tools or raise the ModelReplicaSet's "
                "maxModelLen",
            )
        )
    if b.max_cost is not None:
        try:
            price_in = Decimal(spec.pricing.input_per_million_tokens)
            limit = Decimal(b.max_cost)
        except InvalidOperation:
            return out
        first_cost = price_in * fixed / Decimal(1_000_000)
        if limit <= 0 or first_cost > limit:
            out.append(
                SpecProblem(
                    "BudgetTooSmall",
                    f"spec.budgets.maxCost {b.max_cost} {spec.pricing.currency} is below the cost of one model call's "
                    "prompt "
                    f"(~{fixed} tokens at {spec.pricing.input_per_million_tokens} per million = {first_cost:.6f}): "
                    "raise spec.budgets.maxCost",
                )
            )
    return out
