"""The task API: submit, get, stream progress (SSE), cancel, dead letters; bearer-token auth.

Handlers are thin: validation lives in ``submission.py`` and state changes in ``TaskStore``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agentfleet_runtime import metrics
from agentfleet_runtime.config import limits_of
from agentfleet_runtime.redis_client import connect
from agentfleet_runtime.store import TaskStore
from agentfleet_runtime.submission import SubmitError, new_task, parse_submission, task_view

log = logging.getLogger("agentfleet_runtime.task_api")

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}
SSE_KEEPALIVE_SECONDS = 15


class TokenFile:
    """Bearer tokens, one per line, re-read when the file changes (a rotated Secret)."""

    def __init__(self, path: str | None, check_every: float = 5.0) -> None:
        self.path = Path(path) if path else None
        self.check_every = check_every
        self._tokens: list[bytes] = []
        self._mtime = -1.0
        self._checked = 0.0

    def tokens(self) -> list[bytes]:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self.check_every:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                log.error("tokens file unreadable; refusing every request", extra={"path": str(self.path)})
                self._tokens, self._mtime = [], -1.0
                return self._tokens
            if mtime != self._mtime:
                lines = self.path.read_text().splitlines()
                self._tokens = [ln.strip().encode() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
                self._mtime = mtime
        return self._tokens

    def accepts(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        given = header[7:].strip().encode()
        # Compare against every token, without stopping early, in constant time per token.
        ok = False
        for t in self.tokens():
            ok |= hmac.compare_digest(given, t)
        return ok


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class TaskAPI:
    def __init__(self, config: RuntimeConfig, redis: Any = None) -> None:
        if not config.api.tokens_file and not config.api.allow_anonymous:
            raise ValueError("the task API needs api.tokensFile (AGENTFLEET_API_TOKENS_FILE), or api.allowAnonymous for development")
        self.config = config
        self.r = redis or connect(config.redis_url, config.redis_password, config.redis_max_connections)
        self.store = TaskStore(self.r, Keys(config.fleet), config.result_ttl_seconds)
        self.auth = TokenFile(config.api.tokens_file) if config.api.tokens_file else None
        self.limits = limits_of(config)
        self.retrieval_tools = frozenset(t.name for t in config.tools if t.type == "Retrieval")
        self.closing = False

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.api.max_request_bytes, middlewares=[self._middleware])
        app.router.add_post("/v1/tasks", self.submit)
        app.router.add_get("/v1/tasks/{id}", self.get)
        app.router.add_get("/v1/tasks/{id}/events", self.events)
        app.router.add_post("/v1/tasks/{id}/cancel", self.cancel)
        app.router.add_get("/v1/deadletters", self.dead_letters)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _: web.Application) -> None:
        await self.store.ensure_group()

    async def _cleanup(self, _: web.Application) -> None:
        await self.store.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 500
        try:
            resp = await self._guarded(request, handler)
            status = resp.status
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            metrics.API_REQUESTS.labels(route, str(status)).inc()

    async def _guarded(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            if self.auth is not None and not self.auth.accepts(request.headers.get("Authorization")):
                return web.json_response({"error": "missing or invalid bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"})
            length = request.content_length
            if length is not None and length > self.config.api.max_request_bytes:
                return _error(413, f"request body of {length} bytes exceeds the limit of {self.config.api.max_request_bytes}")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body exceeds the limit of {self.config.api.max_request_bytes} bytes")

    # -- routes ------------------------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        try:
            raw = await request.read()
            body = json.loads(raw or b"null")
        except web.HTTPRequestEntityTooLarge:
            raise
        except ValueError:
            return _error(400, "body must be JSON")
        try:
            sub = parse_submission(body, request.headers.get("Idempotency-Key"), self.config.api.max_goal_chars, self.limits)
        except SubmitError as e:
            return _error(400, str(e))
        record = new_task(uuid.uuid4().hex, sub, time.time())
        created, task_id = await self.store.submit(record, idempotency_key=sub.idempotency_key, request_hash=sub.request_hash)
        if not created:
            got = await self.store.get(task_id)
            if got is not None and sub.idempotency_key and got[1].get("request_hash") not in ("", sub.request_hash):
                return _error(409, "this Idempotency-Key was used for a different request")
            status = got[0].status.value if got else "unknown"
            return web.json_response({"id": task_id, "status": status, "created": False}, status=200)
        log.info("task submitted", extra={"task_id": task_id, "session": sub.session or None})
        return web.json_response({"id": task_id, "status": "queued", "created": True}, status=201, headers={"Location": f"/v1/tasks/{task_id}"})

    async def get(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        got = await self.store.get(tid)
        if got is None:
            return _error(404, f"no task {tid}")
        want_steps = request.query.get("steps", "1") not in ("0", "false", "no")
        steps = await self.store.steps(tid) if want_steps else None
        count = len(steps) if steps is not None else int(await self.r.llen(self.store.keys.steps(tid)))
        children = await self.store.children(tid)
        return web.json_response(task_view(got[0], got[1], steps, count, children, self.config.pricing.currency, self.retrieval_tools))

    async def cancel(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        res = await self.store.cancel_tree(tid)
        if res == -1:
            return _error(404, f"no task {tid}")
        got = await self.store.get(tid)
        status = got[0].status.value if got else "unknown"
        return web.json_response({"id": tid, "status": status, "cancelRequested": res == 1}, status=202 if res == 1 else 200)

    async def dead_letters(self, request: web.Request) -> web.Response:
        try:
            count = min(1000, max(1, int(request.query.get("count", "100"))))
        except ValueError:
            return _error(400, "count must be an integer")
        return web.json_response({"items": await self.store.dead_letters(count)})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every progress event of the task, then the stream ends after 'finished'."""
        tid = request.match_info["id"]
        got = await self.store.get(tid)
        if got is None:
            return _error(404, f"no task {tid}")
        after = request.headers.get("Last-Event-ID") or request.query.get("after") or "0-0"
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        ended = got[0].status.terminal
        while not self.closing:
            batch = await self.store.events(tid, after, block_ms=SSE_KEEPALIVE_SECONDS * 1000)
            if not batch:
                if ended:
                    break
                await resp.write(b": keepalive\n\n")
                ended = (got := await self.store.get(tid)) is None or got[0].status.terminal
                continue
            for eid, ev in batch:
                after = eid
                await resp.write(f"id: {eid}\nevent: {ev.get('type', 'message')}\ndata: {json.dumps(ev)}\n\n".encode())
                if ev.get("type") == "finished":
                    ended = True
            if ended and batch[-1][1].get("type") == "finished":
                break
        await resp.write_eof()
        return resp

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, _: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.r.ping(), 2.0)
        except Exception as e:
            return web.json_response({"ready": False, "redis": str(e)}, status=503)
        return web.json_response({"ready": True})

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(config: RuntimeConfig, stop: asyncio.Event) -> None:
    """Run the API until ``stop`` is set (SIGTERM), then finish open requests and exit."""
    api = TaskAPI(config)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.api.port)
    await site.start()
    log.info("task API listening", extra={"host": config.listen_host, "port": config.api.port, "pid": os.getpid()})
    await stop.wait()
    api.closing = True
    await runner.cleanup()
