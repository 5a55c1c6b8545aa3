"""Handling one leased task: take its lease, run its steps, and end the attempt.

An attempt ends in one of five ways, each recorded in Redis before the slot is given back:
finished (the loop recorded the result), released (drain: the last checkpoint stands and the
task goes back to the stream, no failure counted), cancelled (the task's cancel flag), lease lost
(another worker took it over: nothing is written), or failed (retried later with backoff, or
dead-lettered after ``retry.maxAttempts``). Endings are shielded: they must complete even while
the handler is being cancelled at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from agentfleet_contract.fleet_keys import CONSUMER_GROUP
from agentfleet_contract.runtime_config import RuntimeConfig
from redis.exceptions import OutOfMemoryError, RedisError

from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.budget import Prices
from agentfleet_runtime.core.errors import Cancelled, LeaseLost, Released, SpendRefused
from agentfleet_runtime.core.logs import task_id_var
from agentfleet_runtime.loop.agent import LoopSettings, TaskRun
from agentfleet_runtime.model.client import ModelClient, ModelError
from agentfleet_runtime.store.approvals import Approvals, AwaitingApproval
from agentfleet_runtime.store.connection import full_reason
from agentfleet_runtime.store.tasks import Acquired, TaskStore
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.worker.held import Held, HeldTasks
from agentfleet_runtime.worker.slots import Slots

log = logging.getLogger("agentfleet_runtime.worker")


class TaskHandler:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        name: str,
        store: TaskStore,
        model: ModelClient,
        toolbox: ToolBox,
        settings: LoopSettings,
        prices: Prices,
        slots: Slots,
        held: HeldTasks,
        draining: Callable[[], bool],
        fetch_stopped: asyncio.Event,
        approvals: Approvals | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.store = store
        self.model = model
        self.toolbox = toolbox
        self.settings = settings
        self.prices = prices
        self.slots = slots
        self.held = held
        self.draining = draining
        self.fetch_stopped = fetch_stopped  # set once the poll loop can no longer take a released task back
        self._lease_ids = itertools.count(1)
        self.approvals = approvals

    def start(self, msg_id: str, task_id: str, *, reclaimed: bool) -> None:
        """Take a slot and start handling the task, unless it is empty or already held here."""
        if not task_id:
            return
        if task_id in self.held:
            return
        self.slots.take()
        task = asyncio.create_task(self._run(msg_id, task_id, reclaimed), name=f"task:{task_id}")
        self.held[task_id] = Held(task, msg_id)
        metrics.IN_FLIGHT.set(len(self.held))

    async def _run(self, msg_id: str, task_id: str, reclaimed: bool) -> None:
        task_id_var.set(task_id)
        held = self.held[task_id]
        lease = f"{self.name}:{next(self._lease_ids)}"
        run: TaskRun | None = None
        try:
            got = await self._acquire(task_id, lease, msg_id, reclaimed)
            if not isinstance(got, Acquired):
                if got == "dead":
                    metrics.TASKS.labels("failed").inc()
                    log.warning(
                        "task dead-lettered: its workers kept dying", extra={"attempts": self.config.retry.max_attempts}
                    )
                return
            run = TaskRun(
                got,
                lease=lease,
                msg_id=msg_id,
                store=self.store,
                model=self.model,
                tools=self.toolbox,
                prices=self.prices,
                settings=self.settings,
                draining=self.draining,
            )
            held.run = run
            log.info(
                "task started",
                extra={"attempt": got.record.attempts, "resumed_steps": len(got.steps), "reclaimed": reclaimed},
            )
            await run.execute()
        except asyncio.CancelledError:
            await self._after_cancel(held, run, lease, msg_id)
        except Released:
            await self._release(run, lease, msg_id)
        except AwaitingApproval as waiting:
            await self._park(run, lease, msg_id, waiting)
        except Cancelled:
            if run is not None:
                await self._cancel_run(run)
        except LeaseLost:
            log.warning("lease lost: another worker resumed this task", extra={"worker": self.name})
        except SpendRefused as refused:
            await self._spend_refused(run, refused)
        except Exception as e:
            await self._failed(run, lease, msg_id, e)
        finally:
            self.held.pop(task_id, None)
            self.slots.give_back()
            metrics.IN_FLIGHT.set(len(self.held))

    async def _acquire(self, task_id: str, lease: str, msg_id: str, reclaimed: bool) -> Acquired | str:
        """Take the lease, retrying Redis errors for up to half the visibility timeout: nothing has
        happened yet, and giving up would leave the entry to be reclaimed as a failed attempt."""
        give_up = time.monotonic() + self.config.visibility_timeout / 2
        delay = 0.05
        while True:
            try:
                return await self.store.acquire(
                    task_id,
                    lease=lease,
                    msg_id=msg_id,
                    reclaimed=reclaimed,
                    max_attempts=self.config.retry.max_attempts,
                    worker=self.name,
                )
            except RedisError:
                if time.monotonic() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _after_cancel(self, held: Held, run: TaskRun | None, lease: str, msg_id: str) -> None:
        if run is None or held.why in ("lease_lost", "killed"):
            return
        if held.why == "cancel":
            await self._cancel_run(run)
        else:  # shutdown after the grace period: the last checkpoint stands
            await self._release(run, lease, msg_id)

    async def _cancel_run(self, run: TaskRun) -> None:
        try:
            await _shielded(run.finish_cancelled())
        except LeaseLost:
            log.warning("cancelled task was already taken over by another worker")
        except RedisError as e:
            # The cancel flag stays set in Redis: whoever resumes the task ends it as cancelled.
            log.error("could not record the cancellation; left for reclaim", extra={"error": str(e)})

    async def _release(self, run: TaskRun | None, lease: str, msg_id: str) -> None:
        if run is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.fetch_stopped.wait()), 5.0)
        try:
            released = await _shielded(self.store.release(run.rec, lease, msg_id))
        except RedisError as e:
            log.error(
                "could not release the task; it is reclaimed after the visibility timeout", extra={"error": str(e)}
            )
            return
        if released is not None:
            metrics.RELEASED.inc()
            log.info("task released for another worker", extra={"steps": len(run.steps)})

    async def _room_again(self) -> bool:
        # Within half the visibility timeout, while the lease is surely still this worker's.
        return await _wait_room(self.store.r, time.monotonic() + self.config.visibility_timeout / 2)

    async def _park(self, run: TaskRun | None, lease: str, msg_id: str, waiting: AwaitingApproval) -> None:
        """Hand the task to its approvers: no lease, no stream entry, no slot until they decide."""
        if run is None or self.approvals is None:
            return
        try:
            parked = await _shielded(self.approvals.park(run.rec, lease, msg_id, waiting, CONSUMER_GROUP))
        except RedisError as e:
            why = "could not park the task for approval; it is reclaimed after the visibility timeout"
            log.error(why, extra={"error": str(e)})
            return
        if parked == -2:  # cancelled meanwhile: it ends here instead
            await self._cancel_run(run)
        elif parked == -1:
            log.warning("lease lost before the task could wait for approval", extra={"worker": self.name})
        else:
            tools = [c.name for _, c in waiting.calls]
            log.info("task waits for approval", extra={"step": waiting.step, "tools": tools})

    async def _spend_refused(self, run: TaskRun | None, refused: SpendRefused) -> None:
        """A call that no limit had room for ends the task as a budget does, with its best answer:
        no attempt of it could fit either (model/spend.py)."""
        if run is None:
            return
        log.info("budget reached", extra={"reason": refused.reason, "detail": str(refused)})
        try:
            await _shielded(run.end_at_budget(refused.reason))
        except LeaseLost:
            return
        except RedisError as re:
            log.error("could not end the task at its spend limit; left for reclaim", extra={"error": str(re)})

    async def _failed(self, run: TaskRun | None, lease: str, msg_id: str, e: Exception) -> None:
        error = f"{type(e).__name__}: {e}"
        if run is None:
            log.error("could not start task", extra={"error": error})
            return
        if isinstance(e, OutOfMemoryError) and await self._room_again():
            # Redis was full (maxmemory, noeviction), which is no fault of the task: hand it back
            # from its last checkpoint, as a drain does, instead of leaving it to be reclaimed as
            # a dead worker's (a counted failure; maxAttempts of those dead-letter it).
            # Not held from here: the poll loop may deliver the requeued entry at once, and an
            # entry it skips as held stays pending until reclaimed (seen: a failure counted).
            self.held.pop(run.rec.id, None)
            try:
                await _shielded(self.store.release(run.rec, lease, msg_id))
                log.warning("redis was full; task handed back without a failure", extra={"error": error})
                return
            except RedisError as re:
                e = re  # still refused: as any other Redis error below
        if isinstance(e, RedisError):
            # Redis stayed unreachable past the client's retries: leave the entry pending; it is
            # reclaimed after the visibility timeout, by this worker or another.
            log.error("redis unavailable; task left for reclaim", extra={"error": error})
            return
        failures = run.rec.failures + 1
        delay = min(60.0, self.config.worker.retry_backoff_seconds * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        level = logging.WARNING if isinstance(e, ModelError) else logging.ERROR
        log.log(
            level,
            "task attempt failed",
            extra={"error": error, "failures": failures},
            exc_info=not isinstance(e, ModelError),
        )
        try:
            outcome, _ = await _shielded(
                self.store.retry_later(run.rec, lease, msg_id, error, delay, self.config.retry.max_attempts)
            )
        except LeaseLost:
            return
        except RedisError as re:
            log.error("could not record the failed attempt; left for reclaim", extra={"error": str(re)})
            return
        metrics.TASK_RETRIES.labels("error").inc()
        if outcome == "dead":
            metrics.TASKS.labels("failed").inc()
            log.error("task dead-lettered", extra={"error": error, "failures": failures})


async def _wait_room(r: Any, give_up: float) -> bool:
    """Whether Redis has room for writes again before ``give_up`` (monotonic seconds)."""
    while time.monotonic() < give_up:
        try:
            if await full_reason(r) is None:
                return True
        except RedisError:
            pass
        await asyncio.sleep(0.5)
    return False


async def _shielded(coro: Any) -> Any:
    # Endings must complete even if this coroutine is being cancelled (shutdown).
    return await asyncio.shield(coro)
