"""The pure parts of the demo's --scenario burst (e2e/demo/burst.py): the schedule, the decisions
read from status, the scenario's autoscaling settings and the PNG."""

from __future__ import annotations

import argparse

import pytest
import yaml
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from e2e.demo import burst
from e2e.demo.driver import EXAMPLE

PHASES = [(10.0, 0.5), (4.0, 2.0), (10.0, 0.5)]


def test_schedule_steps_up_and_back_down():
    assert [burst.rate_at(t, PHASES) for t in (0, 9.9, 10, 13.9, 14, 23.9, 24)] == [0.5, 0.5, 2.0, 2.0, 0.5, 0.5, 0.0]
    times = burst.submit_times(PHASES)
    assert len(times) == 5 + 8 + 5
    assert times[:6] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert times == sorted(times) and times[-1] < burst.duration(PHASES)


def test_timeline_reports_each_new_decision_with_from_to_and_term():
    tl = burst.Timeline()
    # A scale from before the scenario is not one of its decisions.
    old = {
        "desiredReplicas": 2,
        "readyReplicas": 2,
        "lastScaleTime": "2026-11-23T06:00:00Z",
        "lastScaleTerm": "reactive",
    }
    assert tl.observe(0.0, 0.5, old) is None
    assert tl.observe(2.0, 0.5, {**old, "observed": {"queueDepth": 3, "goodput": 0.9}}) is None
    up = {
        "desiredReplicas": 4,
        "readyReplicas": 2,
        "lastScaleTime": "2026-11-23T06:01:00Z",
        "lastScaleTerm": "reactive",
        "lastScaleReason": "2 -> 4 (reactive): queue 40 > 8/replica",
        "observed": {"queueDepth": 40, "goodput": 0.4},
    }
    d = tl.observe(4.0, 2.0, up)
    assert (d.before, d.after, d.term) == (2, 4, "reactive")
    assert d.line() == "  +   4s  replicas 2 -> 4  term reactive: queue 40 > 8/replica"
    assert tl.observe(6.0, 2.0, up) is None  # the same decision read again
    assert [(s.desired, s.waiting, s.goodput) for s in tl.samples] == [
        (2, None, None),
        (2, 3, 0.9),
        (4, 40, 0.4),
        (4, 40, 0.4),
    ]


def test_burst_autoscaling_is_a_valid_spec_of_the_example():
    objs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    notes = burst.with_burst_autoscaling(objs)
    mrs = next(o for o in objs if o["kind"] == "ModelReplicaSet")
    assert len(notes) == 1 and "evaluationPeriodSeconds 5" in notes[0]
    spec = ModelReplicaSetSpec.model_validate(mrs["spec"])
    assert spec.autoscaling.evaluation_period_seconds == 5
    assert spec.autoscaling.scale_down_stabilization_seconds == burst.AUTOSCALING["scaleDownStabilizationSeconds"]


def test_plot_writes_a_png(tmp_path):
    tl = burst.Timeline()
    tl.observe(0.0, 0.5, {"desiredReplicas": 1, "readyReplicas": 1})
    tl.observe(
        2.0,
        3.0,
        {
            "desiredReplicas": 3,
            "readyReplicas": 1,
            "lastScaleTime": "t1",
            "lastScaleTerm": "reactive",
            "observed": {"queueDepth": 20, "goodput": 0.5},
        },
    )
    tl.observe(
        4.0,
        3.0,
        {
            "desiredReplicas": 3,
            "readyReplicas": 3,
            "lastScaleTime": "t1",
            "observed": {"queueDepth": 2, "goodput": 0.9},
        },
    )
    path = burst.plot(tl, tmp_path / "burst.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_burst_phases_option():
    assert burst.parse_phases("40:0.5,80:3") == [(40.0, 0.5), (80.0, 3.0)]
    assert burst.describe([(40.0, 0.5), (80.0, 3.0)]) == "0.5 tasks/s for 40s, 3 tasks/s for 80s"
    for bad in ("40", "40:x", "40:0", "-1:2"):
        with pytest.raises(argparse.ArgumentTypeError, match="SECONDS:TASKS_PER_SECOND|positive"):
            burst.parse_phases(bad)
