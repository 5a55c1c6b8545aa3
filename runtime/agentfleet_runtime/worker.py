"""The worker process: consumes the task stream and runs many agent loops concurrently.

Background loops, each small:
- fetch: XREADGROUP new tasks while a slot is free;
- reclaim: XAUTOCLAIM tasks whose holder stopped heartbeating for the visibility timeout, and
  move retry-delayed tasks back onto the stream;
- heartbeat: renew the entries this worker holds; a lost one (another worker took it) is
  abandoned at once;
- notify: pub/sub for cancellations and for children ending (wakes a parent's fan-in);
- stats: queue depth, pending and lag gauges.

SIGTERM (``drain``): stop fetching, let running steps reach their next checkpoint within the
grace period, then hand every held task back to the stream (no failure counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from agentfleet_runtime import metrics
from agentfleet_runtime.config import prices_of
from agentfleet_runtime.errors import Cancelled, LeaseLost, Released
from agentfleet_runtime.logs import task_id_var
from agentfleet_runtime.loop import LoopSettings, TaskRun
from agentfleet_runtime.model import ModelClient, ModelError, OpenAIChatClient
from agentfleet_runtime.store import Acquired, TaskStore, connect
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.registry import RetrieverFactory, build_tools

log = logging.getLogger("agentfleet.worker")

FANIN_POLL_SECONDS = 2.0  # pub/sub is at-most-once: poll children this often as a fallback


class _Held:
    __slots__ = ("task", "msg_id", "run", "why")

    def __init__(self, task: asyncio.Task[None], msg_id: str) -> None:
        self.task = task
        self.msg_id = msg_id
        self.run: TaskRun | None = None
        self.why = ""  # why it was cancelled: cancel, lease_lost, shutdown


def consumer_name() -> str:
    """Unique per process: a restarted pod must not inherit its predecessor's pending entries
    (they are reclaimed after the visibility timeout instead, and counted as failed attempts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        config: RuntimeConfig,
        *,
        model: ModelClient | None = None,
        extra_tools: Sequence[Any] = (),
        retriever_factory: RetrieverFactory | None = None,
        redis: Any = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.keys = Keys(config.fleet)
        self.name = name or consumer_name()
        self.r = redis or connect(config.redis_url, config.redis_password, config.redis_max_connections)
        self.store = TaskStore(self.r, self.keys, config.result_ttl_seconds)
        self.model: ModelClient = (
            model
            or self._routing_client(config)
            or OpenAIChatClient(
                config.model.base_url,
                config.model.name,
                api_key=config.model.api_key,
                timeout=config.model.timeout_seconds,
                max_retries=config.model.max_retries,
                max_output_tokens=config.model.max_output_tokens,
                temperature=config.model.temperature,
                send_tools=config.model.tool_calling != "text",
                observer=metrics.ModelObserver(),
            )
        )
        tools = [*build_tools(config, self.store, self, retriever_factory=retriever_factory, on_cache=metrics.retrieval_cache), *extra_tools]
        self.toolbox = ToolBox(
            tools,
            results=self.store,
            failure_threshold=config.breaker.failure_threshold,
            cooldown=config.breaker.cooldown_seconds,
            max_observation_chars=config.max_observation_chars,
            on_call=metrics.tool_called,
            on_breaker=metrics.breaker_state,
        )
        self.settings = LoopSettings(config.system_prompt, config.model.tool_calling, config.session_history)
        self.prices = prices_of(config)
        self.held: dict[str, _Held] = {}
        self.busy = 0  # slots in use: held tasks minus parents lending their slot during fan-in
        self._slot_freed = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._lease_ids = itertools.count(1)
        self.draining = False
        self._stopped = asyncio.Event()
        self._fetch_stopped = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._site: web.AppRunner | None = None
        self.ready = False

    def _routing_client(self, config: RuntimeConfig) -> ModelClient | None:
        """The sticky/failover routing client when the config has a modelRouting section."""
        if not config.model_routing:
            return None
        from agentfleet_runtime.routing.factory import build_routing_client

        m = config.model
        return build_routing_client(
            config.model_routing,
            redis=self.r,
            fleet=config.fleet,
            api_key=m.api_key,
            timeout=m.timeout_seconds,
            max_retries=m.max_retries,
            max_output_tokens=m.max_output_tokens,
            temperature=m.temperature,
            send_tools=m.tool_calling != "text",
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.ensure_group()
        await self.store.load_scripts()
        self._pubsub = self.r.pubsub()
        await self._pubsub.subscribe(self.keys.cancel_channel, self.keys.done_channel)
        for fn in (self._fetch_loop, self._reclaim_loop, self._heartbeat_loop, self._notify_loop, self._stats_loop):
            self._background.append(asyncio.create_task(self._forever(fn), name=fn.__name__))
        if self.config.worker.metrics_port:
            await self._serve_health()
        self.ready = True
        log.info("worker started", extra={"worker": self.name, "concurrency": self.config.worker.concurrency, "fleet": self.config.fleet})

    async def wait(self) -> None:
        await self._stopped.wait()

    def request_drain(self) -> None:
        """SIGTERM handler: begin a graceful shutdown (idempotent)."""
        if not self.draining:
            self.draining = True
            self.ready = False
            log.info("draining: no new tasks; running steps get the grace period", extra={"held": len(self.held)})
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())  # held: a bare task may be collected

    async def _drain(self) -> None:
        grace = self.config.worker.shutdown_grace_seconds
        deadline = time.monotonic() + grace
        self._slot_freed.set()  # wake a fetch loop waiting for a slot
        while self.held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for h in list(self.held.values()):
            h.why = "shutdown"
            h.task.cancel()
        if self.held:
            await asyncio.gather(*(h.task for h in list(self.held.values())), return_exceptions=True)
        await self.close()
        self._stopped.set()

    async def close(self) -> None:
        # redis-py (8.1) can swallow a cancellation that lands in a blocking XREADGROUP and go on
        # reading: the fetch loop then never ends and neither would this. Cancel again until all
        # background loops have ended (each try costs at most a short wait).
        pending = set(self._background)
        for _ in range(50):
            if not pending:
                break
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        if pending:
            log.error("background loops did not stop", extra={"loops": sorted(t.get_name() for t in pending)})
        self._background.clear()
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        if self._site is not None:
            await self._site.cleanup()
        await self.model.close()
        await self.toolbox.close()
        with contextlib.suppress(Exception):
            await self.store.close()

    async def kill(self) -> None:
        """Stop at once without releasing anything (tests: a crash, minus the process dying)."""
        for h in list(self.held.values()):
            h.why = "killed"
            h.task.cancel()
        await asyncio.gather(*(h.task for h in list(self.held.values())), return_exceptions=True)
        await self.close()
        self._stopped.set()

    async def _forever(self, fn: Any) -> None:
        """Keep a background loop alive across Redis outages and bugs, with backoff."""
        failures = 0
        while not self._stopped.is_set():
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                delay = min(5.0, 0.1 * 2**failures) * random.uniform(0.5, 1.0)
                log.warning("background loop failed; retrying", extra={"loop": fn.__name__, "error": f"{type(e).__name__}: {e}", "delay": round(delay, 2)})
                await asyncio.sleep(delay)

    # -- slots ---------------------------------------------------------------------------------------
    @property
    def free_slots(self) -> int:
        return max(0, self.config.worker.concurrency - self.busy)

    def _release_slot(self) -> None:
        self.busy -= 1
        self._slot_freed.set()

    @contextlib.asynccontextmanager
    async def released_slot(self) -> AsyncIterator[None]:
        self._release_slot()
        try:
            yield
        finally:
            self.busy += 1

    # -- fetching and reclaiming -----------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        while not self.draining:
            free = self.free_slots
            if free == 0:
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 1.0)
                continue
            res = await self.r.xreadgroup(CONSUMER_GROUP, self.name, {self.keys.stream: ">"}, count=min(free, 200), block=1000)
            for _stream, entries in res or []:
                for msg_id, fields in entries:
                    if self.draining:
                        # Delivered just as the drain began: straight back to the stream.
                        await self.store.requeue(msg_id, fields.get("task", ""))
                    else:
                        self._start(msg_id, fields.get("task", ""), reclaimed=False)
        # Only now may held tasks be released: a release re-adds the task to the stream, and a
        # read still blocked here would take it back into this draining worker.
        self._fetch_stopped.set()

    async def _reclaim_loop(self) -> None:
        interval = self.config.reclaim_interval
        min_idle = int(self.config.visibility_timeout * 1000)
        while not self.draining:
            await self.store.promote_due()
            start = "0-0"
            for _ in range(10):  # bounded sweep per interval
                free = self.free_slots
                if free == 0 or self.draining:
                    break
                nxt, entries, _deleted = await self.r.xautoclaim(self.keys.stream, CONSUMER_GROUP, self.name, min_idle, start_id=start, count=min(free, 100))
                for msg_id, fields in entries:
                    tid = (fields or {}).get("task", "")
                    if tid in self.held:
                        continue  # ours and still running: our heartbeat lapsed (Redis outage)
                    if self.draining:
                        await self.store.requeue(msg_id, tid)
                        continue
                    metrics.TASK_RETRIES.labels("lease_expired").inc()
                    self._start(msg_id, tid, reclaimed=True)
                if nxt in ("0-0", b"0-0"):
                    break
                start = nxt
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))

    def _start(self, msg_id: str, task_id: str, *, reclaimed: bool) -> None:
        if not task_id:
            return
        if task_id in self.held:
            return
        self.busy += 1
        task = asyncio.create_task(self._run_task(msg_id, task_id, reclaimed), name=f"task:{task_id}")
        self.held[task_id] = _Held(task, msg_id)
        metrics.IN_FLIGHT.set(len(self.held))

    # -- one task -------------------------------------------------------------------------------------
    async def _run_task(self, msg_id: str, task_id: str, reclaimed: bool) -> None:
        task_id_var.set(task_id)
        held = self.held[task_id]
        lease = f"{self.name}:{next(self._lease_ids)}"
        run: TaskRun | None = None
        try:
            got = await self._acquire(task_id, lease, msg_id, reclaimed)
            if not isinstance(got, Acquired):
                if got == "dead":
                    metrics.TASKS.labels("failed").inc()
                    log.warning("task dead-lettered: its workers kept dying", extra={"attempts": self.config.retry.max_attempts})
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
                draining=lambda: self.draining,
            )
            held.run = run
            log.info("task started", extra={"attempt": got.record.attempts, "resumed_steps": len(got.steps), "reclaimed": reclaimed})
            await run.execute()
        except asyncio.CancelledError:
            await self._after_cancel(held, run, lease, msg_id)
        except Released:
            await self._release(run, lease, msg_id)
        except Cancelled:
            if run is not None:
                await self._cancel_run(run)
        except LeaseLost:
            log.warning("lease lost: another worker resumed this task", extra={"worker": self.name})
        except Exception as e:
            await self._failed(run, lease, msg_id, e)
        finally:
            self.held.pop(task_id, None)
            self._release_slot()
            metrics.IN_FLIGHT.set(len(self.held))

    async def _acquire(self, task_id: str, lease: str, msg_id: str, reclaimed: bool) -> Acquired | str:
        """Take the lease, retrying Redis errors for up to half the visibility timeout: nothing has
        happened yet, and giving up would leave the entry to be reclaimed as a failed attempt."""
        give_up = time.monotonic() + self.config.visibility_timeout / 2
        delay = 0.05
        while True:
            try:
                return await self.store.acquire(
                    task_id, lease=lease, msg_id=msg_id, reclaimed=reclaimed, max_attempts=self.config.retry.max_attempts, worker=self.name
                )
            except RedisError:
                if time.monotonic() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _after_cancel(self, held: _Held, run: TaskRun | None, lease: str, msg_id: str) -> None:
        if run is None or held.why in ("lease_lost", "killed"):
            return
        if held.why == "cancel":
            await self._cancel_run(run)
        else:  # shutdown after the grace period: the last checkpoint stands
            await self._release(run, lease, msg_id)

    async def _cancel_run(self, run: TaskRun) -> None:
        try:
            await self._shielded(run.finish_cancelled())
        except LeaseLost:
            log.warning("cancelled task was already taken over by another worker")
        except RedisError as e:
            # The cancel flag stays set in Redis: whoever resumes the task ends it as cancelled.
            log.error("could not record the cancellation; left for reclaim", extra={"error": str(e)})

    async def _release(self, run: TaskRun | None, lease: str, msg_id: str) -> None:
        if run is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._fetch_stopped.wait()), 5.0)
        try:
            released = await self._shielded(self.store.release(run.rec, lease, msg_id))
        except RedisError as e:
            log.error("could not release the task; it is reclaimed after the visibility timeout", extra={"error": str(e)})
            return
        if released is not None:
            metrics.RELEASED.inc()
            log.info("task released for another worker", extra={"steps": len(run.steps)})

    async def _failed(self, run: TaskRun | None, lease: str, msg_id: str, e: Exception) -> None:
        error = f"{type(e).__name__}: {e}"
        if run is None:
            log.error("could not start task", extra={"error": error})
            return
        if isinstance(e, RedisError):
            # Redis stayed unreachable past the client's retries: leave the entry pending; it is
            # reclaimed after the visibility timeout, by this worker or another.
            log.error("redis unavailable; task left for reclaim", extra={"error": error})
            return
        failures = run.rec.failures + 1
        delay = min(60.0, self.config.worker.retry_backoff_seconds * 2 ** (failures - 1)) * random.uniform(0.5, 1.0)
        level = logging.WARNING if isinstance(e, ModelError) else logging.ERROR
        log.log(level, "task attempt failed", extra={"error": error, "failures": failures}, exc_info=not isinstance(e, ModelError))
        try:
            outcome, _ = await self._shielded(self.store.retry_later(run.rec, lease, msg_id, error, delay, self.config.retry.max_attempts))
        except LeaseLost:
            return
        except RedisError as re:
            log.error("could not record the failed attempt; left for reclaim", extra={"error": str(re)})
            return
        metrics.TASK_RETRIES.labels("error").inc()
        if outcome == "dead":
            metrics.TASKS.labels("failed").inc()
            log.error("task dead-lettered", extra={"error": error, "failures": failures})

    @staticmethod
    async def _shielded(coro: Any) -> Any:
        # Endings must complete even if this coroutine is being cancelled (shutdown).
        return await asyncio.shield(coro)

    # -- heartbeats, notifications, stats ---------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            held = {h.msg_id: tid for tid, h in self.held.items()}
            if not held:
                continue
            lost = await self.store.heartbeat(self.name, list(held))
            for msg_id in lost:
                tid = held[msg_id]
                h = self.held.get(tid)
                if h is not None and h.msg_id == msg_id and h.run is not None:
                    log.warning("lease lost to another worker; abandoning", extra={"task_id": tid})
                    h.why = "lease_lost"
                    h.task.cancel()

    async def _notify_loop(self) -> None:
        async for message in self._pubsub.listen():
            if message.get("type") != "message":
                continue
            channel, tid = message["channel"], message["data"]
            if channel == self.keys.cancel_channel:
                h = self.held.get(tid)
                if h is not None and h.run is not None and not h.why:
                    h.why = "cancel"
                    h.task.cancel()
            else:
                for ev in self._waiters.get(tid, ()):
                    ev.set()

    async def _stats_loop(self) -> None:
        while True:
            s = await self.store.queue_stats()
            metrics.QUEUE_DEPTH.set(s["depth"])
            metrics.QUEUE_PENDING.set(s["pending"])
            metrics.QUEUE_LAG.set(s["oldest_age_seconds"])
            metrics.QUEUE_DELAYED.set(s["delayed"])
            metrics.flush()  # scrapes flush too; this keeps a registry read by other means current
            await asyncio.sleep(5.0)

    # -- fan-in (the spawn tool's FanIn) ------------------------------------------------------------
    async def wait_for_tasks(self, task_ids: Sequence[str], until: float) -> None:
        pending = set(task_ids)
        ev = asyncio.Event()
        for tid in pending:
            self._waiters.setdefault(tid, set()).add(ev)
        try:
            while pending:
                ev.clear()  # cleared before the check: an end published after it still wakes us
                states = await self.store.statuses(sorted(pending))
                for tid, st in zip(sorted(pending), states, strict=True):
                    if st is None or st["status"] in ("done", "cancelled", "dead"):
                        pending.discard(tid)
                left = until - time.time()
                if not pending or left <= 0:
                    return
                if self.draining:
                    raise Released("draining during fan-in")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ev.wait(), min(left, FANIN_POLL_SECONDS))
        finally:
            for tid in task_ids:
                waiters = self._waiters.get(tid)
                if waiters is not None:
                    waiters.discard(ev)
                    if not waiters:
                        del self._waiters[tid]

    # -- health and metrics endpoint -------------------------------------------------------------
    async def _serve_health(self) -> None:
        async def metrics_handler(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        async def healthz(_: web.Request) -> web.Response:
            return web.json_response({"ok": True, "held": len(self.held)})

        async def readyz(_: web.Request) -> web.Response:
            if not self.ready or self.draining:
                return web.json_response({"ready": False, "draining": self.draining}, status=503)
            try:
                await asyncio.wait_for(self.r.ping(), 2.0)
            except Exception as e:
                return web.json_response({"ready": False, "redis": str(e)}, status=503)
            return web.json_response({"ready": True, "held": len(self.held), "free_slots": self.free_slots})

        app = web.Application()
        app.router.add_get("/metrics", metrics_handler)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        self._site = web.AppRunner(app, access_log=None)
        await self._site.setup()
        await web.TCPSite(self._site, self.config.listen_host, self.config.worker.metrics_port).start()
