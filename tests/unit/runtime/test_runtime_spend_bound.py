"""Spend is a bound (issue 76, finding 1): what one call may cost at its worst, and what admission
reserves for a task whatever budgets its tenant chose. The per-call hold itself runs in Redis
(model/spend.py) and is tested on a real Redis and real workers
(tests/integration/runtime/test_runtime_spend_bound_it.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.budget import (
    TEMPLATE_TOKENS,
    Prices,
    dearer_nanos_per_token,
    prompt_bound,
    worst_call_nanos,
)
from agentfleet_runtime.core.types import Limits, Usage
from agentfleet_runtime.server.admission import Admitter

PRICES = {"inputPerMillionTokens": "1", "outputPerMillionTokens": "4", "currency": "EUR"}


def admitter(**budgets) -> Admitter:
    doc = {
        "fleet": "f",
        "systemPrompt": "You are a careful agent.",
        "model": {"baseUrl": "http://127.0.0.1:9/v1", "name": "m", "maxOutputTokens": 512},
        "pricing": PRICES,
        "api": {"tenantLimits": {"maxSpendPerDay": "0.01"}},
        "budgets": budgets,
    }
    return Admitter(RuntimeConfig.model_validate(doc))


@pytest.mark.parametrize(
    "text",
    ["plain English words", '{"json": [1, 2, 3], "nested": {"k": "v"}}', "naïve café 東京 🚀", "x" * 5000],
)
def test_a_prompt_bound_is_never_below_one_token_per_byte(text):
    # The bound a tokenizer cannot pass: byte-level BPE emits at most one token per byte.
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": text}]
    assert prompt_bound(messages) >= len(text.encode()) + len(b"s") + TEMPLATE_TOKENS
    # A quarter of the characters (the rate limiter's estimate) is no bound for any of these.
    assert prompt_bound(messages) > len(text) // 4


def test_tools_and_the_decision_schema_count_in_the_prompt():
    messages = [{"role": "user", "content": "q"}]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
    schema = {"type": "json_schema", "json_schema": {"name": "d", "schema": {"type": "object"}}}
    assert prompt_bound(messages, tools, schema) > prompt_bound(messages, tools) > prompt_bound(messages)


def test_the_worst_case_prices_every_token_at_the_dearer_price():
    per = dearer_nanos_per_token(Prices(Decimal("1"), Decimal("4")))
    assert per == Decimal(4000)  # 4 per million tokens = 4,000 nanos a token
    worst = worst_call_nanos(per, 1000, 512)
    # Above any split of those tokens between prompt and output at the two real prices.
    assert worst == 1512 * 4000 >= Prices(Decimal("1"), Decimal("4")).cost_nanos(Usage(1000, 512))
    assert worst_call_nanos(Decimal("0.15"), 3, 0) == 1  # rounded up: many tiny calls never round to free


@pytest.mark.parametrize(
    "budgets", [{"maxCost": "0.000000001"}, {"maxTokens": 1}, {"maxCost": "0.000000001", "maxTokens": 1}]
)
def test_admission_reserves_a_whole_first_call_whatever_the_tasks_budgets(budgets):
    # The probe of issue 76: a tiny maxCost (or maxTokens 1) reserved next to nothing, so 40 tasks
    # were all admitted under maxSpendPerDay 0.01 and spent 96.0.
    a = admitter()
    fleet = Limits(max_steps=30, max_tokens=200_000, timeout_seconds=900)
    tiny = Limits(
        max_steps=30,
        max_tokens=budgets.get("maxTokens", 200_000),
        timeout_seconds=900,
        max_cost=Decimal(budgets["maxCost"]) if "maxCost" in budgets else None,
    )
    goal = "find the refund policy"
    messages = [{"role": "system", "content": "You are a careful agent."}, {"role": "user", "content": goal}]
    first_call = worst_call_nanos(Decimal(4000), prompt_bound(messages), 512)
    reserved = a.of("acme", goal, tiny).reserve_nanos  # what SUBMIT holds for the task
    assert reserved == first_call >= 4000 * (512 + len(goal))
    # A budget larger than one call is reserved whole, as before.
    assert a.of("acme", goal, fleet).reserve_nanos == 200_000 * 4000
    # 0.01 EUR admits at most this many such tasks at once: a bound on what the tasks can start.
    assert 10_000_000 // reserved <= 4


def test_no_spend_limit_reserves_nothing():
    doc = {"fleet": "f", "model": {"baseUrl": "http://127.0.0.1:9/v1", "name": "m"}, "pricing": PRICES}
    tiny = Limits(1, 1, 1, Decimal("1e-9"))
    assert Admitter(RuntimeConfig.model_validate(doc)).of("acme", "g", tiny).reserve_nanos == 0
