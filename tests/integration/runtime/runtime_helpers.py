"""Shared helpers of the runtime's integration tests (config, tasks, waiting, subprocesses of the
runtime); the servers and the process runner are e2e/harness's."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.core.types import Status
from agentfleet_runtime.server.submission import Submission, new_task
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import TaskStore
from e2e.harness.ports import free_port
from e2e.harness.procs import Proc

T = TypeVar("T")


def arun(coro: Awaitable[T], timeout: float = 120) -> T:
    """Run one async test body with a hard timeout (no pytest-asyncio needed)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def make_config(redis_url: str, fleet: str, model_url: str = "http://127.0.0.1:9/v1", **over: Any) -> RuntimeConfig:
    doc: dict[str, Any] = {
        "fleet": fleet,
        "redisUrl": redis_url,
        "model": {"baseUrl": model_url, "name": "scripted", "timeoutSeconds": 10, "maxRetries": 2},
        "worker": {"concurrency": 32, "metricsPort": 0, "shutdownGraceSeconds": 5, "retryBackoffSeconds": 0.05},
        "retry": {"maxAttempts": 3, "visibilityTimeoutSeconds": 5},
        "tools": [{"name": "spawn", "type": "Spawn", "timeoutSeconds": 30}],
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return RuntimeConfig.model_validate(doc)


def store_for(config: RuntimeConfig) -> TaskStore:
    return TaskStore(connect(config.redis_url), Keys(config.fleet, config.namespace), config.result_ttl_seconds)


async def submit(
    store: TaskStore,
    config: RuntimeConfig,
    goal: str,
    *,
    key: str | None = None,
    session: str = "",
    task_id: str | None = None,
    **budgets: Any,
) -> str:
    import uuid

    from agentfleet_runtime.core.budget import effective_limits

    limits = effective_limits(limits_of(config), budgets or None)
    sub = Submission(goal, session, limits, key, "", {})
    await store.ensure_group()
    _, tid = await store.submit(new_task(task_id or uuid.uuid4().hex, sub, time.time()), idempotency_key=key)
    return tid


async def wait_ended(store: TaskStore, ids: Iterable[str], timeout: float = 60) -> dict[str, dict[str, str]]:
    """Wait until every task has ended; returns their status/reason/answer/error."""
    ids = list(ids)
    deadline = time.monotonic() + timeout
    while True:
        states = await store.statuses(ids)
        if all(s is not None and Status(s["status"]).terminal for s in states):
            return dict(zip(ids, states, strict=True))  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            open_ = [
                (i, s and s["status"])
                for i, s in zip(ids, states, strict=True)
                if not (s and Status(s["status"]).terminal)
            ]
            raise AssertionError(f"{len(open_)} task(s) did not end within {timeout}s: {open_[:5]}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_worker(config: RuntimeConfig, **kw: Any) -> AsyncIterator[Any]:
    from agentfleet_runtime.worker import Worker

    w = Worker(config, **kw)
    await w.start()
    try:
        yield w
    finally:
        if not w._stopped.is_set():
            await w.kill()


class Env:
    """What one async test runs against: a scripted model, an effects service, a config, a store."""

    def __init__(self, model: Any, effects: Any, config: RuntimeConfig, store: TaskStore) -> None:
        self.model, self.effects, self.config, self.store = model, effects, config, store

    async def submit(self, goal: str, **kw: Any) -> str:
        return await submit(self.store, self.config, goal, **kw)

    async def wait(self, ids: Iterable[str] | str, timeout: float = 30) -> dict[str, dict[str, str]]:
        return await wait_ended(self.store, [ids] if isinstance(ids, str) else ids, timeout)


@asynccontextmanager
async def environment(redis_url: str, fleet: str, **over: Any) -> AsyncIterator[Env]:
    """Scripted model + effects service on 127.0.0.1 in this event loop, and a config pointing at them."""
    from agentfleet_runtime.testing.effects import EffectServer
    from agentfleet_runtime.testing.scripted_model import ScriptedModelServer

    model, effects = ScriptedModelServer(), EffectServer()
    await model.start()
    await effects.start()
    tools = over.pop("tools", None)
    config = make_config(redis_url, fleet, model.url, **over)
    if tools is not None:
        doc = config.model_dump(by_alias=True, mode="json")
        doc["tools"] = [
            {**t, "http": {**t["http"], "url": t["http"]["url"].replace("EFFECTS", effects.url)}} if "http" in t else t
            for t in tools
        ]
        config = RuntimeConfig.model_validate(doc)
    store = store_for(config)
    await store.ensure_group()
    try:
        yield Env(model, effects, config, store)
    finally:
        await store.r.aclose()
        await model.stop()
        await effects.stop()


def wait_for_line(log: Path, prefix: str, proc: Proc, timeout: float = 30) -> str:
    """The first line of a subprocess's log that starts with ``prefix`` (servers print their URL)."""

    def line() -> str | None:
        lines = log.read_text().splitlines() if log.exists() else []
        return next((x for x in lines if x.startswith(prefix)), None)

    return proc.wait_ready(line, timeout, f"a line starting with {prefix!r} in {log}", interval=0.05)


def start_scripted_model(procs: list[Proc], tmp: Path) -> str:
    log = tmp / "model.log"
    p = Proc([sys.executable, "-m", "agentfleet_runtime", "scripted-model", "--port", str(free_port())], log=log)
    procs.append(p)
    return wait_for_line(log, "scripted model listening on ", p).rsplit(" ", 1)[1]


def start_effects(procs: list[Proc], tmp: Path) -> str:
    log = tmp / "effects.log"
    p = Proc([sys.executable, "-m", "agentfleet_runtime.testing.effects", "--port", str(free_port())], log=log)
    procs.append(p)
    return wait_for_line(log, "effects listening on ", p).rsplit(" ", 1)[1]


def start_worker(procs: list[Proc], config_path: Path, tmp: Path, name: str) -> Proc:
    p = Proc(
        [sys.executable, "-m", "agentfleet_runtime", "worker", "--config", str(config_path)], log=tmp / f"{name}.log"
    )
    procs.append(p)
    return p


class Echo:
    """An in-process tool that answers at once: steps without any tool latency."""

    name = "echo"
    description = "echoes its arguments"
    timeout = 5.0
    side_effects = False

    def schema(self) -> dict[str, Any]:
        from agentfleet_runtime.model.prompt import tool_schema

        return tool_schema(self.name, self.description, None)

    async def run(self, arguments: dict[str, Any], ctx: Any) -> str:
        return f"echo {arguments}"


@asynccontextmanager
async def anonymous_api(config: RuntimeConfig) -> AsyncIterator[Any]:
    """The task API (config.api.allowAnonymous) on a free port in this event loop; yields a
    client session whose base URL is the API."""
    import aiohttp
    from aiohttp import web

    from agentfleet_runtime.server.api import TaskAPI

    server = TaskAPI(config)
    runner = web.AppRunner(server.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        server.closing = True
        await runner.cleanup()
