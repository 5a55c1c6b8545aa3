"""A2A 1.0 (Agent2Agent) on the wire, pure: the agent card, what a task and its events look like to an
A2A caller, a request's parameters checked, and JSON-RPC errors. The handlers (a2a.py) do the I/O.

An A2A task IS an agentfleet task (docs/a2a.md): its id is the task's id, its contextId the task's
session, its state one function of the task's status and stop reason (``a2a_state``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Status, Step, StopReason, TaskRecord
from agentfleet_runtime.tools.a2a import USAGE_METADATA

PROTOCOL_VERSION = "1.0"
CARD_PATH = "/.well-known/agent-card.json"
RPC_PATH = "/a2a"
# The card at the host's well-known path (the spec's), and under the agent's own base URL: a
# gateway that serves many agents on one host by path prefix hands callers that base URL, and
# clients (a2a-sdk's resolver, the A2A kit) read <base>/.well-known/agent-card.json.
CARD_PATHS = (CARD_PATH, RPC_PATH + CARD_PATH)
REST_PATH = "/a2a/rest"  # the HTTP+JSON binding's base: <base>/message:send, <base>/tasks/{id}, ...
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

# JSON-RPC 2.0's codes, then A2A's (a2a.proto's JSON-RPC mapping).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOTIFICATION_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
VERSION_NOT_SUPPORTED = -32009
# Ours, in JSON-RPC's implementation-defined range (-32000 to -32099, above A2A's): what the task
# API answers with 403, 429 and 503. Each error's data names its reason, as A2A's do.
TENANT_LIMIT = -32029
FORBIDDEN = -32030
UNAVAILABLE = -32031

REASONS = {
    PARSE_ERROR: "PARSE_ERROR",
    INVALID_REQUEST: "INVALID_REQUEST",
    METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
    INVALID_PARAMS: "INVALID_PARAMS",
    INTERNAL_ERROR: "INTERNAL_ERROR",
    TASK_NOT_FOUND: "TASK_NOT_FOUND",
    TASK_NOT_CANCELABLE: "TASK_NOT_CANCELABLE",
    PUSH_NOTIFICATION_NOT_SUPPORTED: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    UNSUPPORTED_OPERATION: "UNSUPPORTED_OPERATION",
    CONTENT_TYPE_NOT_SUPPORTED: "CONTENT_TYPE_NOT_SUPPORTED",
    VERSION_NOT_SUPPORTED: "VERSION_NOT_SUPPORTED",
    TENANT_LIMIT: "TENANT_LIMIT",
    FORBIDDEN: "FORBIDDEN",
    UNAVAILABLE: "UNAVAILABLE",
}

# The methods of a2a.proto's service this server answers, and those it knows but does not serve.
METHODS = ("SendMessage", "SendStreamingMessage", "GetTask", "ListTasks", "CancelTask", "SubscribeToTask")
# The methods whose answer is an SSE stream (A2A 1.0, 9.4.2 and 9.4.6), errors before the first event included.
STREAM_METHODS = frozenset({"SendStreamingMessage", "SubscribeToTask"})
PUSH_METHODS = (
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
)

KNOWN_METHODS = frozenset({*METHODS, *PUSH_METHODS, "GetExtendedAgentCard"})


def method_label(method: str) -> str:
    """A method as a metric label: one A2A names, else "unknown" (a caller's string is unbounded)."""
    return method if method in KNOWN_METHODS else "unknown"


SUBMITTED = "TASK_STATE_SUBMITTED"
WORKING = "TASK_STATE_WORKING"
COMPLETED = "TASK_STATE_COMPLETED"
FAILED = "TASK_STATE_FAILED"
CANCELED = "TASK_STATE_CANCELED"
AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"
INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
REJECTED = "TASK_STATE_REJECTED"
STATES = (SUBMITTED, WORKING, COMPLETED, FAILED, CANCELED, INPUT_REQUIRED, REJECTED, AUTH_REQUIRED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
# The states a blocking SendMessage returns at: terminal, or waiting on something the agent cannot
# do itself (an approval wait is out-of-band authorization: a reviewer, never the caller, decides).
SETTLED = TERMINAL | {AUTH_REQUIRED, INPUT_REQUIRED}

# A task that a budget stopped ended with its best answer so far, not the answer it set out to
# give: A2A has no such state, so it is failed, with the reason in its status message.
BUDGET_STOPS = frozenset(
    {
        StopReason.MAX_STEPS,
        StopReason.MAX_TOKENS,
        StopReason.TIMEOUT,
        StopReason.MAX_COST,
        StopReason.MAX_SPEND,
        StopReason.MAX_CONTEXT,
    }
)

OUTPUT_MODES = ("text/plain", "application/json")
ACCEPTS = frozenset({*OUTPUT_MODES, "text/*", "application/*", "*/*"})
TEXT_TYPES = frozenset({"", "text/plain", "text/markdown"})
DATA_TYPES = frozenset({"", "application/json"})
MAX_PARTS = 64
MAX_ID_CHARS = 200  # a messageId, a contextId or a task id a caller sends
MAX_PAGE = 100
DEFAULT_PAGE = 50
MESSAGE_KEY_PREFIX = "a2a-message:"  # idempotency keys from messageIds never meet /v1/tasks' own keys


class RpcError(Exception):
    """A JSON-RPC error: its code, a message that says what to fix, and details (strings)."""

    def __init__(self, code: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = {k: str(v) for k, v in details.items() if v is not None}


# The HTTP+JSON binding's status and google.rpc code of each error (a2a.proto's mapping; ours as
# the task API's REST routes answer them).
HTTP_STATUS = {
    PARSE_ERROR: (400, "INVALID_ARGUMENT"),
    INVALID_REQUEST: (400, "INVALID_ARGUMENT"),
    METHOD_NOT_FOUND: (404, "NOT_FOUND"),
    INVALID_PARAMS: (400, "INVALID_ARGUMENT"),
    INTERNAL_ERROR: (500, "INTERNAL"),
    TASK_NOT_FOUND: (404, "NOT_FOUND"),
    TASK_NOT_CANCELABLE: (400, "FAILED_PRECONDITION"),
    PUSH_NOTIFICATION_NOT_SUPPORTED: (400, "FAILED_PRECONDITION"),
    UNSUPPORTED_OPERATION: (400, "FAILED_PRECONDITION"),
    CONTENT_TYPE_NOT_SUPPORTED: (400, "INVALID_ARGUMENT"),
    VERSION_NOT_SUPPORTED: (400, "FAILED_PRECONDITION"),
    TENANT_LIMIT: (429, "RESOURCE_EXHAUSTED"),
    FORBIDDEN: (403, "PERMISSION_DENIED"),
    UNAVAILABLE: (503, "UNAVAILABLE"),
}


def _error_info(err: RpcError) -> dict[str, Any]:
    info: dict[str, Any] = {
        "@type": ERROR_INFO,
        "reason": REASONS.get(err.code, "UNKNOWN"),
        "domain": "a2a-protocol.org",
    }
    if err.details:
        info["metadata"] = err.details
    return info


def rest_error(err: RpcError) -> tuple[int, dict[str, Any]]:
    """The HTTP+JSON binding's error: its HTTP status and a google.rpc.Status body."""
    status, code = HTTP_STATUS.get(err.code, (500, "INTERNAL"))
    return status, {"error": {"code": status, "status": code, "message": err.message, "details": [_error_info(err)]}}


def error_response(request_id: Any, err: RpcError) -> dict[str, Any]:
    error = {"code": err.code, "message": err.message, "data": [_error_info(err)]}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def result_response(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def parse_envelope(body: Any) -> tuple[Any, str, dict[str, Any]]:
    """(id, method, params) of a JSON-RPC 2.0 request, or RpcError INVALID_REQUEST (the id it had, if any)."""
    if isinstance(body, list):
        raise RpcError(INVALID_REQUEST, "batch requests are not supported: send one JSON-RPC request per POST")
    if not isinstance(body, dict):
        raise RpcError(INVALID_REQUEST, 'the body must be a JSON-RPC 2.0 request object: {"jsonrpc": "2.0", ...}')
    rid = body.get("id")
    if body.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "jsonrpc must be exactly '2.0'")
    if isinstance(rid, bool) or (rid is not None and not isinstance(rid, str | int)):
        raise RpcError(INVALID_REQUEST, "id must be a string, an integer or null")
    method = body.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, "method is required: a string such as 'SendMessage'")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    return rid, method, params


def request_id_of(body: Any) -> Any:
    """The id to answer an invalid request with: its own when it is a valid one, else null."""
    rid = body.get("id") if isinstance(body, dict) else None
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None


# -- states and timestamps ---------------------------------------------------------------------------
def a2a_state(status: Status, reason: str = "") -> str:
    """The A2A state of a task of this status and stop reason."""
    if status is Status.QUEUED:
        return SUBMITTED
    if status is Status.RUNNING:
        return WORKING
    if status is Status.AWAITING_APPROVAL:
        return AUTH_REQUIRED
    if status is Status.CANCELLED:
        return CANCELED
    if status is Status.DEAD:
        return FAILED
    return FAILED if reason in BUDGET_STOPS else COMPLETED


def timestamp(at: float) -> str:
    """ProtoJSON's Timestamp: RFC 3339 in UTC with milliseconds."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_timestamp(value: Any, name: str) -> float:
    if not isinstance(value, str):
        raise RpcError(INVALID_PARAMS, f"{name} must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise RpcError(INVALID_PARAMS, f"{name} must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z") from None


# What ListTasks reads of each task it scans (HMGET): enough to filter, not the answer or the goal.
SUMMARY_FIELDS = ("id", "tenant", "status", "reason", "session", "created_at", "started_at", "finished_at")


def summary(values: list[str | None]) -> tuple[str, str, str, float] | None:
    """(tenant, contextId, A2A state, status time) of a task from its SUMMARY_FIELDS; None if gone."""
    h = dict(zip(SUMMARY_FIELDS, values, strict=True))
    if not h["id"]:
        return None
    at = float(h["finished_at"] or 0) or float(h["started_at"] or 0) or float(h["created_at"] or 0)
    state = a2a_state(Status(h["status"] or Status.QUEUED.value), h["reason"] or "")
    return h["tenant"] or "", h["session"] or h["id"], state, at


def status_time(rec: TaskRecord) -> float:
    """When the task last changed state, as far as its record tells."""
    return rec.finished_at or rec.started_at or rec.created_at


# -- messages, tasks, events ------------------------------------------------------------------------
def agent_message(task_id: str, context_id: str, message_id: str, text: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "contextId": context_id,
        "taskId": task_id,
        "role": "ROLE_AGENT",
        "parts": [{"text": text}],
    }


def answer_artifact(task_id: str, answer: str) -> dict[str, Any]:
    """The answer as text, and the sources it cites as data beside it."""
    return {
        "artifactId": f"{task_id}-answer",
        "name": "answer",
        "parts": [
            {"text": answer, "mediaType": "text/plain"},
            {"data": {"citations": parse_citations(answer)}, "mediaType": "application/json"},
        ],
    }


def status_text(status: Status, reason: str, error: str, task_id: str, answered: bool = False) -> str:
    """What the status message says: why a task failed, stopped or waits; empty otherwise."""
    if status is Status.AWAITING_APPROVAL:
        return (
            "waiting for a reviewer's approval of its proposed tool calls: a reviewer's token decides it"
            f" (POST /v1/tasks/{task_id}/approvals, or kubectl agentfleet approvals)"
        )
    if status is Status.DEAD:
        return f"failed: {error or reason}"
    if status is Status.DONE and reason in BUDGET_STOPS:
        best = ": the artifact holds its best answer so far" if answered else " before it had an answer"
        return f"stopped by its {reason} budget{best}"
    if status is Status.CANCELLED:
        return "cancelled"
    return ""


def context_of(rec: TaskRecord) -> str:
    """A task's contextId: its session, or (a task submitted without one) its own id."""
    return rec.session or rec.id


def a2a_task(
    rec: TaskRecord,
    steps: list[Step] | None = None,
    history_length: int | None = None,
    include_artifacts: bool = True,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A task as A2A's Task: state, the answer as an artifact once it ended, and its history (the
    goal, then each step's text), the newest ``history_length`` messages of it (None: all)."""
    ctx = context_of(rec)
    status: dict[str, Any] = {"state": a2a_state(rec.status, rec.reason), "timestamp": timestamp(status_time(rec))}
    text = status_text(rec.status, rec.reason, rec.error, rec.id, bool(rec.answer))
    if text:
        status["message"] = agent_message(rec.id, ctx, f"{rec.id}-status", text)
    out: dict[str, Any] = {
        "id": rec.id,
        "contextId": ctx,
        "status": status,
        "metadata": {"status": rec.status.value, "reason": rec.reason or "", "parent": rec.parent or ""},
    }
    if usage is not None:
        # What the task cost with its sub-agents': a calling agent (an A2A tool) counts it in its budget.
        out["metadata"][USAGE_METADATA] = usage
    if include_artifacts and rec.status.terminal and rec.answer:
        out["artifacts"] = [answer_artifact(rec.id, rec.answer)]
    if history_length != 0:
        history = [
            {
                "messageId": f"{rec.id}-goal",
                "contextId": ctx,
                "taskId": rec.id,
                "role": "ROLE_USER",
                "parts": [{"text": rec.goal}],
            }
        ]
        for s in steps or ():
            if s.content:
                history.append(agent_message(rec.id, ctx, f"{rec.id}-step-{s.n}", s.content))
        out["history"] = history if history_length is None else history[-history_length:]
    return out


def _status_event(task_id: str, ctx: str, state: str, at: float, text: str, n: str) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "timestamp": timestamp(at)}
    if text:
        status["message"] = agent_message(task_id, ctx, f"{task_id}-event-{n}", text)
    return {"statusUpdate": {"taskId": task_id, "contextId": ctx, "status": status}}


def stream_events(task_id: str, ctx: str, event_id: str, ev: dict[str, Any]) -> list[dict[str, Any]]:
    """A progress event of the task's stream as A2A stream responses: each step a working status with
    its text, an approval wait auth-required, the end the answer's artifact and then the final state."""
    kind, at = ev.get("type"), float(ev.get("at") or 0)
    if kind == "started":
        return [_status_event(task_id, ctx, WORKING, at, "started", event_id)]
    if kind == "step":
        calls = ev.get("tool_calls") or []
        text = (ev.get("content") or "").strip()
        if calls:
            text = (text + "\n" if text else "") + f"step {ev.get('step')}: calls {', '.join(map(str, calls))}"
        return [_status_event(task_id, ctx, WORKING, at, text or f"step {ev.get('step')}", event_id)]
    if kind == "observations":
        results = ev.get("results") or []
        said = ", ".join(f"{r.get('tool')} {'ok' if r.get('ok') else 'failed'}" for r in results)
        return [_status_event(task_id, ctx, WORKING, at, f"step {ev.get('step')}: {said}", event_id)]
    if kind == "approval_requested":
        text = status_text(Status.AWAITING_APPROVAL, "", "", task_id)
        return [_status_event(task_id, ctx, AUTH_REQUIRED, at, text, event_id)]
    if kind == "approval":
        text = f"approval of step {ev.get('step')}: {ev.get('decision')}"
        return [_status_event(task_id, ctx, WORKING, at, text, event_id)]
    if kind == "retry":
        return [_status_event(task_id, ctx, WORKING, at, f"attempt failed, retried: {ev.get('error')}", event_id)]
    if kind == "finished":
        status = Status(ev.get("status") or Status.DEAD.value)
        reason = ev.get("reason") or ""
        out = []
        if ev.get("answer"):
            out.append(
                {
                    "artifactUpdate": {
                        "taskId": task_id,
                        "contextId": ctx,
                        "artifact": answer_artifact(task_id, ev["answer"]),
                        "lastChunk": True,
                    }
                }
            )
        text = status_text(status, reason, ev.get("error") or "", task_id, bool(ev.get("answer")))
        out.append(_status_event(task_id, ctx, a2a_state(status, reason), at, text, event_id))
        return out
    return []  # queued (the first Task says so), deltas, released, cancel_requested


# -- requests ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SendRequest:
    """A SendMessage's parameters, checked: what becomes a task (or an approval decision)."""

    message_id: str
    goal: str
    context_id: str  # "" when the caller sent none
    task_id: str  # "" for a new task
    return_immediately: bool
    history_length: int | None
    budgets: dict[str, Any] | None
    metadata: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] | None = None  # a reviewer's data part on a waiting task


def _id(value: Any, name: str, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise RpcError(INVALID_PARAMS, f"{name} is required: a non-empty string")
        return ""
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise RpcError(INVALID_PARAMS, f"{name} must be a printable string of at most {MAX_ID_CHARS} characters")
    return value


def history_length_of(params: dict[str, Any], where: dict[str, Any] | None = None) -> int | None:
    value = (where if where is not None else params).get("historyLength")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
        raise RpcError(INVALID_PARAMS, "historyLength must be an integer from 0 to 10000")
    return value


def _read_parts(parts: Any, max_goal_chars: int) -> tuple[str, dict[str, Any] | None]:
    """The goal a message's parts spell (its text parts, and its data parts as JSON text, joined in
    order), and a reviewer's decision (a data part holding one). Files (raw bytes, URLs) are a
    content type this agent does not read: refused, never dropped unread."""
    if not isinstance(parts, list) or not parts:
        raise RpcError(INVALID_PARAMS, "message.parts must be a non-empty list of parts such as {'text': '...'}")
    if len(parts) > MAX_PARTS:
        raise RpcError(INVALID_PARAMS, f"message.parts has {len(parts)} parts; the limit is {MAX_PARTS}")
    texts: list[str] = []
    decision = None
    for i, part in enumerate(parts):
        where = f"message.parts[{i}]"
        if not isinstance(part, dict):
            raise RpcError(INVALID_PARAMS, f"{where} must be an object")
        kinds = [k for k in ("text", "raw", "url", "data") if k in part]
        if len(kinds) != 1:
            raise RpcError(INVALID_PARAMS, f"{where} must hold exactly one of text, raw, url or data")
        kind, media = kinds[0], part.get("mediaType") or ""
        if kind == "text":
            if not isinstance(part["text"], str):
                raise RpcError(INVALID_PARAMS, f"{where}.text must be a string")
            if media not in TEXT_TYPES:
                why = f"{where}: text of media type {media[:80]!r} is not read: send text/plain"
                raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, why)
            texts.append(part["text"])
        elif kind == "data" and isinstance(part["data"], dict) and "decision" in part["data"]:
            decision = part["data"]
        elif kind == "data":
            # Structured input other agents send (ADK's and LangGraph's tool arguments): the model
            # reads it as JSON text, as untrusted as any text part.
            if media not in DATA_TYPES:
                why = f"{where}: data of media type {media[:80]!r} is not read: send application/json"
                raise RpcError(CONTENT_TYPE_NOT_SUPPORTED, why)
            texts.append(json.dumps(part["data"], ensure_ascii=False, separators=(",", ":")))
        else:
            raise RpcError(
                CONTENT_TYPE_NOT_SUPPORTED,
                f"{where}: {kind} parts (files) are not read by this agent: send the request as text or data parts",
            )
    goal = "\n\n".join(texts)
    if len(goal) > max_goal_chars:
        raise RpcError(INVALID_PARAMS, f"the message's text has {len(goal)} characters; the limit is {max_goal_chars}")
    return goal, decision


def _read_configuration(config: Any) -> dict[str, Any]:
    """SendMessageConfiguration, checked: what the caller accepts back, and no push notifications."""
    config = config or {}
    if not isinstance(config, dict):
        raise RpcError(INVALID_PARAMS, "params.configuration must be an object")
    if config.get("taskPushNotificationConfig"):
        raise RpcError(PUSH_NOTIFICATION_NOT_SUPPORTED, "push notifications are not offered: stream, or poll GetTask")
    modes = config.get("acceptedOutputModes") or []
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise RpcError(INVALID_PARAMS, "configuration.acceptedOutputModes must be a list of media types")
    if modes and not ACCEPTS & set(modes):
        raise RpcError(
            CONTENT_TYPE_NOT_SUPPORTED,
            f"this agent answers in {', '.join(OUTPUT_MODES)}; acceptedOutputModes allows none of them",
        )
    return config


def parse_send(params: dict[str, Any], max_goal_chars: int) -> SendRequest:
    message = params.get("message")
    if not isinstance(message, dict):
        raise RpcError(INVALID_PARAMS, "params.message is required: an object with messageId, role and parts")
    if message.get("role") not in (None, "ROLE_USER", "ROLE_UNSPECIFIED"):
        raise RpcError(INVALID_PARAMS, "message.role must be ROLE_USER: an agent's message is not a request")
    message_id = _id(message.get("messageId"), "message.messageId", required=True)
    goal, decision = _read_parts(message.get("parts"), max_goal_chars)
    config = _read_configuration(params.get("configuration"))
    metadata = params.get("metadata") or {}
    message_metadata = message.get("metadata") or {}
    if not isinstance(metadata, dict) or not isinstance(message_metadata, dict):
        raise RpcError(INVALID_PARAMS, "metadata must be an object")
    budgets = metadata.get("budgets")
    if budgets is not None and not isinstance(budgets, dict):
        raise RpcError(INVALID_PARAMS, 'metadata.budgets must be an object, e.g. {"maxSteps": 10}')
    return SendRequest(
        message_id=message_id,
        goal=goal,
        context_id=_id(message.get("contextId"), "message.contextId"),
        task_id=_id(message.get("taskId"), "message.taskId"),
        return_immediately=bool(config.get("returnImmediately")),
        history_length=history_length_of(config),
        budgets=budgets,
        metadata=message_metadata,
        decision=decision,
    )


def submission_body(req: SendRequest, context_id: str) -> dict[str, Any]:
    """The /v1/tasks body a SendMessage stands for: the same checks, limits and hash apply."""
    body: dict[str, Any] = {"goal": req.goal, "session": context_id, "metadata": req.metadata}
    if req.budgets is not None:
        body["budgets"] = req.budgets
    return body


@dataclass(frozen=True, slots=True)
class ListQuery:
    context_id: str
    state: str
    page_size: int
    page_token: str
    history_length: int | None
    after: float | None
    include_artifacts: bool


_INT = re.compile(r"^-?[0-9]{1,9}$")


def query_params(query: Any) -> dict[str, Any]:
    """A GET's query string as the method's params: numbers and booleans typed as ProtoJSON has them
    (a value that is neither stays a string, which the method's checks then refuse)."""
    out: dict[str, Any] = {}
    for k, v in query.items():
        if k in ("historyLength", "pageSize") and _INT.match(v):
            out[k] = int(v)
        elif k == "includeArtifacts" and v in ("true", "false"):
            out[k] = v == "true"
        else:
            out[k] = v
    return out


_TOKEN = re.compile(r"^[0-9]{1,16}:[0-9a-f]{1,64}$")


def parse_list(params: dict[str, Any]) -> ListQuery:
    size = params.get("pageSize", DEFAULT_PAGE)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE:
        raise RpcError(INVALID_PARAMS, f"pageSize must be an integer from 1 to {MAX_PAGE}")
    state = params.get("status") or ""
    if state in ("TASK_STATE_UNSPECIFIED",):
        state = ""
    if state and state not in STATES:
        raise RpcError(INVALID_PARAMS, f"status must be one of {', '.join(STATES)}")
    token = params.get("pageToken") or ""
    if token and (not isinstance(token, str) or not _TOKEN.match(token)):
        raise RpcError(INVALID_PARAMS, "pageToken must be a nextPageToken this server returned")
    after = params.get("statusTimestampAfter")
    return ListQuery(
        context_id=_id(params.get("contextId"), "contextId"),
        state=state,
        page_size=size,
        page_token=token,
        history_length=history_length_of(params),
        after=None if after is None else parse_timestamp(after, "statusTimestampAfter"),
        include_artifacts=bool(params.get("includeArtifacts", False)),
    )


def task_id_of(params: dict[str, Any]) -> str:
    return _id(params.get("id"), "id", required=True)


# -- the agent card --------------------------------------------------------------------------------
def _skill_id(name: str) -> str:
    return "tool-" + re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-")[:58]


def skills(config: RuntimeConfig) -> list[dict[str, Any]]:
    """The card's skills: spec.a2a.skills as written, else answering plus one per tool."""
    a2a = config.a2a
    if a2a is not None and a2a.skills:
        return [s.wire() for s in a2a.skills]
    tools = [t for t in config.tools if t.type != "Spawn"]
    out = [
        {
            "id": "answer",
            "name": "Answer",
            "description": "Works a goal given as text through a loop of model calls and tool calls, and answers it"
            + (" with citations of the passages it retrieved" if any(t.type == "Retrieval" for t in tools) else ""),
            "tags": ["agent"],
        }
    ]
    for t in tools:
        out.append(
            {
                "id": _skill_id(t.name),
                "name": t.name,
                "description": (t.description or f"the {t.type} tool {t.name}")[:2048],
                "tags": [t.type.lower()],
            }
        )
    return out


def agent_card(config: RuntimeConfig, base_url: str, version: str, secured: bool) -> dict[str, Any]:
    """The public agent card: what the fleet does, where and how to call it. No secrets: the
    security scheme says a bearer token is needed, never which."""
    a2a = config.a2a
    names = ", ".join(t.name for t in config.tools if t.type != "Spawn")
    description = (a2a.description if a2a is not None else None) or (
        f"AgentFleet {config.fleet}: an agent that works each request as a task"
        + (f" with the tools {names}" if names else "")
    )
    card: dict[str, Any] = {
        "name": config.fleet,
        "description": description,
        "supportedInterfaces": [
            {"url": base_url.rstrip("/") + RPC_PATH, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION},
            {
                "url": base_url.rstrip("/") + REST_PATH,
                "protocolBinding": "HTTP+JSON",
                "protocolVersion": PROTOCOL_VERSION,
            },
        ],
        "version": version,
        "capabilities": {"streaming": True, "pushNotifications": False, "extendedAgentCard": False},
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": list(OUTPUT_MODES),
        "skills": skills(config),
    }
    if secured:
        card["securitySchemes"] = {
            "bearer": {
                "httpAuthSecurityScheme": {
                    "scheme": "Bearer",
                    "description": "A caller's tasks belong to the tenant its bearer header names.",
                }
            }
        }
        card["securityRequirements"] = [{"schemes": {"bearer": {"list": []}}}]
    return card
