"""What a tenant's submission must pass before it becomes a task: the limits SUBMIT checks in
Redis in one script (store.Admission), built from the fleet's config.

Tokens per minute at admission. The workers' model calls charge each tenant's token bucket per
model (routing/ratelimit.py, GCRA: one minute of tokens that drip back at the rate). A
submission is counted as its own first call, estimated the way the limiter estimates every call
(the system prompt and the goal at ~4 characters a token, plus the output allowance), and is
admitted only while each of the tenant's buckets has room for it now, i.e. while the tenant's
calls of the last minute (settled to what the servers reported) leave that much of
spec.rateLimit.perTenantTokensPerMinute. Otherwise it is refused with 429 and Retry-After, the
time until the bucket has that room. Admission reads the buckets and charges nothing: the
task's calls charge them when they run, so no call is counted twice. Submissions that arrive
together while a tenant has room are therefore all admitted; how many may wait in the queue at
once is spec.api.tenantLimits.maxTasksInFlight's to bound, and each call is still limited when
it is made.

Spend at admission. ``maxSpendPerDay`` is a bound, not a trailing count: each admitted task
reserves what it may spend (its ``budgets.maxCost``, else its token budget priced at the dearer of
the two prices), and never less than its first call at its worst (the system prompt and the goal
at their token bound plus maxOutputTokens, at the dearer price: model/spend.py), whatever budgets
the tenant chose; SUBMIT admits it only while the day's spend, the reservations of the tenant's
live tasks and this one fit under the limit. The reservation is released when the task ends, when
its real cost is in the day's spend. What makes the limit a bound while tasks run is the worker's
spend guard: every call holds its worst case against the task tree's maxCost and the tenant's
limit first, and is shortened or refused when it would pass either (model/spend.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal

from agentfleet_contract.runtime_config import ModelRoutingConfig, RuntimeConfig

from agentfleet_runtime.core.budget import NANOS
from agentfleet_runtime.core.config import prices_of
from agentfleet_runtime.core.types import Limits, Usage
from agentfleet_runtime.model.spend import worst_first_call
from agentfleet_runtime.routing.ratelimit import bucket_key, estimate_tokens, fleet_prefix, rate_args
from agentfleet_runtime.store.tasks import Admission


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    """SUBMIT's -3, read: how long until the bucket has room, what the tenant used, on which model."""

    retry_after: int
    used: int
    model: str


class Admitter:
    """Builds each submission's Admission: the tenant limits, and the token buckets to check."""

    def __init__(self, config: RuntimeConfig) -> None:
        tl = config.api.tenant_limits
        spend = None if tl.max_spend_per_day is None else int(Decimal(tl.max_spend_per_day) * NANOS)
        self.base = Admission(tl.max_tasks_in_flight, spend)
        routing = ModelRoutingConfig.model_validate(config.model_routing) if config.model_routing else None
        self.tokens_per_minute = routing.rate_limit.per_tenant_tokens_per_minute if routing is not None else None
        self.models: tuple[str, ...] = ()
        if routing is not None:
            self.models = (routing.primary.model_replica_set,)
            if routing.routine is not None:
                self.models += (routing.routine.model_replica_set,)
        self.prefix = fleet_prefix(config.fleet, config.namespace)
        self.system_prompt = config.system_prompt
        self.max_output_tokens = config.model.max_output_tokens
        self.prices = prices_of(config)

    def reserve(self, limits: Limits, goal: str = "") -> int:
        """What a task reserves, in 1e-9 units (0 when no spend limit applies): its budget, and at
        least its first call's worst case (a tiny maxCost or maxTokens reserves no less)."""
        if self.base.max_spend_nanos is None:
            return 0
        if limits.max_cost is not None:
            budget = math.ceil(limits.max_cost * NANOS)
        else:
            n = limits.max_tokens
            budget = max(self.prices.cost_nanos(Usage(n, 0)), self.prices.cost_nanos(Usage(0, n)))
        return max(budget, worst_first_call(self.prices, self.system_prompt, goal, self.max_output_tokens))

    def need(self, goal: str) -> int:
        """A submission's tokens: its first call's estimate, at most one bucket (a larger call
        could never be admitted; the limiter handles it when it is made)."""
        if not self.tokens_per_minute:
            return 0
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": goal}]
        return min(self.tokens_per_minute, estimate_tokens(messages, [], self.max_output_tokens))

    def of(self, tenant: str, goal: str, limits: Limits | None = None) -> Admission:
        base = self.base if limits is None else replace(self.base, reserve_nanos=self.reserve(limits, goal))
        if not self.tokens_per_minute:
            return base
        rate, burst = rate_args(self.tokens_per_minute)
        buckets = tuple((bucket_key(self.prefix, m, tenant), rate, burst) for m in self.models)
        return replace(base, buckets=buckets, need_tokens=self.need(goal))

    def token_refusal(self, figure: str) -> TokenRefusal:
        """SUBMIT's figure for -3, "wait_ms used_tokens bucket" (bucket: 1-based, in self.models)."""
        wait_ms, used, which = (int(x) for x in figure.split())
        return TokenRefusal(max(1, math.ceil(wait_ms / 1000)), used, self.models[which - 1])
