"""Heartbeats: renew the leases on the stream entries this worker holds.

Renewing keeps an entry from looking idle to other workers' reclaim. An entry reported lost (its
idle time had passed the visibility timeout and another worker claimed it) is abandoned at once:
its handler is cancelled with ``lease_lost`` and writes nothing, since the new holder resumes the
task from its last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.worker.held import HeldTasks

log = logging.getLogger("agentfleet_runtime.worker")


async def heartbeat_loop(store: TaskStore, name: str, held: HeldTasks, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        by_entry = {h.msg_id: tid for tid, h in held.items()}
        if not by_entry:
            continue
        lost = await store.heartbeat(name, list(by_entry))
        for msg_id in lost:
            tid = by_entry[msg_id]
            h = held.get(tid)
            if h is not None and h.msg_id == msg_id and h.run is not None:
                log.warning("lease lost to another worker; abandoning", extra={"task_id": tid})
                h.cancel("lease_lost")
