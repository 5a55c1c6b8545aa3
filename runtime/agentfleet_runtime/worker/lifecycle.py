"""The worker process: consumes the task stream and runs many agent loops concurrently.

The Worker builds its parts and runs their loops in the background, each small and each in its
own module:
- poll (poll.py): lease new tasks from the stream, and reclaim those whose holder stopped
  heartbeating for the visibility timeout, while a slot (slots.py) is free;
- handle (handle.py): run one task's steps and end the attempt;
- heartbeat (heartbeat.py): renew the held leases; a lost one is abandoned at once;
- notify (notify.py): pub/sub for cancellations and for children ending (a parent's fan-in);
- stats (health.py): queue depth, pending and lag gauges, beside the health endpoint.

SIGTERM (``request_drain``, drain.py): stop polling, let running steps reach their next
checkpoint within the grace period, then hand every held task back to the stream (no failure
counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web

from agentfleet_runtime.answering.policies import policy_for
from agentfleet_runtime.core import metrics, tracing
from agentfleet_runtime.core.budget import NANOS
from agentfleet_runtime.core.config import prices_of
from agentfleet_runtime.core.metrics_access import label_key
from agentfleet_runtime.core.tenants import TokenFile
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.loop.decisions import DecisionSettings
from agentfleet_runtime.model.client import ModelClient, OpenAIChatClient
from agentfleet_runtime.model.spend import SpendGuard
from agentfleet_runtime.store.approvals import Approvals, Gate, sweep_loop
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.migrate import migrate_legacy_keys
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.registry import (
    RetrieverFactory,
    build_tools,
)
from agentfleet_runtime.worker.drain import cancel_held, drain_held, stop_loops
from agentfleet_runtime.worker.handle import TaskHandler
from agentfleet_runtime.worker.health import serve_health, stats_loop
from agentfleet_runtime.worker.heartbeat import heartbeat_loop
from agentfleet_runtime.worker.held import HeldTasks
from agentfleet_runtime.worker.notify import FanInWaits, notify_loop
from agentfleet_runtime.worker.poll import Poller
from agentfleet_runtime.worker.slots import Slots

log = logging.getLogger("agentfleet_runtime.worker")


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
        self.keys = Keys(config.fleet, config.namespace)
        self.name = name or consumer_name()
        self.r = redis or connect(config.redis_url, config.redis_password, config.redis_max_connections)
        self.store = TaskStore(self.r, self.keys, config.result_ttl_seconds)
        self.model: ModelClient = model or model_client(config, self.r)
        if getattr(self.model, "stream", False):  # the answer's text to the task's event stream as it is written
            from agentfleet_runtime.worker.answerstream import AnswerStreamer

            self.model = AnswerStreamer(self.model, self.store)
        self.tracer = tracing.configure(config.tracing, config.fleet)  # None: off, and nothing below is wrapped
        self.model = tracing.traced_model(self.model, self.tracer, served_model(config))
        # Outermost: each call's worst case is held against maxCost and maxSpendPerDay before any
        # wrapper or client sends it, and its max_tokens lowered to fit (model/spend.py).
        self.model = spend_guard(config, self.model, self.r, self.keys)
        self.held: HeldTasks = {}
        self.slots = Slots(config.worker.concurrency)
        self.draining = False
        self.ready = False
        self.fan_in = FanInWaits(self.store, lambda: self.draining)
        tools = [
            *build_tools(
                config, self.store, self, retriever_factory=retriever_factory, on_cache=metrics.retrieval_cache
            ),
            *extra_tools,
        ]
        self.approvals = Approvals(self.r, self.keys)
        self.toolbox = ToolBox(
            tracing.traced_tools(tools, self.tracer),
            gate=Gate.from_spec(config.decisions.wire(), self.r, self.keys),
            results=self.store,
            failure_threshold=config.breaker.failure_threshold,
            cooldown=config.breaker.cooldown_seconds,
            max_observation_chars=config.max_observation_chars,
            on_call=metrics.tool_called,
            on_breaker=metrics.breaker_state,
        )
        fetch_stopped = asyncio.Event()  # the poll loop can no longer take a released task back
        self.handler = TaskHandler(
            config,
            name=self.name,
            store=self.store,
            model=self.model,
            toolbox=self.toolbox,
            settings=LoopSettings(
                config.system_prompt,
                config.model.tool_calling,
                config.session_history,
                DecisionSettings.from_spec(config.decisions.wire()),
                answering=policy_for(config),  # the Retrieval tool's answerPolicy (in config.answering's variant)
                tracer=self.tracer,
            ),
            prices=prices_of(config),
            slots=self.slots,
            held=self.held,
            draining=lambda: self.draining,
            fetch_stopped=fetch_stopped,
            approvals=self.approvals,
        )
        self.poller = Poller(
            config,
            name=self.name,
            redis=self.r,
            keys=self.keys,
            store=self.store,
            slots=self.slots,
            held=self.held,
            draining=lambda: self.draining,
            start=self.handler.start,
            fetch_stopped=fetch_stopped,
        )
        self._stopped = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._site: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        # af:<fleet>: -> af:<namespace>/<fleet>: (issue 57), only where the operator claims them (issue 76)
        await migrate_legacy_keys(self.r, self.keys, claimed=self.config.legacy_keys)
        await self.toolbox.start()  # MCP servers: the first tasks see their tools (bounded wait)
        await self.store.ensure_group()
        await self.store.load_scripts()
        self._pubsub = self.r.pubsub()
        await self._pubsub.subscribe(self.keys.cancel_channel, self.keys.done_channel)
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "fetch_loop": self.poller.fetch_loop,
            "reclaim_loop": self.poller.reclaim_loop,
            "heartbeat_loop": lambda: heartbeat_loop(self.store, self.name, self.held, self.config.heartbeat_interval),
            "notify_loop": lambda: notify_loop(self._pubsub, self.keys, self.held, self.fan_in),
            "stats_loop": lambda: stats_loop(self.store),
            "approval_sweep": lambda: sweep_loop(self.approvals, self.config.reclaim_interval, lambda: self.draining),
        }
        for name, fn in loops.items():
            self._background.append(asyncio.create_task(_supervised(fn, name, self._stopped), name=name))
        if self.config.worker.metrics_port:
            self._site = await serve_health(
                self.r,
                self.config.listen_host,
                self.config.worker.metrics_port,
                ready=lambda: self.ready,
                draining=lambda: self.draining,
                held=lambda: len(self.held),
                free_slots=lambda: self.free_slots,
                access=self.config.api.metrics_access,
                auth=TokenFile(self.config.api.tokens_file) if self.config.api.tokens_file else None,
                label_key=await label_key(self.r, self.keys),
            )
        self.ready = True
        log.info(
            "worker started",
            extra={"worker": self.name, "concurrency": self.config.worker.concurrency, "fleet": self.config.fleet},
        )

    async def wait(self) -> None:
        await self._stopped.wait()

    def request_drain(self) -> None:
        """SIGTERM handler: begin a graceful shutdown (idempotent)."""
        if not self.draining:
            self.draining = True
            self.ready = False
            log.info("draining: no new tasks; running steps get the grace period", extra={"held": len(self.held)})
            self._drain_task = asyncio.get_running_loop().create_task(
                self._drain()
            )  # held: a bare task may be collected

    async def _drain(self) -> None:
        await drain_held(self.held, self.slots, self.config.worker.shutdown_grace_seconds)
        await self.close()
        self._stopped.set()

    async def close(self) -> None:
        await stop_loops(self._background)
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        if self._site is not None:
            await self._site.cleanup()
        await self.model.close()
        await self.toolbox.close()
        if self.tracer is not None:  # spans of released tasks must reach the collector before the process ends
            await asyncio.to_thread(tracing.flush)
        with contextlib.suppress(Exception):
            await self.store.close()

    async def kill(self) -> None:
        """Stop at once without releasing anything (tests: a crash, minus the process dying)."""
        await cancel_held(self.held, "killed")
        await self.close()
        self._stopped.set()

    # -- slots and fan-in (the spawn tool's FanIn) --------------------------------------------------
    @property
    def busy(self) -> int:
        return self.slots.busy

    @property
    def free_slots(self) -> int:
        return self.slots.free

    def released_slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.slots.lent()

    async def wait_for_tasks(self, task_ids: Sequence[str], until: float) -> None:
        await self.fan_in.wait_for_tasks(task_ids, until)


def spend_guard(config: RuntimeConfig, model: ModelClient, redis: Any, keys: Keys) -> ModelClient:
    """The fleet's model client behind its spend bound (model/spend.py)."""
    per_day = config.api.tenant_limits.max_spend_per_day
    return SpendGuard(
        model,
        redis,
        keys,
        prices_of(config),
        max_output_tokens=config.model.max_output_tokens,
        tenant_limit_nanos=None if per_day is None else int(Decimal(per_day) * NANOS),
        default_timeout=float(config.model.timeout_seconds) * (config.model.max_retries + 1),
    )


def served_model(config: RuntimeConfig) -> str:
    """The model name the fleet's calls ask for (gen_ai.request.model)."""
    if config.model_routing:
        return str((config.model_routing.get("primary") or {}).get("model") or config.model.name)
    return config.model.name


def model_client(config: RuntimeConfig, redis: Any) -> ModelClient:
    """The sticky/failover routing client when the config has a modelRouting section, else one
    OpenAI-compatible endpoint."""
    m = config.model
    if config.model_routing:
        from agentfleet_runtime.routing.factory import build_routing_client

        return build_routing_client(
            config.model_routing,
            redis=redis,
            fleet=config.fleet,
            fleet_namespace=config.namespace,
            api_key=m.api_key,
            routine_api_key=m.routine_api_key,
            timeout=m.timeout_seconds,
            max_retries=m.max_retries,
            max_output_tokens=m.max_output_tokens,
            temperature=m.temperature,
            send_tools=m.tool_calling != "text",
        )
    return OpenAIChatClient(
        m.base_url,
        m.name,
        api_key=m.api_key,
        timeout=m.timeout_seconds,
        max_retries=m.max_retries,
        max_output_tokens=m.max_output_tokens,
        temperature=m.temperature,
        send_tools=m.tool_calling != "text",
        observer=metrics.ModelObserver(),
    )


async def _supervised(fn: Callable[[], Awaitable[None]], name: str, stopped: asyncio.Event) -> None:
    """Keep a background loop alive across Redis outages and bugs, with backoff, until it
    returns or the worker has stopped."""
    failures = 0
    while not stopped.is_set():
        try:
            await fn()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failures += 1
            delay = min(5.0, 0.1 * 2**failures) * random.uniform(0.5, 1.0)
            log.warning(
                "background loop failed; retrying",
                extra={"loop": name, "error": f"{type(e).__name__}: {e}", "delay": round(delay, 2)},
            )
            await asyncio.sleep(delay)
