"""One evaluation's view of the fleet, read from the policy's inputs: which replicas report fresh
samples, which loading ones are credited, the means that stand in for silent replicas, and the
requests in the system over the window (the loading credit's growth rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from agentfleet.autoscale.goodput import Goodput
from agentfleet.autoscale.signals import FleetView, Observation, ReplicaSample, Starting
from agentfleet.autoscale.state import PolicyConfig, PolicyState
from agentfleet.autoscale.terms import slope

STUCK_FACTOR = 2.0  # a replica loading longer than this x the learned load time gets no credit


@dataclass(frozen=True)
class Reading:
    """One evaluation's view of the fleet. ``serving`` counts ready replicas; ``pending`` those
    still loading and not yet overdue; ``settling`` those ready for less than a window (not yet
    in the windowed measurements). The fields after ``load_s`` are set only with fresh samples."""

    now: float
    current: int
    ready: frozenset[str]
    fresh: tuple[ReplicaSample, ...]
    pending: tuple[Starting, ...]
    settling: tuple[str, ...]
    stuck: int
    load_s: float
    serving: int = 0
    mean_wait: float = 0.0
    mean_run: float = 0.0
    mean_kv: float | None = None
    waiting: float = 0.0
    running: float = 0.0
    gp: Goodput | None = None
    tasks: float | None = None  # agent tasks queued and in flight (None: no task layer)
    history: tuple[tuple[float, float], ...] = ()  # requests in the system over the window
    task_load: tuple[tuple[float, float], ...] = ()  # agent tasks per ready replica over the window
    growth: float | None = None  # their slope, per second
    per_replica_rate: float | None = None  # completions per replica per second
    ordered_for: int | None = None  # the order in flight (None once nothing loads)
    ordered_goodput: float | None = None  # the goodput that order was sized on, while it loads

    @property
    def credit_base(self) -> int:
        return self.serving + len(self.pending)

    @property
    def in_flight(self) -> int:
        return len(self.pending) + len(self.settling)

    @property
    def measured(self) -> int:
        """The replicas the window measured: those that became ready within it are not yet in it."""
        return max(1, self.serving - len(self.settling))

    @property
    def peak_task_load(self) -> float | None:
        """The most agent tasks per ready replica over the window (None: no task layer)."""
        return max((v for _, v in self.task_load), default=None)

    @property
    def good(self) -> bool:
        """Goodput with enough requests behind it to mean something."""
        return self.gp is not None and self.gp.significant


def read_fleet(config: PolicyConfig, state: PolicyState, fleet: FleetView, obs: Observation) -> Reading:
    """The fleet as measured now: fresh samples of ready replicas, loading ones credited, the
    means standing in for silent replicas, and the requests in the system over the window."""
    now = obs.at
    ready = frozenset(fleet.ready)
    fresh = tuple(
        s for s in obs.samples if s.age_seconds <= config.stale_after_seconds and (not ready or s.name in ready)
    )
    load_s = state.load_time.seconds
    pending = tuple(s for s in fleet.starting if s.age_seconds <= STUCK_FACTOR * load_s)
    settling = tuple(n for n in fleet.ready if fleet.ready_ages.get(n, math.inf) < config.window_seconds)
    r = Reading(now, fleet.current, ready, fresh, pending, settling, len(fleet.starting) - len(pending), load_s)
    if not fresh:
        return r
    serving = max(len(ready), len(fresh))
    mean_wait = sum(s.waiting for s in fresh) / len(fresh)
    mean_run = sum(s.running for s in fresh) / len(fresh)
    kv_known = [s.kv_usage for s in fresh if s.kv_usage is not None]
    waiting, running = mean_wait * serving, mean_run * serving
    # Agents are closed loops (a task's next call waits for its last), so overload shows in the
    # requests in the system (waiting + running), not only in the queue.
    history = _trail(state.waiting_history, now, config.window_seconds, waiting + running)
    task_load = _trail(
        state.task_load_history, now, config.window_seconds, None if obs.tasks is None else obs.tasks / serving
    )
    in_flight = bool(pending or settling)
    return replace(
        r,
        serving=serving,
        mean_wait=mean_wait,
        mean_run=mean_run,
        mean_kv=sum(kv_known) / len(kv_known) if kv_known else None,
        waiting=waiting,
        running=running,
        gp=obs.goodput,
        tasks=obs.tasks,
        history=history,
        task_load=task_load,
        growth=slope(history),
        per_replica_rate=obs.completion_rate / serving if obs.completion_rate and serving else None,
        ordered_for=state.ordered_for if in_flight else None,
        ordered_goodput=state.ordered_goodput if in_flight else None,
    )


def _trail(
    points: tuple[tuple[float, float], ...], now: float, window: float, value: float | None
) -> tuple[tuple[float, float], ...]:
    """The (time, value) points within the window, with ``value`` now appended (when known)."""
    kept = tuple((t, v) for t, v in points if t > now - window)
    return kept if value is None else (*kept, (now, value))


def reading_notes(r: Reading, obs: Observation) -> list[str]:
    notes = []
    silent = sorted(r.ready - {s.name for s in r.fresh})
    if silent:
        shown = ", ".join(silent[:3]) + ("..." if len(silent) > 3 else "")
        notes.append(f"{len(silent)} of {r.serving} replicas not reporting ({shown}): others' means used")
    if r.gp is not None:
        notes.extend(r.gp.notes)
    if obs.schema_problem:
        notes.append(obs.schema_problem)
    return notes
