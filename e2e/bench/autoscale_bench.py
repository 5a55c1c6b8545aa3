#!/usr/bin/env python3
"""Autoscaling policy benchmark on the vLLM simulator's virtual clock: the goodput-per-GPU-hour frontier.

A bursty agent workload is served by a fleet of simulated 70B TP-4 replicas (4 GPUs each, the
simulator's default engine; model load 150-240 s per replica, drawn per replica) under every
configuration below, each run on every scored seed; a configuration is scored by its mean task
goodput and mean GPU-hours over the seeds:

  hpa-util@T   HPA on utilization: the engine's busy fraction over the last window (what a GPU
               utilization metric reports), ``ceil(current x util / target)``, 10 % tolerance,
               loading pods counted at 0 % when scaling up (as HPA does for unready pods), no
               scale-up stabilization, 300 s down window, up to 4 pods per 15 s; T swept;
  keda-queue@N KEDA-style threshold on ``sum(vllm:num_requests_waiting)``: an External metric with
               AverageValue N, ``ceil(waiting / N)``, HPA's default behaviour otherwise; N swept;
  fixed@N      no autoscaler: N replicas from the start, all warm (a capacity-planned fleet);
  agentfleet@C the policy of ``agentfleet.autoscale.policy.decide`` fed from the replicas' gauges
               and histogram buckets as the controller feeds it from Prometheus, with the learned
               profile (autoscale/forecast.py) at burst coverage C (burstCoveragePercent / 100);
  reactive     (``--reactive``) the same policy without the profile: the last rounds' autoscaler.

The profile is what an operator learns from earlier days: before the scored seeds, agentfleet
runs the ``--history-seeds`` days one after the other (seeds never scored), carrying the profile
(its ConfigMap) and the learned load time (status) from day to day; each scored day then starts
from what those days taught. One run is one compressed day, so the profile's period is the run
length (forecast_config). Tune ``--coverage`` on seeds you do not score (``--seeds 201-215``), then
score with the chosen value. ``--af-min-replicas`` sweeps agentfleet's minReplicas the same way (one
configuration per coverage and floor, ``agentfleet@C/minN``), and ``--baseline-min-replicas`` sweeps
HPA's and KEDA's (``hpa-util@T/minN``): a knob swept for agentfleet is swept for the baselines too.
Every agentfleet configuration learns its own history days (``learning_plan``), so its figures do
not depend on which others share the command line.

Workloads (``--workload``; seeded):
  default  60 min, two 150 s bursts (30 s ramps included) on a compressed diurnal curve, scaled
           so peak / mean arrival rate = 8; Poisson arrivals. Bursts shorter than the model load:
           only capacity standing at the onset serves them.
  long     240 min, two 600 s bursts: bursts that outlast the load, where scaling itself counts.
  trace    60 min, shaped from BurstGPT's published statistics (TRACE_* below): Gamma-distributed
           arrival gaps (shape 0.5), a working-day curve, Zipf(1.1) tool-result lengths.
A task is 10-30 sequential model calls on a growing history (shared 4K-token system prompt + tool
schemas, then each step appends the call's output and a 200-800-token tool result: 20-30K
tokens by the end), tool waits between calls (log-normal, median 0.4 s, capped 5 s), and 30 % of
steps fan out to 3 sub-agents (one call each on the parent's history, in parallel, routed to the
parent's replica). Tasks stick to one replica (prefix affinity) and move only when it drains.
Task SLO: 60 s; call SLO (the one agentfleet's policy is given): TTFT <= 2.5 s and time per
output token <= 25 ms. Tasks are paired across configurations: each draws from its own
generator (seed, arrival index), so every configuration of a seed runs the same tasks, and a
difference between two of them on a seed is the policies', not which task drew what.

Printed per workload: every configuration's mean task goodput and GPU-hours with the spread over
seeds (sd, min-max), task p95, peak replicas, and the tasks over the SLO by when they started
(summed over seeds): in a burst's onset (its first 240 s, the longest model load: only replicas
running or already loading when the burst starts can serve it), in the rest of a burst, or
outside bursts. Then the goals for each agentfleet configuration:
  goal 1: goodput >= the best baseline's (by mean goodput) with >= 15 % fewer mean GPU-hours;
  goal 2: not below the baselines' frontier (the Pareto points, goodput interpolated linearly at
          agentfleet's GPU-hours), and by how many points above it;
and a PNG of the frontier with agentfleet's point (``--out``). Runs go to ``--jobs`` processes.

    .venv/bin/python e2e/bench/autoscale_bench.py --workload default --seeds 11-20 --coverage 0.5 [--jobs 2]

Engines (``--engines vllm,llm-d-sim``; agentfleet_sim.quirks.BEHAVIOURS): every configuration
runs on replicas that behave as each engine, named ``name[engine]`` beyond the first, and a table
compares each one's replica decisions with the first engine's on the same seed (the timing is the
same on every engine: only what its metrics say differs). Steps but the
last of a task answer with a tool call (a sub-agent's call and the last step in text), which
llm-d's simulator counts under ``tool_calls``. ``--pre-fix-reading`` adds agentfleet read as the
code before issue 46 did (completions ``stop|length`` only, the queue witness over the queue
histogram's own count) on the engines but the first, as the contrast.
    .venv/bin/python e2e/bench/autoscale_bench.py --workload default --tune --seeds 201-205 --coverage 0,0.25,0.5,0.75

Seeds: agentfleet's reactive settings (AF_TUNING) were tuned on seeds 1-3 and the burst coverage
on 201-215 (TUNING_SEEDS); the history days use 101-107 (a week). A scored run refuses all of them, so
every figure it prints comes from workloads that tuning and learning never saw.

agentfleet's reactive settings can be varied for tuning runs (the baselines never change):
AF_TARGET_FRACTION (per-call goodput target, 0.985), AF_DOWN_WINDOW (300 s), AF_MAX_UP (8),
AF_WINDOW (60 s), AF_CONCURRENCY=1 (the concurrency term), AF_TASKS=1 (the task-layer scale-up
term), AF_TASK_DOWN=0 (no task-layer release of a burst's replicas).

The agentfleet policy sees the task layer as the controller does: the tasks in flight at the
AgentFleets whose modelRef is the ModelReplicaSet (``agentfleet_tasks_in_flight`` +
``agentfleet_queue_depth``; here the tasks started and not ended, as no worker limit queues them).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "runtime"))

from agentfleet.autoscale import (  # noqa: E402
    Capacity,
    FleetView,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
    goodput,
    merge_buckets,
    objectives_from_slo,
)
from agentfleet.autoscale.forecast import ForecastConfig, Profile, plan, within_slo  # noqa: E402
from agentfleet.autoscale.goodput import E2E_METRIC, TPOT_METRIC, TTFT_METRIC  # noqa: E402
from agentfleet.autoscale.policy import LoadTime  # noqa: E402
from agentfleet.autoscale.terms import DOWN_HEADROOM  # noqa: E402
from agentfleet.autoscale.witness import QUEUE_METRIC, goodput_with_witnesses, queue_witness  # noqa: E402
from agentfleet.promql import UNSERVED_REASONS  # noqa: E402
from agentfleet_sim import (  # noqa: E402
    BEHAVIOURS,
    ApiError,
    EngineConfig,
    HashedPrompt,
    Quirks,
    Replica,
    ReplicaConfig,
    run_virtual,
)

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


# -- workload -----------------------------------------------------------------------------------


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
                    f"two {burst_s:g} s bursts in {minutes:g} min cannot make peak / mean = {w.peak_factor:g} (at most x{ratio(hi):.2f}); lengthen --minutes"
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


# -- fleet and router ---------------------------------------------------------------------------


@dataclass(eq=False)
class Slot:
    replica: Replica
    created: float
    load_s: float
    draining: bool = False
    removed: float | None = None
    tasks: int = 0  # tasks pinned here
    busy_mark: float = 0.0  # engine busy seconds at the last policy evaluation
    hist_marks: list[tuple[float, dict[str, list[tuple[float, float]]], float]] = field(default_factory=list)

    def ready(self, now: float) -> bool:
        return not self.draining and now >= self.created + self.load_s


class Fleet:
    def __init__(self, seed: int, engine: EngineConfig, quirks: Quirks | None = None) -> None:
        self.slots: list[Slot] = []
        self.rng = random.Random(seed * 7919 + 1)
        self.engine = engine
        self.quirks = quirks or Quirks()  # how the replicas' engine differs from vLLM (--engines)
        self.ids = itertools.count()
        self.gpu_seconds_closed = 0.0
        self.scale_events = 0
        # The task layer (an AgentFleet's agentfleet_tasks_in_flight): tasks started and not ended.
        self.tasks_in_flight = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def live(self) -> list[Slot]:
        return [s for s in self.slots if s.removed is None]

    def active(self) -> list[Slot]:
        return [s for s in self.slots if s.removed is None and not s.draining]

    async def add(self, now: float, warm: bool = False) -> None:
        # 70B BF16 weights (~140 GB) from a node-local cache, then CUDA-graph capture: 2.5-4 min.
        load = 0.0 if warm else self.rng.uniform(*LOAD_RANGE_S)
        cfg = ReplicaConfig(engine=self.engine, startup_seconds=load, quirks=self.quirks)
        replica = Replica(cfg, name=f"replica-{next(self.ids)}")
        await replica.start()
        self.slots.append(Slot(replica, now, load))

    async def set_desired(self, n: int) -> None:
        now = self.now()
        active = self.active()
        if n == len(active):
            return
        self.scale_events += 1
        if n > len(active):
            for _ in range(n - len(active)):
                await self.add(now)
            return
        # Remove loading replicas first (no work on them), then the ones holding fewest tasks.
        victims = sorted(active, key=lambda s: (s.ready(now), s.tasks, s.replica.inflight))[: len(active) - n]
        for s in victims:
            s.draining = True
            s.replica.drain()
        await self.reap()

    async def reap(self) -> None:
        now = self.now()
        for s in self.slots:
            if s.removed is None and s.draining and s.replica.inflight == 0:
                s.removed = now
                self.gpu_seconds_closed += (now - s.created) * GPUS_PER_REPLICA
                await s.replica.stop()
        # Removed replicas are closed (their GPU-seconds counted): drop them from every scan.
        self.slots = [s for s in self.slots if s.removed is None]

    def gpu_seconds(self, now: float) -> float:
        return self.gpu_seconds_closed + sum((now - s.created) * GPUS_PER_REPLICA for s in self.live())

    def ready(self, now: float) -> list[Slot]:
        return [s for s in self.slots if s.removed is None and s.ready(now)]

    @staticmethod
    def overloaded(slot: Slot, ready: list[Slot]) -> bool:
        """Routing's load bound (spec.routing.loadBoundPercent 125): a task leaves its replica
        when that holds more than 125 % of the mean pinned tasks and a lighter one exists."""
        if len(ready) < 2:
            return False
        mean = sum(s.tasks for s in ready) / len(ready)
        return slot.tasks > 1.25 * mean + 1 and min(s.tasks for s in ready) < slot.tasks - 1

    @staticmethod
    def pick(ready: list[Slot]) -> Slot | None:
        if not ready:
            return None
        return min(ready, key=lambda s: (s.tasks, s.replica.inflight))


# -- agents ---------------------------------------------------------------------------------------


@dataclass
class Results:
    task_latencies: list[tuple[float, float]] = field(default_factory=list)  # (start, latency)
    calls: list[tuple[float, float, float, int]] = field(default_factory=list)  # (end, ttft, tpot, ok)
    retries: int = 0


class Draws:
    """One task's own random draws and token ids. Every configuration on a seed then runs the
    same tasks (steps, sub-agents, tool output, think times, and content, which sets the
    simulator's output lengths), so configurations are compared on paired tasks: with one
    generator shared by all tasks, its draws went to whichever task asked first, and that order
    moves with the fleet, so two fleet sizes on one seed ran different tasks."""

    SPAN = 10_000_000  # token ids reserved per task (a 30-step task with sub-agents uses < 100k)

    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(seed * 1_000_003 + index)
        self.next = 100_000 + index * self.SPAN

    def fresh(self, n: int) -> range:
        start = self.next
        self.next += n  # disjoint ranges: unique content, no false prefix hits
        return range(start, start + n)


class Agents:
    def __init__(self, fleet: Fleet, results: Results, seed: int, zipf_tools: bool = False) -> None:
        self.fleet = fleet
        self.results = results
        self.seed = seed
        self.started = itertools.count()
        self.zipf_tools = zipf_tools

    def tool_tokens(self, rng: random.Random) -> int:
        if self.zipf_tools:  # the trace workload: Zipf(1.1) over 1-2048 tokens (BurstGPT's length model)
            return bisect.bisect_left(_ZIPF_CDF, rng.random()) + 1
        return rng.randint(200, 800)

    async def call(
        self,
        holder: list[Slot | None],
        prompt: HashedPrompt,
        draws: Draws,
        max_tokens: int = 256,
        tool_call: bool = False,
    ) -> range:
        # The reply's token ids are reserved before the call: sub-agents finish in an order that
        # depends on the fleet, and their content must not.
        reply = draws.fresh(max_tokens)
        loop = asyncio.get_running_loop()
        while True:
            slot = holder[0]
            now = loop.time()
            ready = self.fleet.ready(now)
            if slot is not None and slot.ready(now) and self.fleet.overloaded(slot, ready):
                slot.tasks -= 1  # bounded-load prefix affinity: spill to a lighter replica (re-prefill once)
                slot = None
            if slot is None or not slot.ready(now):
                if slot is not None:
                    slot.tasks -= 1
                slot = self.fleet.pick(ready)
                holder[0] = slot
                if slot is None:
                    await asyncio.sleep(1.0)  # nothing ready (the fleet is loading): wait like a client retry
                    self.results.retries += 1
                    continue
                slot.tasks += 1
            try:
                c = await slot.replica.generate(prompt, max_tokens, tool_call=tool_call)
            except ApiError:
                self.results.retries += 1
                await asyncio.sleep(0.2)
                continue
            tpot = (c.latency - c.ttft) / (c.completion_tokens - 1) if c.completion_tokens > 1 else 0.0
            self.results.calls.append((c.finished, c.ttft, tpot, int(c.ttft <= TTFT_SLO_S and tpot <= TPOT_SLO_S)))
            return reply[: c.completion_tokens]

    async def task(self) -> None:
        loop = asyncio.get_running_loop()
        draws = Draws(self.seed, next(self.started))
        rng = draws.rng
        start = loop.time()
        self.fleet.tasks_in_flight += 1
        steps = rng.randint(10, 30)
        prompt = SYSTEM_PROMPT_HASHED.extend(draws.fresh(rng.randint(100, 400)))
        holder: list[Slot | None] = [None]
        try:
            for step in range(steps):
                prompt = prompt.extend(await self.call(holder, prompt, draws, tool_call=step < steps - 1))
                if step < steps - 1 and rng.random() < 0.3:
                    subs = [self.call(holder, prompt.extend(draws.fresh(rng.randint(80, 200))), draws, 256) for _ in range(3)]
                    outs = await asyncio.gather(*subs)
                    prompt = prompt.extend(list(itertools.chain.from_iterable(outs)))
                await asyncio.sleep(min(5.0, rng.lognormvariate(math.log(0.4), 0.8)))
                prompt = prompt.extend(draws.fresh(self.tool_tokens(rng)))
        finally:
            if holder[0] is not None:
                holder[0].tasks -= 1
            self.fleet.tasks_in_flight -= 1
        self.results.task_latencies.append((start, loop.time() - start))


# -- policies -------------------------------------------------------------------------------------

Policy = Callable[[Fleet, float], int]


def _hist_buckets(h: Any) -> list[tuple[float, float]]:
    return [(le, float(c)) for le, c in h.cumulative()]


READ_METRICS = (TTFT_METRIC, TPOT_METRIC, E2E_METRIC, QUEUE_METRIC)


def _snapshot(s: Slot, pre_fix: bool = False) -> tuple[dict[str, list[tuple[float, float]]], float]:
    """Histogram buckets and finished requests, as PromReader reads them (promql.py); ``pre_fix``:
    only ``stop`` and ``length`` count as finished, as the query before issue 46 did."""
    st = s.replica.stats()
    hists = (st.h_ttft, st.h_tpot, st.h_e2e, st.h_queue)
    buckets = {m: _hist_buckets(h) for m, h in zip(READ_METRICS, hists, strict=True)}
    served = ("stop", "length") if pre_fix else [k for k in st.request_success if k not in UNSERVED_REASONS]
    done = float(sum(st.request_success.get(k, 0) for k in served))
    return buckets, done


def _pre_fix_goodput(objectives: Any, buckets: dict[str, list[tuple[float, float]]]) -> Any:
    """goodput_with_witnesses as it was before issue 46: the witness over the queue count alone."""
    base = goodput(objectives, buckets)
    ttft = next((o for o in objectives if o.name == "ttft"), None)
    share = queue_witness(ttft, buckets[QUEUE_METRIC]) if ttft is not None and buckets.get(QUEUE_METRIC) else None
    if share is None or share.fraction is None or base.fraction is None or share.fraction >= base.fraction:
        return base
    return replace(base, fraction=share.fraction)


class HpaUtil:
    """HPA on a utilization metric (the engine's busy fraction, like DCGM's GPU utilization)."""

    def __init__(self, target: float, min_replicas: int = MIN_REPLICAS) -> None:
        self.target = target
        self.min_replicas = min_replicas
        self.recs: list[tuple[float, int]] = []

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        current = len(active)
        utils = []
        for s in active:
            busy = s.replica.stats().busy_time_s
            if s.ready(now):
                utils.append(min(1.0, (busy - s.busy_mark) / PERIOD_S))
            s.busy_mark = busy
        if not utils:
            return current
        ready_mean = sum(utils) / len(utils)
        ratio = ready_mean / self.target
        if abs(ratio - 1.0) <= 0.1:
            raw = current
        elif ratio > 1.0:
            # Unready pods count as 0 % when scaling up (HPA's conservative assumption).
            raw = math.ceil(sum(utils) / self.target)
            raw = max(raw, current) if len(utils) < current else raw
        else:
            raw = math.ceil(current * ratio)
        return _hpa_behaviour(self.recs, now, current, raw, self.min_replicas)


class KedaQueue:
    """KEDA Prometheus scaler on sum(vllm:num_requests_waiting), AverageValue threshold."""

    def __init__(self, threshold: float, min_replicas: int = MIN_REPLICAS) -> None:
        self.threshold = threshold
        self.min_replicas = min_replicas
        self.recs: list[tuple[float, int]] = []

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        waiting = sum(s.replica.engine.num_waiting for s in active if s.ready(now))
        raw = math.ceil(waiting / self.threshold)
        return _hpa_behaviour(self.recs, now, len(active), raw, self.min_replicas)


def _hpa_behaviour(recs: list[tuple[float, int]], now: float, current: int, raw: int, min_replicas: int) -> int:
    """HPA defaults: up no window, max(4 pods, 100 %) per 15 s; down 300 s window, 100 % per 15 s."""
    recs.append((now, raw))
    recs[:] = [(t, r) for t, r in recs if t > now - 300.0]
    if raw > current:
        desired = min(raw, current + max(4, current))
    else:
        desired = max(r for _, r in recs)
        desired = min(desired, current)
    return max(min_replicas, min(MAX_REPLICAS, desired))


# What agentfleet was tuned on (AF_TUNING: seeds 1-3; burstCoveragePercent, targetFraction and the
# floor: 201-215, since a 5-seed mean moves by about 1.5 points, as much as the coverages to be told
# apart): never scored.
TUNING_SEEDS = (1, 2, 3, *range(201, 216))

AF_TUNING = {
    # A task is ~20 sequential calls, so it feels the calls' tail: the per-call goodput target
    # sits above the API's default 0.95. Swept on seed 1 (task goodput @ GPU-hours): 0.95 ->
    # 0.607 @ 15.1, 0.98 -> 0.642 @ 15.7, 0.985 -> 0.655 @ 15.9, 0.99 -> 0.662 @ 18.1.
    "target_fraction": float(os.environ.get("AF_TARGET_FRACTION", "0.985")),
    "concurrency_term": os.environ.get("AF_CONCURRENCY", "0") == "1",
    "down_window": float(os.environ.get("AF_DOWN_WINDOW", "300")),
    "max_up_step": int(os.environ.get("AF_MAX_UP", "8")),
    "max_down_step": int(os.environ.get("AF_MAX_DOWN", "1")),
    "window": float(os.environ.get("AF_WINDOW", "60")),
    # Seeds 1/2/3 (task goodput @ GPU-hours), without the task layer: 0.651 @ 17.65, 0.627 @ 20.22,
    # 0.687 @ 20.40; releasing a burst's replicas once the tasks fit half the fleet (the default):
    # 0.618 @ 14.17, 0.657 @ 16.80, 0.650 @ 16.51; adding the task scale-up term: 0.620 @ 19.93,
    # 0.586 @ 22.25, 0.643 @ 23.83 (it orders earlier in a burst, but the replicas still arrive
    # after the burst's arrivals end); with target 0.99: 0.638 @ 18.32, 0.537 @ 15.52, 0.690 @ 18.56.
    "task_term": os.environ.get("AF_TASKS", "0") == "1",
    "task_fast_down": os.environ.get("AF_TASK_DOWN", "1") == "1",
}


class Fixed:
    """No autoscaler: the same replica count throughout (a capacity-planned static fleet)."""

    def __init__(self, replicas: float) -> None:
        self.replicas = int(replicas)

    def __call__(self, fleet: Fleet, now: float) -> int:
        return self.replicas


class Oracle:
    """Not a baseline but a ceiling for capacity held before bursts: ``high`` replicas over each
    span, ``low`` elsewhere, ordered a longest load time plus a period ahead of it. The spans are
    what the oracle knows (oracle_spans): the windows the bursts start in, the most a policy could
    learn from history, or each burst's start itself, which no policy can know."""

    def __init__(self, spans: list[tuple[float, float]], high: int, low: int) -> None:
        self.spans, self.high, self.low = spans, high, low

    def __call__(self, fleet: Fleet, now: float) -> int:
        return self.high if any(a <= now < b for a, b in self.spans) else self.low


def oracle_spans(workload: Workload, mode: str) -> list[tuple[float, float]]:
    """``window``: from a load time before each window opens until its burst ends (it sees the
    burst begin and end, as the standby release does); ``onset``: from a load time before each
    burst. Both hold a task SLO past the burst's end, for the tasks it started."""
    day = workload.minutes * 60.0
    lead = LOAD_RANGE_S[1] + PERIOD_S
    spans = []
    for (lo, _), (start, dur) in zip(BURST_WINDOWS, workload.bursts, strict=True):
        opens = lo * day if mode == "window" else start * day
        spans.append((opens - lead, start * day + dur + TASK_SLO_S))
    return spans


def forecast_config(minutes: float, coverage: float) -> ForecastConfig:
    """The product's defaults with the day compressed to the run: one run is one day, so the
    period and the burst season (an hour of a day) shrink with it; the trailing level that tells
    an onset stays in real seconds (bursts are as long in both)."""
    period = minutes * 60.0
    d = ForecastConfig()
    return replace(d, coverage=coverage, period_seconds=period, season_seconds=d.season_seconds * period / d.period_seconds, gpus_per_replica=GPUS_PER_REPLICA)


@dataclass(frozen=True)
class Memory:
    """What an operator keeps from earlier days: the profile (its ConfigMap), the learned load
    time (status.learnedModelLoadSeconds); the day index offsets the clock so days follow on."""

    profile: dict[str, Any] | None = None
    load_s: float | None = None
    day: int = 0


class AgentfleetPolicy:
    def __init__(
        self,
        window: float = AF_TUNING["window"],
        initial_load_s: float = 300.0,
        min_replicas: int = MIN_REPLICAS,
        forecast: ForecastConfig | None = None,
        memory: Memory | None = None,
        target_fraction: float | None = None,
        pre_fix: bool = False,
    ) -> None:
        self.pre_fix = pre_fix  # read as the code before issue 46 did (_snapshot, _pre_fix_goodput)
        self.config = PolicyConfig(
            min_replicas=min_replicas,
            max_replicas=MAX_REPLICAS,
            target_queue_depth=4,
            kv_threshold=0.9,
            # AF_CONCURRENCY=1 (0.581 @ 18.9 GPU-h with 0.99), AF_DOWN_WINDOW=600 (0.610 @ 29.0:
            # holds GPUs ordered too late for a burst) and AF_WINDOW=30 (0.627 @ 18.8) were worse.
            target_fraction=AF_TUNING["target_fraction"] if target_fraction is None else target_fraction,
            concurrency_term=AF_TUNING["concurrency_term"],
            task_term=AF_TUNING["task_term"],
            task_fast_down=AF_TUNING["task_fast_down"],
            window_seconds=window,
            period_seconds=PERIOD_S,
            up_window_seconds=15.0,
            down_window_seconds=AF_TUNING["down_window"],
            # As HPA's default allows (max(4 pods, 100 %) per 15 s): a burst is met in one order.
            max_up_step=AF_TUNING["max_up_step"],
            max_down_step=AF_TUNING["max_down_step"],
            initial_load_seconds=initial_load_s,
        )
        self.state = PolicyState.initial(self.config)
        self.objectives = objectives_from_slo(int(TTFT_SLO_S * 1000), int(TPOT_SLO_S * 1000), 0)
        self.reasons: list[str] = []
        self.forecast = forecast
        memory = memory or Memory()
        self.offset = memory.day * (forecast.period_seconds if forecast else 0.0)
        self.profile = Profile.from_json(memory.profile, forecast) if memory.profile and forecast else Profile()
        if memory.load_s:
            self.state = replace(self.state, load_time=LoadTime(memory.load_s, samples=1))
        if self.profile.capacity:
            # As the controller does after a restart: the failure level comes back with the profile.
            self.state = replace(self.state, tight_tasks_per_replica=self.profile.capacity / DOWN_HEADROOM)
        self.terms: list[tuple[float, str]] = []

    def memory(self, day: int) -> Memory:
        return Memory(self.profile.to_json(), self.state.load_time.seconds if self.state.load_time.samples else None, day)

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        ready = [s for s in active if s.ready(now)]
        self.state = replace(self.state, load_time=self.state.load_time.observe({s.replica.name: s.load_s for s in ready}))
        samples = []
        per_pod: dict[str, list[list[tuple[float, float]]]] = {m: [] for m in READ_METRICS}
        completed = 0.0
        for s in ready:
            st = s.replica.stats()
            samples.append(ReplicaSample(s.replica.name, st.num_waiting, st.num_running, st.kv_usage))
            buckets, done = _snapshot(s, self.pre_fix)
            s.hist_marks.append((now, buckets, done))
            # increase(...[window]) per pod: now minus the oldest mark inside the window.
            while len(s.hist_marks) > 1 and s.hist_marks[0][0] < now - self.config.window_seconds:
                s.hist_marks.pop(0)
            t0, old, done0 = s.hist_marks[0]
            if t0 < now:
                for m, b in buckets.items():
                    per_pod[m].append([(le, c - oc) for (le, c), (_, oc) in zip(b, old[m], strict=True)])
                completed += (done - done0) / (now - t0)
        merged = {m: merge_buckets(v) for m, v in per_pod.items() if v}
        read = _pre_fix_goodput if self.pre_fix else goodput_with_witnesses
        gp = read(self.objectives, merged)
        fleet_view = FleetView(
            current=len(active),
            ready=tuple(s.replica.name for s in ready),
            starting=tuple(Starting(s.replica.name, now - s.created) for s in active if not s.ready(now)),
            ready_ages={s.replica.name: now - s.created - s.load_s for s in ready},
        )
        # The controller reads the same figure from the AgentFleets whose modelRef is this model.
        at = now + self.offset
        obs = Observation(at=at, samples=tuple(samples), goodput=gp, completion_rate=completed or None, tasks=float(fleet.tasks_in_flight))
        floors: tuple[Any, ...] = ()
        hold = None
        if self.forecast is not None:
            tight = self.state.tight_tasks_per_replica
            ok = within_slo(obs.tasks, len(ready), gp.fraction if gp else None, bool(gp and gp.significant), self.config.target_fraction)
            planned = plan(self.forecast, self.profile, (), at, obs.tasks, tight * DOWN_HEADROOM if tight else None, self.state.load_time.seconds, PERIOD_S, ok, self.config.window_seconds)
            self.profile, floors, hold = planned.profile, planned.floors, planned.hold
        out = decide(self.config, self.state, fleet_view, obs, Capacity(placeable_extra=MAX_REPLICAS - len(active)), floors, hold)
        self.state = out.state
        self.terms.append((now, out.decision.term))
        if out.decision.changed:
            self.reasons.append(f"t={now:6.0f}s {out.decision.reason}")
        return out.decision.desired


# -- one run --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    name: str
    task_goodput: float
    call_goodput: float
    task_p95: float
    gpu_hours: float
    scale_events: int
    peak_replicas: int
    tasks: int
    timeline: list[tuple[float, float, int, int, float | None]]  # t, offered tasks/s, replicas, ready, call goodput
    reasons: list[str]
    wall_s: float
    cpu_s: float  # this process's CPU time for the run (the grid's cost; wall depends on load)
    task_records: list[tuple[float, float]] = field(default_factory=list)  # (start, latency) per task
    memory: Memory | None = None  # agentfleet's, for the next day
    seed: int = 0
    bursts: list[tuple[float, float]] = field(default_factory=list)  # (start s, duration s) for the onset split
    terms: dict[str, int] = field(default_factory=dict)  # evaluations per term that set agentfleet's recommendation
    calls: int = 0  # model calls the tasks made (the same on every configuration of a seed: paired tasks)


def make_workload(kind: str, minutes: float, mean_rate: float, seed: int, burst_s: float) -> Workload:
    return Workload.trace(minutes, mean_rate, seed) if kind == "trace" else Workload.make(minutes, mean_rate, seed, burst_s)


def run_policy(
    name: str,
    policy_kind: str,
    param: float,
    minutes: float,
    mean_rate: float,
    seed: int,
    initial: int,
    burst_s: float = 150.0,
    min_replicas: int = MIN_REPLICAS,
    workload_kind: str = "bursts",
    memory: Memory | None = None,
    target_fraction: float | None = None,
    engine_kind: str = "vllm",
    pre_fix: bool = False,
    max_num_seqs: int | None = None,
) -> RunResult:
    """``policy_kind`` agentfleet: ``param`` < 0 runs the reactive policy alone (no profile);
    otherwise ``param`` is the burst coverage (0-1) and ``memory`` the days before;
    ``target_fraction``: its spec.autoscaling.goodput.targetFraction (default AF_TUNING's).
    ``engine_kind``: what the replicas behave as (agentfleet_sim BEHAVIOURS); ``pre_fix``:
    agentfleet reads them as before issue 46; ``max_num_seqs``: the replicas' slots (default vLLM's
    1,024: requests hardly ever wait for one)."""
    wall = time.monotonic()
    cpu = time.process_time()
    workload = make_workload(workload_kind, minutes, mean_rate, seed, burst_s)
    engine = EngineConfig(**BENCH_ENGINE, **({"max_num_seqs": max_num_seqs} if max_num_seqs else {}))
    results = Results()
    policy: Any
    if policy_kind == "hpa":
        policy = HpaUtil(param, min_replicas)
    elif policy_kind == "keda":
        policy = KedaQueue(param, min_replicas)
    elif policy_kind == "fixed":
        policy = Fixed(param)
        initial = int(param)
    elif policy_kind in ("oracle-window", "oracle-onset"):
        high, low = divmod(int(param), 100)
        policy = Oracle(oracle_spans(workload, policy_kind.removeprefix("oracle-")), high, low)
        initial = low
    else:
        fc = forecast_config(minutes, param) if param >= 0 else None
        policy = AgentfleetPolicy(
            min_replicas=min_replicas, forecast=fc, memory=memory, target_fraction=target_fraction, pre_fix=pre_fix
        )
    timeline: list[tuple[float, float, int, int, float | None]] = []

    async def main() -> Fleet:
        loop = asyncio.get_running_loop()
        fleet = Fleet(seed, engine, BEHAVIOURS[engine_kind])
        for _ in range(initial):
            await fleet.add(0.0, warm=True)  # the run starts with loaded replicas
        agents = Agents(fleet, results, seed, zipf_tools=workload.kind == "trace")
        end = minutes * 60.0
        tasks: set[asyncio.Task[None]] = set()

        async def arrivals() -> None:
            for t in workload.arrivals(end):
                await asyncio.sleep(max(0.0, t - loop.time()))
                task = asyncio.ensure_future(agents.task())
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        async def controller() -> None:
            next_t = PERIOD_S
            call_mark = 0
            while True:
                await asyncio.sleep(next_t - loop.time())
                now = loop.time()
                await fleet.reap()
                desired = policy(fleet, now)
                await fleet.set_desired(desired)
                window_calls = results.calls[call_mark:]
                call_mark = len(results.calls)
                cg = sum(c[3] for c in window_calls) / len(window_calls) if window_calls else None
                timeline.append((now, workload.rate(now), len(fleet.active()), sum(1 for s in fleet.active() if s.ready(now)), cg))
                next_t += PERIOD_S

        ctl = asyncio.ensure_future(controller())
        await arrivals()
        # Let the tasks started before the end finish (the fleet keeps being scaled meanwhile).
        while tasks:
            await asyncio.sleep(5.0)
        ctl.cancel()
        fleet.final_now = loop.time()  # type: ignore[attr-defined]
        return fleet

    fleet = run_virtual(main(), start=0.0)
    # GPU-hours over the arrival window + drain tail (same tail for every policy: until all tasks end).
    gpu_hours = fleet.gpu_seconds(fleet.final_now) / 3600.0  # type: ignore[attr-defined]
    lat = [latency for _, latency in results.task_latencies]
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
    tg = sum(1 for x in lat if x <= TASK_SLO_S) / len(lat) if lat else float("nan")
    cg = sum(c[3] for c in results.calls) / len(results.calls) if results.calls else float("nan")
    return RunResult(
        name=name,
        task_goodput=tg,
        call_goodput=cg,
        task_p95=p95,
        gpu_hours=gpu_hours,
        scale_events=fleet.scale_events,
        peak_replicas=max((r for _, _, r, _, _ in timeline), default=0),
        tasks=len(lat),
        timeline=timeline,
        reasons=getattr(policy, "reasons", []),
        wall_s=time.monotonic() - wall,
        cpu_s=time.process_time() - cpu,
        task_records=sorted(results.task_latencies),
        memory=policy.memory(memory.day + 1 if memory else 1) if isinstance(policy, AgentfleetPolicy) else None,
        seed=seed,
        bursts=burst_spans(workload),
        terms={t: sum(1 for _, x in getattr(policy, "terms", []) if x == t) for t in {x for _, x in getattr(policy, "terms", [])}},
        calls=len(results.calls),
    )


def _run(job: dict[str, Any]) -> RunResult:
    return run_policy(**job)


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


# -- report ---------------------------------------------------------------------------------------


ONSET_S = LOAD_RANGE_S[1]
PHASES = ("onset", "rest", "outside")
WORKLOADS = {
    # name: (minutes, burst seconds, kind)
    "default": (60.0, 150.0, "bursts"),
    "long": (240.0, 600.0, "bursts"),
    "trace": (60.0, 0.0, "trace"),
}


def phase(r: RunResult, t: float) -> str:
    """A task's start: in a burst's first ONSET_S seconds (only replicas running or already
    loading when the burst began can serve it: that measures held capacity), in the rest of a
    burst, or outside bursts."""
    for s, d in r.bursts:
        if s <= t < s + min(ONSET_S, d):
            return "onset"
        if s + ONSET_S <= t < s + d:
            return "rest"
    return "outside"


def split(rows: list[RunResult]) -> dict[str, tuple[int, int]]:
    tally = {p: [0, 0] for p in PHASES}
    for r in rows:
        for start, latency in r.task_records:
            t = tally[phase(r, start)]
            t[0] += latency > TASK_SLO_S
            t[1] += 1
    return {p: (m, n) for p, (m, n) in tally.items()}


@dataclass
class Config:
    name: str
    kind: str  # agentfleet, hpa, keda, fixed
    rows: list[RunResult]

    @property
    def goodput(self) -> float:
        return statistics.fmean(r.task_goodput for r in self.rows)

    @property
    def gpu_hours(self) -> float:
        return statistics.fmean(r.gpu_hours for r in self.rows)

    def spread(self, attr: str) -> str:
        v = [getattr(r, attr) for r in self.rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return f"sd {sd:.3f} [{min(v):.3f}-{max(v):.3f}]" if attr == "task_goodput" else f"sd {sd:.2f} [{min(v):.1f}-{max(v):.1f}]"


def table(configs: list[Config]) -> str:
    head = (
        f"{'configuration':<20} {'n':>3} {'task goodput':>12} {'spread over seeds':>25} {'GPU-hours':>9} {'spread over seeds':>22} "
        f"{'p95 s':>6} {'peak':>4} " + " ".join(f"{'missed ' + p:>15}" for p in PHASES)
    )
    lines = [head, "-" * len(head)]
    for c in configs:
        sp = split(c.rows)
        p95 = statistics.fmean(r.task_p95 for r in c.rows)
        peak = max(r.peak_replicas for r in c.rows)
        lines.append(
            f"{c.name:<20} {len(c.rows):>3} {c.goodput:>12.3f} {c.spread('task_goodput'):>25} {c.gpu_hours:>9.2f} {c.spread('gpu_hours'):>22} {p95:>6.1f} {peak:>4d} "
            + " ".join(f"{f'{m}/{n}':>15}" for m, n in sp.values())
        )
    return "\n".join(lines)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The baseline frontier: points (GPU-hours, goodput) that no other point beats on both."""
    front: list[tuple[float, float]] = []
    for h, g in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or g > front[-1][1]:
            front.append((h, g))
    return front


def frontier_at(front: list[tuple[float, float]], h: float) -> float:
    """The frontier's goodput at ``h`` GPU-hours: linear between its points; left of the
    cheapest the cheapest point's goodput (a baseline there would do at least that with more);
    right of the dearest, the dearest's."""
    if h <= front[0][0]:
        return front[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(front):
        if x0 <= h <= x1:
            return y0 + (y1 - y0) * (h - x0) / (x1 - x0)
    return front[-1][1]


def goals(af: Config, baselines: list[Config]) -> list[str]:
    best = max(baselines, key=lambda c: c.goodput)
    need_h = 0.85 * best.gpu_hours
    met1 = af.goodput >= best.goodput and af.gpu_hours <= need_h
    front = pareto([(c.gpu_hours, c.goodput) for c in baselines])
    ref = frontier_at(front, af.gpu_hours)
    margin = (af.goodput - ref) * 100
    return [
        f"{af.name}: {af.goodput:.3f} @ {af.gpu_hours:.2f} GPU-h (mean of {len(af.rows)} seeds)",
        f"  goal 1: best baseline by goodput {best.name} {best.goodput:.3f} @ {best.gpu_hours:.2f} GPU-h; needs >= {best.goodput:.3f} at <= {need_h:.2f} GPU-h: "
        f"goodput {(af.goodput - best.goodput) * 100:+.1f} points, GPU-hours {(1 - af.gpu_hours / best.gpu_hours) * 100:+.1f} % saved -> {'MET' if met1 else 'MISSED'}",
        f"  goal 2: baseline frontier at {af.gpu_hours:.2f} GPU-h = {ref:.3f} ({', '.join(f'{h:.1f}->{g:.3f}' for h, g in front)}); {af.name} {margin:+.1f} points "
        f"-> {'above (>= +5)' if margin >= 5 else 'not below' if margin >= 0 else 'BELOW'}"
        + (f" [outside the baselines' sweep (most {front[-1][0]:.1f} GPU-h): extend --fixed]" if af.gpu_hours > front[-1][0] else ""),
    ]


def plot_frontier(workload: str, configs: list[Config], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    colors = {"hpa": "tab:blue", "keda": "tab:orange", "fixed": "tab:gray", "agentfleet": "tab:red", "reactive": "tab:purple"}
    base = [c for c in configs if c.kind in ("hpa", "keda", "fixed")]
    for kind in ("hpa", "keda", "fixed", "reactive", "agentfleet"):
        cs = [c for c in configs if c.kind == kind]
        if not cs:
            continue
        xs, ys = [c.gpu_hours for c in cs], [c.goodput for c in cs]
        ye = [statistics.stdev([r.task_goodput for r in c.rows]) if len(c.rows) > 1 else 0.0 for c in cs]
        xe = [statistics.stdev([r.gpu_hours for r in c.rows]) if len(c.rows) > 1 else 0.0 for c in cs]
        ax.errorbar(
            xs,
            ys,
            xerr=xe,
            yerr=ye,
            fmt="o" if kind != "agentfleet" else "*",
            ms=7 if kind != "agentfleet" else 14,
            color=colors[kind],
            label=kind,
            alpha=0.8,
            capsize=2,
        )
        for c in cs:
            ax.annotate(
                c.name.split("@")[-1] if kind != "agentfleet" else c.name, (c.gpu_hours, c.goodput), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    front = pareto([(c.gpu_hours, c.goodput) for c in base])
    ax.plot([h for h, _ in front], [g for _, g in front], "k--", lw=1, label="baseline frontier")
    ax.set_xlabel("GPU-hours (mean over seeds; bars: sd)")
    ax.set_ylabel("task goodput (share of tasks within 60 s)")
    ax.set_title(f"Goodput per GPU-hour, workload '{workload}' ({len(configs[0].rows)} seeds)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_timeline(rows: list[RunResult], path: Path) -> None:
    """One seed over time: offered load, replicas (incl. loading) and call goodput per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    first = rows[0].timeline
    axes[0].plot([t / 60 for t, *_ in first], [x[1] for x in first], color="black")
    axes[0].set_ylabel("offered tasks/s")
    axes[0].set_title(f"Seed {rows[0].seed}: offered load, replicas and goodput (simulated 70B TP-4 replicas)")
    for r in rows:
        ts = [t / 60 for t, *_ in r.timeline]
        axes[1].step(ts, [x[2] for x in r.timeline], where="post", label=f"{r.name} ({r.gpu_hours:.1f} GPU-h)")
        # Smooth the per-period call goodput over 4 periods for readability.
        g = [x[4] for x in r.timeline]
        sm = []
        for i in range(len(g)):
            vals = [v for v in g[max(0, i - 3) : i + 1] if v is not None]
            sm.append(sum(vals) / len(vals) if vals else float("nan"))
        axes[2].plot(ts, sm, label=f"{r.name} (tasks in SLO {r.task_goodput:.2f})")
    axes[1].set_ylabel("replicas (incl. loading)")
    axes[1].legend(fontsize=8, loc="upper left")
    axes[2].set_ylabel("call goodput (1 min)")
    axes[2].set_xlabel("simulated minutes")
    axes[2].set_ylim(0, 1.05)
    axes[2].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_ints(text: str) -> list[int]:
    out: list[int] = []
    for part in (p for p in text.split(",") if p):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def history(job: dict[str, Any], seeds: list[int]) -> Memory | None:
    """Run agentfleet through the history days (seeds never scored), one after the other: what
    an operator would have learned, and kept in its ConfigMap, before the scored day."""
    memory: Memory | None = None
    for s in seeds:
        r = run_policy(**{**job, "seed": s, "memory": memory})
        memory = r.memory
    return memory


def learning_plan(af_jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """Each agentfleet configuration learns its history days on its own settings: a profile
    learned under another coverage or floor is not what an operator running this one would have
    (the runs of one configuration must not depend on which others share the command line)."""
    return {name: job for name, _, job in af_jobs}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--workload", choices=sorted(WORKLOADS), default="default", help="default: 150 s bursts in 60 min; long: 600 s in 240 min; trace: BurstGPT-shaped"
    )
    ap.add_argument("--minutes", type=float, help="override the workload's simulated run length (one compressed day)")
    ap.add_argument("--burst-seconds", type=float, help="override the workload's burst length")
    ap.add_argument("--rate", type=float, default=0.12, help="mean task arrivals per second")
    ap.add_argument("--seeds", default="11-20", help="scored seeds (never the tuning or history seeds), e.g. 11-20")
    ap.add_argument("--tune", action="store_true", help="a tuning run: only the tuning seeds (1-3, 201-215) are allowed, and none of them is ever scored")
    ap.add_argument("--history-seeds", default="101-107", help="days agentfleet learns its profile on before each scored day (never scored)")
    ap.add_argument("--coverage", default="0.5", help="agentfleet burstCoveragePercent / 100; a list runs one configuration each (tuning)")
    ap.add_argument("--reactive", action="store_true", help="also run agentfleet without the learned profile (the reactive terms alone)")
    ap.add_argument("--hpa-targets", default="0.5,0.6,0.7,0.8,0.9", help="utilization targets swept for HPA")
    ap.add_argument("--keda-thresholds", default="1,2,4,8,16", help="waiting requests per replica swept for KEDA")
    ap.add_argument("--fixed", default="2-16", help="fixed fleet sizes (all warm, never scaled); empty for none")
    ap.add_argument("--initial", type=int, default=2, help="warm replicas at t=0 (at least --min-replicas)")
    ap.add_argument("--min-replicas", type=int, default=MIN_REPLICAS, help="minReplicas of every autoscaler (agentfleet, HPA, KEDA alike)")
    ap.add_argument(
        "--af-min-replicas",
        default="",
        help="agentfleet's minReplicas (spec.autoscaling.minReplicas) swept: one configuration per (coverage, value), named agentfleet@C/minN, each learning its own history (default: --min-replicas alone)",
    )
    ap.add_argument(
        "--af-goodput-targets",
        default="",
        help="agentfleet's spec.autoscaling.goodput.targetFraction swept: one configuration per value as well, named agentfleet@C/tF (default: AF_TUNING's, unnamed)",
    )
    ap.add_argument(
        "--baseline-min-replicas",
        default="",
        help="HPA's and KEDA's minReplicas swept as agentfleet's is: one configuration per (target, value), named hpa-util@T/minN and keda-queue@N/minN (default: --min-replicas alone)",
    )
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (seeds and configurations run in parallel)")
    ap.add_argument("--out", help="frontier PNG (default e2e/bench/autoscale_frontier_<workload>.png)")
    ap.add_argument("--reasons", action="store_true", help="print agentfleet's scale decisions on the first scored seed")
    ap.add_argument("--only-agentfleet", action="store_true", help="skip the baselines (for tuning runs)")
    ap.add_argument(
        "--oracle",
        default="",
        help="ceilings, not baselines (bursts workloads): HIGH/LOW replica pairs held over the burst windows (oracle-window) and from each burst's start (oracle-onset)",
    )
    ap.add_argument("--save", help="write every run's summary (JSON) here")
    ap.add_argument(
        "--engines",
        default="vllm",
        help=f"engines the replicas behave as ({', '.join(BEHAVIOURS)}): every configuration on each, "
        "compared with the first's decisions",
    )
    ap.add_argument(
        "--pre-fix-reading",
        action="store_true",
        help="also agentfleet read as before issue 46, on the engines but the first (the contrast)",
    )
    ap.add_argument(
        "--max-num-seqs", type=int, help="the replicas' sequence slots (vLLM's 1,024 by default): fewer queue bursts"
    )
    return ap


def on_engines(jobs: list[Job], engines: list[str], pre_fix: bool) -> list[Job]:
    """Each job on each engine (``name[engine]`` beyond the first), plus, with ``pre_fix``, each
    agentfleet job read as before issue 46 on the others (``name[engine,pre-fix]``)."""
    out: list[Job] = []
    for i, kind_of_engine in enumerate(engines):
        for name, kind, job in jobs:
            tag = f"{name}[{kind_of_engine}]" if i else name
            out.append((tag, kind, dict(job, name=tag, engine_kind=kind_of_engine)))
            if i and pre_fix and job.get("policy_kind") == "agentfleet":
                old = f"{name}[{kind_of_engine},pre-fix]"
                out.append((old, kind, dict(job, name=old, engine_kind=kind_of_engine, pre_fix=True)))
    return out


def engines_table(configs: list[Config], engines: list[str]) -> str:
    """Each configuration on the other engines against itself on the first, seed by seed (paired):
    the share of evaluations that set the same replica count, the largest gap, the seeds whose
    whole timeline matched, scale events and peaks (means), and the GPU-hours and task goodput
    differences (mean and range over the seeds)."""
    by_name = {c.name: c for c in configs}
    lines = [
        f"replica decisions on each engine against {engines[0]}'s, paired by seed ({len(configs[0].rows)} seeds):",
        f"{'configuration':<40} {'same count':>10} {'max gap':>7} {'same seeds':>10} {'scale events':>13} {'peak':>11} "
        f"{'GPU-h diff':>20} {'goodput diff':>24}",
    ]
    for c in configs:
        ref = by_name.get(c.name.split("[")[0])
        if ref is None or ref is c:
            continue
        same, gaps, whole, dh, dg = [], [0], 0, [], []
        for a, b in zip(ref.rows, c.rows, strict=True):
            counts = [(x[2], y[2]) for x, y in zip(a.timeline, b.timeline, strict=False)]
            same.append(sum(1 for x, y in counts if x == y) / max(1, len(counts)))
            gaps.extend(abs(x - y) for x, y in counts)
            whole += all(x == y for x, y in counts) and len(a.timeline) == len(b.timeline)
            dh.append(b.gpu_hours - a.gpu_hours)
            dg.append(b.task_goodput - a.task_goodput)
        ev = "/".join(f"{statistics.fmean(r.scale_events for r in x.rows):.1f}" for x in (ref, c))
        peak = "/".join(f"{statistics.fmean(r.peak_replicas for r in x.rows):.1f}" for x in (ref, c))
        lines.append(
            f"{c.name:<40} {statistics.fmean(same):>10.1%} {max(gaps):>7} {whole:>10} {ev:>13} {peak:>11} "
            f"{statistics.fmean(dh):>+6.2f} [{min(dh):+.2f},{max(dh):+.2f}] "
            f"{statistics.fmean(dg):>+7.3f} [{min(dg):+.3f},{max(dg):+.3f}]"
        )
    return "\n".join(lines)


Job = tuple[str, str, dict[str, Any]]  # a configuration: name, kind, run_policy's arguments but the seed


def configurations(args: argparse.Namespace, base: dict[str, Any], kind: str) -> tuple[list[Job], list[Job]]:
    """agentfleet's configurations (one per coverage and minReplicas) and the others (baselines,
    reactive, ceilings), each as (name, kind, run_policy's arguments but the seed). A minReplicas
    swept (``--af-min-replicas``, ``--baseline-min-replicas``) names it (``/minN``) and starts
    the run with at least that many warm replicas, as ``--min-replicas`` does."""
    coverages = [float(x) for x in args.coverage.split(",") if x]
    af_mins = parse_ints(args.af_min_replicas) or [args.min_replicas]
    base_mins = parse_ints(args.baseline_min_replicas) or [args.min_replicas]
    for m in af_mins + base_mins:
        if not 0 < m <= MAX_REPLICAS:
            raise ValueError(f"minReplicas {m} outside 1-{MAX_REPLICAS}")

    def at_min(job: dict[str, Any], m: int, swept: bool) -> dict[str, Any]:
        name = f"{job['name']}/min{m}" if swept else job["name"]
        return dict(job, name=name, min_replicas=m, initial=max(args.initial, m))

    targets: list[float | None] = [float(x) for x in args.af_goodput_targets.split(",") if x] or [None]
    if any(t is not None and not 0 < t <= 1 for t in targets):
        raise ValueError(f"goodput targets {targets} outside (0, 1]")
    af_swept, base_swept = bool(args.af_min_replicas), bool(args.baseline_min_replicas)
    af_jobs: list[Job] = []
    for c in coverages:
        for m in af_mins:
            for t in targets:
                job = at_min(dict(base, name=f"agentfleet@{c:g}", policy_kind="agentfleet", param=c), m, af_swept)
                if t is not None:
                    job = dict(job, name=f"{job['name']}/t{t:g}", target_fraction=t)
                af_jobs.append((job["name"], "agentfleet", job))
    other: list[Job] = []
    if args.reactive:
        other.append(("reactive", "reactive", dict(base, name="reactive", policy_kind="agentfleet", param=-1.0)))
    if not args.only_agentfleet:
        for m in base_mins:
            for t in (float(x) for x in args.hpa_targets.split(",") if x):
                job = at_min(dict(base, name=f"hpa-util@{t:g}", policy_kind="hpa", param=t), m, base_swept)
                other.append((job["name"], "hpa", job))
            for t in (float(x) for x in args.keda_thresholds.split(",") if x):
                job = at_min(dict(base, name=f"keda-queue@{t:g}", policy_kind="keda", param=t), m, base_swept)
                other.append((job["name"], "keda", job))
        for n in parse_ints(args.fixed):
            other.append((f"fixed@{n}", "fixed", dict(base, name=f"fixed@{n}", policy_kind="fixed", param=float(n))))
    for pair in (x for x in args.oracle.split(",") if x):
        high, _, low = pair.partition("/")
        if kind != "bursts":
            raise ValueError("--oracle needs a bursts workload (default or long)")
        for mode in ("window", "onset"):
            name = f"oracle-{mode}@{high}/{low}"
            other.append((name, "oracle", dict(base, name=name, policy_kind=f"oracle-{mode}", param=float(int(high) * 100 + int(low)))))
    return af_jobs, other


def main() -> int:
    ap = parser()
    args = ap.parse_args()

    minutes, burst_s, kind = WORKLOADS[args.workload]
    minutes = args.minutes or minutes
    burst_s = args.burst_seconds or burst_s
    seeds = parse_ints(args.seeds)
    hist = parse_ints(args.history_seeds)
    if args.tune and set(seeds) - set(TUNING_SEEDS):
        ap.error(f"tune on the tuning seeds {TUNING_SEEDS} only: a seed tuned on can no longer be scored")
    if not args.tune and set(seeds) & (set(TUNING_SEEDS) | set(hist)):
        ap.error(f"seeds {sorted(set(seeds) & (set(TUNING_SEEDS) | set(hist)))} were tuned or learned on: score on others (tuning runs take --tune)")
    try:
        wl = make_workload(kind, minutes, args.rate, seeds[0], burst_s)
    except ValueError as e:
        ap.error(str(e))
    base = dict(
        minutes=minutes, mean_rate=args.rate, initial=max(args.initial, args.min_replicas), burst_s=burst_s, min_replicas=args.min_replicas, workload_kind=kind
    )
    if args.max_num_seqs:
        base["max_num_seqs"] = args.max_num_seqs
    shape = (
        f"bursts of {burst_s:g} s (seed {seeds[0]}: at {[round(f * minutes) for f, _ in wl.bursts]} min)"
        if kind == "bursts"
        else f"Gamma(shape {TRACE_GAMMA_SHAPE:g}) arrivals, Zipf({TRACE_ZIPF:g}) tool results"
    )
    print(
        f"workload {args.workload}: {minutes:g} simulated min, mean {args.rate:g} tasks/s, peak {wl.peak_rate():.2f} tasks/s (x{wl.peak_rate() / args.rate:.2f}), {shape}; "
        f"model load 150-240 s; scored seeds {args.seeds}, history days {args.history_seeds}",
        flush=True,
    )
    try:
        af_jobs, other = configurations(args, base, kind)
    except ValueError as e:
        ap.error(str(e))
    engines = [e for e in args.engines.split(",") if e]
    if not engines or set(engines) - set(BEHAVIOURS):
        ap.error(f"--engines takes some of {', '.join(BEHAVIOURS)}")
    af_jobs = on_engines(af_jobs, engines, args.pre_fix_reading)
    other = on_engines(other, engines, args.pre_fix_reading)
    wall = time.monotonic()
    # agentfleet's history days run one after the other, then its scored days, in their own
    # process(es); the baselines fill the rest, seed by seed, so a partial run has whole seeds.
    af_workers = max(1, args.jobs // 2) if other else args.jobs
    futures: dict[tuple[str, str, int], Any] = {}
    with ProcessPoolExecutor(max_workers=af_workers) as ex_af, ProcessPoolExecutor(max_workers=max(1, args.jobs - af_workers)) as ex_base:
        for s in seeds:
            for name, k, job in other:
                futures[(name, k, s)] = ex_base.submit(_run, dict(job, seed=s))
        # One history per configuration: what an operator running with that coverage and floor
        # would have learned (its standing and predictive terms shape the days it learns from).
        plan = learning_plan(af_jobs) if hist else {}
        learning = {name: ex_af.submit(history, job, hist) for name, job in plan.items()}
        memories: dict[str, Memory | None] = {name: f.result() for name, f in learning.items()}
        for name, memory in memories.items():
            if memory is None:
                continue
            p = Profile.from_json(memory.profile or {}, forecast_config(minutes, plan[name]["param"]))
            onsets = ", ".join(f"{(o.at % (minutes * 60)) / 60:.1f} min: {o.size:.0f}" for o in p.onsets)
            print(
                f"{name} learned over {len(hist)} history days: load time {memory.load_s or 0:.0f} s, {p.capacity or 0:.1f} agent tasks per replica, onsets (time of day: tasks) {onsets or 'none'}",
                flush=True,
            )
        for s in seeds:
            for name, k, job in af_jobs:
                memory = memories.get(name)
                futures[(name, k, s)] = ex_af.submit(_run, dict(job, seed=s, memory=replace(memory, day=len(hist)) if memory else None))
        results: dict[tuple[str, str, int], RunResult] = {}
        keys = {f: key for key, f in futures.items()}
        for f in as_completed(keys):
            r = results[keys[f]] = f.result()
            # Each run as it ends: a run cut short still leaves its figures.
            print(
                f"  run {r.name} seed {r.seed}: task goodput {r.task_goodput:.3f} @ {r.gpu_hours:.2f} GPU-h, split {split([r])}, {r.wall_s:.0f} s ({r.cpu_s:.1f} CPU-s)",
                flush=True,
            )
    names = [(n, k) for n, k, _ in af_jobs + other]
    configs = [Config(n, k, [results[(n, k, s)] for s in seeds]) for n, k in names]
    cpu_total = sum(r.cpu_s for r in results.values())
    print(
        f"\n{len(results) + len(hist) * len(memories)} runs in {time.monotonic() - wall:.0f} s wall; the scored runs took {cpu_total / 60:.1f} CPU-min (history days not counted)\n"
    )
    print(table(configs))
    if len(engines) > 1:
        print("\n" + engines_table(configs, engines))
    print(
        f"\nmissed = tasks over the {TASK_SLO_S:g} s SLO / tasks started, summed over seeds, by start: a burst's first {ONSET_S:g} s (the longest model load), the rest of a burst, outside bursts"
    )
    baselines = [c for c in configs if c.kind in ("hpa", "keda", "fixed")]
    afs = [c for c in configs if c.kind in ("agentfleet", "reactive")]
    oracles = [c for c in configs if c.kind == "oracle"]
    if baselines and oracles:
        print("\nceilings (not baselines: each knows the burst windows, or each burst's start, which no history can teach):")
        for o in oracles:
            print("\n".join(goals(o, baselines)))
    if baselines:
        print()
        for af in afs:
            print("\n".join(goals(af, baselines)))
        for af in afs:
            terms = {}
            for r in af.rows:
                for t, n in r.terms.items():
                    terms[t] = terms.get(t, 0) + n
            total = sum(terms.values()) or 1
            print(f"{af.name}: evaluations by the term that set the recommendation: " + ", ".join(f"{t} {n / total:.0%}" for t, n in sorted(terms.items())))
        out = Path(args.out or ROOT / "e2e" / "bench" / f"autoscale_frontier_{args.workload}.png")
        plot_frontier(args.workload, configs, out)
        # The first scored seed over time: agentfleet's configurations beside the best baseline.
        best = max(baselines, key=lambda c: c.goodput)
        stem = out.stem.replace("frontier", "timeline") if "frontier" in out.stem else out.stem + "_timeline"
        timeline = out.with_name(stem + out.suffix)
        plot_timeline([c.rows[0] for c in afs] + [best.rows[0]], timeline)
        print(f"\nplots: {out}, {timeline}")
    if args.reasons:
        for af in afs:
            print(f"\n{af.name} decisions, seed {af.rows[0].seed}:")
            print("\n".join("  " + line for line in af.rows[0].reasons))
    if args.save:
        Path(args.save).write_text(
            json.dumps(
                [
                    {
                        "config": c.name,
                        "kind": c.kind,
                        "seed": r.seed,
                        "task_goodput": r.task_goodput,
                        "gpu_hours": r.gpu_hours,
                        "p95": r.task_p95,
                        "split": split([r]),
                        "terms": r.terms,
                    }
                    for c in configs
                    for r in c.rows
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
