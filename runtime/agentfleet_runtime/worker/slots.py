"""Concurrency slots: how many tasks one worker holds at once (``worker.concurrency``).

A slot is taken when a task is leased (fetched or reclaimed) and given back when handling that
task ends. A parent waiting for its children (fan-in) lends its slot for the wait: the children
may need it on this same worker, and a worker whose every slot is a waiting parent would never
run them. The poll loop waits for a slot to be given back instead of asking Redis while full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Slots:
    __slots__ = ("capacity", "busy", "_freed")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.busy = 0  # held tasks minus parents lending their slot during fan-in
        self._freed = asyncio.Event()

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.busy)

    def take(self) -> None:
        self.busy += 1

    def give_back(self) -> None:
        self.busy -= 1
        self._freed.set()

    def wake(self) -> None:
        """Wake a poll loop waiting for a slot (the drain: it must notice and stop)."""
        self._freed.set()

    async def wait_given_back(self, timeout: float) -> None:
        """Return when a slot is given back (or woken), or after ``timeout`` seconds."""
        self._freed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._freed.wait(), timeout)

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """Give the caller's slot back for the duration of the block (a parent's fan-in)."""
        self.give_back()
        try:
            yield
        finally:
            self.busy += 1
