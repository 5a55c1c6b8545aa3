"""HTTP tools declared in the AgentFleet spec: JSON arguments in, response text out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from agentfleet_runtime.prompt import tool_schema
from agentfleet_runtime.tools.base import ToolContext, ToolError

DEFAULT_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": True}


def load_headers(headers_dir: str | None, tool_name: str) -> dict[str, str]:
    """Extra headers of a tool from ``<headers_dir>/<tool name>`` (a JSON object), if present.

    The operator mounts the Secret named by spec.tools[].http.headersSecretRef there.
    """
    if not headers_dir:
        return {}
    path = Path(headers_dir) / tool_name
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: tool headers must be a JSON object")
    return {str(k): str(v) for k, v in data.items()}


class HTTPTool:
    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        description: str = "",
        parameters: dict[str, Any] | None = None,
        timeout: float = 30.0,
        side_effects: bool = False,
        headers: dict[str, str] | None = None,
        session_factory: Any = None,
    ) -> None:
        self.name = name
        self.url = url
        self.method = method
        self.description = description or f"Calls {url}"
        self.parameters = parameters or DEFAULT_PARAMETERS
        self.timeout = timeout
        self.side_effects = side_effects
        # A call that changes nothing is a read: an identical repeat within a task only copies its
        # result, already in the history, so after such a repeat the model may only answer (the
        # repeat guard in decisions.offer). Qwen2.5-Coder-1.5B otherwise called one lookup with
        # the same arguments until the step budget ended the task (6 of 6 steps, seen).
        self.read_only = not side_effects
        self.headers = headers or {}
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None

    def schema(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, self.parameters)

    def _http(self) -> aiohttp.ClientSession:
        if self._session_factory is not None:
            return self._session_factory()
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        headers = {**self.headers, "X-Agentfleet-Task": ctx.task.id}
        if self.side_effects:
            headers["Idempotency-Key"] = ctx.idempotency_key
        kwargs: dict[str, Any] = {"headers": headers}
        if self.method == "GET":
            kwargs["params"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
        else:
            kwargs["json"] = arguments
        try:
            async with self._http().request(self.method, self.url, **kwargs) as resp:
                body = await resp.text()
                if resp.status >= 500:
                    raise ToolError(f"{self.name} failed with HTTP {resp.status}: {body[:500]}")
                if resp.status >= 400:
                    raise ToolError(f"{self.name} refused the call with HTTP {resp.status}: {body[:500]}", unhealthy=False)
                return body
        except aiohttp.ClientError as e:
            raise ToolError(f"{self.name} is unreachable: {e}") from e
