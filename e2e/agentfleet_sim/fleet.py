"""Many replicas in one process: over HTTP (each on its own 127.0.0.1 port) or in-process.

- ``serve_fleet(config)``: async, on the caller's loop (real time); returns a ``Fleet``.
- ``start_fleet(...)``: sync, runs the fleet's loop in a background thread; for pytest and
  scripts that use blocking clients. Returns a ``FleetThread``; call ``stop()`` (or use ``with``).
- ``start_replicas(n, config)``: async, no HTTP at all; for simulated-clock benchmarks under
  ``clock.run_virtual``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import EngineConfig, FaultConfig, FleetConfig, ReplicaConfig
from .faultdraws import CallDraws
from .metrics_spec import Flavor
from .quirks import Quirks
from .replica import Replica
from .server import ReplicaServer

T = TypeVar("T")


@dataclass
class ReplicaHandle:
    index: int
    server: ReplicaServer

    @property
    def replica(self) -> Replica:
        return self.server.replica

    @property
    def name(self) -> str:
        return self.replica.name

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        """For OpenAI clients: ``OpenAI(base_url=handle.base_url, api_key="x")``."""
        return self.server.url + "/v1"


class Fleet:
    """A set of HTTP-served replicas on the current event loop."""

    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        self.handles: list[ReplicaHandle] = []
        self._next_index = 0
        self.call_draws = CallDraws(config.replica.faults.seed)  # shared: faults.draws "call"

    async def start(self) -> None:
        try:
            for _ in range(self.config.replicas):
                await self.add_replica()
        except BaseException:
            await self.stop()
            raise

    async def add_replica(self, faults: dict[str, Any] | None = None) -> ReplicaHandle:
        index = self._next_index
        self._next_index += 1
        config = self.config.replica_config(index)
        if faults:
            config = dataclasses.replace(config, faults=config.faults.update(faults))
        port = self.config.base_port + index if self.config.base_port else 0
        server = ReplicaServer(
            Replica(config, name=f"replica-{index}", call_draws=self.call_draws), self.config.host, port
        )
        await server.start()
        handle = ReplicaHandle(index, server)
        self.handles.append(handle)
        return handle

    async def remove_replica(self, index: int) -> None:
        handle = next(h for h in self.handles if h.index == index)
        self.handles.remove(handle)
        await handle.server.stop()

    async def stop(self) -> None:
        handles, self.handles = self.handles, []
        await asyncio.gather(*(h.server.stop() for h in handles), return_exceptions=True)

    def endpoints(self) -> list[str]:
        return [h.url for h in self.handles]


def fleet_config(
    replicas: int = 3,
    *,
    base_port: int = 0,
    model: str = "llama-70b",
    served_name: str | None = None,
    engine: EngineConfig | dict[str, Any] | None = None,
    faults: FaultConfig | dict[str, Any] | None = None,
    startup_seconds: float = 0.0,
    metrics_flavor: Flavor | str = Flavor.CURRENT,
    replica_faults: dict[int, dict[str, Any]] | None = None,
    quirks: Quirks | dict[str, Any] | None = None,
) -> FleetConfig:
    """Keyword-friendly FleetConfig builder; ``engine``/``faults`` dicts override defaults."""
    if isinstance(engine, EngineConfig):
        engine_cfg = engine
    else:
        engine_cfg = EngineConfig(**{"model": model, "served_name": served_name or model, **(engine or {})})
    faults_cfg = faults if isinstance(faults, FaultConfig) else FaultConfig().update(faults or {})
    quirks_cfg = quirks if isinstance(quirks, Quirks) else Quirks.from_dict(quirks)
    replica = ReplicaConfig(engine_cfg, faults_cfg, startup_seconds, Flavor(metrics_flavor), quirks_cfg)
    return FleetConfig(
        replicas=replicas, base_port=base_port, replica=replica, replica_faults=dict(replica_faults or {})
    )


async def serve_fleet(config: FleetConfig | None = None, **kwargs: Any) -> Fleet:
    fleet = Fleet(config or fleet_config(**kwargs))
    await fleet.start()
    return fleet


class FleetThread:
    """A Fleet whose event loop runs in a daemon thread; every method is thread-safe."""

    def __init__(self, config: FleetConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentfleet-sim", daemon=True)
        self._fleet = Fleet(config)
        self._stopped = False

    def start(self) -> FleetThread:
        self._thread.start()
        try:
            self.call(self._fleet.start)
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float | None = 60.0) -> T:
        """Run ``await fn()`` on the fleet's loop and return its result."""

        async def wrapper() -> T:
            return await fn()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(wrapper(), self._loop)
        return future.result(timeout)

    @property
    def replicas(self) -> list[ReplicaHandle]:
        return list(self._fleet.handles)

    def endpoints(self) -> list[str]:
        return self._fleet.endpoints()

    def configure(self, index: int, **changes: Any) -> FaultConfig:
        async def apply() -> FaultConfig:
            return self._handle(index).replica.configure(**changes)

        return self.call(apply)

    def drain(self, index: int) -> None:
        self.configure(index, draining=True)

    def state(self, index: int) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return self._handle(index).replica.state()

        return self.call(read)

    def add_replica(self, faults: dict[str, Any] | None = None) -> ReplicaHandle:
        return self.call(lambda: self._fleet.add_replica(faults))

    def remove_replica(self, index: int) -> None:
        self.call(lambda: self._fleet.remove_replica(index))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.call(self._fleet.stop, timeout=30.0)
        finally:
            self._shutdown_loop()

    def _handle(self, index: int) -> ReplicaHandle:
        return next(h for h in self._fleet.handles if h.index == index)

    def _shutdown_loop(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(cancel_rest(), self._loop).result(10.0)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        self._loop.close()

    def __enter__(self) -> FleetThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fleet(replicas: int = 3, *, config: FleetConfig | None = None, **kwargs: Any) -> FleetThread:
    """Start ``replicas`` HTTP replicas in a background thread. Keyword arguments as for
    ``fleet_config`` (base_port, model, served_name, engine, faults, startup_seconds,
    metrics_flavor, replica_faults, quirks), or pass a ready ``config``."""
    return FleetThread(config or fleet_config(replicas, **kwargs)).start()


async def start_replicas(n: int, config: ReplicaConfig | FleetConfig | None = None) -> list[Replica]:
    """In-process replicas without HTTP (for ``clock.run_virtual`` simulations)."""
    fleet_cfg = (
        config if isinstance(config, FleetConfig) else FleetConfig(replicas=n, replica=config or ReplicaConfig())
    )
    draws = CallDraws(fleet_cfg.replica.faults.seed)  # one book for the fleet (faults.draws "call")
    replicas = [Replica(fleet_cfg.replica_config(i), name=f"replica-{i}", call_draws=draws) for i in range(n)]
    for replica in replicas:
        await replica.start()
    return replicas
