"""Notifications over pub/sub: cancellations, and children ending (a parent's fan-in).

Pub/sub is at-most-once (a message sent while this worker is reconnecting is lost), so it only
wakes: cancellation is also a flag the loop checks at each step, and a parent waiting for its
children also polls their statuses every ``FANIN_POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from agentfleet_contract.fleet_keys import Keys

from agentfleet_runtime.core.errors import Released
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.worker.held import HeldTasks

FANIN_POLL_SECONDS = 2.0  # pub/sub is at-most-once: poll children this often as a fallback


class FanInWaits:
    """Parents waiting for children: one event per waiting parent, registered under each child."""

    def __init__(self, store: TaskStore, draining: Callable[[], bool]) -> None:
        self.store = store
        self.draining = draining
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def ended(self, task_id: str) -> None:
        for ev in self._waiters.get(task_id, ()):
            ev.set()

    async def wait_for_tasks(self, task_ids: Sequence[str], until: float) -> None:
        pending = set(task_ids)
        ev = asyncio.Event()
        for tid in pending:
            self._waiters.setdefault(tid, set()).add(ev)
        try:
            while pending:
                ev.clear()  # cleared before the check: an end published after it still wakes us
                states = await self.store.statuses(sorted(pending))
                for tid, st in zip(sorted(pending), states, strict=True):
                    if st is None or st["status"] in ("done", "cancelled", "dead"):
                        pending.discard(tid)
                left = until - time.time()
                if not pending or left <= 0:
                    return
                if self.draining():
                    raise Released("draining during fan-in")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), min(left, FANIN_POLL_SECONDS))
        finally:
            for tid in task_ids:
                waiters = self._waiters.get(tid)
                if waiters is not None:
                    waiters.discard(ev)
                    if not waiters:
                        del self._waiters[tid]


async def notify_loop(pubsub: Any, keys: Keys, held: HeldTasks, fan_in: FanInWaits) -> None:
    async for message in pubsub.listen():
        if message.get("type") != "message":
            continue
        channel, tid = message["channel"], message["data"]
        if channel == keys.cancel_channel:
            h = held.get(tid)
            if h is not None and h.run is not None and not h.why:
                h.cancel("cancel")
        else:
            fan_in.ended(tid)
