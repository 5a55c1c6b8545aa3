"""How one attempt reaches one replica. ``HttpTransport`` speaks the OpenAI API over aiohttp;
benchmarks plug in an in-process transport (the simulator's ``Replica.completion``) with the same
contract: return the response body, or raise ``ModelError`` with the status and whether a retry on
another replica may help. Cancelling ``send`` must abort the request (the hedge loser); an engine
that does not abort it is noticed by the client (abortwatch.py). Optional: ``stream`` (the same
call streamed, reporting its first token and text deltas to a ``StreamObserver``), ``models``
(``GET /v1/models``, for the served context) and ``tokenize`` (the engine's ``POST /tokenize``, its
own count of a prompt that nearly fills that context)."""

from __future__ import annotations

import json
from typing import Any, Protocol

import aiohttp

from agentfleet_runtime.core import tracing
from agentfleet_runtime.model.client import ModelError
from agentfleet_runtime.model.wire import tokenize_request, tokenize_url
from agentfleet_runtime.routing.abortwatch import abort_count
from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import SseLines, StreamAccumulator, StreamError, StreamObserver, stream_body


class Transport(Protocol):
    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class AttemptTimeout(ModelError):
    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class HttpTransport:
    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No connection cap: the worker's task slots bound concurrency.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        return self._session

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        # traceparent: an engine that exports spans adds them to the task's trace
        headers = {"Content-Type": "application/json", **tracing.headers()}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = endpoint.base_url.rstrip("/") + "/chat/completions"
        try:
            async with self._http().post(
                url, data=json.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    retryable = resp.status >= 500 or resp.status in (408, 409, 429)
                    raise ModelError(
                        f"{endpoint.name} answered {resp.status}: {text[:300]}", status=resp.status, retryable=retryable
                    )
        except TimeoutError as e:
            raise AttemptTimeout(f"{endpoint.name} did not answer within {timeout:.1f} s") from e
        except aiohttp.ClientError as e:
            raise ModelError(f"{endpoint.name} unreachable: {e}", retryable=True) from e
        try:
            parsed = json.loads(text)
        except ValueError as e:
            raise ModelError(f"{endpoint.name} sent invalid JSON: {e}", retryable=True) from e
        if not isinstance(parsed, dict):
            raise ModelError(f"{endpoint.name} sent a non-object body", retryable=True)
        return parsed

    async def stream(
        self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: StreamObserver
    ) -> dict[str, Any]:
        """The same call streamed (SSE with usage); returns the body a non-streamed call would."""
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **tracing.headers()}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = endpoint.base_url.rstrip("/") + "/chat/completions"
        acc, lines = StreamAccumulator(), SseLines()
        try:
            async with self._http().post(
                url, data=json.dumps(stream_body(body)), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                if resp.status >= 400:
                    text = await resp.text()
                    retryable = resp.status >= 500 or resp.status in (408, 409, 429)
                    raise ModelError(
                        f"{endpoint.name} answered {resp.status}: {text[:300]}", status=resp.status, retryable=retryable
                    )
                async for data in resp.content.iter_any():
                    for payload in lines.feed(data):
                        first, text = acc.feed(payload)
                        observer.fold(acc, first, text)
        except TimeoutError as e:
            raise AttemptTimeout(f"{endpoint.name} did not finish its stream within {timeout:.1f} s") from e
        except aiohttp.ClientError as e:
            raise ModelError(f"{endpoint.name} unreachable: {e}", retryable=True) from e
        except StreamError as e:
            raise ModelError(f"{endpoint.name} failed mid-stream: {e}", retryable=True) from e
        except ValueError as e:
            raise ModelError(f"{endpoint.name} sent an invalid stream chunk: {e}", retryable=True) from e
        if not acc.done and acc.finish_reason is None:
            raise ModelError(f"{endpoint.name} ended its stream without finishing", retryable=True)
        return acc.body()

    async def abort_count(self, base_url: str) -> float | None:
        """The engine's count of aborted requests, from its /metrics (next to /v1)."""
        url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
        async with self._http().get(url, timeout=aiohttp.ClientTimeout(total=5.0)) as resp:
            resp.raise_for_status()
            return abort_count(await resp.read())

    async def models(self, base_url: str) -> dict[str, Any]:
        """``GET {base_url}/models``: the served models and their context (``max_model_len``)."""
        async with self._http().get(base_url.rstrip("/") + "/models", timeout=aiohttp.ClientTimeout(total=5.0)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def tokenize(self, base_url: str, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /tokenize`` beside ``/v1``: the engine's count of the chat body's prompt."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else None
        request = tokenize_request(body)
        timeout = aiohttp.ClientTimeout(total=5.0)
        async with self._http().post(tokenize_url(base_url), json=request, headers=headers, timeout=timeout) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
