"""Wait briefly for room at the task's replica instead of spilling the call elsewhere.

The load bound (hashing.py) moves a call whose replica is at the cap to the task's next replica,
and the task stays there (its cache follows it). But a task's calls are short and its replica's
in-flight count is usually over the cap only for a moment, while the move costs a re-prefill of
the task's whole history on the new replica (seconds at 20-40K tokens) and the hits of every
later call that would have found it at home. Measured (routing_bench.py section 5): nearly all
of PrefixAffinity's missing hits at 125% were such moves. So a call that the bound would spill
first waits up to ``spill_wait_s`` for its replica to drop under the cap (a call there ends), then
goes home; only if none ends in time does it spill. No call is ever placed above the cap: the
bound holds exactly as before; the wait replaces a move, and is short next to a re-prefill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class RoomWaiter:
    def __init__(self) -> None:
        self._freed: dict[str, asyncio.Event] = {}

    def freed(self, replica: str) -> None:
        """A call on ``replica`` ended (its in-flight count dropped)."""
        event = self._freed.get(replica)
        if event is not None:
            event.set()

    async def wait(self, replica: str, room: Callable[[], bool], timeout: float) -> bool:
        """Until ``room()`` holds (checked after each call on ``replica`` ends) or ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not room():
            left = deadline - loop.time()
            if left <= 0:
                return False
            event = self._freed.setdefault(replica, asyncio.Event())
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), left)
            except TimeoutError:
                return room()
        return True
