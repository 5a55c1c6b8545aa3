"""AgentFleet spec: what a task may spend , how its model calls are made, token prices and rate limits."""

from __future__ import annotations

from pydantic import Field

from agentfleet_contract.common import DECIMAL, Model
from agentfleet_contract.rules import Rule, matches


def _decimal(attr: str, path: str, example: str) -> Rule:
    # A pattern would only say "should match"; a rule's message says what to write.
    return matches(attr, DECIMAL, f'{path} must be a decimal string such as "{example}" (quote it in YAML)')


class Budgets(Model):
    rules = (_decimal("max_cost", "spec.budgets.maxCost", "0.25"),)

    max_steps: int = Field(
        default=30, ge=1, le=1000, description="Model calls one task may make before it ends with its best answer."
    )
    max_fan_out: int = Field(default=4, ge=0, le=64, description="Sub-agents one step may spawn.")
    max_depth: int = Field(default=2, ge=0, le=8, description="Nesting depth of sub-agents; 0 forbids them.")
    max_tokens: int = Field(
        default=200_000,
        ge=1000,
        le=100_000_000,
        description="Prompt plus completion tokens one task may use, sub-agents included.",
    )
    timeout_seconds: int = Field(
        default=900, ge=1, le=86400, description="Wall-clock limit of one task, sub-agents included."
    )
    max_cost: str | None = Field(
        default=None, max_length=32, description='Cost limit of one task in the pricing currency, e.g. "0.25".'
    )


class ModelCalls(Model):
    max_output_tokens: int = Field(
        default=1024,
        ge=16,
        le=131072,
        description="Completion tokens one model call may generate (its max_tokens); a small model's 300 is plenty.",
    )
    timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=3600,
        description="Seconds one model call may take before it is retried; raise it for a model on CPU.",
    )


class Pricing(Model):
    rules = (
        _decimal("input_per_million_tokens", "spec.pricing.inputPerMillionTokens", "0.50"),
        _decimal("output_per_million_tokens", "spec.pricing.outputPerMillionTokens", "1.50"),
    )

    currency: str = Field(
        default="USD", max_length=3, pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of the prices."
    )
    input_per_million_tokens: str = Field(default="0", max_length=32, description="Price of one million prompt tokens.")
    output_per_million_tokens: str = Field(
        default="0", max_length=32, description="Price of one million completion tokens."
    )


class RateLimit(Model):
    rules = (
        Rule(
            cel=(
                "!has(self.tokensPerMinute) || !has(self.perTenantTokensPerMinute) || self.perTenantTokensPerMinute "
                "<= self.tokensPerMinute"
            ),
            message=(
                "spec.rateLimit.perTenantTokensPerMinute must not exceed spec.rateLimit.tokensPerMinute: lower the "
                "tenant limit"
            ),
            check=lambda r: (
                r.tokens_per_minute is None
                or r.per_tenant_tokens_per_minute is None
                or r.per_tenant_tokens_per_minute <= r.tokens_per_minute
            ),
            field_path=".perTenantTokensPerMinute",
        ),
    )

    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="Tokens per minute the whole fleet may send to its model; unset is unlimited."
    )
    per_tenant_tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Tokens per minute one tenant may use per model; a submission that would not fit is refused (429). Unset "
            "is unlimited."
        ),
    )
    max_wait_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="How long a call waits for tokens before it fails with a rate-limit error.",
    )
