"""Typed settings of the routing client and the replica identity (pure data).

``RoutingSettings.from_spec`` takes a ModelReplicaSet's ``spec.routing`` (the API model or its
camelCase dict), so the operator's resource is the one source of the routing policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Policy = Literal["PrefixAffinity", "LeastLoaded", "RoundRobin"]
# The loop's step kinds that AgentFleet.spec.routineSteps names.
ROUTINE_KINDS = {"ToolArguments": "tool_arguments", "Summaries": "summary"}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One serving replica. ``name`` (the pod name) is what rendezvous hashing ranks, so a task
    keeps its replica when the pod's address changes but not when a different pod takes the IP."""

    name: str
    base_url: str  # OpenAI base, e.g. http://10.0.0.7:8000/v1


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    policy: Policy = "PrefixAffinity"
    load_bound_percent: int = 125
    sub_agent_affinity: bool = True
    hedging: bool = False
    hedge_after_percentile: int = 95
    hedge_max_extra_percent: int = 5
    ejection_consecutive_errors: int = 5
    ejection_seconds: float = 30.0
    # PrefixAffinity: a task moved off its rendezvous home (load bound, failover, winning hedge)
    # stays on the replica that served it while that one is under the load cap. Not in the CRD:
    # there is no reason to turn it off except to measure what it buys (routing_bench.py).
    stay_after_move: bool = True
    # PrefixAffinity: a call the load bound would move first waits this long for room at the
    # task's replica (spillwait.py); 0 spills at once. Not in the CRD, for the same reason.
    spill_wait_s: float = 0.0
    # The first-token hedge of a call that no later call to its replica has overtaken (overtake.py)
    # waits this many hedge percentiles: it is late with its replica's whole queue, and a duplicate
    # elsewhere computes the task's history cold. Not in the CRD: measured (docs/hedging.md), and
    # there is no reason to change it except to measure it.
    hedge_in_order_factor: float = 4.0
    # A LoRA adapter's tier: calls one replica takes from this pod before the load bound spreads
    # the adapter down its ranking (pool.cap_floor).
    adapter_calls_per_replica: int = 8

    @property
    def eps(self) -> float:
        return self.load_bound_percent / 100.0 - 1.0

    @classmethod
    def from_spec(cls, routing: Any) -> RoutingSettings:
        """From ``ModelReplicaSet.spec.routing``: the pydantic model or its camelCase dict."""
        if routing is None:
            return cls()
        d = routing.model_dump(by_alias=True) if hasattr(routing, "model_dump") else dict(routing)
        hedging = d.get("hedging") or {}
        base = cls()
        return cls(
            policy=d.get("policy", base.policy),
            load_bound_percent=int(d.get("loadBoundPercent", base.load_bound_percent)),
            sub_agent_affinity=bool(d.get("subAgentAffinity", base.sub_agent_affinity)),
            hedging=bool(hedging.get("enabled", base.hedging)),
            hedge_after_percentile=int(hedging.get("afterPercentile", base.hedge_after_percentile)),
            hedge_max_extra_percent=int(hedging.get("maxExtraPercent", base.hedge_max_extra_percent)),
            ejection_consecutive_errors=int(d.get("ejectionConsecutiveErrors", base.ejection_consecutive_errors)),
            ejection_seconds=float(d.get("ejectionSeconds", base.ejection_seconds)),
            adapter_calls_per_replica=int(d.get("adapterCallsPerReplica", base.adapter_calls_per_replica)),
        )


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """``AgentFleet.spec.rateLimit``; None limits are unlimited."""

    tokens_per_minute: int | None = None
    per_tenant_tokens_per_minute: int | None = None
    max_wait_seconds: float = 30.0

    @property
    def enabled(self) -> bool:
        return self.tokens_per_minute is not None or self.per_tenant_tokens_per_minute is not None

    @classmethod
    def from_spec(cls, rate_limit: Any) -> RateLimitSettings:
        if rate_limit is None:
            return cls()
        d = rate_limit.model_dump(by_alias=True) if hasattr(rate_limit, "model_dump") else dict(rate_limit)
        return cls(d.get("tokensPerMinute"), d.get("perTenantTokensPerMinute"), float(d.get("maxWaitSeconds", 30)))


@dataclass(frozen=True, slots=True)
class Tier:
    """One ModelReplicaSet the client routes to: its name (for metrics and rate-limit keys), the
    model name sent in requests, and its routing settings."""

    name: str
    model: str
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    # The model is a LoRA adapter: a replica serves it fast only while it sits in one of its GPU
    # slots, so every task of the adapter ranks the replicas alike (client._key), from a home
    # balanced over all the set's adapters (pool.adapter_home).
    adapter: bool = False
    adapters: tuple[str, ...] = ()  # every adapter of the set (its spec.adapters), for balanced homes


def routine_kinds(routine_steps: list[str]) -> frozenset[str]:
    """AgentFleet.spec.routineSteps -> the ModelRequest kinds sent to the routine tier."""
    return frozenset(ROUTINE_KINDS[s] for s in routine_steps)
