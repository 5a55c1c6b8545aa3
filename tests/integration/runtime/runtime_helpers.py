"""Shared helpers of the runtime's integration tests (servers, processes, config, waiting)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.config import limits_of
from agentfleet_runtime.redis_client import connect
from agentfleet_runtime.store import TaskStore
from agentfleet_runtime.submission import Submission, new_task
from agentfleet_runtime.types import Status

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def arun(coro: Awaitable[T], timeout: float = 120) -> T:
    """Run one async test body with a hard timeout (no pytest-asyncio needed)."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server on 127.0.0.1 with AOF persistence in its own directory."""

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            "--maxclients",
            "10000",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {(self.dir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 15 s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


class Proc:
    """A subprocess started by a test; always ended (kill) at teardown."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.log = log
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        # The project is installed editable in CI; the path makes a plain checkout work too.
        path = os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "operator"), os.environ.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": path, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


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
    return TaskStore(connect(config.redis_url), Keys(config.fleet), config.result_ttl_seconds)


async def submit(
    store: TaskStore, config: RuntimeConfig, goal: str, *, key: str | None = None, session: str = "", task_id: str | None = None, **budgets: Any
) -> str:
    import uuid

    from agentfleet_runtime.budget import effective_limits

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
            open_ = [(i, s and s["status"]) for i, s in zip(ids, states, strict=True) if not (s and Status(s["status"]).terminal)]
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
        doc["tools"] = [{**t, "http": {**t["http"], "url": t["http"]["url"].replace("EFFECTS", effects.url)}} if "http" in t else t for t in tools]
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                if line.startswith(prefix):
                    return line
        if not proc.alive():
            raise RuntimeError(f"{proc.proc.args} exited with {proc.proc.returncode}:\n{log.read_text()[-3000:] if log.exists() else ''}")
        time.sleep(0.05)
    raise RuntimeError(f"no line starting with {prefix!r} in {log} within {timeout}s")


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
    p = Proc([sys.executable, "-m", "agentfleet_runtime", "worker", "--config", str(config_path)], log=tmp / f"{name}.log")
    procs.append(p)
    return p


def ensure_pip(module: str, requirement: str) -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return
    last = ""
    for _ in range(3):  # another pip run in the same venv may hold its lock for a moment
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], capture_output=True, text=True, timeout=900)
        if proc.returncode == 0:
            break
        last = proc.stdout[-2000:] + proc.stderr[-2000:]
        time.sleep(5)
    importlib.invalidate_caches()
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"cannot install {requirement}:\n{last}")


def start_milvus_lite(data: Path) -> tuple[Proc, str]:
    ensure_pip("milvus_lite", "milvus-lite>=3.2")
    from pymilvus import MilvusClient

    port = free_port()
    proc = Proc(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data / "data"), "--host", "127.0.0.1", "--port", str(port)], log=data / "milvus.log"
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            break
        try:
            probe = MilvusClient(uri=uri, timeout=5, dedicated=True)
            probe.get_server_version(timeout=5)
            probe.close()
            return proc, uri
        except Exception as e:  # not up yet
            last = e
            time.sleep(0.3)
    proc.end()
    pytest.fail(f"milvus-lite server did not come up on {uri}: {last}\n{(data / 'milvus.log').read_text(errors='replace')[-3000:]}")


class Echo:
    """An in-process tool that answers at once: steps without any tool latency."""

    name = "echo"
    description = "echoes its arguments"
    timeout = 5.0
    side_effects = False

    def schema(self) -> dict[str, Any]:
        from agentfleet_runtime.prompt import tool_schema

        return tool_schema(self.name, self.description, None)

    async def run(self, arguments: dict[str, Any], ctx: Any) -> str:
        return f"echo {arguments}"
