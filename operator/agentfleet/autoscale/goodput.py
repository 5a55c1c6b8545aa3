"""Goodput from Prometheus histogram buckets, without I/O.

Goodput here is the share of requests that met the latency SLO over the window, read straight
from vLLM's cumulative ``_bucket`` series (``increase(...[window])`` per pod, summed by ``le``).
A bucket only tells how many observations were ``<= le``; nothing inside a bucket is known.

SLO that is not a bucket edge: we ROUND DOWN to the largest edge ``<=`` the SLO and say so in a
note that the autoscaler puts into its reason and condition message. Rounding down counts a
request as good only when it surely met the SLO, so goodput is under-estimated and the error
pushes toward more replicas, never toward a silent SLO breach. Interpolating inside the bucket
(as histogram_quantile does) would invent a distribution we do not have. When the SLO is below
the first edge there is nothing to round to: that objective is REFUSED (no figure, a note), and
the autoscaler keeps scaling on the queue alone.

Several objectives (TTFT, time per output token, end-to-end): the histograms are separate, so
the joint share "met every target" is not observable. We report the minimum of the per-objective
shares, which is an upper bound of the joint share and exact when misses coincide - they mostly
do, since queueing delays every latency of a request together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# vLLM histogram families per objective (V1 engine names).
TTFT_METRIC = "vllm:time_to_first_token_seconds"
TPOT_METRIC = "vllm:request_time_per_output_token_seconds"
E2E_METRIC = "vllm:e2e_request_latency_seconds"

# Below this many finished requests in the window a share is noise: no goodput correction.
MIN_REQUESTS = 20
# A window falls short of the target only when its misses would be this unlikely from a fleet
# exactly at the target: 2 misses in 100 calls read 0.98, but a 0.985 fleet shows that many in
# 44 % of its windows, and scaling on them buys replicas for noise (docs/autoscaling.md).
SHORTFALL_ALPHA = 0.05

Buckets = Sequence[tuple[float, float]]  # (le, cumulative count), le may be +Inf


@dataclass(frozen=True)
class Objective:
    """One latency target: a histogram family and a threshold in seconds."""

    name: str  # short label used in reasons: ttft, tpot, e2e
    metric: str
    seconds: float


@dataclass(frozen=True)
class Share:
    """Share of observations within one objective's threshold."""

    objective: Objective
    good: float
    total: float
    edge: float | None  # the bucket edge actually used; None when refused
    note: str | None = None  # set when the SLO was rounded or refused

    @property
    def fraction(self) -> float | None:
        if self.edge is None or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.good / self.total))


@dataclass(frozen=True)
class Goodput:
    """Combined attainment over the objectives that could be evaluated."""

    fraction: float | None  # None: no requests in the window, or every objective refused
    requests: float  # finished requests in the window (max over objectives' counts)
    shares: tuple[Share, ...]
    notes: tuple[str, ...]

    @property
    def significant(self) -> bool:
        return self.fraction is not None and self.requests >= MIN_REQUESTS

    @property
    def worst(self) -> Share | None:
        """The objective's share the fraction was read from (the lowest)."""
        return min((s for s in self.shares if s.fraction is not None), key=lambda s: s.fraction or 0.0, default=None)

    def short_of(self, target: float) -> bool:
        """Significant, under ``target``, and by more than chance: the worst objective's misses
        are at least as many as a fleet meeting the target exactly shows with probability under
        SHORTFALL_ALPHA (binomial over that objective's requests in the window)."""
        worst = self.worst
        if not self.significant or worst is None or self.fraction is None or self.fraction >= target:
            return False
        return binomial_tail(round(worst.total), round(worst.total - worst.good), 1.0 - target) < SHORTFALL_ALPHA


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space from k up (n may be thousands)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
        total += term
        if term < 1e-12 * total:
            break  # past the mode the terms fall at least geometrically
    return min(1.0, total)


def objectives_from_slo(ttft_ms: int, tpot_ms: int, e2e_ms: int) -> tuple[Objective, ...]:
    """The enabled objectives of spec.autoscaling.goodput (0 disables one)."""
    out = []
    if ttft_ms > 0:
        out.append(Objective("ttft", TTFT_METRIC, ttft_ms / 1000.0))
    if tpot_ms > 0:
        out.append(Objective("tpot", TPOT_METRIC, tpot_ms / 1000.0))
    if e2e_ms > 0:
        out.append(Objective("e2e", E2E_METRIC, e2e_ms / 1000.0))
    return tuple(out)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def merge_buckets(per_pod: Iterable[Buckets]) -> list[tuple[float, float]]:
    """Sum cumulative bucket counts of several pods by ``le`` (pods share vLLM's bucket list;
    an edge missing on one pod is simply absent from its sum, which only happens across versions)."""
    sums: dict[float, float] = {}
    for buckets in per_pod:
        for le, count in buckets:
            if math.isnan(count):
                continue  # a pod whose series started inside the window: increase() gave NaN
            sums[le] = sums.get(le, 0.0) + count
    return sorted(sums.items())


def share_within(objective: Objective, buckets: Buckets) -> Share:
    """Share of observations ``<= objective.seconds``, rounding the SLO down to a bucket edge."""
    ordered = sorted(buckets)
    total = next((c for le, c in ordered if math.isinf(le)), ordered[-1][1] if ordered else 0.0)
    finite = [(le, c) for le, c in ordered if not math.isinf(le)]
    # Float edges come back from Prometheus as strings ("0.1"); compare with a relative tolerance.
    below = [(le, c) for le, c in finite if le <= objective.seconds * (1 + 1e-9)]
    if not below:
        first = _fmt(finite[0][0]) if finite else "none"
        note = (
            f"{objective.name} SLO {_fmt(objective.seconds)} is below the first bucket edge ({first}) of "
            f"{objective.metric}: objective ignored"
        )
        return Share(objective, 0.0, total, None, note)
    edge, good = below[-1]
    note = None
    if not math.isclose(edge, objective.seconds, rel_tol=1e-9):
        note = f"{objective.name} SLO {_fmt(objective.seconds)} is not a bucket edge: counted as {_fmt(edge)}"
    return Share(objective, good, total, edge, note)


def goodput(objectives: Sequence[Objective], buckets_by_metric: Mapping[str, Buckets]) -> Goodput:
    """Combine the objectives' shares; a metric without buckets contributes nothing."""
    shares: list[Share] = []
    notes: list[str] = []
    for obj in objectives:
        buckets = buckets_by_metric.get(obj.metric)
        if not buckets:
            continue
        share = share_within(obj, buckets)
        shares.append(share)
        if share.note:
            notes.append(share.note)
    fractions = [s.fraction for s in shares if s.fraction is not None]
    requests = max((s.total for s in shares), default=0.0)
    return Goodput(min(fractions) if fractions else None, requests, tuple(shares), tuple(notes))
