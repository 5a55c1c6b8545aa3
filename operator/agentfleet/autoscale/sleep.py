"""Scale to zero: when an object that may sleep (minReplicas 0) goes to zero, and when it wakes.

Pure: ``decide_sleep(config, state, activity, now)`` returns the next ``SleepState`` and what the
autoscaler must do with the count (``SleepDecision.override``). The reactive policies
(autoscale.policy, autoscale.workers) never take the count to zero themselves: while awake they
run with a floor of one, so an idle fleet shrinks to one replica by their usual rules and only
this machine takes the last one away, after ``idle_seconds`` with nothing to do. Why a separate
machine (docs/scale-to-zero.md): at zero there is nothing to measure, so the engine's metrics
cannot wake a fleet; the wake signal is the task queue, which exists at zero (the fleets' Redis
streams), and a wake must not be undone by the next evaluation that again sees no replica.

States: Awake -> (idle for idle_seconds) -> Sleeping -> (work queued) -> Waking -> (one replica
ready) -> Awake. No flapping: a fleet that just woke must be idle for a whole ``idle_seconds``
again before it sleeps, and a wake holds until a replica is ready even if the task that caused
it was cancelled meanwhile (a replica half loaded is the most expensive one to throw away).
Unknown activity (the queue could not be read) never puts a fleet to sleep and never wakes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from agentfleet_contract.conditions import timestamp

from agentfleet.autoscale.pods import _ts

Phase = Literal["Awake", "Sleeping", "Waking"]
AWAKE: Phase = "Awake"
SLEEPING: Phase = "Sleeping"
WAKING: Phase = "Waking"


@dataclass(frozen=True)
class SleepConfig:
    enabled: bool  # minReplicas is 0
    idle_seconds: float  # sleepAfterIdleSeconds


@dataclass(frozen=True)
class SleepState:
    phase: Phase = AWAKE
    since: float = 0.0  # when this phase began
    idle_since: float | None = None  # while awake: since when nothing was to do
    woken_at: float | None = None  # when the wake signal was seen (Waking)
    last_wake_seconds: float | None = None  # the last wake's signal -> ready time


@dataclass(frozen=True)
class Activity:
    """What one evaluation saw. ``work``: tasks queued or in flight at the fleets this object
    serves (or its own queue), plus requests waiting or running at its replicas; None when it
    could not be read. ``ready``: replicas (workers) ready now.

    A fleet's own state is no wake signal for its model, only its queue is: a fleet stuck waking
    (no node for its workers) would otherwise wake the model again after every idle time."""

    work: float | None
    ready: int


@dataclass(frozen=True)
class SleepDecision:
    state: SleepState
    # None: the reactive policy decides (with a floor of ``floor``); an int: the count to hold.
    override: int | None
    floor: int  # the fewest replicas the reactive policy may keep while not sleeping
    event: tuple[str, str, str] | None = None  # (type, reason, message) on a change of phase
    why: str = ""


def decide_sleep(config: SleepConfig, state: SleepState, activity: Activity, now: float) -> SleepDecision:
    if not config.enabled:
        # minReplicas above zero: always awake; a sleeping object whose minimum was raised wakes
        # through the policy's own floor.
        awake = SleepState(AWAKE, now if state.phase != AWAKE else state.since, None, None, state.last_wake_seconds)
        return SleepDecision(awake, None, 0)
    busy = activity.work is None or activity.work > 0
    if state.phase == SLEEPING:
        wake_why = _wake_reason(activity)
        if wake_why is None:
            return SleepDecision(state, 0, 0, why=f"sleeping since {_ago(now, state.since)}: nothing queued")
        waking = replace(state, phase=WAKING, since=now, idle_since=None, woken_at=now)
        return SleepDecision(waking, None, 1, ("Normal", "Waking", f"waking: {wake_why}"), wake_why)
    if state.phase == WAKING:
        if activity.ready > 0:
            took = max(0.0, now - (state.woken_at if state.woken_at is not None else state.since))
            awake = SleepState(AWAKE, now, now, None, took)
            msg = f"awake: {activity.ready} ready {took:.1f}s after the wake signal"
            return SleepDecision(awake, None, 1, ("Normal", "Woke", msg), msg)
        return SleepDecision(state, None, 1, why=f"waking for {_ago(now, state.since)}: no replica ready yet")
    # Awake.
    if busy:
        return SleepDecision(
            replace(state, idle_since=None), None, 1, why="busy" if activity.work is not None else "activity unknown"
        )
    idle_since = state.idle_since if state.idle_since is not None else now
    idle = now - idle_since
    if idle < config.idle_seconds:
        return SleepDecision(
            replace(state, idle_since=idle_since),
            None,
            1,
            why=f"idle {idle:.0f}s of {config.idle_seconds:.0f}s before sleeping",
        )
    slept = SleepState(SLEEPING, now, None, None, state.last_wake_seconds)
    msg = f"sleeping at zero: idle for {idle:.0f}s (sleepAfterIdleSeconds {config.idle_seconds:.0f})"
    return SleepDecision(slept, 0, 0, ("Normal", "Sleeping", msg), msg)


def _wake_reason(activity: Activity) -> str | None:
    if activity.work is not None and activity.work > 0:
        return f"{activity.work:.0f} tasks queued or in flight"
    return None


def _ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.0f}s"


def restore(status: Mapping[str, Any] | None, now: float) -> SleepState:
    """The state an operator restart resumes from: status.sleep (the only memory it has)."""
    s = status or {}
    phase = s.get("state")
    if phase not in (AWAKE, SLEEPING, WAKING):
        return SleepState(AWAKE, now, None)
    since = _ts(s.get("since")) or now
    wake = s.get("lastWakeSeconds")
    return SleepState(
        phase, since, _ts(s.get("idleSince")), since if phase == WAKING else None, None if wake is None else float(wake)
    )


def to_status(state: SleepState) -> dict[str, Any]:
    """status.sleep (common.SleepStatus) for a state."""
    out: dict[str, Any] = {"state": state.phase, "since": timestamp(state.since)}
    if state.phase == AWAKE and state.idle_since is not None:
        out["idleSince"] = timestamp(state.idle_since)
    if state.last_wake_seconds is not None:
        out["lastWakeSeconds"] = round(state.last_wake_seconds, 1)
    return out
