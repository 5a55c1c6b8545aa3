"""The autoscale benchmark's configuration list (e2e/bench/autoscale_bench.py, ``configurations``):
minReplicas swept for agentfleet and, by the same rule, for the HPA and KEDA baselines; without
the sweep flags the list is what it was."""

from __future__ import annotations

from typing import Any

import pytest


def _configurations(bench: Any, *argv: str) -> tuple[list[Any], list[Any]]:
    args = bench.parser().parse_args(list(argv))
    base = dict(
        minutes=60.0,
        mean_rate=0.12,
        initial=max(args.initial, args.min_replicas),
        burst_s=150.0,
        min_replicas=args.min_replicas,
        workload_kind="bursts",
    )
    return bench.configurations(args, base, "bursts")


def test_without_the_sweep_flags_every_autoscaler_runs_at_min_replicas_under_its_old_name(bench: Any) -> None:
    af, other = _configurations(bench, "--coverage", "0.35,2", "--min-replicas", "3")
    assert [n for n, _, _ in af] == ["agentfleet@0.35", "agentfleet@2"]
    assert [n for n, k, _ in other if k == "hpa"] == [
        "hpa-util@0.5",
        "hpa-util@0.6",
        "hpa-util@0.7",
        "hpa-util@0.8",
        "hpa-util@0.9",
    ]
    assert [n for n, k, _ in other if k == "keda"] == [
        "keda-queue@1",
        "keda-queue@2",
        "keda-queue@4",
        "keda-queue@8",
        "keda-queue@16",
    ]
    assert {(j["min_replicas"], j["initial"]) for _, k, j in af + other if k != "fixed"} == {(3, 3)}
    assert len([k for _, k, _ in other if k == "fixed"]) == 15


def test_min_replicas_swept_gives_one_configuration_per_value_named_and_started_at_that_floor(bench: Any) -> None:
    af, other = _configurations(
        bench,
        "--coverage",
        "1.5,2",
        "--af-min-replicas",
        "1,10",
        "--baseline-min-replicas",
        "4,12",
        "--hpa-targets",
        "0.5",
        "--keda-thresholds",
        "1",
        "--fixed",
        "16",
    )
    assert [(n, j["param"], j["min_replicas"], j["initial"]) for n, _, j in af] == [
        ("agentfleet@1.5/min1", 1.5, 1, 2),
        ("agentfleet@1.5/min10", 1.5, 10, 10),
        ("agentfleet@2/min1", 2.0, 1, 2),
        ("agentfleet@2/min10", 2.0, 10, 10),
    ]
    assert [(n, k, j["min_replicas"], j["initial"]) for n, k, j in other] == [
        ("hpa-util@0.5/min4", "hpa", 4, 4),
        ("keda-queue@1/min4", "keda", 4, 4),
        ("hpa-util@0.5/min12", "hpa", 12, 12),
        ("keda-queue@1/min12", "keda", 12, 12),
        ("fixed@16", "fixed", 1, 2),
    ]
    assert all(j["name"] == n for n, _, j in af + other)


def test_a_floor_above_the_cluster_is_refused(bench: Any) -> None:
    with pytest.raises(ValueError, match="outside 1-16"):
        _configurations(bench, "--af-min-replicas", "8,17")


def test_every_agentfleet_configuration_learns_its_history_on_its_own_coverage_and_floor(bench: Any) -> None:
    # A history learned on the first coverage of the list made a configuration's figures depend
    # on its companions (agentfleet@2/min1 scored 0.8848 @ 38.77 after 1.5's history, 0.886 @
    # 37.75 after its own); each configuration now learns on its own settings.
    af, _ = _configurations(bench, "--coverage", "1.5,2", "--af-min-replicas", "1,10", "--only-agentfleet")
    plan = bench.learning_plan(af)
    assert sorted(plan) == ["agentfleet@1.5/min1", "agentfleet@1.5/min10", "agentfleet@2/min1", "agentfleet@2/min10"]
    assert {name: (job["param"], job["min_replicas"]) for name, job in plan.items()} == {
        "agentfleet@1.5/min1": (1.5, 1),
        "agentfleet@1.5/min10": (1.5, 10),
        "agentfleet@2/min1": (2.0, 1),
        "agentfleet@2/min10": (2.0, 10),
    }


def test_goodput_targets_swept_name_each_configuration_and_reach_its_policy_and_history(bench: Any) -> None:
    af, _ = _configurations(bench, "--coverage", "0.25", "--af-goodput-targets", "0.95,0.985", "--only-agentfleet")
    assert [(n, j["target_fraction"]) for n, _, j in af] == [
        ("agentfleet@0.25/t0.95", 0.95),
        ("agentfleet@0.25/t0.985", 0.985),
    ]
    assert {name: job["target_fraction"] for name, job in bench.learning_plan(af).items()} == {
        "agentfleet@0.25/t0.95": 0.95,
        "agentfleet@0.25/t0.985": 0.985,
    }
    policy = bench.AgentfleetPolicy(target_fraction=0.95)
    assert policy.config.target_fraction == 0.95
    assert bench.AgentfleetPolicy().config.target_fraction == bench.AF_TUNING["target_fraction"]
    with pytest.raises(ValueError, match="goodput targets"):
        _configurations(bench, "--af-goodput-targets", "1.5")
