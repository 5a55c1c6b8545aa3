"""What the task API's routes share with A2A's (a2a.py): the caller's request keys, stream
timings, and what a submission comes to (TaskAPI.admit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agentfleet_runtime.core.tenants import Caller

SSE_KEEPALIVE_SECONDS = 15
SSE_POLL_MS = 1000  # longest one XREAD of a stream blocks: how soon a closed client's slot frees
TENANT = web.RequestKey("tenant", str)  # the caller's tenant, set by the auth middleware
CALLER = web.RequestKey("caller", Caller)  # the caller's token: tenant, scope, identity


@dataclass(frozen=True, slots=True)
class Admitted:
    """A submission that is a task: made now (created), or the one its idempotency key named."""

    task_id: str
    created: bool
    status: str


class Refused(Exception):
    """A submission the task API refuses: 403 (a reviewer's token), 409 (a key reused for another
    request), 429 (a tenant limit: which, and when to retry), 503 (not replicated in time)."""

    def __init__(
        self, status: int, message: str, *, retry_after: int | None = None, limit: str = "", task_id: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after, self.limit, self.task_id = (
            status,
            message,
            retry_after,
            limit,
            task_id,
        )

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.message}
        if self.task_id:
            body = {"id": self.task_id, **body}
        if self.limit:
            body["limit"] = self.limit
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return web.json_response(body, status=self.status, headers=headers)
