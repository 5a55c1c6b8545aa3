"""The fleet a workload needs: replicas from a workload profile (tasks, calls per task, context)
and one replica's capacity (the `agentfleet` CLI's sizing)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agentfleet.capacity.memory import concurrent_sequences, shared_prefix_sequences
from agentfleet.capacity.replica import ReplicaCapacity


@dataclass(frozen=True)
class WorkloadProfile:
    """An agent workload: who runs how many tasks, and what each model call costs."""

    users: float
    tasks_per_user_per_day: float
    steps_per_task: float
    tokens_in_per_call: int
    tokens_out_per_call: int
    step_latency_s: float  # one model call, end to end, at the target load
    branch_fraction: float = 0.0  # share of steps that fan out to sub-agents
    fan_out: float = 0.0  # sub-agents per branching step
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    peak_factor: float = 8.0  # peak call rate over the daily mean
    tool_latency_s: float = 0.0  # tool time between calls, while the task's KV stays warm
    shared_prefix_tokens: int = 0  # system prompt + tool schemas every call shares


@dataclass(frozen=True)
class FleetPlan:
    calls_per_task: float
    tasks_per_day: float
    calls_per_day: float
    tokens_in_per_day: float
    tokens_out_per_day: float
    cost_per_day: float
    cost_per_task: float
    mean_qps: float
    peak_qps: float
    concurrent_calls: float  # Little's law at peak: peak QPS x step latency
    p_task_sees_p99_call: float  # 1 - 0.99^calls: the tail a task inherits
    context_tokens: int
    sequences_per_replica: int | None
    replicas_for_calls: int | None
    warm_tasks: float  # tasks mid-flight at peak, each keeping its history resident
    replicas_for_warm_tasks: int | None
    replicas: int | None
    gpus: int | None
    notes: tuple[str, ...] = field(default=())


def calls_per_task(steps: float, branch_fraction: float = 0.0, fan_out: float = 0.0) -> float:
    """c = s (1 + f g): every step is a call, and a branching step adds g sub-agent calls."""
    return steps * (1 + branch_fraction * fan_out)


def size_fleet(
    profile: WorkloadProfile, replica: ReplicaCapacity | None = None, max_num_seqs: int | None = None
) -> FleetPlan:
    """Calls, tokens, cost, peak concurrency and replicas for a workload on replicas of `replica`'s shape."""
    p = profile
    c = calls_per_task(p.steps_per_task, p.branch_fraction, p.fan_out)
    tasks = p.users * p.tasks_per_user_per_day
    calls = tasks * c
    tin = calls * p.tokens_in_per_call
    tout = calls * p.tokens_out_per_call
    cost = tin / 1e6 * p.price_in_per_mtok + tout / 1e6 * p.price_out_per_mtok
    mean_qps = calls / 86400
    peak_qps = mean_qps * p.peak_factor
    in_flight = peak_qps * p.step_latency_s
    # A task runs its steps one after another (sub-agents in parallel with their parent's step), so it
    # lives s x (call + tool) seconds; by Little's law that many tasks are mid-flight at the peak task rate.
    task_seconds = p.steps_per_task * (p.step_latency_s + p.tool_latency_s)
    warm = tasks / 86400 * p.peak_factor * task_seconds
    context = p.tokens_in_per_call + p.tokens_out_per_call
    notes: list[str] = []
    seqs = r_calls = r_warm = replicas = gpus = None
    if replica is not None:
        if p.shared_prefix_tokens:
            seqs = shared_prefix_sequences(
                replica.kv_tokens, context, min(p.shared_prefix_tokens, context), max_num_seqs
            )
        else:
            seqs = concurrent_sequences(replica.kv_tokens, context, max_num_seqs)
        if seqs <= 0:
            notes.append(
                f"one replica's KV cache ({replica.kv_tokens:,} tokens) cannot hold one {context:,}-token call"
            )
        else:
            r_calls = max(1, math.ceil(in_flight / seqs))
            # Keeping a waiting task's history resident costs its whole prompt of KV.
            r_warm = max(1, math.ceil(warm * p.tokens_in_per_call / replica.kv_tokens)) if replica.kv_tokens else None
            replicas = max(r_calls, r_warm or 0)
            gpus = replicas * replica.gpus
            if r_warm and r_warm > r_calls:
                notes.append(
                    "residency, not in-flight calls, sets the replica count: tasks waiting on tools keep their KV warm"
                )
    return FleetPlan(
        calls_per_task=c,
        tasks_per_day=tasks,
        calls_per_day=calls,
        tokens_in_per_day=tin,
        tokens_out_per_day=tout,
        cost_per_day=cost,
        cost_per_task=cost / tasks if tasks else 0.0,
        mean_qps=mean_qps,
        peak_qps=peak_qps,
        concurrent_calls=in_flight,
        p_task_sees_p99_call=1 - 0.99**c,
        context_tokens=context,
        sequences_per_replica=seqs,
        replicas_for_calls=r_calls,
        warm_tasks=warm,
        replicas_for_warm_tasks=r_warm,
        replicas=replicas,
        gpus=gpus,
        notes=tuple(notes),
    )
