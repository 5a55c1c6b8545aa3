"""What the ModelReplicaSet scaling policy is configured with (from spec.autoscaling) and what it
remembers between evaluations (learned load time, recommendations, the order in flight)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentfleet.autoscale.common import Bounds, Recommendation

LOAD_TIME_ALPHA = 0.3
MAX_SEEN = 512


@dataclass(frozen=True)
class PolicyConfig:
    min_replicas: int = 1
    max_replicas: int = 4
    target_queue_depth: int = 8
    kv_threshold: float = 0.9  # 0-1
    target_fraction: float = 0.95
    window_seconds: float = 60.0
    period_seconds: float = 15.0
    up_window_seconds: float = 30.0
    down_window_seconds: float = 300.0
    max_up_step: int = 4
    max_down_step: int = 1
    stale_after_seconds: float = 60.0  # a sample older than this counts as missing
    initial_load_seconds: float = 300.0  # prior for the model load time before any replica loaded
    # Scale up on running requests past the level seen within SLO. Off by default: at light load
    # the learned level is low and the term over-orders (figures: docs/autoscaling.md).
    concurrency_term: bool = False
    # Scale up on tasks queued/in flight at the AgentFleets using this model (the task layer).
    # Off by default: when bursts are shorter than the model load time the replicas it orders
    # early still arrive after them (figures: docs/autoscaling.md).
    task_term: bool = False
    # Once the tasks fit half the fleet, scale down after one window instead of the down window.
    task_fast_down: bool = True

    @classmethod
    def from_spec(cls, a: object, initial_load_seconds: float = 300.0) -> PolicyConfig:
        """From an ``api.modelreplicaset.Autoscaling`` (typed loosely: this module imports no API)."""
        g = a.goodput  # type: ignore[attr-defined]
        period = float(a.evaluation_period_seconds)  # type: ignore[attr-defined]
        return cls(
            min_replicas=a.min_replicas,  # type: ignore[attr-defined]
            max_replicas=a.max_replicas,  # type: ignore[attr-defined]
            target_queue_depth=a.target_queue_depth_per_replica,  # type: ignore[attr-defined]
            kv_threshold=a.kv_cache_usage_threshold_percent / 100.0,  # type: ignore[attr-defined]
            target_fraction=g.target_fraction,
            window_seconds=float(a.window_seconds),  # type: ignore[attr-defined]
            period_seconds=period,
            up_window_seconds=float(a.scale_up_stabilization_seconds),  # type: ignore[attr-defined]
            down_window_seconds=float(a.scale_down_stabilization_seconds),  # type: ignore[attr-defined]
            max_up_step=a.max_scale_up_step,  # type: ignore[attr-defined]
            max_down_step=a.max_scale_down_step,  # type: ignore[attr-defined]
            # Prometheus scrapes every few seconds; four periods without a sample means it is gone.
            stale_after_seconds=max(30.0, 4 * period),
            initial_load_seconds=initial_load_seconds,
        )

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.min_replicas, self.max_replicas, self.max_up_step, self.max_down_step)


@dataclass(frozen=True)
class LoadTime:
    """EWMA of observed model load (create -> ready) durations for one ModelReplicaSet."""

    seconds: float
    samples: int = 0
    seen: frozenset[str] = frozenset()  # replicas already counted, so a pod is learned once

    def observe(self, durations: Mapping[str, float]) -> LoadTime:
        seconds, samples, seen = self.seconds, self.samples, set(self.seen)
        for name, d in sorted(durations.items(), key=lambda kv: kv[1]):
            if name in seen or d <= 0:
                continue
            # The first sample replaces the prior outright; later ones move it by alpha.
            seconds = d if samples == 0 else (1 - LOAD_TIME_ALPHA) * seconds + LOAD_TIME_ALPHA * d
            samples += 1
            seen.add(name)
        if len(seen) > MAX_SEEN:
            seen = set(sorted(seen)[-MAX_SEEN:])
        return LoadTime(seconds, samples, frozenset(seen))


@dataclass(frozen=True)
class PolicyState:
    load_time: LoadTime
    recommendations: tuple[Recommendation, ...] = ()
    waiting_history: tuple[tuple[float, float], ...] = ()
    # Agent tasks queued and in flight per ready replica over the window: the load the window's
    # goodput was measured under (a miss is laid to its peak, not to the count at this instant).
    task_load_history: tuple[tuple[float, float], ...] = ()
    ok_running_per_replica: float | None = None  # concurrency per replica at which the SLO held
    tight_tasks_per_replica: float | None = None  # fewest agent tasks per replica seen to fail the SLO
    burst_floor: int | None = None  # the replica count before the current scale-up began
    ordered_for: int | None = None  # the credited recommendation behind the last scale-up
    # The evidence that last scale-up was sized on (goodput fraction, agent tasks queued and in
    # flight); kept while its replicas load, so that a collapse since can be told from lag.
    ordered_goodput: float | None = None
    ordered_tasks: float | None = None
    burst_ended_at: float | None = None  # when replicas still loading for a burst were cancelled
    ordered_at: float | None = None  # when the scale-up in flight was ordered (credit.lift)

    @classmethod
    def initial(cls, config: PolicyConfig) -> PolicyState:
        return cls(load_time=LoadTime(config.initial_load_seconds))
