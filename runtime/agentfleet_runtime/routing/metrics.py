"""Prometheus metrics of the routing client (prometheus_client).

One ``RoutingMetrics`` per registry: the worker uses the default registry (scraped with the rest of
the runtime's metrics); tests and benchmarks pass their own so counts do not leak between runs.
Labels are bounded: ``model`` is a ModelReplicaSet, ``replica`` one of its pods (gone pods keep
their last values until the process restarts, which Prometheus handles as stale series), ``kind``
the loop's three step kinds.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else REGISTRY
        self.calls = Counter(
            "agentfleet_routing_replica_calls_total",
            "Model call attempts sent to one replica, by outcome (ok, error, timeout, cancelled).",
            ["model", "replica", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "agentfleet_routing_replica_call_duration_seconds",
            "Latency of successful model call attempts per replica and step kind.",
            ["model", "replica", "kind"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "agentfleet_routing_replica_errors_total",
            "Failed attempts per replica, by reason (status code, timeout, connection).",
            ["model", "replica", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            "agentfleet_routing_failovers_total",
            "Attempts retried on the next replica in the task's order.",
            ["model"],
            registry=r,
        )
        self.hedges = Counter(
            "agentfleet_routing_hedges_total",
            "Hedged calls by result: won (the duplicate answered first), lost (the original did), "
            "failed (both failed), denied (over the maxExtraPercent budget).",
            ["model", "result"],
            registry=r,
        )
        self.hedge_threshold = Gauge(
            "agentfleet_routing_hedge_threshold_seconds",
            "Current hedge delay (observed percentile) per step kind.",
            ["model", "kind"],
            registry=r,
        )
        self.affinity = Counter(
            "agentfleet_routing_affinity_total",
            (
                "Calls by cache affinity: hit (same replica as the task's previous call), miss (another one), first "
                "(no previous call)."
            ),
            ["model", "result"],
            registry=r,
        )
        self.stalls = Counter(
            "agentfleet_routing_stalls_total",
            "Replicas judged stalled (hedging on): calls in flight and no token or answer for the stall threshold; "
            "calls then go elsewhere and those waiting there are hedged.",
            ["model", "replica"],
            registry=r,
        )
        self.ejections = Counter(
            "agentfleet_routing_ejections_total",
            "Replicas ejected after consecutive errors.",
            ["model", "replica"],
            registry=r,
        )
        self.ejected = Gauge(
            "agentfleet_routing_replica_ejected",
            "1 while a replica is ejected from routing (this pod's view).",
            ["model", "replica"],
            registry=r,
        )
        self.inflight = Gauge(
            "agentfleet_routing_replica_inflight",
            "Calls this pod has in flight per replica.",
            ["model", "replica"],
            registry=r,
        )
        self.replicas = Gauge(
            "agentfleet_routing_replicas", "Serving replicas known from the replica set.", ["model"], registry=r
        )
        self.tier_calls = Counter(
            "agentfleet_routing_tier_calls_total",
            "Model calls by tier (primary, routine), model and step kind: the share the routine tier takes.",
            ["tier", "model", "kind"],
            registry=r,
        )
        self.policy = Gauge(
            "agentfleet_routing_policy_info",
            "1 per tier in use: its ModelReplicaSet, routing policy, load bound, hedging, and the step kinds it takes.",
            ["tier", "model", "policy", "load_bound_percent", "hedging", "kinds"],
            registry=r,
        )
        self.ratelimit_wait = Histogram(
            "agentfleet_routing_ratelimit_wait_seconds",
            "Time calls waited for rate-limit tokens.",
            ["model"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.ratelimit_rejected = Counter(
            "agentfleet_routing_ratelimit_rejected_total",
            (
                "Calls refused because the tokens would not be available before the wait deadline, by binding scope "
                "(model, tenant)."
            ),
            ["model", "scope"],
            registry=r,
        )


_default: RoutingMetrics | None = None


def default_metrics() -> RoutingMetrics:
    """The process-wide instance on the default registry (created once: names register once)."""
    global _default
    if _default is None:
        _default = RoutingMetrics()
    return _default
