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
from collections import deque
from collections.abc import Callable


class RoomWaiter:
    """Per replica, the calls waiting for room, woken one per call that ends there: waking them
    all at once would let every one of them see the same free slot and go over the cap together."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def freed(self, replica: str) -> None:
        """A call on ``replica`` ended (its in-flight count dropped): wake the longest waiter."""
        queue = self._waiting.get(replica)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    async def wait(self, replica: str, room: Callable[[], bool], timeout: float) -> bool:
        """Until ``room()`` holds (checked when woken) or ``timeout``; True if there is room."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not room():
            left = deadline - loop.time()
            if left <= 0:
                return False
            # Looked up on every pass: a wake that found no room (a new call took the slot first)
            # removes the emptied queue, and a waiter left on a removed queue is never woken again.
            queue = self._waiting.setdefault(replica, deque())
            fut: asyncio.Future[None] = loop.create_future()
            queue.append(fut)
            try:
                await asyncio.wait_for(fut, left)
            except TimeoutError:
                return room()
            finally:
                if not queue and self._waiting.get(replica) is queue:
                    self._waiting.pop(replica, None)
        return True
