"""A level-triggered work queue for reconcilers, in the manner of client-go's workqueue.

kopf calls a handler per event of each object; our reconcile instead depends on many objects
(the ModelReplicaSet, its pods, every node and GPU pod), so handlers only *name* the object to
reconcile and this queue runs the reconciles:

- a key is reconciled by at most one worker at a time; requests that arrive meanwhile coalesce
  into one more run after it, so a burst of pod events costs one or two reconciles, not one each;
- a delayed request (drain polling, restart backoff) keeps the earliest due time;
- a failed reconcile is retried with exponential backoff per key (reset on success);
- every known key is reconciled again every `resync` seconds, the safety net of level-based
  control (an event lost to a watch restart is repaired by the next resync).

It replaces kopf timers on purpose: a kopf timer or daemon holds a finalizer on its object, so
deleting a ModelReplicaSet would block for as long as the operator is down.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

ERROR_BACKOFF_BASE = 0.5
ERROR_BACKOFF_MAX = 60.0
# How long a follow-up (its pods became ready, its Services are due) may wait behind new objects.
# A follow-up pass writes status, Services and a PDB and costs several first passes: in a GitOps
# sync of a whole fleet, letting them in after one second starved the first passes of the objects
# still waiting for their pods.
URGENT_AFTER_SECONDS = 5.0


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Hashable], Awaitable[float | None]],
        *,
        workers: int = 4,
        resync: float = 60.0,
        backoff: tuple[float, float] = (ERROR_BACKOFF_BASE, ERROR_BACKOFF_MAX),
        quiet: tuple[type[Exception], ...] = (),
    ) -> None:
        """`backoff`: first and longest retry delay after failures; `quiet`: expected failures
        (an unreachable dependency) logged as one line instead of a traceback."""
        self._work = work
        self._backoff = backoff
        self._quiet = quiet
        self._workers = max(1, workers)
        self._resync = resync
        self._due: dict[Hashable, float] = {}
        self._asked: dict[Hashable, float] = {}  # when the pending run was first asked for
        self._urgent: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._known: set[Hashable] = set()
        self._failures: dict[Hashable, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- requests (call on the event loop) ---

    def add(self, key: Hashable, delay: float = 0.0, *, urgent: bool = False) -> None:
        """Reconcile `key` after `delay` seconds (or sooner if already asked for sooner).

        `urgent` keys go before other due keys when workers are scarce: a change of the object
        itself (a new object, a new spec) before follow-ups such as its pods becoming ready."""
        loop = self._loop or asyncio.get_running_loop()
        self._known.add(key)
        if urgent:
            self._urgent.add(key)
        now = loop.time()
        due = now + max(0.0, delay)
        if due < self._due.get(key, math.inf):
            self._due[key] = due
        self._asked.setdefault(key, now)
        if self._wake is not None:
            self._wake.set()

    def add_threadsafe(self, key: Hashable, delay: float = 0.0, *, urgent: bool = False) -> None:
        """``add`` from another thread (a watch of something outside the cluster); dropped before the
        queue has started (nothing is being reconciled yet)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(functools.partial(self.add, key, delay, urgent=urgent))

    def forget(self, key: Hashable) -> None:
        """Stop reconciling `key` (its object is gone); a run in progress finishes."""
        self._known.discard(key)
        self._due.pop(key, None)
        self._asked.pop(key, None)
        self._urgent.discard(key)
        self._failures.pop(key, None)

    def known(self) -> set[Hashable]:
        return set(self._known)

    @property
    def started(self) -> bool:
        return self._dispatcher is not None and not self._dispatcher.done()

    def start(self) -> None:
        """Start the dispatcher on the running loop (idempotent). The dispatcher and its workers
        inherit the caller's context variables (kopf's event-posting queue among them)."""
        if self.started:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._dispatcher = self._loop.create_task(self._dispatch(), name="agentfleet workqueue")

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dispatcher = None

    # --- internals ---

    async def _dispatch(self) -> None:
        assert self._loop is not None and self._wake is not None
        next_resync = self._loop.time() + self._resync
        while True:
            now = self._loop.time()
            if now >= next_resync:
                for key in self._known:
                    self.add(key)
                next_resync = now + self._resync
            # Urgent keys first; a key that has waited URGENT_AFTER_SECONDS counts as urgent too, so
            # a stream of new objects never starves the follow-ups of older ones.
            due = sorted(
                (k not in self._urgent and now - t < URGENT_AFTER_SECONDS, t, i, k)
                for i, (k, t) in enumerate(self._due.items())
                if t <= now and k not in self._running
            )
            for *_, key in due:
                if len(self._running) >= self._workers:
                    break
                del self._due[key]
                self._running.add(key)
                task = self._loop.create_task(self._run(key), name=f"reconcile {key}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            # Sleep until the next due key (if a worker is free to take it), the next resync, or a wake-up.
            until = next_resync
            if len(self._running) < self._workers:
                until = min([until, *(t for k, t in self._due.items() if k not in self._running)])
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, until - self._loop.time()))
            except TimeoutError:
                pass

    async def _run(self, key: Hashable) -> None:
        assert self._loop is not None
        delay: float | None = None
        start = self._loop.time()
        asked = self._asked.pop(key, start)
        self._urgent.discard(key)
        try:
            delay = await self._work(key)
            self._failures.pop(key, None)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "reconciled %s in %.0f ms, %.0f ms after it was asked for",
                    key,
                    (self._loop.time() - start) * 1e3,
                    (start - asked) * 1e3,
                )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            n = self._failures.get(key, 0) + 1
            self._failures[key] = n
            delay = min(self._backoff[1], self._backoff[0] * 2 ** (n - 1))
            if isinstance(e, self._quiet):
                log.warning("reconcile of %s failed (%d in a row); retrying in %.1fs: %s", key, n, delay, e)
            else:
                log.exception("reconcile of %s failed (%d in a row); retrying in %.1fs", key, n, delay)
        finally:
            self._running.discard(key)
            if self._wake is not None:
                self._wake.set()
        if delay is not None and key in self._known:
            self.add(key, delay)
