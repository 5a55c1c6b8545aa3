"""One run of the autoscale benchmark: a policy against a workload on the simulated clock."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from agentfleet_sim import BEHAVIOURS, EngineConfig, run_virtual
from e2e.bench.autoscale.fleet import Agents, Fleet, Results
from e2e.bench.autoscale.policies import (
    AgentfleetPolicy,
    Fixed,
    HpaUtil,
    KedaQueue,
    Memory,
    Oracle,
    forecast_config,
    oracle_spans,
)
from e2e.bench.autoscale.workload import (
    BENCH_ENGINE,
    LOAD_RANGE_S,
    MIN_REPLICAS,
    PERIOD_S,
    TASK_SLO_S,
    burst_spans,
    make_workload,
)


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
    load_range: tuple[float, float] = LOAD_RANGE_S,
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
        fleet = Fleet(seed, engine, BEHAVIOURS[engine_kind], tuple(load_range))
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
                timeline.append(
                    (now, workload.rate(now), len(fleet.active()), sum(1 for s in fleet.active() if s.ready(now)), cg)
                )
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
        terms={
            t: sum(1 for _, x in getattr(policy, "terms", []) if x == t)
            for t in {x for _, x in getattr(policy, "terms", [])}
        },
        calls=len(results.calls),
    )


def _run(job: dict[str, Any]) -> RunResult:
    return run_policy(**job)
