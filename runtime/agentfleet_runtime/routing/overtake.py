"""Calls overtaken in their replica's queue: the first-token hedge's evidence that a call is slow
for reasons of its own (pure but for the futures it resolves).

A call waiting for its first token is late for one of two reasons. Either the replica's queue is
long (a burst, long prefills ahead of it), and then every call sent there after it waits longer
still: an engine that admits requests first come, first served (vLLM's default scheduling policy)
writes first tokens in the order the calls arrived. A duplicate elsewhere must then compute the
task's whole history cold, and it loses more often than it wins, moving its task away from its
cache when it wins. Or the call itself is slow (a slow path, a request the engine set aside), and
then calls sent after it get their first tokens before it does. Only the second is worth a hedge
before the percentile, and the replica's own later calls tell which it is.

The watch numbers each streamed attempt a replica is sent, in the order they leave, and marks
those still without a first token when a later one gets its own: overtaken. On the hedging
benchmark the signal tells the two apart exactly (docs/hedging.md): no call late from queueing was
overtaken, and most slow calls were, long before the first-token percentile.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class _Queue:
    sent: int = 0  # attempts sent to this replica so far
    waiting: OrderedDict[Hashable, int] = field(default_factory=OrderedDict)  # key -> send number, in send order
    overtaken: dict[Hashable, float] = field(default_factory=dict)  # key -> when a later attempt got its first token
    waiters: dict[Hashable, asyncio.Future[float]] = field(default_factory=dict)

    def drop(self, key: Hashable) -> tuple[int | None, asyncio.Future[float] | None]:
        """Forget attempt ``key``: its send number while it waited unpassed, and its waiter."""
        self.overtaken.pop(key, None)
        return self.waiting.pop(key, None), self.waiters.pop(key, None)


@dataclass
class OvertakeWatch:
    queues: dict[str, _Queue] = field(default_factory=dict)
    overtakes: int = 0  # attempts overtaken (for tests and traces)

    def sent(self, name: str, key: Hashable) -> None:
        """Attempt ``key`` left for ``name`` (streamed: its first token will be seen)."""
        q = self.queues.setdefault(name, _Queue())
        q.sent += 1
        q.waiting[key] = q.sent

    def first_token(self, name: str, key: Hashable, now: float) -> None:
        """Attempt ``key`` got its first token: every attempt sent to ``name`` before it and still
        waiting is overtaken."""
        q = self.queues.get(name)
        if q is None:
            return
        number, _ = q.drop(key)
        if number is None:
            return
        while q.waiting:
            earlier, n = next(iter(q.waiting.items()))
            if n > number:
                break
            del q.waiting[earlier]
            q.overtaken[earlier] = now
            self.overtakes += 1
            waiter = q.waiters.pop(earlier, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    def finished(self, name: str, key: Hashable) -> None:
        """Attempt ``key`` ended (answered, failed, cancelled): forget it."""
        q = self.queues.get(name)
        if q is None:
            return
        _, waiter = q.drop(key)
        if waiter is not None and not waiter.done():
            waiter.cancel()

    def overtaken(self, name: str, key: Hashable) -> asyncio.Future[float] | None:
        """A future of when attempt ``key`` was overtaken (done at once if it already was), or None
        when the watch does not know it (unstreamed, or already answered)."""
        q = self.queues.get(name)
        if q is None or (key not in q.waiting and key not in q.overtaken):
            return None
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if key in q.overtaken:
            fut.set_result(q.overtaken[key])
        else:
            q.waiters[key] = fut
        return fut

    def forget(self, name: str) -> None:
        """``name`` left the replica set."""
        q = self.queues.pop(name, None)
        for waiter in q.waiters.values() if q is not None else ():
            if not waiter.done():
                waiter.cancel()
