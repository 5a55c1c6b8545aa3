"""The gate's results ConfigMap over the Kubernetes API: read it, add keys to it (a JSON merge
patch of ``data``). The pod's service account token is read again for every request (projected
tokens are rotated by the kubelet); transient failures (connection, 429, 5xx) are retried.

The Job's service account needs ``get`` and ``patch`` on ``configmaps`` (the one results
ConfigMap, by resourceNames) in the fleet's namespace; nothing else of the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from agentfleet_runtime.gate.args import SERVICE_ACCOUNT_DIR

log = logging.getLogger("agentfleet_runtime.gate")

RETRY_SECONDS = 60.0  # how long a transient API failure is retried before the Job fails (and restarts)
REQUEST_SECONDS = 30.0


class KubeError(RuntimeError):
    """The API refused or could not be reached; the message names the ConfigMap and the fix."""


class Conflict(KubeError):
    """The ConfigMap changed since it was read (a write guarded by its resourceVersion)."""


@dataclass(frozen=True)
class Observed:
    """The ConfigMap as read: its data, resourceVersion and creation time (the gate's start)."""

    data: dict[str, str]
    resource_version: str
    created: datetime | None


@dataclass
class ResultsMap:
    api: str
    namespace: str
    name: str
    token_file: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca_file: str | None = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    retry_seconds: float = RETRY_SECONDS
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"{self.api.rstrip('/')}/api/v1/namespaces/{self.namespace}/configmaps/{self.name}"

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.api.startswith("http://"):
            return False
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()

    async def __aenter__(self) -> ResultsMap:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl()),
            timeout=aiohttp.ClientTimeout(total=REQUEST_SECONDS),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self) -> dict[str, str]:
        try:
            token = Path(self.token_file).read_text().strip()
        except OSError as e:
            raise KubeError(
                f"cannot read the service account token {self.token_file}: {e.strerror or e} "
                "(the Job's pod needs automountServiceAccountToken, or --kube-token-file)"
            ) from e
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _request(self, verb: str, method: str, body: Any = None) -> dict[str, Any]:
        assert self._session is not None, "use ResultsMap in `async with`"
        where = f"ConfigMap {self.namespace}/{self.name}"
        delay, waited = 0.5, 0.0
        while True:
            headers = self._headers()
            if body is not None:
                headers["Content-Type"] = "application/merge-patch+json"
            try:
                async with self._session.request(
                    method, self.url, headers=headers, data=None if body is None else json.dumps(body)
                ) as resp:
                    text = await resp.text()
                    if resp.status < 300:
                        return json.loads(text)
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as e:
                status, text = 0, str(e) or type(e).__name__
            if status == 409:
                raise Conflict(f"{where} changed since it was read")
            if status in (401, 403):
                raise KubeError(
                    f"the API refused to {verb} {where} (HTTP {status}): the Job's service account needs get and "
                    f"patch on configmaps (resourceNames: [{self.name}]) in namespace {self.namespace}"
                )
            if status == 404:
                raise KubeError(f"{where} does not exist: the operator creates it (empty) before it starts the Job")
            if status and status != 429 and status < 500:
                raise KubeError(f"the API refused to {verb} {where} (HTTP {status}): {text[:300]}")
            if waited >= self.retry_seconds:
                raise KubeError(f"cannot {verb} {where} at {self.api} for {waited:.0f}s: {text[:300]}")
            log.warning("results ConfigMap not reachable; retrying", extra={"status": status, "error": text[:300]})
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 8.0)

    async def read(self) -> Observed:
        cm = await self._request("get", "GET")
        meta = cm.get("metadata") or {}
        created = meta.get("creationTimestamp")
        return Observed(
            data=dict(cm.get("data") or {}),
            resource_version=str(meta.get("resourceVersion") or ""),
            created=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
        )

    async def add(self, data: dict[str, str], resource_version: str | None = None) -> None:
        """Add (or set) keys of ``data``; with ``resource_version``, only if the ConfigMap has not
        changed since (else Conflict)."""
        body: dict[str, Any] = {"data": data}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        await self._request("patch", "PATCH", body)
