"""A fake of the store the agent loop writes through (our own logic's unit tests only)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentfleet_runtime.core.budget import TreeUsage


class LoopStore:
    """The store the agent loop writes to, answering as a store that saved everything at once: the
    unit tests of the loop's decisions and the journals' replay run the loop against it."""

    def __init__(self) -> None:
        self.finished: dict[str, Any] = {}

    def send_reply(self, rec, lease, step, cost):
        return asyncio.ensure_future(asyncio.sleep(0, False))

    def fold_observations(self, saving_reply, step):
        return False

    @staticmethod
    def reply_saved(rec, n, cancel):
        return TreeUsage(), cancel

    async def complete(self, rec, lease, step):
        return False

    async def finish(self, rec, lease, msg_id, **kw):
        self.finished = kw
        return True

    async def children(self, task_id):
        return []
