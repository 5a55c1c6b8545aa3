"""Stopping: the drain on SIGTERM, a kill, and ending the background loops.

The drain lets running steps reach their next checkpoint within the grace period (the loop stops
between steps once it sees the drain), then cancels what is still held with ``shutdown``: each
handler then hands its task back to the stream, no failure counted. New entries are not taken
meanwhile (the poll loops check the drain flag), and a task is released only once the fetch loop
has stopped, so this worker cannot read it back.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agentfleet_runtime.worker.held import HeldTasks
from agentfleet_runtime.worker.slots import Slots

log = logging.getLogger("agentfleet_runtime.worker")


async def drain_held(held: HeldTasks, slots: Slots, grace: float) -> None:
    """Wait up to ``grace`` seconds for the held tasks to end, then release the rest."""
    deadline = time.monotonic() + grace
    slots.wake()  # a fetch loop waiting for a slot must see the drain and stop
    while held and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await cancel_held(held, "shutdown")


async def cancel_held(held: HeldTasks, why: str) -> None:
    """Cancel every held task's handling with ``why`` and wait for the handlers to end."""
    for h in list(held.values()):
        h.cancel(why)
    if held:
        await asyncio.gather(*(h.task for h in list(held.values())), return_exceptions=True)


async def stop_loops(loops: list[asyncio.Task[None]]) -> None:
    """Cancel the background loops and wait for them to end.

    redis-py (8.1) can swallow a cancellation that lands in a blocking XREADGROUP and go on
    reading: the fetch loop then never ends and neither would this. Cancel again until all loops
    have ended (each try costs at most a short wait)."""
    pending = set(loops)
    for _ in range(50):
        if not pending:
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    if pending:
        log.error("background loops did not stop", extra={"loops": sorted(t.get_name() for t in pending)})
    loops.clear()
