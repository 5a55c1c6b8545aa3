"""Configuration of the routing client as the runtime's config file carries it, and the
constructor that turns it into a ``RoutingModelClient``.

The shapes reuse the CRDs' own API models (``ModelReplicaSet.spec.routing``,
``AgentFleet.spec.rateLimit``), so the operator copies those blocks verbatim into the runtime's
config and defaults have one source.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentfleet_contract.runtime_config import ModelRoutingConfig, TierConfig

from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.ratelimit import RedisRateLimiter, fleet_prefix
from agentfleet_runtime.routing.settings import RateLimitSettings, RoutingSettings, Tier, routine_kinds
from agentfleet_runtime.routing.sources import ReplicaSource, StaticSource

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace() -> str:
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if NAMESPACE_FILE.exists():
        return NAMESPACE_FILE.read_text().strip()
    return "default"


def _source(tier: TierConfig, namespace: str) -> ReplicaSource:
    if tier.endpoints:
        return StaticSource(tier.endpoints)
    from agentfleet_runtime.routing.kube import EndpointSliceSource  # only in a cluster

    if tier.service:
        # An evaluation gate's candidate: the set's canary Service only (docs/evaluation-gate.md).
        return EndpointSliceSource(namespace, tier.service)
    return EndpointSliceSource.for_model_replica_set(namespace, tier.model_replica_set)


def _tier(tier: TierConfig) -> Tier:
    return Tier(
        tier.model_replica_set,
        tier.model,
        RoutingSettings.from_spec(tier.routing),
        adapter=tier.adapter,
        adapters=tuple(tier.adapters),
    )


def build_routing_client(
    config: ModelRoutingConfig | dict[str, Any],
    *,
    redis: Any = None,
    fleet: str = "default",
    fleet_namespace: str = "",  # the AgentFleet's (its keys' prefix), not the replicas' namespace
    api_key: str | None = None,
    routine_api_key: str | None = None,
    timeout: float = 120.0,
    max_retries: int = 2,
    max_output_tokens: int = 1024,
    temperature: float = 0.0,
    send_tools: bool = True,
    metrics: RoutingMetrics | None = None,
) -> RoutingModelClient:
    """``redis`` is an asyncio Redis client (the worker's own); needed only with a rate limit.
    ``api_key`` goes to the primary tier's replicas, ``routine_api_key`` to the routine tier's
    (each ModelReplicaSet requires its own; None: the primary's)."""
    from agentfleet_runtime.routing.transport import HttpTransport

    cfg = config if isinstance(config, ModelRoutingConfig) else ModelRoutingConfig.model_validate(config)
    namespace = cfg.namespace or pod_namespace()
    limits = RateLimitSettings.from_spec(cfg.rate_limit)
    limiter = None
    if limits.enabled and redis is not None:
        limiter = RedisRateLimiter(redis, limits, prefix=fleet_prefix(fleet, fleet_namespace))
    if limits.enabled and redis is None:
        raise ValueError("rateLimit is set but no Redis client was given")
    return RoutingModelClient(
        (_tier(cfg.primary), _source(cfg.primary, namespace)),
        routine=(_tier(cfg.routine), _source(cfg.routine, namespace)) if cfg.routine else None,
        routine_kinds=routine_kinds(list(cfg.routine_steps)) if cfg.routine else frozenset(),
        transport=HttpTransport(api_key),
        routine_transport=HttpTransport(routine_api_key) if cfg.routine and routine_api_key is not None else None,
        rate_limiter=limiter,
        metrics=metrics,
        timeout=timeout,
        max_retries=max_retries,
        max_output_tokens=max_output_tokens,
        temperature=temperature,
        send_tools=send_tools,
        stream=cfg.stream,
    )
