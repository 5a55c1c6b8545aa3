"""The task API: submit, get, stream progress (SSE), cancel, dead letters; bearer-token auth.

Handlers are thin: validation lives in ``submission.py`` and state changes in ``TaskStore``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from decimal import Decimal
from typing import Any

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import OutOfMemoryError

from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.budget import NANOS
from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.core.metrics_access import hash_tenants, label_key
from agentfleet_runtime.core.tenants import ANONYMOUS, Caller, TokenFile, owner
from agentfleet_runtime.core.types import TaskRecord
from agentfleet_runtime.server.a2a import A2AServer
from agentfleet_runtime.server.a2a_wire import CARD_PATHS, REST_PATH, RPC_PATH
from agentfleet_runtime.server.admission import Admitter
from agentfleet_runtime.server.openapi import OPENAPI
from agentfleet_runtime.server.requests import (
    CALLER,
    SSE_KEEPALIVE_SECONDS,
    SSE_POLL_MS,
    TENANT,
    Admitted,
    Refused,
)
from agentfleet_runtime.server.submission import (
    SubmitError,
    new_task,
    parse_body,
    parse_submission,
    stream_position,
    task_view,
)
from agentfleet_runtime.server.tls import Certificate
from agentfleet_runtime.store import approvals
from agentfleet_runtime.store.connection import UNWRITABLE, connect, full_reason
from agentfleet_runtime.store.migrate import migrate_legacy_keys
from agentfleet_runtime.store.tasks import NotReplicated, TaskStore

log = logging.getLogger("agentfleet_runtime.task_api")

# The agent card is public (A2A: callers read it before they hold a token); it names no secret.
OPEN_PATHS = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json", *CARD_PATHS}


RETRY_AFTER_SECONDS = 5  # a tenant at its in-flight or stream cap: about when a task or stream may have ended
REVIEWER_SUBMITS = "this token is a reviewer's (scope approver): it decides approvals and submits nothing"
REDIS_RETRY_AFTER_SECONDS = 10  # Redis full or failing over: results expire, a failover takes seconds


class StreamSlots:
    """Open progress streams, per pod and per tenant. Each stream holds a Redis connection in a
    blocking XREAD for up to SSE_KEEPALIVE_SECONDS, so the pod's cap stays below its Redis pool:
    ordinary requests and /readyz always find a free connection. A slot is taken before the
    stream starts and given back when it ends, however it ends.

    The pod's cap is shared fairly: when it is full, a tenant holding fewer streams than the
    tenant holding the most (by two or more) takes one of that tenant's: the oldest of them is
    told to end (its client resumes with Last-Event-ID, or polls), so tenants that fill the pod
    together cannot keep another tenant out."""

    def __init__(self, per_pod: int, per_tenant: int) -> None:
        self.per_pod = per_pod
        self.per_tenant = per_tenant
        self.open = 0
        self.by_tenant: dict[str, int] = {}
        self.held: dict[str, list[asyncio.Event]] = {}  # per tenant, oldest first: set = end now

    def take(self, tenant: str) -> str | None:
        """None when a slot was taken; otherwise which cap refused it."""
        if self.by_tenant.get(tenant, 0) >= self.per_tenant:
            return f"your tenant may hold at most {self.per_tenant} event streams open at once on this API pod"
        if self.open >= self.per_pod and not self._evict_for(tenant):
            return f"this API pod serves at most {self.per_pod} event streams at once"
        self.open += 1
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + 1
        return None

    def _evict_for(self, tenant: str) -> bool:
        """Tell the oldest stream of the tenant holding the most to end, if that is fairer."""
        mine = self.by_tenant.get(tenant, 0)
        live = {t: [e for e in events if not e.is_set()] for t, events in self.held.items()}
        richest = max(live, key=lambda t: len(live[t]), default=None)
        if richest is None or len(live[richest]) < mine + 2:
            return False
        live[richest][0].set()
        return True

    def register(self, tenant: str) -> asyncio.Event:
        """The event that tells a stream just admitted to end (set when another tenant needs its slot)."""
        event = asyncio.Event()
        self.held.setdefault(tenant, []).append(event)
        return event

    def give(self, tenant: str, event: asyncio.Event | None = None) -> None:
        self.open -= 1
        left = self.by_tenant[tenant] - 1
        if left:
            self.by_tenant[tenant] = left
        else:
            del self.by_tenant[tenant]
        if event is not None:
            events = self.held.get(tenant, [])
            if event in events:
                events.remove(event)
            if not events:
                self.held.pop(tenant, None)


def stream_cap(max_streams: int, redis_connections: int) -> int:
    """Streams one pod holds at most: the setting, but always leaving a quarter of the Redis pool
    (at least 2 connections) to everything else."""
    return max(1, min(max_streams, redis_connections - max(2, redis_connections // 4)))


def seconds_to_utc_midnight(now: float) -> int:
    return max(1, int(86400 - now % 86400))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class TaskAPI:
    def __init__(self, config: RuntimeConfig, redis: Any = None) -> None:
        if not config.api.tokens_file and not config.api.allow_anonymous:
            raise ValueError(
                "the task API needs api.tokensFile (AGENTFLEET_API_TOKENS_FILE), or api.allowAnonymous for development"
            )
        self.config = config
        self.r = redis or connect(config.redis_url, config.redis_password, config.redis_max_connections)
        self.store = TaskStore(self.r, Keys(config.fleet, config.namespace), config.result_ttl_seconds)
        self.auth = TokenFile(config.api.tokens_file) if config.api.tokens_file else None
        self.limits = limits_of(config)
        self.admission = Admitter(config)
        per_tenant = config.api.tenant_limits.max_streams
        self.streams = StreamSlots(stream_cap(config.api.max_streams, config.redis_max_connections), per_tenant)
        self.retrieval_tools = frozenset(t.name for t in config.tools if t.type == "Retrieval")
        self.approvals = approvals.Approvals(self.r, self.store.keys)
        self.closing = False
        self.label_key = b""  # the fleet's tenant-label key (metrics_access), read at startup

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.api.max_request_bytes, middlewares=[self._middleware])
        app.router.add_post("/v1/tasks", self.submit)
        app.router.add_get("/v1/tasks/{id}", self.get)
        app.router.add_get("/v1/tasks/{id}/events", self.events)
        app.router.add_post("/v1/tasks/{id}/cancel", self.cancel)
        app.router.add_get("/v1/deadletters", self.dead_letters)
        app.router.add_post("/v1/tasks/{id}/approvals", self.decide_approval)
        app.router.add_get("/v1/approvals", self.list_approvals)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/v1/openapi.json", self.openapi)
        if self.config.a2a is not None:
            for method, path, handler in A2AServer(self).routes():
                app.router.add_route(method, path, handler)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _: web.Application) -> None:
        # Before anything is read or written; only where the operator claims the old keys (issue 76).
        await migrate_legacy_keys(self.r, self.store.keys, claimed=self.config.legacy_keys)
        await self.store.ensure_group()
        self.label_key = await label_key(self.r, self.store.keys)

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
        open_path = request.path in OPEN_PATHS
        if request.path == "/metrics" and self.config.api.metrics_access == "Token":
            open_path = False
        if not open_path:
            caller = ANONYMOUS if self.auth is None else self.auth.caller_of(request.headers.get("Authorization"))
            if caller is None:
                return web.json_response(
                    {"error": "missing or invalid bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
                )
            request[TENANT] = caller.tenant
            request[CALLER] = caller
            length = request.content_length
            # A2A's endpoint reads the body itself and answers an oversized one with a JSON-RPC error.
            a2a_route = request.path == RPC_PATH or request.path.startswith(REST_PATH + "/")
            if length is not None and length > self.config.api.max_request_bytes and not a2a_route:
                return _error(
                    413, f"request body of {length} bytes exceeds the limit of {self.config.api.max_request_bytes}"
                )
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request body exceeds the limit of {self.config.api.max_request_bytes} bytes")
        except SubmitError as e:
            return _error(400, str(e))
        except UNWRITABLE as e:
            # Nothing was written: the client may retry the same request (and Idempotency-Key).
            log.warning("redis refused a write", extra={"error": str(e)})
            why = "full (maxmemory)" if isinstance(e, OutOfMemoryError) else "read-only (failing over)"
            return web.json_response(
                {"error": f"the fleet's Redis is {why}: nothing was stored; retry later"},
                status=503,
                headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
            )

    async def _owned(self, request: web.Request) -> tuple[TaskRecord, dict[str, str]] | None:
        """The task the path names, if it is the caller's tenant's: another tenant's task is as
        absent as one that never existed (404 either way, so ids cannot be probed)."""
        return await self.owned(request[TENANT], request.match_info["id"])

    async def owned(self, tenant: str, task_id: str) -> tuple[TaskRecord, dict[str, str]] | None:
        """The task, if it is this tenant's: another tenant's is as absent as one that never existed."""
        got = await self.store.get(task_id)
        if got is None or owner(got[0].tenant) != tenant:
            return None
        return got

    async def admit(self, tenant: str, caller: Caller, body: Any, key: str | None) -> Admitted:
        """Make a task of a submission, through every check /v1/tasks has: the body's fields, the
        fleet's and the tenant's limits, the idempotency key. A2A's SendMessage comes here too,
        so neither path can skip what the other enforces. Raises SubmitError (400) or Refused."""
        if caller.approver:
            raise Refused(403, REVIEWER_SUBMITS)
        sub = parse_submission(body, key, self.config.api.max_goal_chars, self.limits)
        record = new_task(uuid.uuid4().hex, sub, time.time(), tenant, caller.id)
        admission = self.admission.of(tenant, sub.goal, sub.limits)
        try:
            created, task_id = await self.store.submit(
                record,
                idempotency_key=sub.idempotency_key,
                request_hash=sub.request_hash,
                admission=admission,
                replicas=self.config.redis_ack_replicas,
                wait_ms=self.config.redis_ack_timeout_ms,
            )
        except NotReplicated as e:
            # Stored on the primary only: a failover now could lose it, so it is not acknowledged.
            # The same Idempotency-Key returns this task, whether it survived or not (then anew).
            raise Refused(
                503, f"{e}: not acknowledged; retry with the same Idempotency-Key", retry_after=1, task_id=e.task_id
            ) from e
        if created < 0:
            raise self._refused(tenant, created, task_id, record.created_at, admission.need_tokens)
        if not created:
            got = await self.store.get(task_id)
            if got is not None and sub.idempotency_key and got[1].get("request_hash") not in ("", sub.request_hash):
                raise Refused(409, "this Idempotency-Key was used for a different request")
            return Admitted(task_id, False, got[0].status.value if got else "unknown")
        metrics.TENANT_ADMISSIONS.labels(tenant, "admitted").inc()
        log.info("task submitted", extra={"task_id": task_id, "session": sub.session or None, "tenant": tenant})
        return Admitted(task_id, True, "queued")

    # -- routes ------------------------------------------------------------------------------------
    async def submit(self, request: web.Request) -> web.Response:
        if request[CALLER].approver:  # before the body is read, as admit would refuse it anyway
            return _error(403, REVIEWER_SUBMITS)
        body = parse_body(await request.read())
        try:
            got = await self.admit(request[TENANT], request[CALLER], body, request.headers.get("Idempotency-Key"))
        except Refused as e:
            return e.response()
        if not got.created:
            return web.json_response({"id": got.task_id, "status": got.status, "created": False}, status=200)
        body = {"id": got.task_id, "status": "queued", "created": True}
        return web.json_response(body, status=201, headers={"Location": f"/v1/tasks/{got.task_id}"})

    def _refused(self, tenant: str, code: int, figure: str, now: float, need: int) -> Refused:
        """429 for a tenant at a limit (SUBMIT's -1: tasks in flight, -2: spend today, -3: tokens
        per minute)."""
        tl = self.config.api.tenant_limits
        if code == -3:
            refusal = self.admission.token_refusal(figure)
            outcome, wait = "rate_limit", refusal.retry_after
            message = (
                f"your tenant's calls to {refusal.model} used about {refusal.used} of its"
                f" {self.admission.tokens_per_minute} tokens per minute (spec.rateLimit.perTenantTokensPerMinute)"
                f" and this task's first call needs about {need}: retry in {wait} s"
            )
        elif code == -1:
            outcome, wait = "in_flight_limit", RETRY_AFTER_SECONDS
            message = (
                f"your tenant has {figure} tasks queued or running, its limit (spec.api.tenantLimits.maxTasksInFlight"
                f" = {tl.max_tasks_in_flight}): retry when one has ended"
            )
        else:
            spent, reserved, want = (format((Decimal(x) / NANOS).normalize(), "f") for x in figure.split())
            # Reservations free up as running tasks end; the day's spend only at midnight.
            busy = Decimal(reserved) > 0
            outcome = "spend_limit"
            wait = RETRY_AFTER_SECONDS if busy else seconds_to_utc_midnight(now)
            currency = self.config.pricing.currency
            message = (
                f"your tenant spent {spent} {currency} today (UTC) and its running tasks hold {reserved} more;"
                f" this task may cost up to {want} (budgets.maxCost, else its token budget), over its limit"
                f" (spec.api.tenantLimits.maxSpendPerDay = {tl.max_spend_per_day}): "
                + ("retry when a task has ended, or" if busy else "retry after midnight UTC, or")
                + " submit with a lower budgets.maxCost"
            )
        metrics.TENANT_ADMISSIONS.labels(tenant, outcome).inc()
        return Refused(429, message, retry_after=wait, limit=outcome)

    async def get(self, request: web.Request) -> web.Response:
        got = await self._owned(request)
        tid = request.match_info["id"]
        if got is None:
            return _error(404, f"no task {tid}")
        want_steps = request.query.get("steps", "1") not in ("0", "false", "no")
        steps = await self.store.steps(tid) if want_steps else None
        count = len(steps) if steps is not None else int(await self.r.llen(self.store.keys.steps(tid)))
        children = await self.store.children(tid)
        currency = self.config.pricing.currency
        view = task_view(got[0], got[1], steps, count, children, currency, self.retrieval_tools)
        view["approval"] = approvals.approval_view(got[1])
        return web.json_response(view)

    async def cancel(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        if request[CALLER].approver:
            # The contract: a reviewer decides approvals and cancels nothing (a denial ends the
            # task it reviews; a cancel would end any task of the tenant, reviewed or not).
            return _error(403, "this token is a reviewer's (scope approver): it decides approvals and cancels nothing")
        if await self._owned(request) is None:
            return _error(404, f"no task {tid}")
        res = await self.store.cancel_tree(tid)
        if res == -1:
            return _error(404, f"no task {tid}")
        got = await self.store.get(tid)
        status = got[0].status.value if got else "unknown"
        body = {"id": tid, "status": status, "cancelRequested": res == 1}
        return web.json_response(body, status=202 if res == 1 else 200)

    def _not_a_reviewer(self, caller: Caller) -> web.Response | None:
        """403 unless the caller's token is a reviewer's (or the API is anonymous, for development)."""
        if caller.approver or caller is ANONYMOUS:
            return None
        return _error(
            403,
            "approvals are listed and decided with a reviewer's token (a tokens-file line ending in"
            " ' approver'), never with the token that submits tasks",
        )

    async def decide_approval(self, request: web.Request) -> web.Response:
        """Approve or deny the calls a task of the caller's tenant waits on: 200 decided (or the
        same decision repeated), 403 for a token that is not a reviewer's or that submitted the
        task, 409 when it waits on nothing this request can decide."""
        tid, caller = request.match_info["id"], request[CALLER]
        got_task = await self._owned(request)
        if got_task is None:
            return _error(404, f"no task {tid}")
        if (refused := self._not_a_reviewer(caller)) is not None:
            return refused
        if caller is not ANONYMOUS and got_task[0].submitter == caller.id:
            return _error(403, "the token that submitted this task cannot decide its approvals: use another reviewer's")
        req = approvals.parse_request(parse_body(await request.read()))
        if isinstance(req, str):
            return _error(400, req)
        got = await self.approvals.decide(
            tid, req.decision, req.reason, req.step, by=caller.id, tenant=got_task[0].tenant
        )
        if got is None:
            return _error(404, f"no task {tid}")
        if got.decided or (got.record is not None and got.record.get("decision") == req.decision):
            body = {"id": tid, "status": got.status, "approval": got.record, "repeated": not got.decided}
            return web.json_response(body)
        done = f" (its decision was {got.record['decision']})" if got.record else ""
        why = f"task {tid} is {got.status}, not waiting for this approval{done}: GET /v1/approvals lists what waits"
        return _error(409, why)

    async def list_approvals(self, request: web.Request) -> web.Response:
        if (refused := self._not_a_reviewer(request[CALLER])) is not None:
            return refused
        return web.json_response({"items": await self.approvals.waiting(request[TENANT])})

    async def dead_letters(self, request: web.Request) -> web.Response:
        try:
            count = min(1000, max(1, int(request.query.get("count", "100"))))
        except ValueError:
            return _error(400, "count must be an integer from 1 to 1000, e.g. ?count=100")
        # The caller's tenant's only: among the newest 1000 entries, those whose task is theirs
        # (a task whose record has expired has no known owner and is shown to no one).
        items = await self.store.dead_letters(1000)
        owners = await self.store.owners([i.get("task", "") for i in items])
        mine = [i for i, who in zip(items, owners, strict=True) if who == request[TENANT]]
        return web.json_response({"items": mine[:count]})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every progress event of the task, then the stream ends after 'finished'."""
        tenant = request[TENANT]
        tid = request.match_info["id"]
        got = await self._owned(request)
        if got is None:
            return _error(404, f"no task {tid}")
        given = request.headers.get("Last-Event-ID")
        if given:
            after = stream_position(given, "Last-Event-ID")
        else:
            after = stream_position(request.query.get("after", "0-0"), "after")
        refused = self.streams.take(tenant)
        if refused is not None:
            metrics.TENANT_ADMISSIONS.labels(tenant, "stream_limit").inc()
            return web.json_response(
                {"error": f"{refused}: close one, or poll GET /v1/tasks/{tid}", "limit": "stream_limit"},
                status=429,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        ending = self.streams.register(tenant)
        try:
            return await self._stream(request, tid, got[0].status.terminal, after, ending)
        finally:
            self.streams.give(tenant, ending)

    async def _stream(
        self, request: web.Request, tid: str, ended: bool, after: str, ending: asyncio.Event | None = None
    ) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        quiet_since = time.monotonic()
        # Block a second at a time, not a whole keepalive period: a client that went away is seen
        # within a second and its stream slot (and Redis connection) given back.
        while (
            not self.closing
            and not (ending is not None and ending.is_set())
            and request.transport is not None
            and not request.transport.is_closing()
        ):
            batch = await self.store.events(tid, after, block_ms=SSE_POLL_MS)
            if not batch:
                if ended:
                    break
                if time.monotonic() - quiet_since >= SSE_KEEPALIVE_SECONDS:
                    quiet_since = time.monotonic()
                    await resp.write(b": keepalive\n\n")
                    ended = (got := await self.store.get(tid)) is None or got[0].status.terminal
                continue
            quiet_since = time.monotonic()
            for eid, ev in batch:
                after = eid
                await resp.write(f"id: {eid}\nevent: {ev.get('type', 'message')}\ndata: {json.dumps(ev)}\n\n".encode())
                if ev.get("type") == "finished":
                    ended = True
            if ended and batch[-1][1].get("type") == "finished":
                break
        try:
            await resp.write_eof()
        except ConnectionResetError:  # the client left first: nothing is owed to it
            pass
        return resp

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, _: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.r.ping(), 2.0)
            full = await asyncio.wait_for(full_reason(self.r), 2.0)
        except Exception as e:
            return web.json_response({"ready": False, "redis": str(e)}, status=503)
        if full is not None:
            # Unready: a pod that can only refuse submissions should not be sent any.
            return web.json_response({"ready": False, "redis": full}, status=503)
        return web.json_response({"ready": True})

    async def metrics(self, _: web.Request) -> web.Response:
        body = generate_latest()
        if self.config.api.metrics_access == "Hashed":
            body = hash_tenants(body, self.label_key)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


async def serve(config: RuntimeConfig, stop: asyncio.Event) -> None:
    """Run the API until ``stop`` is set (SIGTERM), then finish open requests and exit."""
    api = TaskAPI(config)
    runner = web.AppRunner(api.app(), access_log=None, shutdown_timeout=10)
    await runner.setup()
    tls = config.api.tls
    cert = Certificate(tls) if tls is not None else None
    site = web.TCPSite(runner, config.listen_host, config.api.port, ssl_context=cert.context if cert else None)
    await site.start()
    where = {"host": config.listen_host, "port": config.api.port, "tls": tls is not None, "pid": os.getpid()}
    log.info("task API listening", extra=where)
    watch = asyncio.create_task(cert.watch()) if cert is not None else None
    await stop.wait()
    if watch is not None:
        watch.cancel()
    api.closing = True
    await runner.cleanup()
