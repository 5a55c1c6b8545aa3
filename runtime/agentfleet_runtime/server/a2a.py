"""A2A's methods on the task API, over JSON-RPC and HTTP+JSON (docs/a2a.md): each one a path the
task API already has.

SendMessage is ``TaskAPI.admit`` (the same checks, tenant limits and idempotency as POST /v1/tasks,
the messageId as the key); GetTask, CancelTask and SubscribeToTask read and cancel through the same
store and tenant check as /v1/tasks/{id}; ListTasks reads the tenant's own index. Nothing is kept
here: the task's Redis record and event stream are the only task store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.tenants import ANONYMOUS, Caller, owner
from agentfleet_runtime.core.types import TaskRecord
from agentfleet_runtime.server import a2a_wire as w
from agentfleet_runtime.server.requests import CALLER, SSE_KEEPALIVE_SECONDS, SSE_POLL_MS, TENANT, Refused
from agentfleet_runtime.server.submission import SubmitError, check_json, tree_usage
from agentfleet_runtime.store import approvals
from agentfleet_runtime.store.connection import UNWRITABLE

if TYPE_CHECKING:
    from agentfleet_runtime.server.api import TaskAPI  # an annotation only: api.py mounts this

log = logging.getLogger("agentfleet_runtime.a2a")

SCAN_CHUNK = 500  # index entries read per round trip while listing
MAX_SCAN = 10_000  # the index keeps as many (lua.MAX_LISTED): a filtered listing reads no more

try:
    VERSION = version("agentfleet")
except PackageNotFoundError:  # a source tree without an installed distribution
    VERSION = "0.1.0"


def _rpc_json(payload: dict[str, Any]) -> web.Response:
    # JSON-RPC answers errors with HTTP 200: the error is in the body, where A2A clients read it.
    return web.json_response(payload)


async def _sse_error(request: web.Request, frames: Frames, err: w.RpcError) -> web.StreamResponse:
    """A streaming method's error before its first event, as a stream of that one error event.

    The spec answers SendStreamingMessage and SubscribeToTask with an SSE stream, and a caller that
    asked for one reads it: a2a-sdk's client maps an ``error`` event to the same exception as a JSON
    answer, while the A2A kit reads only a stream (a JSON error there failed its
    test_tasks_subscribe_nonexistent). A caller that did not ask for a stream gets the JSON answer."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    await resp.write(frames.error(err))
    await resp.write_eof()
    return resp


class A2AServer:
    def __init__(self, api: TaskAPI) -> None:
        self.api = api
        self.config = api.config

    # -- the card ------------------------------------------------------------------------------------
    async def card(self, request: web.Request) -> web.Response:
        a2a = self.config.a2a
        base = (a2a.url if a2a is not None and a2a.url else None) or f"{request.scheme}://{request.host}"
        body = w.agent_card(self.config, base, VERSION, secured=self.api.auth is not None)
        return web.json_response(body, headers={"Cache-Control": "public, max-age=300"})

    def routes(self) -> list[tuple[str, str, Any]]:
        """(method, path, handler) of the card, the JSON-RPC endpoint and the HTTP+JSON binding."""
        rest = w.REST_PATH
        return [
            *(("GET", path, self.card) for path in w.CARD_PATHS),
            ("POST", w.RPC_PATH, self.rpc),
            ("POST", rest + "/message:send", self._rest("SendMessage", self._rest_send)),
            ("POST", rest + "/message:stream", self._rest("SendStreamingMessage", self._rest_stream)),
            ("GET", rest + "/tasks", self._rest("ListTasks", self._rest_list)),
            ("GET", rest + "/tasks/{id}", self._rest("GetTask", self._rest_get)),
            ("POST", rest + "/tasks/{id}:cancel", self._rest("CancelTask", self._rest_cancel)),
            ("POST", rest + "/tasks/{id}:subscribe", self._rest("SubscribeToTask", self._rest_subscribe)),
            (
                "*",
                rest + "/tasks/{id}/pushNotificationConfigs",
                self._rest("CreateTaskPushNotificationConfig", self._rest_push),
            ),
            (
                "*",
                rest + "/tasks/{id}/pushNotificationConfigs/{config}",
                self._rest("CreateTaskPushNotificationConfig", self._rest_push),
            ),
            ("GET", rest + "/extendedAgentCard", self._rest("GetExtendedAgentCard", self._rest_extended)),
        ]

    @staticmethod
    def _as_error(e: Exception) -> w.RpcError:
        """Any failure as the caller's error: its own, a refused body, Redis refusing a write, or
        (logged with its trace) an internal one."""
        if isinstance(e, w.RpcError):
            return e
        if isinstance(e, SubmitError):
            return w.RpcError(w.INVALID_PARAMS, str(e))
        if isinstance(e, UNWRITABLE):
            log.warning("redis refused a write", extra={"error": str(e)})
            return w.RpcError(w.UNAVAILABLE, "the fleet's Redis refused the write: nothing was stored; retry later")
        log.exception("A2A request failed", exc_info=e)
        return w.RpcError(w.INTERNAL_ERROR, "internal error: see the API's log")

    def _check_version(self, request: web.Request) -> None:
        asked = request.headers.get("A2A-Version", "")
        if asked and asked.split(".")[:2] != w.PROTOCOL_VERSION.split(".")[:2]:
            raise w.RpcError(w.VERSION_NOT_SUPPORTED, f"this server speaks A2A {w.PROTOCOL_VERSION}, not {asked}")

    async def _body(self, request: web.Request, what: str) -> Any:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = self.config.api.max_request_bytes
            why = f"the request is larger than {limit} bytes (spec.api.maxRequestBytes)"
            raise w.RpcError(w.INVALID_REQUEST, why) from None
        try:
            return json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise w.RpcError(w.PARSE_ERROR, f"the body is not JSON: send {what}") from None

    # -- JSON-RPC --------------------------------------------------------------------------------------
    async def rpc(self, request: web.Request) -> web.StreamResponse:
        rid: Any = None
        method = ""
        try:
            body = await self._body(request, "one JSON-RPC 2.0 request object")
            rid = w.request_id_of(body)
            rid, method, params = w.parse_envelope(body)
            check_json(params)  # NaN, lone surrogates, deep nesting: INVALID_PARAMS naming where
            self._check_version(request)
            out = await self._dispatch(request, rid, method, params)
            metrics.A2A_REQUESTS.labels(w.method_label(method), "ok").inc()
            return out
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            # Never a 5xx: the error is in the body (the log has the trace of an internal one).
            err = self._as_error(e)
            metrics.A2A_REQUESTS.labels(w.method_label(method), w.REASONS.get(err.code, "UNKNOWN")).inc()
            if method in w.STREAM_METHODS and "text/event-stream" in request.headers.get("Accept", ""):
                return await _sse_error(request, JsonRpcFrames(rid), err)
            return _rpc_json(w.error_response(rid, err))

    async def _dispatch(
        self, request: web.Request, rid: Any, method: str, params: dict[str, Any]
    ) -> web.StreamResponse:
        tenant, caller = request[TENANT], request[CALLER]
        if method in w.PUSH_METHODS:
            raise w.RpcError(w.PUSH_NOTIFICATION_NOT_SUPPORTED, "push notifications are not offered: stream or poll")
        if method == "GetExtendedAgentCard":
            raise w.RpcError(w.UNSUPPORTED_OPERATION, "there is no extended card: the public card is all there is")
        if method == "SendMessage":
            return _rpc_json(w.result_response(rid, await self.send(request, tenant, caller, params)))
        if method == "GetTask":
            return _rpc_json(w.result_response(rid, await self.get(tenant, params)))
        if method == "ListTasks":
            return _rpc_json(w.result_response(rid, await self.list(tenant, params)))
        if method == "CancelTask":
            return _rpc_json(w.result_response(rid, await self.cancel(tenant, caller, params)))
        if method == "SendStreamingMessage":
            return await self.send_streaming(request, JsonRpcFrames(rid), tenant, caller, params)
        if method == "SubscribeToTask":
            return await self.subscribe(request, JsonRpcFrames(rid), tenant, params)
        raise w.RpcError(w.METHOD_NOT_FOUND, f"no method {method[:80]!r}: this server answers {', '.join(w.METHODS)}")

    # -- HTTP+JSON -------------------------------------------------------------------------------------
    def _rest(self, method: str, handler: Any) -> Any:
        """A binding route: the same methods as JSON-RPC's, errors as an HTTP status and a
        google.rpc.Status body (4xx for anything a caller sent)."""

        async def route(request: web.Request) -> web.StreamResponse:
            try:
                self._check_version(request)
                out = await handler(request)
                metrics.A2A_REQUESTS.labels(method, "ok").inc()
                return out if isinstance(out, web.StreamResponse) else web.json_response(out)
            except (ConnectionResetError, asyncio.CancelledError):
                raise
            except Exception as e:
                err = self._as_error(e)
                metrics.A2A_REQUESTS.labels(method, w.REASONS.get(err.code, "UNKNOWN")).inc()
                status, body = w.rest_error(err)
                return web.json_response(body, status=status)

        return route

    async def _rest_params(self, request: web.Request) -> dict[str, Any]:
        body = await self._body(request, "a SendMessageRequest object")
        if not isinstance(body, dict):
            raise w.RpcError(w.INVALID_PARAMS, "the body must be an object with message (and configuration)")
        check_json(body)
        return body

    async def _rest_send(self, request: web.Request) -> dict[str, Any]:
        params = await self._rest_params(request)
        return await self.send(request, request[TENANT], request[CALLER], params)

    async def _rest_stream(self, request: web.Request) -> web.StreamResponse:
        params = await self._rest_params(request)
        return await self.send_streaming(request, RestFrames(), request[TENANT], request[CALLER], params)

    async def _rest_get(self, request: web.Request) -> dict[str, Any]:
        params = {**w.query_params(request.query), "id": request.match_info["id"]}
        return await self.get(request[TENANT], params)

    async def _rest_list(self, request: web.Request) -> dict[str, Any]:
        return await self.list(request[TENANT], w.query_params(request.query))

    async def _rest_cancel(self, request: web.Request) -> dict[str, Any]:
        return await self.cancel(request[TENANT], request[CALLER], {"id": request.match_info["id"]})

    async def _rest_subscribe(self, request: web.Request) -> web.StreamResponse:
        return await self.subscribe(request, RestFrames(), request[TENANT], {"id": request.match_info["id"]})

    async def _rest_push(self, request: web.Request) -> dict[str, Any]:
        raise w.RpcError(w.PUSH_NOTIFICATION_NOT_SUPPORTED, "push notifications are not offered: stream or poll")

    async def _rest_extended(self, request: web.Request) -> dict[str, Any]:
        raise w.RpcError(w.UNSUPPORTED_OPERATION, "there is no extended card: the public card is all there is")

    # -- methods ---------------------------------------------------------------------------------------
    async def _owned(self, tenant: str, task_id: str) -> tuple[TaskRecord, dict[str, str]]:
        got = await self.api.owned(tenant, task_id)
        if got is None:
            raise w.RpcError(w.TASK_NOT_FOUND, f"task {task_id} not found", taskId=task_id)
        return got

    async def _task(self, tenant: str, task_id: str, history_length: int | None = None) -> dict[str, Any]:
        rec, raw = await self._owned(tenant, task_id)
        steps = await self.api.store.steps(task_id) if history_length != 0 else None
        return w.a2a_task(rec, steps, history_length, usage=self._usage(raw))

    def _usage(self, raw: dict[str, str]) -> dict[str, Any]:
        return {**tree_usage(raw), "currency": self.config.pricing.currency}

    async def _new_task(self, tenant: str, caller: Caller, req: w.SendRequest) -> str:
        """A SendMessage's task, through TaskAPI.admit: the same checks and limits as /v1/tasks."""
        if req.decision is not None:
            raise w.RpcError(w.INVALID_PARAMS, "a decision (data part) is sent to a waiting task: set message.taskId")
        # Without a contextId the message opens a context named after it: a retry of the same
        # message then is the same request, and finds the same task.
        ctx = req.context_id or "ctx-" + hashlib.sha256(req.message_id.encode()).hexdigest()[:32]
        body = w.submission_body(req, ctx)
        try:
            got = await self.api.admit(tenant, caller, body, w.MESSAGE_KEY_PREFIX + req.message_id)
        except Refused as e:
            code = {403: w.FORBIDDEN, 409: w.INVALID_PARAMS, 429: w.TENANT_LIMIT}.get(e.status, w.UNAVAILABLE)
            message = e.message.replace("Idempotency-Key", "messageId")
            raise w.RpcError(code, message, limit=e.limit or None, retryAfterSeconds=e.retry_after) from None
        return got.task_id

    async def _to_existing(self, tenant: str, caller: Caller, req: w.SendRequest) -> None:
        """A message to a task that exists: a reviewer's decision on its approval wait, else refused:
        a task takes no input once it started, and an ended one is never restarted."""
        rec, _ = await self._owned(tenant, req.task_id)
        if req.decision is None:
            if rec.status.terminal:
                raise w.RpcError(
                    w.UNSUPPORTED_OPERATION,
                    f"task {rec.id} has ended ({rec.status.value}): send a new message with contextId"
                    f" {w.context_of(rec)!r} to follow it up",
                )
            raise w.RpcError(
                w.UNSUPPORTED_OPERATION,
                f"task {rec.id} takes no further input while it runs: wait for it, or cancel it and send a new message",
            )
        if caller is not ANONYMOUS and not caller.approver:
            raise w.RpcError(w.FORBIDDEN, "an approval is decided with a reviewer's token (scope approver)")
        if caller is not ANONYMOUS and rec.submitter == caller.id:
            raise w.RpcError(w.FORBIDDEN, "the token that submitted this task cannot decide its approvals")
        parsed = approvals.parse_request(req.decision)
        if isinstance(parsed, str):
            raise w.RpcError(w.INVALID_PARAMS, f"the decision data part: {parsed}")
        got = await self.api.approvals.decide(
            rec.id, parsed.decision, parsed.reason, parsed.step, by=caller.id, tenant=rec.tenant
        )
        if got is None:
            raise w.RpcError(w.TASK_NOT_FOUND, f"task {rec.id} not found", taskId=rec.id)
        if not got.decided and not (got.record is not None and got.record.get("decision") == parsed.decision):
            raise w.RpcError(w.UNSUPPORTED_OPERATION, f"task {rec.id} is {got.status}, not waiting for an approval")

    async def send(self, request: web.Request, tenant: str, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        req = w.parse_send(params, self.config.api.max_goal_chars)
        if req.task_id:
            await self._to_existing(tenant, caller, req)
            tid = req.task_id
        else:
            tid = await self._new_task(tenant, caller, req)
            if not req.return_immediately:
                await self._settled(request, tenant, tid)
        return {"task": await self._task(tenant, tid, req.history_length)}

    async def _settled(self, request: web.Request, tenant: str, tid: str) -> None:
        """Wait until the task ended or waits on a reviewer (A2A's blocking send). The wait holds a
        Redis connection as a stream does, so it takes a stream slot: with none free it returns at once."""
        if self.api.streams.take(tenant) is not None:
            return
        ending = self.api.streams.register(tenant)
        after = "0-0"
        try:
            while not self.api.closing and not ending.is_set() and not _gone(request):
                got = await self.api.store.get(tid)
                if got is None or w.a2a_state(got[0].status, got[0].reason) in w.SETTLED:
                    return
                batch = await self.api.store.events(tid, after, block_ms=SSE_POLL_MS)
                if batch:
                    after = batch[-1][0]
        finally:
            self.api.streams.give(tenant, ending)

    async def get(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._task(tenant, w.task_id_of(params), w.history_length_of(params))

    async def cancel(self, tenant: str, caller: Caller, params: dict[str, Any]) -> dict[str, Any]:
        tid = w.task_id_of(params)
        if caller.approver:
            raise w.RpcError(w.FORBIDDEN, "this token is a reviewer's (scope approver): it cancels nothing")
        rec, _ = await self._owned(tenant, tid)
        if rec.status.terminal:
            raise w.RpcError(w.TASK_NOT_CANCELABLE, f"task {tid} has ended ({rec.status.value})", taskId=tid)
        res = await self.api.store.cancel_tree(tid)
        if res == -1:
            raise w.RpcError(w.TASK_NOT_FOUND, f"task {tid} not found", taskId=tid)
        if res == 0:
            raise w.RpcError(w.TASK_NOT_CANCELABLE, f"task {tid} ended before the cancel", taskId=tid)
        return await self._task(tenant, tid)

    async def list(self, tenant: str, params: dict[str, Any]) -> dict[str, Any]:
        """The tenant's tasks, newest first, from its own index (Keys.tenant_tasks): no other
        tenant's task is ever read, and each one listed is checked to be the tenant's again.

        Unfiltered, a page is one range of the index (its size is the index's). A contextId reads
        the session's own list (at most 200 tasks); a state or time filter scans the index, reading
        a few fields of each task (a2a_wire.SUMMARY_FIELDS). Whole records only for the page."""
        q = w.parse_list(params)
        store, key = self.api.store, self.api.store.keys.tenant_tasks(tenant)
        cursor = None
        if q.page_token:
            at, _, last = q.page_token.partition(":")
            cursor = (int(at), last)  # newest first: (score, id) descending, as ZREVRANGE orders them
        if not (q.context_id or q.state or q.after is not None):
            total = int(await store.r.zcard(key))
            top = "+inf" if cursor is None else str(cursor[0])
            # Slack for tasks submitted in the cursor's millisecond (equal scores).
            entries = await store.r.zrevrangebyscore(key, top, "-inf", start=0, num=q.page_size + 65, withscores=True)
            matched = [(int(score), tid) for tid, score in entries]
        else:
            matched, total = await self._filtered(tenant, key, q)
        if cursor is not None:
            matched = [m for m in matched if m < cursor]
        page = matched[: q.page_size]
        pipe = store.r.pipeline(transaction=False)
        for _, tid in page:
            pipe.hgetall(store.keys.task(tid))
        tasks = []
        for (_, tid), h in zip(page, await pipe.execute() if page else [], strict=True):
            if not h or owner(h.get("tenant") or "") != tenant:
                continue  # expired since it was indexed
            steps = await store.steps(tid) if q.history_length else None
            rec = TaskRecord.from_hash(h)
            tasks.append(w.a2a_task(rec, steps, q.history_length or 0, q.include_artifacts, self._usage(h)))
        more = len(matched) > q.page_size
        return {
            "tasks": tasks,
            "nextPageToken": f"{page[-1][0]}:{page[-1][1]}" if more else "",
            "pageSize": q.page_size,
            "totalSize": total,
        }

    async def _filtered(self, tenant: str, key: str, q: w.ListQuery) -> tuple[list[tuple[int, str]], int]:
        """(score, id) of the tenant's tasks the query's filters keep, newest first, and how many."""
        store = self.api.store
        if q.context_id:
            ids = await store.r.lrange(store.keys.session(q.context_id, tenant), 0, -1)
            scores = await store.r.zmscore(key, ids) if ids else []
            # A task sent without a session is its own context: its id is the contextId.
            if not ids and (own := await store.r.zscore(key, q.context_id)) is not None:
                ids, scores = [q.context_id], [own]
            candidates = sorted(
                ((int(sc), tid) for tid, sc in zip(ids, scores, strict=True) if sc is not None), reverse=True
            )
        else:
            entries = await store.r.zrevrangebyscore(key, "+inf", "-inf", start=0, num=MAX_SCAN, withscores=True)
            candidates = [(int(score), tid) for tid, score in entries]
        matched: list[tuple[int, str]] = []
        gone: list[str] = []
        for i in range(0, len(candidates), SCAN_CHUNK):
            chunk = candidates[i : i + SCAN_CHUNK]
            pipe = store.r.pipeline(transaction=False)
            for _, tid in chunk:
                pipe.hmget(store.keys.task(tid), *w.SUMMARY_FIELDS)
            for entry, values in zip(chunk, await pipe.execute(), strict=True):
                got = w.summary(values)
                if got is None:
                    gone.append(entry[1])
                    continue
                filed_by, ctx, state, at = got
                if owner(filed_by) != tenant:
                    continue
                if (q.context_id and ctx != q.context_id) or (q.state and state != q.state):
                    continue
                if q.after is None or at > q.after:
                    matched.append(entry)
        if gone:
            await store.r.zrem(key, *gone)  # their records expired
        return matched, len(matched)

    # -- streams -------------------------------------------------------------------------------------
    async def send_streaming(
        self, request: web.Request, frames: Frames, tenant: str, caller: Caller, params: dict[str, Any]
    ) -> web.StreamResponse:
        req = w.parse_send(params, self.config.api.max_goal_chars)

        async def task_id() -> tuple[str, str]:
            # Inside the stream's slot: a tenant at its stream cap is refused before a task is made.
            if req.task_id:
                await self._to_existing(tenant, caller, req)
                return req.task_id, "0-0"
            return await self._new_task(tenant, caller, req), "0-0"

        return await self._stream(request, frames, tenant, task_id)

    async def subscribe(
        self, request: web.Request, frames: Frames, tenant: str, params: dict[str, Any]
    ) -> web.StreamResponse:
        tid = w.task_id_of(params)

        async def task_id() -> tuple[str, str]:
            rec, _ = await self._owned(tenant, tid)
            if rec.status.terminal:
                raise w.RpcError(
                    w.UNSUPPORTED_OPERATION, f"task {tid} has ended ({rec.status.value}): GetTask reads it"
                )
            # The newest event before the snapshot: what follows it is streamed (a repeat is harmless).
            last = await self.api.store.r.xrevrange(self.api.store.keys.events(tid), count=1)
            return tid, last[0][0] if last else "0-0"

        return await self._stream(request, frames, tenant, task_id)

    async def _stream(
        self, request: web.Request, frames: Frames, tenant: str, task_id: Callable[[], Awaitable[tuple[str, str]]]
    ) -> web.StreamResponse:
        """The task first, then its progress as status and artifact updates, until it ends. The
        slot is taken first; ``task_id`` then names the task (making it, for a new message) and
        the event to stream after."""
        refused = self.api.streams.take(tenant)
        if refused is not None:
            metrics.TENANT_ADMISSIONS.labels(tenant, "stream_limit").inc()
            raise w.RpcError(w.TENANT_LIMIT, f"{refused}: close one, or poll GetTask", limit="stream_limit")
        ending = self.api.streams.register(tenant)
        try:
            tid, after = await task_id()
            rec, _ = await self._owned(tenant, tid)
            headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            resp = web.StreamResponse(headers=headers)

            async def send(result: dict[str, Any]) -> None:
                await resp.write(frames.result(result))

            ended, ctx, quiet = rec.status.terminal, w.context_of(rec), time.monotonic()
            try:
                await resp.prepare(request)
                await send({"task": w.a2a_task(rec, None, 0)})
                while not self.api.closing and not ending.is_set() and not _gone(request):
                    batch = await self.api.store.events(tid, after, block_ms=SSE_POLL_MS)
                    if not batch:
                        if ended:
                            break
                        if time.monotonic() - quiet >= SSE_KEEPALIVE_SECONDS:
                            quiet = time.monotonic()
                            await resp.write(b": keepalive\n\n")
                            ended = (got := await self.api.store.get(tid)) is None or got[0].status.terminal
                        continue
                    quiet = time.monotonic()
                    for eid, ev in batch:
                        after = eid
                        for result in w.stream_events(tid, ctx, eid, ev):
                            await send(result)
                        if ev.get("type") == "finished":
                            ended = True
                    if ended and batch[-1][1].get("type") == "finished":
                        break
            except ConnectionResetError:
                # The caller went away mid-stream (the A2A kit closes streams it has read enough of):
                # the task goes on, and there is no one left to tell. Raised on, aiohttp logged each as
                # an error handling the request.
                return resp
            except asyncio.CancelledError:
                raise
            except Exception:
                # The stream has begun: the error goes in it (an SSE error event), never a 5xx.
                log.exception("A2A stream failed", extra={"task_id": tid})
                await resp.write(
                    frames.error(w.RpcError(w.INTERNAL_ERROR, "the stream failed: GetTask reads the task"))
                )
            try:
                await resp.write_eof()
            except ConnectionResetError:
                pass
            return resp
        finally:
            self.api.streams.give(tenant, ending)


class Frames(Protocol):
    """How a stream's events are written: JSON-RPC wraps each in a response, HTTP+JSON sends it bare."""

    def result(self, result: dict[str, Any]) -> bytes: ...

    def error(self, err: w.RpcError) -> bytes: ...


class JsonRpcFrames:
    def __init__(self, rid: Any) -> None:
        self.rid = rid

    def result(self, result: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(w.result_response(self.rid, result))}\n\n".encode()

    def error(self, err: w.RpcError) -> bytes:
        return f"event: error\ndata: {json.dumps(w.error_response(self.rid, err))}\n\n".encode()


class RestFrames:
    def result(self, result: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(result)}\n\n".encode()

    def error(self, err: w.RpcError) -> bytes:
        return f"event: error\ndata: {json.dumps(w.rest_error(err)[1])}\n\n".encode()


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()
