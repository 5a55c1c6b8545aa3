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

    .venv/bin/python -m e2e.bench.autoscale_bench --workload default --seeds 11-20 --coverage 0.5 [--jobs 2]
    .venv/bin/python -m e2e.bench.autoscale_bench --workload default --tune --seeds 201-205 --coverage 0,0.25,0.5,0.75

Engines (``--engines vllm,llm-d-sim``; agentfleet_sim.quirks.BEHAVIOURS): every configuration
runs on replicas that behave as each engine, named ``name[engine]`` beyond the first, and a table
compares each one's replica decisions with the first engine's on the same seed (the timing is the
same on every engine: only what its metrics say differs). Steps but the
last of a task answer with a tool call (a sub-agent's call and the last step in text), which
llm-d's simulator counts under ``tool_calls``. ``--pre-fix-reading`` adds agentfleet read as the
code before issue 46 did (completions ``stop|length`` only, the queue witness over the queue
histogram's own count) on the engines but the first, as the contrast.

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
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentfleet.autoscale.forecast import Profile
from agentfleet_sim import BEHAVIOURS
from e2e.bench.autoscale.plots import plot_frontier, plot_timeline
from e2e.bench.autoscale.policies import TUNING_SEEDS, Memory, forecast_config
from e2e.bench.autoscale.report import ONSET_S, WORKLOADS, Config, engines_table, goals, split, table
from e2e.bench.autoscale.run import RunResult, _run, run_policy
from e2e.bench.autoscale.workload import (
    LOAD_RANGE_S,
    MAX_REPLICAS,
    MIN_REPLICAS,
    TASK_SLO_S,
    TRACE_GAMMA_SHAPE,
    TRACE_ZIPF,
    make_workload,
)

ROOT = Path(__file__).resolve().parents[2]


def parse_loads(text: str) -> list[tuple[float, float]]:
    """``--load-seconds``: comma-separated model load times, each ``LO-HI`` (drawn uniformly per
    replica) or one figure."""
    out = []
    for part in (p for p in text.split(",") if p):
        lo, _, hi = part.partition("-")
        out.append((float(lo), float(hi or lo)))
    if not out or any(not 0 <= lo <= hi for lo, hi in out):
        raise ValueError(f"--load-seconds {text!r}: LO-HI or one figure, comma-separated, 0 <= LO <= HI")
    return out


def load_label(load: tuple[float, float]) -> str:
    return f"{load[0]:g}-{load[1]:g}s" if load[0] != load[1] else f"{load[0]:g}s"


def on_loads(jobs: list[Job], loads: list[tuple[float, float]]) -> list[Job]:
    """Each job at each model load time (``name[load L]`` beyond the first). A fixed fleet is all
    warm and never loads a replica: it runs once and is a baseline at every load time."""
    out: list[Job] = []
    for i, load in enumerate(loads):
        for name, kind, job in jobs:
            if i and kind == "fixed":
                continue
            tag = f"{name}[load {load_label(load)}]" if i else name
            out.append((tag, kind, dict(job, name=tag, load_range=load)))
    return out


def at_load(c: Config, loads: list[tuple[float, float]], load: tuple[float, float]) -> bool:
    """Whether configuration ``c`` ran at ``load`` (fixed fleets count at every load time)."""
    tagged = [x for x in loads[1:] if c.name.endswith(f"[load {load_label(x)}]")]
    return c.kind == "fixed" or (tagged[0] if tagged else loads[0]) == load


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
        "--workload",
        choices=sorted(WORKLOADS),
        default="default",
        help="default: 150 s bursts in 60 min; long: 600 s in 240 min; trace: BurstGPT-shaped",
    )
    ap.add_argument("--minutes", type=float, help="override the workload's simulated run length (one compressed day)")
    ap.add_argument("--burst-seconds", type=float, help="override the workload's burst length")
    ap.add_argument("--rate", type=float, default=0.12, help="mean task arrivals per second")
    ap.add_argument("--seeds", default="11-20", help="scored seeds (never the tuning or history seeds), e.g. 11-20")
    ap.add_argument(
        "--tune",
        action="store_true",
        help="a tuning run: only the tuning seeds (1-3, 201-215) are allowed, and none of them is ever scored",
    )
    ap.add_argument(
        "--history-seeds",
        default="101-107",
        help="days agentfleet learns its profile on before each scored day (never scored)",
    )
    ap.add_argument(
        "--coverage",
        default="0.5",
        help="agentfleet burstCoveragePercent / 100; a list runs one configuration each (tuning)",
    )
    ap.add_argument(
        "--reactive",
        action="store_true",
        help="also run agentfleet without the learned profile (the reactive terms alone)",
    )
    ap.add_argument("--hpa-targets", default="0.5,0.6,0.7,0.8,0.9", help="utilization targets swept for HPA")
    ap.add_argument("--keda-thresholds", default="1,2,4,8,16", help="waiting requests per replica swept for KEDA")
    ap.add_argument("--fixed", default="2-16", help="fixed fleet sizes (all warm, never scaled); empty for none")
    ap.add_argument("--initial", type=int, default=2, help="warm replicas at t=0 (at least --min-replicas)")
    ap.add_argument(
        "--min-replicas",
        type=int,
        default=MIN_REPLICAS,
        help="minReplicas of every autoscaler (agentfleet, HPA, KEDA alike)",
    )
    ap.add_argument(
        "--af-min-replicas",
        default="",
        help=(
            "agentfleet's minReplicas (spec.autoscaling.minReplicas) swept: one configuration per (coverage, value), "
            "named agentfleet@C/minN, each learning its own history (default: --min-replicas alone)"
        ),
    )
    ap.add_argument(
        "--af-goodput-targets",
        default="",
        help=(
            "agentfleet's spec.autoscaling.goodput.targetFraction swept: one configuration per value as well, named "
            "agentfleet@C/tF (default: AF_TUNING's, unnamed)"
        ),
    )
    ap.add_argument(
        "--baseline-min-replicas",
        default="",
        help=(
            "HPA's and KEDA's minReplicas swept as agentfleet's is: one configuration per (target, value), named "
            "hpa-util@T/minN and keda-queue@N/minN (default: --min-replicas alone)"
        ),
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes (seeds and configurations run in parallel)",
    )
    ap.add_argument("--out", help="frontier PNG (default e2e/bench/autoscale_frontier_<workload>.png)")
    ap.add_argument(
        "--reasons", action="store_true", help="print agentfleet's scale decisions on the first scored seed"
    )
    ap.add_argument("--only-agentfleet", action="store_true", help="skip the baselines (for tuning runs)")
    ap.add_argument(
        "--oracle",
        default="",
        help=(
            "ceilings, not baselines (bursts workloads): HIGH/LOW replica pairs held over the burst windows "
            "(oracle-window) and from each burst's start (oracle-onset)"
        ),
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
    ap.add_argument(
        "--load-seconds",
        default=f"{LOAD_RANGE_S[0]:g}-{LOAD_RANGE_S[1]:g}",
        help="a new replica's model load time, LO-HI drawn per replica or one figure; a comma-separated list runs "
        "every configuration at each (name[load L] beyond the first), scored against the baselines at the same one",
    )
    return ap


Job = tuple[str, str, dict[str, Any]]  # a configuration: name, kind, run_policy's arguments but the seed


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
            other.append(
                (
                    name,
                    "oracle",
                    dict(base, name=name, policy_kind=f"oracle-{mode}", param=float(int(high) * 100 + int(low))),
                )
            )
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
        ap.error(
            f"seeds {sorted(set(seeds) & (set(TUNING_SEEDS) | set(hist)))} were tuned or learned on: score on "
            "others (tuning runs take --tune)"
        )
    try:
        wl = make_workload(kind, minutes, args.rate, seeds[0], burst_s)
    except ValueError as e:
        ap.error(str(e))
    base = dict(
        minutes=minutes,
        mean_rate=args.rate,
        initial=max(args.initial, args.min_replicas),
        burst_s=burst_s,
        min_replicas=args.min_replicas,
        workload_kind=kind,
    )
    if args.max_num_seqs:
        base["max_num_seqs"] = args.max_num_seqs
    try:
        loads = parse_loads(args.load_seconds)
    except ValueError as e:
        ap.error(str(e))
    shape = (
        f"bursts of {burst_s:g} s (seed {seeds[0]}: at {[round(f * minutes) for f, _ in wl.bursts]} min)"
        if kind == "bursts"
        else f"Gamma(shape {TRACE_GAMMA_SHAPE:g}) arrivals, Zipf({TRACE_ZIPF:g}) tool results"
    )
    print(
        f"workload {args.workload}: {minutes:g} simulated min, mean {args.rate:g} tasks/s, peak {wl.peak_rate():.2f} "
        f"tasks/s (x{wl.peak_rate() / args.rate:.2f}), {shape}; "
        f"model load {', '.join(load_label(x) for x in loads)}; "
        f"scored seeds {args.seeds}, history days {args.history_seeds}",
        flush=True,
    )
    try:
        af_jobs, other = configurations(args, base, kind)
    except ValueError as e:
        ap.error(str(e))
    engines = [e for e in args.engines.split(",") if e]
    if not engines or set(engines) - set(BEHAVIOURS):
        ap.error(f"--engines takes some of {', '.join(BEHAVIOURS)}")
    af_jobs = on_loads(on_engines(af_jobs, engines, args.pre_fix_reading), loads)
    other = on_loads(on_engines(other, engines, args.pre_fix_reading), loads)
    wall = time.monotonic()
    # agentfleet's history days run one after the other, then its scored days, in their own
    # process(es); the baselines fill the rest, seed by seed, so a partial run has whole seeds.
    af_workers = max(1, args.jobs // 2) if other else args.jobs
    futures: dict[tuple[str, str, int], Any] = {}
    with (
        ProcessPoolExecutor(max_workers=af_workers) as ex_af,
        ProcessPoolExecutor(max_workers=max(1, args.jobs - af_workers)) as ex_base,
    ):
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
                (
                    f"{name} learned over {len(hist)} history days: load time {memory.load_s or 0:.0f} s, "
                    f"{p.capacity or 0:.1f} agent tasks per replica, onsets (time of day: tasks) {onsets or 'none'}"
                ),
                flush=True,
            )
        for s in seeds:
            for name, k, job in af_jobs:
                memory = memories.get(name)
                futures[(name, k, s)] = ex_af.submit(
                    _run, dict(job, seed=s, memory=replace(memory, day=len(hist)) if memory else None)
                )
        results: dict[tuple[str, str, int], RunResult] = {}
        keys = {f: key for key, f in futures.items()}
        for f in as_completed(keys):
            r = results[keys[f]] = f.result()
            # Each run as it ends: a run cut short still leaves its figures.
            print(
                (
                    f"  run {r.name} seed {r.seed}: task goodput {r.task_goodput:.3f} @ {r.gpu_hours:.2f} GPU-h, "
                    f"split {split([r])}, {r.wall_s:.0f} s ({r.cpu_s:.1f} CPU-s)"
                ),
                flush=True,
            )
    names = [(n, k) for n, k, _ in af_jobs + other]
    configs = [Config(n, k, [results[(n, k, s)] for s in seeds]) for n, k in names]
    cpu_total = sum(r.cpu_s for r in results.values())
    print(
        f"\n{len(results) + len(hist) * len(memories)} runs in {time.monotonic() - wall:.0f} s wall; the scored "
        f"runs took {cpu_total / 60:.1f} CPU-min (history days not counted)\n"
    )
    print(table(configs))
    if len(engines) > 1:
        print("\n" + engines_table(configs, engines))
    print(
        f"\nmissed = tasks over the {TASK_SLO_S:g} s SLO / tasks started, summed over seeds, by start: a burst's "
        f"first {ONSET_S:g} s (the longest model load), the rest of a burst, outside bursts"
    )
    baselines = [c for c in configs if c.kind in ("hpa", "keda", "fixed")]
    afs = [c for c in configs if c.kind in ("agentfleet", "reactive")]
    oracles = [c for c in configs if c.kind == "oracle"]
    if baselines and oracles:
        print(
            "\nceilings (not baselines: each knows the burst windows, or each burst's start, which no history can "
            "teach):"
        )
        for o in oracles:
            print("\n".join(goals(o, baselines)))
    if baselines:
        print()
        for af in afs:
            load = next(x for x in loads if at_load(af, loads, x))
            print("\n".join(goals(af, [b for b in baselines if at_load(b, loads, load)])))
        for af in afs:
            terms = {}
            for r in af.rows:
                for t, n in r.terms.items():
                    terms[t] = terms.get(t, 0) + n
            total = sum(terms.values()) or 1
            print(
                f"{af.name}: evaluations by the term that set the recommendation: "
                + ", ".join(f"{t} {n / total:.0%}" for t, n in sorted(terms.items()))
            )
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
