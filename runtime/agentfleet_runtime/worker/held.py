"""The tasks a worker holds: one asyncio task each, with the stream entry it was leased by."""

from __future__ import annotations

import asyncio

from agentfleet_runtime.loop.agent import TaskRun


class Held:
    __slots__ = ("task", "msg_id", "run", "why")

    def __init__(self, task: asyncio.Task[None], msg_id: str) -> None:
        self.task = task
        self.msg_id = msg_id
        self.run: TaskRun | None = None  # set once the lease is taken and the task is loaded
        self.why = ""  # why it was cancelled: cancel, lease_lost, shutdown, killed

    def cancel(self, why: str) -> None:
        """Cancel the task's handling; its handler reads ``why`` to decide how the attempt ends."""
        self.why = why
        self.task.cancel()


HeldTasks = dict[str, Held]  # task id -> Held
