"""The model client's transport onto in-process simulator replicas: the one adapter that tests and
benchmarks plug into ``RoutingModelClient`` in place of ``HttpTransport`` (same contract:
agentfleet_runtime/routing/transport.py), with no sockets, so runs can use the virtual clock.

Request and response bodies are the ones HTTP would carry (``Replica.completion``); the
simulator's ``ApiError`` becomes the runtime's ``ModelError`` with the status and whether another
replica may help, as ``HttpTransport`` decides it (5xx, 408, 409 and, unless ``retry_429`` is off,
429). Streamed calls fold the replica's chunks through the runtime's own ``StreamAccumulator``; with
``record`` on, each finished stream leaves a ``Streamed`` record (replica, request body, usage, when
its first token came) for benchmarks that report per-call TTFT and cache hits.

This is the one module of the simulator that imports the runtime (pyproject.toml's independence
contract ignores exactly these imports): the simulator itself stays apart, and
``import agentfleet_sim`` does not load this module.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentfleet_runtime.model.client import ModelError
from agentfleet_runtime.routing.streaming import StreamAccumulator, StreamError

from .openai_api import ApiError
from .replica import Replica

if TYPE_CHECKING:
    from agentfleet_runtime.routing.settings import Endpoint
    from agentfleet_runtime.routing.streaming import StreamObserver


@dataclass(frozen=True)
class Streamed:
    replica: str
    body: dict[str, Any]
    usage: dict[str, Any]
    first_token_at: float  # the event loop's clock; NaN when no token came


def replica_name(base_url: str) -> str:
    """``sim://<replica>/v1`` -> ``<replica>``: the base URLs that name simulator replicas."""
    return base_url.removeprefix("sim://").split("/")[0]


class SimTransport:
    def __init__(self, replicas: dict[str, Replica], *, retry_429: bool = True, record: bool = False) -> None:
        self.replicas = replicas
        self.retry_429 = retry_429
        self.record = record
        self.log: list[Streamed] = []

    def _error(self, endpoint: Endpoint, e: ApiError) -> ModelError:
        retryable = e.status >= 500 or e.status in (408, 409) or (e.status == 429 and self.retry_429)
        return ModelError(f"{endpoint.name} answered {e.status}: {e.message}", status=e.status, retryable=retryable)

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            out = await self.replicas[endpoint.name].completion(body)
        except ApiError as e:
            raise self._error(endpoint, e) from e
        assert isinstance(out, dict)
        return out

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: StreamObserver
    ) -> dict[str, Any]:
        """The same call streamed with usage; returns the body a non-streamed call would."""
        loop = asyncio.get_running_loop()
        try:
            chunks = await self.replicas[endpoint.name].completion(
                {**body, "stream": True, "stream_options": {"include_usage": True}}
            )
        except ApiError as e:
            raise self._error(endpoint, e) from e
        acc = StreamAccumulator()
        first_at = float("nan")
        try:
            async for chunk in chunks:  # type: ignore[union-attr]
                first, text = acc.feed_chunk(chunk)
                if first:
                    first_at = loop.time()
                observer.fold(acc, first, text)
        except ApiError as e:  # the replica stopped mid-stream
            raise ModelError(f"{endpoint.name} failed mid-stream: {e.message}", status=e.status, retryable=True) from e
        except StreamError as e:
            raise ModelError(f"{endpoint.name} failed mid-stream: {e}", retryable=True) from e
        finally:
            await chunks.aclose()  # type: ignore[union-attr]
        out = acc.body()
        if self.record:
            self.log.append(Streamed(endpoint.name, body, out.get("usage") or {}, first_at))
        return out

    async def abort_count(self, base_url: str) -> float | None:
        """The engine's ``abort`` count, as ``HttpTransport`` reads it from /metrics."""
        return float(self.replicas[replica_name(base_url)].stats().request_success["abort"])

    async def close(self) -> None:
        return None
