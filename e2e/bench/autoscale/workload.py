"""The autoscale benchmark's workload: the SLOs and shapes of the fleet, and the day of agent tasks
(two bursts, a long day, or a trace-like Gamma process)."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from agentfleet_sim import HashedPrompt

GPUS_PER_REPLICA = 4


TASK_SLO_S = 60.0


TTFT_SLO_S = 2.5  # a bucket edge of vllm:time_to_first_token_seconds


# Per-call SLO derived from the task SLO: a p95 task makes ~29 sequential calls of ~40 output
# tokens plus tool waits within 60 s, which leaves ~1 s of decode per call: TPOT <= 25 ms (a
# bucket edge; an idle 70B TP-4 replica decodes at ~20.5 ms per token).
TPOT_SLO_S = 0.025


PERIOD_S = 15.0


LOAD_RANGE_S = (150.0, 240.0)  # model load per replica, drawn uniformly


# Where in the run (shares of it) the two bursts of the bursts workloads start, uniformly.
BURST_WINDOWS = ((0.2, 0.35), (0.55, 0.75))


MAX_REPLICAS = 16


MIN_REPLICAS = 1


SYSTEM_PROMPT = list(range(1, 4097))  # shared system prompt + tool schemas (prefix-cached)


# block_size 128 (vLLM accepts up to 128 on CUDA) instead of 16: 8x fewer prefix-cache blocks per
# 20-30K-token agent prompt, which is where the simulator spends its time; at most 127 tokens of
# KV per sequence are wasted to rounding (<1 % of an agent context).
BENCH_ENGINE = dict(output_tokens_median=40.0, output_tokens_sigma=0.6, max_model_len=65536, block_size=128)


# Prompts grow call by call: hashed as they grow, not re-hashed whole on every call.
SYSTEM_PROMPT_HASHED = HashedPrompt(SYSTEM_PROMPT, BENCH_ENGINE["block_size"])


@dataclass(frozen=True)
class Workload:
    minutes: float
    mean_rate: float  # tasks/s averaged over the run
    seed: int
    bursts: tuple[tuple[float, float], ...]  # (start fraction of the run, duration seconds)
    burst_height: float = 0.0
    peak_factor: float = 8.0
    # "bursts": Poisson arrivals on the diurnal curve plus the two bursts; "trace": the
    # BurstGPT-shaped workload (see TRACE_* below): Gamma renewal arrivals on a working-day curve.
    kind: str = "bursts"

    def shape(self, t: float) -> float:
        """Un-normalized rate: diurnal sin^4 curve (trough 5 % of its peak) + trapezoid bursts."""
        day = self.minutes * 60.0
        if self.kind == "trace":
            return _working_day(t / day)
        d = 0.05 + 0.95 * math.sin(math.pi * t / day) ** 4
        for start_frac, dur in self.bursts:
            s = start_frac * day
            ramp = 30.0
            if s <= t <= s + dur:
                d += self.burst_height * min(1.0, (t - s) / ramp, (s + dur - t) / ramp)
        return d

    @classmethod
    def make(cls, minutes: float, mean_rate: float, seed: int, burst_s: float = 150.0) -> Workload:
        rng = random.Random(seed)
        # Two bursts, one on the rising flank and one past the diurnal peak. At the default 150 s
        # they are short next to the model load time (150-240 s): no reactive policy can serve
        # their peak with new replicas, so they measure held headroom and not over-ordering GPUs
        # that arrive after the burst. Bursts longer than the load time measure scaling.
        bursts = tuple((rng.uniform(lo, hi), burst_s) for lo, hi in BURST_WINDOWS)
        w = cls(minutes, mean_rate, seed, bursts)

        def ratio(height: float) -> float:
            cand = cls(minutes, mean_rate, seed, bursts, height)
            grid = [cand.shape(t) for t in range(0, int(minutes * 60), 5)]
            return max(grid) / (sum(grid) / len(grid))

        # Solve the burst height so that peak / mean = 8 (numerically, on a 5 s grid). The ratio
        # rises with the height towards 1 / (the bursts' share of the run): when the bursts take
        # 1/8 of the run or more, no height reaches 8 and the workload is refused, not run at a
        # lower peak factor under the same name.
        hi = 50.0
        while ratio(hi) < w.peak_factor:
            hi *= 2
            if hi > 1e5:
                raise ValueError(
                    f"two {burst_s:g} s bursts in {minutes:g} min cannot make peak / mean = {w.peak_factor:g} (at "
                    f"most x{ratio(hi):.2f}); lengthen --minutes"
                )
        lo = 0.0
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if ratio(mid) < w.peak_factor else (lo, mid)
        return cls(minutes, mean_rate, seed, bursts, lo)

    def rate(self, t: float) -> float:
        return self.mean_rate * self.shape(t) / self._mean_shape

    @property
    def _mean_shape(self) -> float:
        cached = getattr(self, "_ms", None)
        if cached is None:
            grid = [self.shape(t) for t in range(0, int(self.minutes * 60), 5)]
            cached = sum(grid) / len(grid)
            object.__setattr__(self, "_ms", cached)
        return cached

    def peak_rate(self) -> float:
        return max(self.rate(t) for t in range(0, int(self.minutes * 60), 5))

    @classmethod
    def trace(cls, minutes: float, mean_rate: float, seed: int) -> Workload:
        return cls(minutes, mean_rate, seed, (), kind="trace")

    def arrivals(self, end: float) -> list[float]:
        """Task arrival times over [0, end). Bursts: a Poisson process of rate(t) by thinning.
        Trace: a Gamma renewal process (shape TRACE_GAMMA_SHAPE, so clumps and gaps beyond
        Poisson's) in operational time, i.e. gaps of mean 1 in the integral of rate(t)."""
        rng = random.Random(self.seed + 17)
        out: list[float] = []
        if self.kind != "trace":
            lam_max = self.peak_rate() * 1.05
            t = 0.0
            while True:
                t += rng.expovariate(lam_max)
                if t >= end:
                    return out
                if rng.random() < self.rate(t) / lam_max:
                    out.append(t)
        step = 1.0
        cum = [0.0]
        for i in range(int(end / step)):
            cum.append(cum[-1] + self.rate((i + 0.5) * step) * step)
        k = TRACE_GAMMA_SHAPE
        x = 0.0
        while True:
            x += rng.gammavariate(k, 1.0 / k)
            if x >= cum[-1]:
                return out
            i = bisect.bisect_left(cum, x)
            lo, hi = cum[i - 1], cum[i]
            out.append((i - 1 + (x - lo) / (hi - lo if hi > lo else 1.0)) * step)


# The trace-shaped workload, from BurstGPT (Wang et al., "BurstGPT: A Real-world Workload Dataset to
# Optimize LLM Serving Systems", arXiv 2401.17644; dataset card github.com/HPMLL/BurstGPT: Azure
# OpenAI GPT traffic over 121 days): the paper models request arrivals as Gamma-distributed gaps
# and token lengths as Zipf, and its generator (BurstGPT-Perf, example/src/burstgpt/config.py)
# defaults to Gamma shape 0.5 (coefficient of variation 1.41: burstier than Poisson's 1.0) and
# Zipf parameter 1.1. The dataset card shows daily and weekly periodicity; its figures are plots,
# so the curve's amplitude here (a working-day plateau 6.7x its night trough) is this bench's
# choice, not a figure from the paper.
TRACE_GAMMA_SHAPE = 0.5


TRACE_ZIPF = 1.1


TRACE_TOOL_TOKENS_MAX = 2048


def _working_day(x: float) -> float:
    """Night trough 0.15, rising over 0.25-0.40 of the day to 1.0, falling over 0.75-0.92."""

    def smooth(a: float, b: float) -> float:
        u = min(1.0, max(0.0, (x - a) / (b - a)))
        return u * u * (3 - 2 * u)

    return 0.15 + 0.85 * smooth(0.25, 0.40) * (1.0 - smooth(0.75, 0.92))


def _zipf_table(a: float, n: int) -> list[float]:
    w = [k**-a for k in range(1, n + 1)]
    total = sum(w)
    acc, out = 0.0, []
    for v in w:
        acc += v / total
        out.append(acc)
    return out


_ZIPF_CDF = _zipf_table(TRACE_ZIPF, TRACE_TOOL_TOKENS_MAX)


def make_workload(kind: str, minutes: float, mean_rate: float, seed: int, burst_s: float) -> Workload:
    return (
        Workload.trace(minutes, mean_rate, seed)
        if kind == "trace"
        else Workload.make(minutes, mean_rate, seed, burst_s)
    )


def burst_spans(w: Workload) -> list[tuple[float, float]]:
    """The bursts, for the onset split: the two set bursts; for the trace workload, the spans
    where the realized arrivals over 60 s are at least twice the curve's (and at least 4 tasks),
    so clumps of the Gamma process count as bursts."""
    day = w.minutes * 60.0
    if w.kind != "trace":
        return [(f * day, d) for f, d in w.bursts]
    times = w.arrivals(day)
    spans: list[tuple[float, float]] = []
    step, width = 15.0, 60.0
    t = 0.0
    start: float | None = None
    while t + width <= day:
        n = bisect.bisect_left(times, t + width) - bisect.bisect_left(times, t)
        expected = sum(w.rate(t + i) for i in range(int(width)))
        hot = n >= 4 and n >= 2 * expected
        if hot and start is None:
            start = t
        elif not hot and start is not None:
            spans.append((start, t + width - start))
            start = None
        t += step
    if start is not None:
        spans.append((start, day - start))
    return spans
