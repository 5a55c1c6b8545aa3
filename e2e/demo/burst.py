"""``python -m e2e.demo up --scenario burst``: a burst of tasks through the fleet, and what the
autoscaler did about it.

Tasks go through the task API at a low rate, then a step up, then back down (``PHASES``). Every
``POLL_SECONDS`` the scenario reads the ModelReplicaSet's status: the replicas the autoscaler
wants (``desiredReplicas``) and has ready, its observation from Prometheus (requests waiting at the
replicas, goodput) and, when it changed the count, the decision (``lastScaleTime``,
``lastScaleTerm``, ``lastScaleReason``), printed as it happens. It ends with the Events the
autoscaler posted and a PNG of demand, replicas and goodput over time.

The run takes minutes, not hours, because the demo shortens what would make a real one slow and
says so: the simulated replicas serve fewer sequences at a time and decode slower than the
default demo's (``SIM_TIMING``), so a few tasks a second build a queue on 2 CPU cores; the
autoscaler evaluates every 5 s with short stabilization (``AUTOSCALING``); and a new replica is
ready as soon as kwok marks its pod Ready (about a second) where a real model loads for minutes.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (seconds, tasks per second): before, during and after the burst.
PHASES: list[tuple[float, float]] = [(40.0, 0.5), (80.0, 3.0), (90.0, 0.5)]
# Simulator flags for the scenario: 4 sequences at a time, 30 ms a decode step (the default demo's
# replica takes 256 at 8 ms, and a handful of tasks never queue on it).
SIM_TIMING = {"max-num-seqs": "4", "decode-base-s": "0.03"}
# spec.autoscaling for the scenario: decisions within seconds instead of minutes.
AUTOSCALING = {
    "evaluationPeriodSeconds": 5,
    "windowSeconds": 30,
    "scaleUpStabilizationSeconds": 0,
    "scaleDownStabilizationSeconds": 30,
}
POLL_SECONDS = 2.0
PRINT_SECONDS = 10.0  # the replica count line; decisions print when they appear


def parse_phases(text: str) -> list[tuple[float, float]]:
    """``--burst-phases 40:0.5,80:3,90:0.5`` -> [(40.0, 0.5), (80.0, 3.0), (90.0, 0.5)]."""
    phases = []
    for part in text.split(","):
        try:
            seconds, rate = (float(x) for x in part.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: each phase is SECONDS:TASKS_PER_SECOND, e.g. 40:0.5,80:3,90:0.5"
            ) from None
        if seconds <= 0 or rate <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: seconds and tasks per second must be positive")
        phases.append((seconds, rate))
    return phases


def describe(phases: list[tuple[float, float]]) -> str:
    return ", ".join(f"{r:g} tasks/s for {d:.0f}s" for d, r in phases)


def duration(phases: list[tuple[float, float]] = PHASES) -> float:
    return sum(d for d, _ in phases)


def rate_at(t: float, phases: list[tuple[float, float]] = PHASES) -> float:
    """Tasks per second the scenario submits at ``t`` seconds from its start (0 after the end)."""
    start = 0.0
    for d, rate in phases:
        if start <= t < start + d:
            return rate
        start += d
    return 0.0


def submit_times(phases: list[tuple[float, float]] = PHASES) -> list[float]:
    """When each task is submitted (seconds from the start): evenly spaced within each phase."""
    out: list[float] = []
    start = 0.0
    for d, rate in phases:
        n = int(round(d * rate))
        out += [start + i / rate for i in range(n)]
        start += d
    return out


def with_burst_autoscaling(objs: list[dict[str, Any]]) -> list[str]:
    """Sets the scenario's ``AUTOSCALING`` on the ModelReplicaSets that autoscale; what changed."""
    notes = []
    for o in objs:
        auto = (o.get("spec") or {}).get("autoscaling") or {}
        if o["kind"] == "ModelReplicaSet" and auto.get("enabled"):
            auto.update(AUTOSCALING)
            notes.append(
                f"ModelReplicaSet/{o['metadata']['name']} spec.autoscaling "
                + ", ".join(f"{k} {v}" for k, v in AUTOSCALING.items())
                + " (--scenario burst)"
            )
    return notes


@dataclass
class Sample:
    t: float  # seconds from the scenario's start
    rate: float  # tasks/s submitted
    desired: int | None
    ready: int | None
    waiting: float | None  # requests waiting at the replicas (the autoscaler's last observation)
    goodput: float | None


@dataclass
class Decision:
    t: float
    before: int | None
    after: int
    term: str
    reason: str

    def line(self) -> str:
        before = "?" if self.before is None else str(self.before)
        # The autoscaler's reason opens with "FROM -> TO (TERM): ": said once, in the columns.
        why = (
            self.reason.split("): ", 1)[1]
            if self.reason.startswith(f"{before} -> {self.after} (") and "): " in self.reason
            else self.reason
        )
        return f"  +{self.t:4.0f}s  replicas {before} -> {self.after}  term {self.term or '-'}: {why}"


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    last_scale: str | None = None

    def observe(self, t: float, rate: float, status: dict[str, Any]) -> Decision | None:
        """Records one read of the ModelReplicaSet's status; the decision it shows, if new."""
        obs = status.get("observed") or {}
        desired = status.get("desiredReplicas")
        before = self.samples[-1].desired if self.samples else None
        self.samples.append(
            Sample(t, rate, desired, status.get("readyReplicas"), obs.get("queueDepth"), obs.get("goodput"))
        )
        scaled = status.get("lastScaleTime")
        first = self.last_scale is None and len(self.samples) == 1
        if scaled == self.last_scale or scaled is None:
            return None
        self.last_scale = scaled
        if first:
            return None  # a decision from before the scenario
        d = Decision(
            t, before, int(desired or 0), status.get("lastScaleTerm") or "", status.get("lastScaleReason") or ""
        )
        self.decisions.append(d)
        return d


def plot(timeline: Timeline, path: Path, title: str) -> Path:
    """PNG of demand (tasks/s submitted, requests waiting), replicas (desired, ready) and goodput."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    s = timeline.samples
    t = [x.t for x in s]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5))
    ax1.step(t, [x.rate for x in s], where="post", color="tab:blue", label="tasks/s submitted")
    ax1.set_ylabel("tasks/s")
    waiting = ax1.twinx()
    waiting.plot(t, [x.waiting for x in s], color="tab:orange", label="requests waiting at the replicas")
    waiting.set_ylabel("requests waiting")
    ax1.legend(loc="upper left")
    waiting.legend(loc="upper right")
    ax2.step(t, [x.desired for x in s], where="post", color="tab:red", label="desired (autoscaler)")
    ax2.step(t, [x.ready for x in s], where="post", color="tab:green", linestyle="--", label="ready")
    ax2.set_ylabel("replicas")
    ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.legend(loc="upper left")
    ax3.plot(
        t,
        [x.goodput for x in s],
        color="tab:purple",
        label=(
            f"goodput (share of requests within the SLO, over the autoscaler's {AUTOSCALING['windowSeconds']}s window)"
        ),
    )
    ax3.set_ylim(0, 1.05)
    ax3.set_ylabel("goodput")
    ax3.set_xlabel("seconds from the start of the scenario")
    ax3.legend(loc="lower left")
    for d in timeline.decisions:
        for ax in (ax1, ax2, ax3):
            ax.axvline(d.t, color="grey", linewidth=0.6, linestyle=":")
        ax2.annotate(d.term or "-", (d.t, d.after), textcoords="offset points", xytext=(2, 4), fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(
    submit: Callable[[int], None],
    read_status: Callable[[], dict[str, Any]],
    say: Callable[[str], None],
    phases: list[tuple[float, float]] = PHASES,
) -> Timeline:
    """Submits the tasks on schedule (a thread) and reads the status every ``POLL_SECONDS``,
    printing each decision as it appears and the replica count every few reads."""
    times = submit_times(phases)
    t0 = time.monotonic()
    errors: list[str] = []

    def submitter() -> None:
        for i, at in enumerate(times):
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                submit(i)
            except Exception as e:  # noqa: BLE001 - reported once the scenario ends
                errors.append(str(e))

    thread = threading.Thread(target=submitter, name="burst-submit", daemon=True)
    thread.start()
    timeline = Timeline()
    printed = -PRINT_SECONDS
    while (now := time.monotonic() - t0) < duration(phases):
        d = timeline.observe(now, rate_at(now, phases), read_status())
        if d is not None:
            say(d.line())
        s = timeline.samples[-1]
        if now - printed >= PRINT_SECONDS:
            say(
                f"  +{now:4.0f}s  demand {s.rate:.1f} tasks/s  waiting {_fmt(s.waiting)}  goodput "
                f"{_fmt(s.goodput)}  replicas desired {s.desired} ready {s.ready}"
            )
            printed = now
        time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - t0 - now)))
    thread.join(30)
    if errors:
        say(f"  {len(errors)} of {len(times)} submissions failed; the first: {errors[0]}")
    return timeline


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) and not v.is_integer() else f"{v:.0f}"
