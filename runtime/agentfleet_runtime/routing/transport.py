"""How one attempt reaches one replica. ``HttpTransport`` speaks the OpenAI API over aiohttp;
benchmarks plug in an in-process transport (the simulator's ``Replica.completion``) with the same
contract: return the response body, or raise ``ModelError`` with the status and whether a retry on
another replica may help. Cancelling ``send`` must abort the request (the hedge loser)."""

from __future__ import annotations

import json
from typing import Any, Protocol

import aiohttp

from agentfleet_runtime.model import ModelError
from agentfleet_runtime.routing.settings import Endpoint


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
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = endpoint.base_url.rstrip("/") + "/chat/completions"
        try:
            async with self._http().post(url, data=json.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    retryable = resp.status >= 500 or resp.status in (408, 409, 429)
                    raise ModelError(f"{endpoint.name} answered {resp.status}: {text[:300]}", status=resp.status, retryable=retryable)
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

    async def models(self, base_url: str) -> dict[str, Any]:
        """``GET {base_url}/models``: the served models and their context (``max_model_len``)."""
        async with self._http().get(base_url.rstrip("/") + "/models", timeout=aiohttp.ClientTimeout(total=5.0)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
