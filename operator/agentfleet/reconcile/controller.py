"""The Controller base class: a kind's reconciles, run from its work queue in worker threads.

A controller's kopf handlers only name objects (``enqueue``/``forget``); the queue serialises
reconciles per key, coalesces bursts, retries with backoff and resyncs (workqueue.py). Each
reconcile reads what it needs fresh, so it acts on the latest spec and status, never on the
event that asked for it. What a controller remembers about an object between reconciles lives in
one typed state object per key (``state``), dropped with ``forget``; losing it (an operator
restart) must always be safe.

Reconciles run in a thread pool because the kubernetes client is synchronous; the pool's threads
run in a copy of the dispatcher's context, which carries kopf's Event poster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable, Hashable
from typing import Any, ClassVar, Generic, TypeVar

import kopf

from agentfleet.kube import Kube
from agentfleet.reconcile.events import EventRecorder
from agentfleet.reconcile.workqueue import WorkQueue

Key = tuple[str, str]  # (namespace, name)
S = TypeVar("S")


class _Forget:
    """Returned by a reconcile whose object needs nothing more: its key and state are dropped."""


FORGET: Any = _Forget()


class Controller(Generic[S]):
    """Subclasses name their kind, make their per-object state and implement ``reconcile``."""

    api_version: str
    kind: str
    name: str  # in thread names and logs
    # The reconcile's shape (agentfleet.reconcile.shape.Steps subclasses, one per kind of pass):
    # every controller names its own; tests/unit/controllers/test_shape.py keeps it so.
    steps: ClassVar[tuple[type, ...]] = ()

    def __init__(
        self,
        kube: Kube,
        events: EventRecorder,
        *,
        workers: int,
        resync: float,
        backoff: tuple[float, float],
        quiet: tuple[type[Exception], ...] = (),
    ) -> None:
        """``backoff``: first and longest retry delay after failures; ``quiet``: expected failures
        (an unreachable dependency) logged as one line instead of a traceback."""
        self.kube = kube
        self.events = events
        self.workers = max(1, workers)
        self.queue = WorkQueue(self._work, workers=self.workers, resync=resync, backoff=backoff, quiet=quiet)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=f"af-{self.name}"
        )
        self._states: dict[Hashable, S] = {}
        self._states_lock = threading.Lock()  # worker threads add states while kopf's loop reads them

    # --- per-object state ---

    def new_state(self) -> S:
        raise NotImplementedError

    def state(self, key: Hashable) -> S:
        with self._states_lock:
            s = self._states.get(key)
            if s is None:
                s = self._states[key] = self.new_state()
            return s

    def known_state(self, key: Hashable) -> S | None:
        with self._states_lock:
            return self._states.get(key)

    def states(self) -> list[tuple[Hashable, S]]:
        with self._states_lock:
            return list(self._states.items())

    # --- requests (on the event loop) ---

    def enqueue(self, key: Hashable, delay: float = 0.0, *, urgent: bool = False) -> None:
        # Started lazily from inside a kopf handler, so that the dispatcher (and every reconcile)
        # inherits kopf's Event-posting context; kopf calls handlers only once its indices are full.
        self.queue.start()
        self.queue.add(key, delay, urgent=urgent)

    def forget(self, key: Hashable) -> None:
        """The object is gone: no more reconciles, nothing remembered."""
        self.queue.forget(key)
        with self._states_lock:
            self._states.pop(key, None)
        self.events.forget(key)

    # --- the work ---

    def fetch(self, key: Key) -> dict[str, Any] | None:
        return self.kube.get(self.api_version, self.kind, key[1], key[0])

    def prepare(self, key: Hashable) -> Any:
        """Runs on the event loop before the reconcile (e.g. to copy caches kopf updates there)."""
        return None

    def reconcile(self, key: Any, prepared: Any) -> float | None:
        """One level-based pass over an object, in a worker thread; seconds until the next pass, or None."""
        raise NotImplementedError

    async def _work(self, key: Hashable) -> float | None:
        prepared = self.prepare(key)
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        after = await loop.run_in_executor(self.pool, functools.partial(ctx.run, self.reconcile, key, prepared))
        if after is FORGET:
            self.forget(key)
            return None
        return after

    async def stop(self) -> None:
        await self.queue.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)


C = TypeVar("C", bound=Controller[Any])


class Running(Generic[C]):
    """The running controller of one kind, or None outside the operator's lifetime (imports,
    tests): handlers call through this, and do nothing before start-up."""

    def __init__(self) -> None:
        self.controller: C | None = None

    def enqueue(self, key: Hashable, delay: float = 0.0, *, urgent: bool = False) -> None:
        if self.controller is not None:
            self.controller.enqueue(key, delay, urgent=urgent)

    def forget(self, key: Hashable) -> None:
        if self.controller is not None:
            self.controller.forget(key)


def serve(factory: Callable[..., C], name: str) -> Running[C]:
    """Start a controller with the operator and stop it on the way out (kopf startup/cleanup).
    ``factory`` receives the startup handler's keyword arguments (kopf indices among them)."""
    running: Running[C] = Running()

    @kopf.on.startup(id=f"start-{name}-controller")
    async def _start(**kwargs: Any) -> None:
        running.controller = factory(**kwargs)

    @kopf.on.cleanup(id=f"stop-{name}-controller")
    async def _stop(**_: Any) -> None:
        if running.controller is not None:
            await running.controller.stop()

    return running
