"""The worker's /metrics, /healthz and /readyz endpoint, and the queue gauges it reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.metrics_access import hash_tenants
from agentfleet_runtime.core.tenants import TokenFile
from agentfleet_runtime.store.tasks import TaskStore


async def serve_health(
    redis: Any,
    host: str,
    port: int,
    *,
    ready: Callable[[], bool],
    draining: Callable[[], bool],
    held: Callable[[], int],
    free_slots: Callable[[], int],
    access: str = "Open",
    auth: TokenFile | None = None,
    label_key: bytes = b"",
) -> web.AppRunner:
    """Serve the endpoint; the caller cleans the returned runner up. Ready means started, not
    draining, and Redis answering a PING within 2 s. /metrics follows the task API's rule
    (``access``, spec.api.metricsAccess: core/metrics_access.py): the worker's series name tenants
    too (spend, tokens), so an open worker port must not list them."""

    async def metrics_handler(request: web.Request) -> web.Response:
        if access == "Token" and auth is not None and auth.caller_of(request.headers.get("Authorization")) is None:
            return web.json_response(
                {"error": "missing or invalid bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        body = generate_latest()
        if access == "Hashed":
            body = hash_tenants(body, label_key)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "held": held()})

    async def readyz(_: web.Request) -> web.Response:
        if not ready() or draining():
            return web.json_response({"ready": False, "draining": draining()}, status=503)
        try:
            await asyncio.wait_for(redis.ping(), 2.0)
        except Exception as e:
            return web.json_response({"ready": False, "redis": str(e)}, status=503)
        return web.json_response({"ready": True, "held": held(), "free_slots": free_slots()})

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def stats_loop(store: TaskStore) -> None:
    """Queue depth, pending, lag and delayed gauges, every 5 s."""
    while True:
        s = await store.queue_stats()
        metrics.QUEUE_DEPTH.set(s["depth"])
        metrics.QUEUE_PENDING.set(s["pending"])
        metrics.QUEUE_LAG.set(s["oldest_age_seconds"])
        metrics.QUEUE_DELAYED.set(s["delayed"])
        metrics.flush()  # scrapes flush too; this keeps a registry read by other means current
        await asyncio.sleep(5.0)
