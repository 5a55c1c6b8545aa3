"""Model client for agents: sticky prefix-cache routing (rendezvous hashing with bounded load),
failover with full-jitter backoff, outlier ejection, hedging, a Redis token bucket per model and
tenant, and model tiers. ``RoutingModelClient`` implements the loop's ``ModelClient`` seam.

Pure parts (no I/O): hashing, backoff, ejection, quantile, hedging, settings, pool.
I/O: transport (aiohttp), ratelimit (Redis), kube (Kubernetes EndpointSlices), metrics.
"""

from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.factory import build_routing_client
from agentfleet_runtime.routing.metrics import RoutingMetrics, default_metrics
from agentfleet_runtime.routing.ratelimit import RateLimited, RedisRateLimiter
from agentfleet_runtime.routing.settings import Endpoint, RateLimitSettings, RoutingSettings, Tier, routine_kinds
from agentfleet_runtime.routing.sources import ReplicaSource, StaticSource
from agentfleet_runtime.routing.transport import HttpTransport, Transport

__all__ = [
    "Endpoint",
    "HttpTransport",
    "RateLimitSettings",
    "RateLimited",
    "RedisRateLimiter",
    "ReplicaSource",
    "RoutingMetrics",
    "RoutingModelClient",
    "RoutingSettings",
    "StaticSource",
    "Tier",
    "Transport",
    "build_routing_client",
    "default_metrics",
    "routine_kinds",
]
