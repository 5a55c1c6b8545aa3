"""The fleet as an A2A server, driven by the official client (a2a-sdk 1.3.0, A2A 1.0 over JSON-RPC)
against the real task API, a real worker and a real Redis: send, stream, get, list, cancel and
resubscribe; an approval wait (auth-required) resumed by a reviewer; two tenants that never see
each other; A2A and /v1/tasks seeing the same tasks, limits and idempotency; bad input answered
with JSON-RPC errors and never a 5xx (docs/a2a.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import (
    ContentTypeNotSupportedError,
    InvalidParamsError,
    TaskNotCancelableError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict
from prometheus_client import REGISTRY
from runtime_helpers import arun, environment, running_worker
from test_runtime_api_tenants import REVIEWERS, TOKENS, tenant_api
from test_runtime_approvals import PAY, policy

pytestmark = pytest.mark.integration
# What bad input may get: JSON-RPC's and A2A's codes for it, never -32603 (internal error).
KNOWN_CODES = {-32700, -32600, -32601, -32602, -32001, -32002, -32003, -32004, -32005}


def message(text: str, *, context_id: str = "", task_id: str = "", message_id: str = "", **data: Any) -> Message:
    parts = [Part(text=text)] if text else []
    if data:
        from google.protobuf.struct_pb2 import Value

        v = Value()
        v.struct_value.update(data)
        parts.append(Part(data=v))
    return Message(
        message_id=message_id or uuid.uuid4().hex,
        role=Role.ROLE_USER,
        parts=parts,
        context_id=context_id,
        task_id=task_id,
    )


def send_request(text: str, *, now: bool = False, **kw: Any) -> SendMessageRequest:
    return SendMessageRequest(
        message=message(text, **kw), configuration=SendMessageConfiguration(return_immediately=now)
    )


@asynccontextmanager
async def a2a_clients(
    base: str, streaming: bool = False, tokens: dict[str, str] | None = None, binding: str = "JSONRPC"
):
    """An A2A client per tenant (and per reviewer, as '<tenant>:review'), each from the card the
    fleet serves, with the tenant's bearer token on every call."""
    tokens = tokens or {**TOKENS, **{f"{t}:review": tok for t, tok in REVIEWERS.items()}}
    async with AsyncExitStack() as stack:
        clients = {}
        card = None
        for name, tok in tokens.items():
            hx = await stack.enter_async_context(
                httpx.AsyncClient(headers={"Authorization": f"Bearer {tok}"}, timeout=60)
            )
            card = await A2ACardResolver(hx, base).get_agent_card()
            config = ClientConfig(httpx_client=hx, streaming=streaming, supported_protocol_bindings=[binding])
            clients[name] = ClientFactory(config).create(card)
        yield clients, card


async def anext_all(stream: Any) -> list[Any]:
    return [e async for e in stream]


async def one(client: Any, req: SendMessageRequest) -> Any:
    """The task a non-streaming send returns."""
    out = [r async for r in client.send_message(req)]
    assert len(out) == 1 and out[0].HasField("task"), out
    return out[0].task


async def wait_state(client: Any, tid: str, states: set[int], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        task = await client.get_task(GetTaskRequest(id=tid))
        if task.status.state in states:
            return task
        assert time.monotonic() < deadline, f"task {tid} stayed {TaskState.Name(task.status.state)}"
        await asyncio.sleep(0.05)


def a2a_env(redis_url: str, fleet: str, **over: Any):
    return environment(redis_url, fleet, a2a={}, **over)


def test_send_get_list_and_the_card(redis_server, fleet, tmp_path):
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (base, http),
            running_worker(env.config),
            a2a_clients(base) as (c, card),
        ):
            assert card.name == fleet and card.capabilities.streaming and not card.capabilities.push_notifications
            assert card.supported_interfaces[0].url == f"{base}/a2a"
            assert "bearer" in card.security_schemes
            task = await one(c["acme"], send_request("what is two plus two #answer=four[source:math.html]"))
            assert task.status.state == TaskState.TASK_STATE_COMPLETED, task
            assert task.artifacts[0].parts[0].text == "four[source:math.html]"
            assert MessageToDict(task.artifacts[0].parts[1].data)["citations"] == ["math.html"]
            # The same task through /v1/tasks, and the A2A contextId is its session.
            view = await (await http["acme"].get(f"/v1/tasks/{task.id}")).json()
            assert view["status"] == "done" and view["session"] == task.context_id
            # The request's metadata.budgets lowers the task's budgets, as budgets does on /v1/tasks.
            req = send_request("budgeted #steps=5", now=True)
            req.metadata.update({"budgets": {"maxSteps": 2}})
            budgeted = await one(c["acme"], req)
            view = await (await http["acme"].get(f"/v1/tasks/{budgeted.id}")).json()
            assert view["budgets"]["maxSteps"] == 2
            stopped = await wait_state(c["acme"], budgeted.id, {TaskState.TASK_STATE_FAILED})
            assert "max_steps budget before it had an answer" in stopped.status.message.parts[0].text
            got = await c["acme"].get_task(GetTaskRequest(id=task.id))
            assert got.history[0].parts[0].text.startswith("what is two plus two")
            # A task sent to /v1/tasks is listed through A2A too; each tenant lists its own only.
            r = await http["acme"].post("/v1/tasks", json={"goal": "from rest", "session": "s-rest"})
            rest_id = (await r.json())["id"]
            listed = await c["acme"].list_tasks(ListTasksRequest())
            assert [t.id for t in listed.tasks] == [rest_id, budgeted.id, task.id] and listed.total_size == 3
            assert (await c["globex"].list_tasks(ListTasksRequest())).tasks == []
            by_ctx = await c["acme"].list_tasks(ListTasksRequest(context_id="s-rest"))
            assert [t.id for t in by_ctx.tasks] == [rest_id]
            page = await c["acme"].list_tasks(ListTasksRequest(page_size=2))
            rest = await c["acme"].list_tasks(ListTasksRequest(page_size=2, page_token=page.next_page_token))
            assert [t.id for t in [*page.tasks, *rest.tasks]] == [rest_id, budgeted.id, task.id]
            assert rest.next_page_token == "" and page.total_size == rest.total_size == 3
            # Every Task says what it cost with its sub-agents', as /v1/tasks does: a calling agent
            # counts it in its own budget. The scripted model reports usage, so it is not zero.
            usage = MessageToDict(got.metadata)["agentfleet.io/usage"]
            view = await (await http["acme"].get(f"/v1/tasks/{task.id}")).json()
            assert usage == {**view["treeUsage"], "currency": "USD"} and usage["totalTokens"] > 0, usage
            # The card is public under the agent's own base URL too (a gateway's path prefix).
            async with httpx.AsyncClient() as anon:
                under = await anon.get(f"{base}/a2a/.well-known/agent-card.json")
                assert (
                    under.status_code == 200
                    and under.json() == (await anon.get(f"{base}/.well-known/agent-card.json")).json()
                )

    arun(body())


PAY_STEPS = '#steps=3 #tool=pay #args={"amount":1}'


# What a task just sent may be by the time it is read: a worker may already have picked it up.
OPEN_STATES = (TaskState.TASK_STATE_SUBMITTED, TaskState.TASK_STATE_WORKING)


def test_stream_sends_steps_then_the_answer_and_resubscribe_picks_up(redis_server, fleet, tmp_path):
    async def body():
        async with (
            a2a_env(redis_server.url, fleet, tools=[PAY]) as env,
            tenant_api(env.config, tmp_path) as (base, _),
            running_worker(env.config),
            a2a_clients(base, streaming=True) as (c, _),
        ):
            events = [e async for e in c["acme"].send_message(send_request(f"stream me {PAY_STEPS} #answer=done"))]
            first, rest = events[0], events[1:]
            # The snapshot first: submitted, or working where a worker was quicker than the stream.
            assert first.HasField("task") and first.task.status.state in OPEN_STATES
            states = [e.status_update.status.state for e in rest if e.HasField("status_update")]
            texts = [p.text for e in rest if e.HasField("status_update") for p in e.status_update.status.message.parts]
            assert TaskState.TASK_STATE_WORKING in states and states[-1] == TaskState.TASK_STATE_COMPLETED
            assert any("calls pay" in t for t in texts) and any("pay ok" in t for t in texts)
            artifacts = [e.artifact_update.artifact for e in rest if e.HasField("artifact_update")]
            assert [a.parts[0].text for a in artifacts] == ["done"]
            assert rest[-1].HasField("status_update")  # the answer comes before the final state
            # Resubscribe to a task sent without waiting: the snapshot first, then the rest of it.
            async with a2a_clients(base) as (plain, _):
                task = await one(plain["acme"], send_request(f"slow {PAY_STEPS} #latency=0.3", now=True))
            assert task.status.state in OPEN_STATES
            again = [e async for e in c["acme"].subscribe(SubscribeToTaskRequest(id=task.id))]
            assert again[0].HasField("task") and again[0].task.id == task.id
            assert again[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            with pytest.raises(UnsupportedOperationError):  # an ended task is read, not followed
                [e async for e in c["acme"].subscribe(SubscribeToTaskRequest(id=task.id))]

    arun(body())


def test_cancel_and_an_approval_wait_resumed_by_a_reviewer(redis_server, fleet, tmp_path):
    async def body():
        async with (
            a2a_env(redis_server.url, fleet, tools=[PAY], decisions=policy()) as env,
            tenant_api(env.config, tmp_path) as (base, http),
            running_worker(env.config),
            a2a_clients(base) as (c, _),
        ):
            slow = await one(c["acme"], send_request("long #steps=20 #latency=0.5", now=True))
            canceled = await c["acme"].cancel_task(CancelTaskRequest(id=slow.id))
            assert canceled.id == slow.id
            await wait_state(c["acme"], slow.id, {TaskState.TASK_STATE_CANCELED})
            with pytest.raises(TaskNotCancelableError):
                await c["acme"].cancel_task(CancelTaskRequest(id=slow.id))
            # A blocking send returns at the approval wait: auth-required, out of band.
            big = '#steps=2 #tool=pay #args={"amount":500}'
            waiting = await one(c["acme"], send_request(f"big refund {big}"))
            assert waiting.status.state == TaskState.TASK_STATE_AUTH_REQUIRED, waiting
            assert "reviewer" in waiting.status.message.parts[0].text
            view = await (await http["acme"].get(f"/v1/tasks/{waiting.id}")).json()
            assert view["status"] == "awaiting_approval"
            # The submitter cannot approve its own task; another tenant's reviewer finds no task.
            with pytest.raises(A2AClientError, match="-32030"):
                await one(c["acme"], send_request("", task_id=waiting.id, decision="approve"))
            with pytest.raises(TaskNotFoundError):
                await one(c["globex:review"], send_request("", task_id=waiting.id, decision="approve"))
            # A plain follow-up message to a running task is refused: it takes no further input.
            with pytest.raises(UnsupportedOperationError):
                await one(c["acme"], send_request("and also", task_id=waiting.id))
            # A subscriber sees the wait, the decision and the end (the stream stays open through auth-required).
            async with a2a_clients(base, streaming=True) as (streaming, _):
                following = asyncio.create_task(
                    anext_all(streaming["acme"].subscribe(SubscribeToTaskRequest(id=waiting.id)))
                )
                await asyncio.sleep(0.3)
                decided = await one(
                    c["acme:review"], send_request("", task_id=waiting.id, decision="approve", reason="checked")
                )
                seen = await asyncio.wait_for(following, 30)
            assert seen[0].task.status.state == TaskState.TASK_STATE_AUTH_REQUIRED
            texts = [p.text for e in seen if e.HasField("status_update") for p in e.status_update.status.message.parts]
            assert "approval of step 0: approved" in texts
            assert seen[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            assert decided.id == waiting.id
            done = await wait_state(c["acme"], waiting.id, {TaskState.TASK_STATE_COMPLETED})
            assert env.effects.requests[f"{waiting.id}:0:0"] == 1  # the approved call ran once
            view = await (await http["acme"].get(f"/v1/tasks/{waiting.id}")).json()
            assert view["approval"]["decision"] == "approved" and done.artifacts

    arun(body())


def test_two_tenants_never_see_each_other(redis_server, fleet, tmp_path):
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (base, _),
            a2a_clients(base) as (c, _),
        ):
            mid = uuid.uuid4().hex
            mine = await one(c["acme"], send_request("acme's secret", message_id=mid, context_id="ctx-1", now=True))
            b = c["globex"]
            for call in (
                b.get_task(GetTaskRequest(id=mine.id)),
                b.cancel_task(CancelTaskRequest(id=mine.id)),
                one(b, send_request("more", task_id=mine.id)),
            ):
                with pytest.raises(TaskNotFoundError):
                    await call
            async with a2a_clients(base, streaming=True) as (streaming, _):
                with pytest.raises(TaskNotFoundError):
                    [e async for e in streaming["globex"].subscribe(SubscribeToTaskRequest(id=mine.id))]
            # The same messageId from another tenant is another task; the same tenant's is the same.
            theirs = await one(b, send_request("acme's secret", message_id=mid, context_id="ctx-1", now=True))
            again = await one(c["acme"], send_request("acme's secret", message_id=mid, context_id="ctx-1", now=True))
            assert theirs.id != mine.id and again.id == mine.id
            assert [t.id for t in (await b.list_tasks(ListTasksRequest())).tasks] == [theirs.id]
            submitted = ListTasksRequest(status=TaskState.TASK_STATE_SUBMITTED)
            assert [t.id for t in (await c["acme"].list_tasks(submitted)).tasks] == [mine.id]  # no worker runs
            done = ListTasksRequest(status=TaskState.TASK_STATE_COMPLETED)
            assert (await c["acme"].list_tasks(done)).tasks == []
            later = ListTasksRequest()
            later.status_timestamp_after.FromSeconds(int(time.time()) + 60)
            assert (await c["acme"].list_tasks(later)).tasks == []
            assert [t.id for t in (await c["acme"].list_tasks(ListTasksRequest(context_id="ctx-1"))).tasks] == [mine.id]
            # The same messageId with another text is refused, not mistaken for a retry.
            with pytest.raises(InvalidParamsError, match="messageId"):
                await one(c["acme"], send_request("another text", message_id=mid, context_id="ctx-1", now=True))

    arun(body())


def test_a2a_and_the_task_api_share_one_tenant_limit(redis_server, fleet, tmp_path):
    # maxTasksInFlight = 1, no worker: whichever path submits first holds the tenant's one slot,
    # and the other path is refused. A path that skipped TaskAPI.admit would get a second task in.
    async def body():
        limits = {"tenantLimits": {"maxTasksInFlight": 1}}
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path, api=limits) as (base, http),
            a2a_clients(base) as (c, _),
        ):
            held = await http["acme"].post("/v1/tasks", json={"goal": "first"})
            assert held.status == 201
            with pytest.raises(A2AClientError, match="-32029.*maxTasksInFlight"):
                await one(c["acme"], send_request("second", now=True))
            first = await one(c["globex"], send_request("first", now=True))
            refused = await http["globex"].post("/v1/tasks", json={"goal": "second"})
            assert refused.status == 429
            assert [t.id for t in (await c["globex"].list_tasks(ListTasksRequest())).tasks] == [first.id]
            # A reviewer's token submits nothing, through either door.
            with pytest.raises(A2AClientError, match="-32030"):
                await one(c["globex:review"], send_request("sneak", now=True))
            # Budgets are checked as on /v1/tasks (before any limit: nothing is stored).
            req = send_request("bad budget", now=True)
            req.metadata.update({"budgets": {"maxSteps": -1}})
            with pytest.raises(InvalidParamsError, match="maxSteps must be positive"):
                await one(c["acme"], req)

    arun(body())


async def rpc(hx: httpx.AsyncClient, url: str, body: Any, **kw: Any) -> dict[str, Any]:
    # json.dumps, not httpx's json=: it writes a lone surrogate as the \ud800 escape a hostile client may send.
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = await hx.post(url, content=content, headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)
    assert r.status_code == 200, (r.status_code, r.text)  # JSON-RPC: errors in the body, never a 5xx
    return r.json()


def test_bad_input_is_a_jsonrpc_error_never_a_5xx_and_nothing_is_lost(redis_server, fleet, tmp_path):
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path, api={"maxGoalChars": 200, "maxRequestBytes": 4096}) as (base, _),
            a2a_clients(base) as (c, _),
            httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS['acme']}"}, timeout=30) as hx,
        ):
            url = f"{base}/a2a"

            def send(parts: list[Any], **config: Any) -> dict[str, Any]:
                msg = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": parts}
                return {
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "SendMessage",
                    "params": {"message": msg, "configuration": config},
                }

            cases = [
                (b"{not json", -32700),
                (b"[]", -32600),
                ({"jsonrpc": "1.0", "id": 1, "method": "GetTask"}, -32600),
                ({"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod", "params": {}}, -32601),
                ({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}, -32601),
                ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": []}, -32602),
                ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {}}, -32602),
                ({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "no-such-task"}}, -32001),
                ({"jsonrpc": "2.0", "id": 1, "method": "CancelTask", "params": {"id": "no-such-task"}}, -32001),
                ({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {"pageSize": 0}}, -32602),
                ({"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {"pageToken": "x"}}, -32602),
                ({"jsonrpc": "2.0", "id": 1, "method": "CreateTaskPushNotificationConfig", "params": {}}, -32003),
                (send([{"text": "x" * 500}]), -32602),  # over maxGoalChars
                (send([{"raw": "aGVsbG8="}]), -32005),
                (send([{"url": "http://example.com/a.pdf"}]), -32005),
                (send([{"data": {"some": "json"}, "mediaType": "text/csv"}]), -32005),
                (send([{"text": "x", "mediaType": "image/png"}]), -32005),
                (send([{"text": "x"}], acceptedOutputModes=["image/png"]), -32005),
                (send([{"text": "\ud800"}]), -32602),  # a lone surrogate: Redis could not store it
                (send([{"text": "x"}], historyLength=1e400), -32602),
                (
                    send([{"text": "x"}], nested=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
                    -32602,
                ),
                (send([{"text": "x"}], taskPushNotificationConfig={"url": "http://x"}), -32003),
                (send([]), -32602),
                (send([{}]), -32602),
                (send([{"text": "x", "data": {}}]), -32602),
                (
                    b'{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"pad": "' + b"y" * 5000 + b'"}}',
                    -32600,
                ),
            ]

            def counted(method: str, outcome: str) -> float:
                labels = {"method": method, "outcome": outcome}
                return REGISTRY.get_sample_value("agentfleet_a2a_requests_total", labels) or 0.0

            before = (counted("GetTask", "TASK_NOT_FOUND"), counted("unknown", "METHOD_NOT_FOUND"))
            for request, code in cases:
                got = await rpc(hx, url, request)
                assert got.get("error", {}).get("code") == code, (
                    request if not isinstance(request, bytes) else request[:80],
                    got,
                )
                assert "result" not in got
            got = await rpc(
                hx,
                url,
                {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}},
                headers={"A2A-Version": "0.3"},
            )
            assert got["error"]["code"] == -32009
            # A streaming method asked for a stream answers its error as one: an SSE stream of that
            # one error event (the A2A kit reads nothing else); asked for JSON, the JSON answer.
            for method, params in (("SubscribeToTask", {"id": "nope"}), ("SendStreamingMessage", {"message": {}})):
                request = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
                r = await hx.post(url, json=request, headers={"Accept": "text/event-stream"})
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
                frames = [ln.removeprefix("data:").strip() for ln in r.text.splitlines() if ln.startswith("data:")]
                errors = [json.loads(f)["error"] for f in frames]
                assert [e["code"] for e in errors] == [-32001 if params.get("id") else -32602]
                # Said as the error is named: the A2A kit looks for "not found" in the message.
                assert "id" not in params or "not found" in errors[0]["message"], errors
                assert "event: error" in r.text
                assert (await rpc(hx, url, request))["error"]["code"] == (-32001 if params.get("id") else -32602)
            assert (await hx.post(url, json={}, headers={"Authorization": "Bearer wrong"})).status_code == 401
            # Counted by method (a name A2A has, else "unknown") and the error's reason.
            assert counted("GetTask", "TASK_NOT_FOUND") == before[0] + 1
            assert counted("unknown", "METHOD_NOT_FOUND") == before[1] + 2
            # The official client maps the codes to its errors.
            with pytest.raises(ContentTypeNotSupportedError):
                await one(
                    c["acme"],
                    SendMessageRequest(
                        message=Message(message_id="m1", role=Role.ROLE_USER, parts=[Part(raw=b"\x00")])
                    ),
                )
            with pytest.raises(TaskNotFoundError):
                await c["acme"].get_task(GetTaskRequest(id="nope"))
            # Junk in every field of every method: an error with a spec code, never an internal one.
            rng = random.Random(78)
            junk = [None, 0, -1, 2**70, 1.5, True, "", "x" * 300, "\ud800", [], {}, [{}], {"a": {"b": []}}]

            def fuzzed() -> dict[str, Any]:
                method = rng.choice(["SendMessage", "GetTask", "ListTasks", "CancelTask", "SubscribeToTask"])
                fields = ["id", "historyLength", "pageSize", "pageToken", "status", "statusTimestampAfter", "contextId"]
                params: dict[str, Any] = {k: rng.choice(junk) for k in rng.sample(fields, 3)}
                if method == "SendMessage":
                    part = rng.choice([{"text": rng.choice(junk)}, {"data": rng.choice(junk)}, rng.choice(junk)])
                    msg = {k: rng.choice(junk) for k in rng.sample(["messageId", "role", "contextId", "taskId"], 2)}
                    params = {"message": {**msg, "parts": [part]}, "configuration": {"returnImmediately": True}}
                return {"jsonrpc": "2.0", "id": rng.randrange(1000), "method": method, "params": params}

            for _ in range(300):
                request = fuzzed()
                r = await hx.post(
                    url, content=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
                )
                assert r.status_code == 200, (request, r.status_code, r.text)
                got = r.json()
                assert "result" in got or got["error"]["code"] in KNOWN_CODES, (request, got)
            # Nothing was stored by any of them, and a good request still works.
            assert (await c["acme"].list_tasks(ListTasksRequest())).tasks == []
            ok = await one(c["acme"], send_request("fine", now=True))
            assert [t.id for t in (await c["acme"].list_tasks(ListTasksRequest())).tasks] == [ok.id]

    arun(body())


def test_the_http_json_binding_serves_the_same_tasks(redis_server, fleet, tmp_path):
    # The card's second interface: the same methods over HTTP+JSON, driven by the client's REST
    # transport; errors are 4xx with a google.rpc.Status the client maps back to A2A's errors.
    async def body():
        async with (
            a2a_env(redis_server.url, fleet, tools=[PAY]) as env,
            tenant_api(env.config, tmp_path) as (base, http),
            running_worker(env.config),
            a2a_clients(base, binding="HTTP+JSON") as (c, card),
            a2a_clients(base, streaming=True, binding="HTTP+JSON") as (streaming, _),
            httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKENS['acme']}"}, timeout=30) as hx,
        ):
            rest = f"{base}/a2a/rest"
            assert [(i.protocol_binding, i.url) for i in card.supported_interfaces] == [
                ("JSONRPC", f"{base}/a2a"),
                ("HTTP+JSON", rest),
            ]
            task = await one(c["acme"], send_request("over rest #answer=yes"))
            assert task.status.state == TaskState.TASK_STATE_COMPLETED and task.artifacts[0].parts[0].text == "yes"
            assert (await (await http["acme"].get(f"/v1/tasks/{task.id}")).json())["status"] == "done"
            got = await c["acme"].get_task(GetTaskRequest(id=task.id, history_length=1))
            assert len(got.history) == 1
            assert [t.id for t in (await c["acme"].list_tasks(ListTasksRequest(page_size=5))).tasks] == [task.id]
            with pytest.raises(TaskNotFoundError):
                await c["globex"].get_task(GetTaskRequest(id=task.id))
            with pytest.raises(TaskNotFoundError):
                await c["globex"].cancel_task(CancelTaskRequest(id=task.id))
            assert (await c["globex"].list_tasks(ListTasksRequest())).tasks == []
            with pytest.raises(TaskNotCancelableError):
                await c["acme"].cancel_task(CancelTaskRequest(id=task.id))
            events = [e async for e in streaming["acme"].send_message(send_request(f"streamed {PAY_STEPS}"))]
            assert events[0].HasField("task")
            assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
            slow = await one(c["acme"], send_request("slow #steps=20 #latency=0.5", now=True))
            assert (await c["acme"].cancel_task(CancelTaskRequest(id=slow.id))).id == slow.id
            await wait_state(c["acme"], slow.id, {TaskState.TASK_STATE_CANCELED})
            with pytest.raises(ContentTypeNotSupportedError):
                msg = Message(message_id="m-raw", role=Role.ROLE_USER, parts=[Part(raw=b"\x00")])
                await one(c["acme"], SendMessageRequest(message=msg))
            # Bad input over plain HTTP: a 4xx naming the reason, never a 5xx.
            for method, path, content, status, reason in [
                ("POST", "/message:send", b"{nope", 400, "PARSE_ERROR"),
                ("POST", "/message:send", b"[]", 400, "INVALID_PARAMS"),
                (
                    "POST",
                    "/message:send",
                    b'{"message": {"messageId": "m", "parts": [{"url": "http://x"}]}}',
                    400,
                    "CONTENT_TYPE_NOT_SUPPORTED",
                ),
                ("GET", "/tasks/no-such-task", None, 404, "TASK_NOT_FOUND"),
                ("GET", "/tasks?pageSize=1000", None, 400, "INVALID_PARAMS"),
                ("GET", "/tasks?historyLength=lots", None, 400, "INVALID_PARAMS"),
                ("POST", "/tasks/no-such-task:cancel", None, 404, "TASK_NOT_FOUND"),
                ("POST", f"/tasks/{task.id}:subscribe", None, 400, "UNSUPPORTED_OPERATION"),
                ("POST", f"/tasks/{task.id}/pushNotificationConfigs", b"{}", 400, "PUSH_NOTIFICATION_NOT_SUPPORTED"),
            ]:
                r = await hx.request(method, rest + path, content=content)
                assert r.status_code == status, (path, r.status_code, r.text)
                assert r.json()["error"]["details"][0]["reason"] == reason, (path, r.text)
            assert (await hx.get(rest + "/no/such/route")).status_code == 404

    arun(body())


def test_a_context_is_the_tenants_session(redis_server, fleet, tmp_path):
    # A second message in a contextId is a task of that session: the model is shown the context's
    # earlier answer. Another tenant naming the same contextId reaches none of it.
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (base, http),
            running_worker(env.config),
            a2a_clients(base) as (c, _),
        ):
            env.model.record = True
            first = await one(c["acme"], send_request("pick a colour #answer=blue", context_id="chat-1"))
            assert first.status.state == TaskState.TASK_STATE_COMPLETED
            await one(c["globex"], send_request("spy", context_id="chat-1"))
            spy_prompt = " ".join(m["content"] or "" for m in env.model.requests[-1]["messages"][:2])
            second = await one(c["acme"], send_request("and again?", context_id="chat-1"))
            own_prompt = env.model.requests[-1]["messages"][1]["content"]
            assert second.context_id == "chat-1"
            assert "blue" not in spy_prompt and '"answer": "blue' in own_prompt
            view = await (await http["acme"].get(f"/v1/tasks/{second.id}")).json()
            assert view["session"] == "chat-1"

    arun(body())


def test_a_tenant_at_its_stream_cap_is_refused_before_a_task_is_made(redis_server, fleet, tmp_path):
    # A stream holds a Redis connection: A2A's streams (and blocking sends) share the tenant's
    # spec.api.tenantLimits.maxStreams with /v1/tasks/{id}/events. A refused streaming send makes
    # no task (its retry would otherwise find one already running, unwatched).
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path, api={"tenantLimits": {"maxStreams": 1}}) as (base, http),
            a2a_clients(base) as (c, _),
            a2a_clients(base, streaming=True) as (s, _),
        ):
            held = await one(c["acme"], send_request("queued forever", now=True))  # no worker runs it
            follow = asyncio.create_task(anext_all(s["acme"].subscribe(SubscribeToTaskRequest(id=held.id))))
            await asyncio.sleep(0.3)
            with pytest.raises(A2AClientError, match="-32029"):
                [e async for e in s["acme"].send_message(send_request("another"))]
            assert (await http["acme"].get(f"/v1/tasks/{held.id}/events")).status == 429  # the same cap
            assert [t.id for t in (await c["acme"].list_tasks(ListTasksRequest())).tasks] == [held.id]
            # A blocking send finds no slot either: it returns the task at once instead of waiting.
            waited = await one(c["acme"], send_request("no wait"))
            assert waited.status.state == TaskState.TASK_STATE_SUBMITTED
            follow.cancel()

    arun(body())


def test_a_caller_leaving_a_stream_is_no_server_error_and_the_task_goes_on(redis_server, fleet, tmp_path, caplog):
    # The A2A kit closes streams once it has read what it checks. On 5baf339 a write after the caller
    # left raised ClientConnectionResetError out of the handler, which aiohttp answered as a 500 and
    # logged as "Error handling request" with its traceback (seen running the kit against a fleet,
    # e2e/tests/test_a2a_realnode.py). Here the caller leaves before the stream's first byte.
    async def body():
        async with (
            a2a_env(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (base, _),
            running_worker(env.config),
        ):
            message = {"messageId": "leave-1", "role": "ROLE_USER", "parts": [{"text": "two steps #steps=2"}]}
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendStreamingMessage", "params": {"message": message}}
            data = json.dumps(rpc).encode()
            host, port = base.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /a2a HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKENS['acme']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            writer.close()  # gone at once: every write of the stream meets a closed connection
            await asyncio.sleep(1.0)
            # The message was taken all the same and its task ran: the same messageId finds it.
            async with httpx.AsyncClient(timeout=30) as hx:
                rpc["method"] = "SendMessage"
                got = (
                    await hx.post(f"{base}/a2a", json=rpc, headers={"Authorization": f"Bearer {TOKENS['acme']}"})
                ).json()
            tid = got["result"]["task"]["id"]
            assert (await env.wait(tid, timeout=30))[tid]["status"] == "done"

    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        arun(body())
    errors = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
