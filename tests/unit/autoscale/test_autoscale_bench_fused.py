"""The autoscale benchmark's figures do not depend on how the simulator steps its engines.

e2e/bench/autoscale_bench.py runs its grid with fused decode iterations (one event per stretch
of decode, agentfleet_sim/engine.py) and prompts hashed as they grow; the same short workload
stepped one iteration at a time must give the same task latencies, GPU-hours, timeline and
scaling decisions, bit for bit, for a policy that reads utilization (HPA: busy time mid-run) and
one that reads the histograms and gauges (agentfleet).
"""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet_sim.runner import EngineRunner


def figures(bench: Any, kind: str, param: float) -> tuple[Any, ...]:
    # 10 simulated minutes, two 30 s bursts: ~70 tasks, ~2,500 model calls.
    r = bench.run_policy(
        name=kind, policy_kind=kind, param=param, minutes=10.0, mean_rate=0.12, seed=4, initial=2, burst_s=30.0
    )
    return (r.task_goodput, r.gpu_hours, r.call_goodput, r.task_records, r.timeline, r.reasons, r.scale_events, r.tasks)


@pytest.mark.parametrize(("kind", "param"), [("hpa", 0.6), ("agentfleet", 0.5)])
def test_fused_and_single_iterations_give_the_same_figures(
    bench: Any, kind: str, param: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    fused = figures(bench, kind, param)
    monkeypatch.setattr(EngineRunner, "MAX_ITERATIONS", 1)
    single = figures(bench, kind, param)
    assert fused[7] > 40 and fused[6] > 0  # tasks ran and the policy scaled
    assert fused == single


def test_every_configuration_of_a_seed_runs_the_same_tasks(bench: Any) -> None:
    # Pins paired tasks: a task's steps, sub-agents, tool output and content are its own draws, so
    # a small and a large fleet on one seed make the same model calls for the same tasks (with one
    # generator shared by all tasks, the draws followed the fleet's timing and the tasks differed).
    small = bench.run_policy(
        name="f2", policy_kind="fixed", param=2, minutes=10.0, mean_rate=0.12, seed=4, initial=2, burst_s=30.0
    )
    large = bench.run_policy(
        name="f6", policy_kind="fixed", param=6, minutes=10.0, mean_rate=0.12, seed=4, initial=6, burst_s=30.0
    )
    assert small.tasks == large.tasks > 0
    assert small.calls == large.calls
    assert [start for start, _ in small.task_records] == [start for start, _ in large.task_records]
    # And the fleets did run differently: the pairing is not an artefact of identical timing.
    assert [lat for _, lat in small.task_records] != [lat for _, lat in large.task_records]
