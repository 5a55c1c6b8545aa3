"""The engine's counters and histograms as plain data (no prometheus_client here).

Keeping them pure lets a simulated-clock benchmark read goodput straight from the bucket counts,
exactly as the autoscaler will from Prometheus, without an HTTP scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

from .metrics_spec import FINISH_REASONS, bucket_bounds


@dataclass
class Histogram:
    """Cumulative-on-read histogram: ``counts[i]`` observations with value <= ``bounds[i]``
    (non-cumulative storage), plus one overflow slot for +Inf."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # Prometheus buckets are "le" (<=): bisect_left puts a value equal to a bound in that bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, cumulative count) pairs, the last with bound +Inf."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += c
            out.append((bound, running))
        return out

    def share_at_most(self, bound: float) -> float | None:
        """Share of observations <= bound (bound must be a bucket edge); None when empty."""
        if self.count == 0:
            return None
        idx = self.bounds.index(bound)
        return sum(self.counts[: idx + 1]) / self.count


@dataclass
class EngineStats:
    """Everything /metrics shows; gauges are refreshed by the engine after each step."""

    max_model_len: int
    num_running: int = 0
    num_waiting: int = 0
    kv_usage: float = 0.0
    prefix_queries: int = 0
    prefix_hits: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    num_preemptions: int = 0
    request_success: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0))
    steps: int = 0
    busy_time_s: float = 0.0  # engine time spent in steps, for utilisation-style baselines

    h_ttft: Histogram = field(init=False)
    h_itl: Histogram = field(init=False)
    h_tpot: Histogram = field(init=False)
    h_e2e: Histogram = field(init=False)
    h_queue: Histogram = field(init=False)
    h_inference: Histogram = field(init=False)
    h_prefill: Histogram = field(init=False)
    h_decode: Histogram = field(init=False)
    h_prompt_tokens: Histogram = field(init=False)
    h_generation_tokens: Histogram = field(init=False)
    h_max_tokens: Histogram = field(init=False)
    h_iteration_tokens: Histogram = field(init=False)

    def __post_init__(self) -> None:
        def make(family: str) -> Histogram:
            return Histogram(bucket_bounds(family, self.max_model_len))  # type: ignore[arg-type]

        self.h_ttft = make("time_to_first_token")
        self.h_itl = make("inter_token_latency")
        self.h_tpot = make("inter_token_latency")
        for name in ("h_e2e", "h_queue", "h_inference", "h_prefill", "h_decode"):
            setattr(self, name, make("request_latency"))
        for name in ("h_prompt_tokens", "h_generation_tokens", "h_max_tokens"):
            setattr(self, name, make("request_tokens"))
        self.h_iteration_tokens = make("iteration_tokens")

    @property
    def prefix_hit_rate(self) -> float | None:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else None
