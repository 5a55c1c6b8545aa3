"""Polling: lease tasks from the stream while a slot is free.

Two sources. ``fetch`` reads new entries (XREADGROUP, blocking up to a second); ``reclaim``
takes entries whose holder stopped heartbeating for the visibility timeout (XAUTOCLAIM, a bounded
sweep per interval) and first moves retry-delayed tasks whose time has come back onto the stream.
Neither takes more entries than there are free slots. An entry delivered once the drain has begun
goes straight back to the stream.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core import metrics
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.worker.held import HeldTasks
from agentfleet_runtime.worker.slots import Slots

Start = Callable[..., None]  # TaskHandler.start(msg_id, task_id, *, reclaimed)


class Poller:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        name: str,
        redis: Any,
        keys: Keys,
        store: TaskStore,
        slots: Slots,
        held: HeldTasks,
        draining: Callable[[], bool],
        start: Start,
        fetch_stopped: asyncio.Event,
    ) -> None:
        self.config = config
        self.name = name
        self.r = redis
        self.keys = keys
        self.store = store
        self.slots = slots
        self.held = held
        self.draining = draining
        self.start = start
        self.fetch_stopped = fetch_stopped

    async def fetch_loop(self) -> None:
        while not self.draining():
            free = self.slots.free
            if free == 0:
                await self.slots.wait_given_back(1.0)
                continue
            res = await self.r.xreadgroup(
                CONSUMER_GROUP, self.name, {self.keys.stream: ">"}, count=min(free, 200), block=1000
            )
            for _stream, entries in res or []:
                for msg_id, fields in entries:
                    if self.draining():
                        # Delivered just as the drain began: straight back to the stream.
                        await self.store.requeue(msg_id, fields.get("task", ""))
                    else:
                        self.start(msg_id, fields.get("task", ""), reclaimed=False)
        # Only now may held tasks be released: a release re-adds the task to the stream, and a
        # read still blocked here would take it back into this draining worker.
        self.fetch_stopped.set()

    async def reclaim_loop(self) -> None:
        interval = self.config.reclaim_interval
        min_idle = int(self.config.visibility_timeout * 1000)
        while not self.draining():
            await self.store.promote_due()
            start = "0-0"
            for _ in range(10):  # bounded sweep per interval
                free = self.slots.free
                if free == 0 or self.draining():
                    break
                nxt, entries, _deleted = await self.r.xautoclaim(
                    self.keys.stream, CONSUMER_GROUP, self.name, min_idle, start_id=start, count=min(free, 100)
                )
                for msg_id, fields in entries:
                    tid = (fields or {}).get("task", "")
                    if tid in self.held:
                        continue  # ours and still running: our heartbeat lapsed (Redis outage)
                    if self.draining():
                        await self.store.requeue(msg_id, tid)
                        continue
                    metrics.TASK_RETRIES.labels("lease_expired").inc()
                    self.start(msg_id, tid, reclaimed=True)
                if nxt in ("0-0", b"0-0"):
                    break
                start = nxt
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
