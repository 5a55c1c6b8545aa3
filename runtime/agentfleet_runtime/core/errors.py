"""Exceptions that end a task run early; they cross module lines (store, tools, loop, worker)."""

from __future__ import annotations


class LeaseLost(Exception):
    """Another worker holds the task now (this one stalled past the visibility timeout)."""


class CheckpointConflict(Exception):
    """The stored steps do not line up with the step being written: a bug, never retried blindly."""


class Released(Exception):
    """The worker is draining: stop at this step boundary and hand the task back."""


class Cancelled(Exception):
    """The task's cancel flag was seen at a checkpoint."""


class ModelError(Exception):
    """A call that failed after its retries; ``retryable`` tells whether a later attempt may work."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class SpendRefused(Exception):
    """A model call whose worst case would pass the task tree's maxCost or the tenant's
    maxSpendPerDay even at one output token: the task ends as a budget ends it (``reason``)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
