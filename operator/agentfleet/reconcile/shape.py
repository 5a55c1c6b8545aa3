"""The one shape of a reconcile, shared by every controller: four named steps and the ``run`` that
calls them in order.

    observe  reads only (the object, its children, caches, metrics); returns a frozen typed record
    decide   pure: returns a typed plan, a ``Wants`` (observe more, then decide again), or a
             ``Refused`` (it may raise one too)
    act      writes children, deletes, drains: server-side apply under the controller's field manager
    write    status and conditions, Events; returns seconds until the next pass, or None

Refuse-and-report lives here once: a ``Refused`` raised by observe or decide, or returned by decide,
becomes one Warning Event (de-duplicated by the EventRecorder, so once per cause) and the
controller's refusal condition (``write_refusal``); nothing else is created or changed.

``Wants`` exists for reads that only some plans need (the autoscaler asks the placement planner for
room only when it grows): decide names what it is missing, ``observe_more`` reads it into a new
observation, and decide runs again on the fuller record. A pass does at most ``MAX_ROUNDS`` of those.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from agentfleet.rejected import Rejected

O = TypeVar("O")  # noqa: E741 - the observation
P = TypeVar("P")  # the plan
A = TypeVar("A")  # what act did, for write

STEPS = ("observe", "decide", "act", "write")
MAX_ROUNDS = 4


class Refused(Exception):  # noqa: N818 - a refusal is an outcome of decide, not a failure of the pass
    """The object cannot be acted on as it is: ``field`` names what to fix, ``reason`` is the
    condition's and Event's reason, ``message`` a fixed text for a user (details go to the log)."""

    def __init__(self, reason: str, message: str, field: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.message = message
        self.field = field
        self.retry_after = retry_after  # checked again after this long (what it waits for wakes nothing)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Refused) and (self.reason, self.message, self.field, self.retry_after) == (
            other.reason,
            other.message,
            other.field,
            other.retry_after,
        )

    def __hash__(self) -> int:
        return hash((self.reason, self.message, self.field, self.retry_after))


class Wants:
    """Returned by decide: a plan needs a read the first observation did not make."""


class Steps(ABC, Generic[O, P, A]):
    """One reconcile of one object in the four steps. ``services`` names the Protocol of what the
    steps use of their controller (every member typed; tests/unit/controllers/test_shape.py)."""

    services: ClassVar[type]

    @abstractmethod
    def observe(self) -> O: ...

    @abstractmethod
    def decide(self, observed: O) -> P | Wants | Refused:
        """Pure: no I/O, no mutation of what it was given."""

    @abstractmethod
    def act(self, observed: O, plan: P) -> A: ...

    @abstractmethod
    def write(self, observed: O, plan: P, acted: A) -> float | None: ...

    def observe_more(self, observed: O, wants: Wants) -> O:
        raise NotImplementedError(f"{type(self).__name__} asked for {wants!r} but reads nothing more")

    # --- refuse-and-report, once ---

    @abstractmethod
    def warn(self, reason: str, message: str) -> None:
        """A Warning Event about the object (the EventRecorder de-duplicates it)."""

    def write_refusal(self, refused: Refused) -> None:
        """The refusal's condition; a kind whose steps never refuse needs none."""
        raise NotImplementedError(f"{type(self).__name__} cannot report {refused.reason}")

    def refuse(self, refused: Refused) -> float | None:
        self.warn(refused.reason, refused.message)
        self.write_refusal(refused)
        return refused.retry_after

    # --- the pass ---

    def settle(self, observed: O) -> tuple[O, P]:
        """decide, reading more while it wants (``Wants``); a refusal is raised."""
        plan = self.decide(observed)
        for _ in range(MAX_ROUNDS):
            if not isinstance(plan, Wants):
                break
            observed = self.observe_more(observed, plan)
            plan = self.decide(observed)
        if isinstance(plan, Wants):
            raise RuntimeError(f"{type(self).__name__}: decide still wants {plan!r} after {MAX_ROUNDS} reads")
        if isinstance(plan, Refused):
            raise plan
        return observed, plan

    def run(self) -> float | None:
        try:
            observed, plan = self.settle(self.observe())
        except Refused as refused:
            return self.refuse(refused)
        try:
            acted = self.act(observed, plan)
            return self.write(observed, plan, acted)
        except Rejected as e:
            # The pass fails and is retried with backoff as before; the object says why, since an
            # apply the API server refuses (an invalid rendered field, a verb the RBAC lacks) stops
            # the pass half-way, before write, and the status alone would not show it.
            self.warn("ApplyRejected", str(e))
            raise
