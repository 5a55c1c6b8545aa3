"""One OpenTelemetry trace per task, in the GenAI semantic conventions' span names and attributes.

- ``invoke_agent <fleet>``: one attempt of a task (a root task or a sub-agent), around the loop.
- ``chat <model>``: one model call, with the model, the tokens and the replica that served it
  (``agentfleet.replica``); under it, with the routing client, one ``attempt`` span per request
  sent to a replica, so a hedged call shows both requests and which one won.
- ``execute_tool <tool>``: one tool call (HTTP, retrieval, sub-agents).

The trace outlives a worker: a task's record in Redis holds a W3C ``traceparent`` (field
``trace``). A task that has none starts a trace at its first attempt and stores its own span's
context there; a sub-agent is created holding its spawn call's context. Every later attempt (a
resume by another worker after a crash or a drain) parents its ``invoke_agent`` span on the stored
context, so all of a task's spans, its sub-agents' included, share one trace id. Model requests
carry ``traceparent`` too, so an engine that exports its own spans (vLLM's
``--otlp-traces-endpoint``) adds them to the same trace.

Tracing off (no ``tracing`` section, the default) costs nothing on the hot path: the model
client and the tools are not wrapped, the task span is a shared ``nullcontext``, and the
OpenTelemetry SDK is never imported. ``configure`` builds one exporter per endpoint and process.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from agentfleet_contract.runtime_config import TracingSettings

    from agentfleet_runtime.core.types import ModelReply

log = logging.getLogger("agentfleet_runtime.core.tracing")

_NULL = contextlib.nullcontext()  # reusable, and usable with both ``with`` and ``async with``
# version-traceid-spanid-flags; the all-zero ids are invalid (W3C Trace Context, section 3.2)
TRACEPARENT = re.compile(r"\A00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}\Z")

_chat: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar("agentfleet_chat_span", default=None)
_tracers: dict[tuple[Any, ...], Any] = {}  # (endpoint, headers, ratio, service) -> Tracer: one exporter each
_providers: list[Any] = []
_any = False  # whether a tracer exists in this process: until then nothing here touches OpenTelemetry


def configure(settings: TracingSettings | None, service: str) -> Any:
    """The tracer for these settings, or None when tracing is off (no settings or no endpoint)."""
    global _any
    if settings is None or not settings.endpoint:
        return None
    headers = read_headers(settings.headers_file)
    key = (settings.endpoint, tuple(sorted(headers.items())), settings.sampling_ratio, service)
    tracer = _tracers.get(key)
    if tracer is not None:
        return tracer
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(settings.sampling_ratio)),  # a resumed task keeps its first decision
    )
    endpoint = settings.endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers or None)))
    tracer = provider.get_tracer("agentfleet_runtime")
    _tracers[key] = tracer
    _providers.append(provider)
    _any = True
    log.info("tracing on", extra={"endpoint": endpoint, "sampling_ratio": settings.sampling_ratio})
    return tracer


def read_headers(path: str | None) -> dict[str, str]:
    """The collector's headers (a mounted Secret key holding a JSON object of strings)."""
    if not path:
        return {}
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise ValueError(f"{path}: tracing headers must be a JSON object of strings")
    return doc


def flush(timeout_s: float = 5.0) -> None:
    """Send what is buffered (a worker's shutdown: spans of released tasks must not be lost)."""
    for p in _providers:
        p.force_flush(int(timeout_s * 1000))


def _parent(traceparent: str) -> Any:
    """The OpenTelemetry context a stored traceparent names, or None (start a new trace)."""
    if not traceparent or not TRACEPARENT.match(traceparent):
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def conversation_id(tenant: str, session: str) -> str:
    """A session's name as spans carry it: a hash (with the tenant), so a collector, and whoever
    reads it, groups a session's tasks without learning what the caller named the session."""
    return "s-" + hashlib.sha256(f"{tenant}\n{session}".encode()).hexdigest()[:32]


def traceparent() -> str:
    """The current span's W3C traceparent ("" without one): what a sub-agent's record and a model
    request carry."""
    if not _any:
        return ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def headers() -> dict[str, str]:
    """Headers for an outgoing model request: ``traceparent`` while a span is current."""
    tp = traceparent()
    return {"traceparent": tp} if tp else {}


# -- invoke_agent ------------------------------------------------------------------------------


def task(tracer: Any, run: Any) -> contextlib.AbstractAsyncContextManager[Any]:
    """The ``invoke_agent`` span of one attempt of ``run`` (a loop.TaskRun); a no-op without a tracer."""
    if tracer is None:
        return _NULL
    return _task_span(tracer, run)


@contextlib.asynccontextmanager
async def _task_span(tracer: Any, run: Any) -> Any:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    rec = run.rec
    agent = run.store.keys.fleet
    attrs = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "gen_ai.conversation.id": conversation_id(rec.tenant, rec.session) if rec.session else rec.root,
        "agentfleet.task.id": rec.id,
        "agentfleet.task.root": rec.root,
        "agentfleet.task.depth": rec.depth,
        "agentfleet.task.attempt": rec.attempts,
        "agentfleet.task.resumed_steps": len(run.steps),
    }
    if rec.parent:
        attrs["agentfleet.task.parent"] = rec.parent
    if rec.tenant:
        attrs["agentfleet.tenant"] = rec.tenant
    stored = rec.trace if TRACEPARENT.match(rec.trace or "") else ""
    with tracer.start_as_current_span(
        f"invoke_agent {agent}",
        context=_parent(stored),
        kind=SpanKind.INTERNAL,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        if not stored:
            # The first attempt of a task without a trace: later attempts continue this one.
            rec.trace = traceparent()
            await run.store.r.hsetnx(run.store.keys.task(rec.id), "trace", rec.trace)
        try:
            yield span
        except BaseException as e:
            span.set_attribute("agentfleet.task.ended", type(e).__name__)  # Released, Cancelled, LeaseLost, ...
            if isinstance(e, Exception) and type(e).__name__ not in ("Released", "Cancelled", "LeaseLost"):
                span.set_status(Status(StatusCode.ERROR, type(e).__name__))  # never the message: it may quote a body
                span.set_attribute("error.type", type(e).__name__)
            raise
        if run.outcome is not None:
            span.set_attribute("agentfleet.task.status", run.outcome[0].value)
            span.set_attribute("agentfleet.task.reason", run.outcome[1])


# -- chat --------------------------------------------------------------------------------------


def _server(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    return u.hostname or "", u.port or (443 if u.scheme == "https" else 80)


class TracedRequest(Protocol):
    """What a ``chat`` span reads of a model request (model.client.ModelRequest): core names no upper layer."""

    task_id: str
    step: int
    kind: str


class TracedModel:
    """A ModelClient whose calls are ``chat`` spans; everything else is the wrapped client's."""

    def __init__(self, inner: Any, tracer: Any, model: str) -> None:
        self.inner = inner
        self.tracer = tracer
        self.model = model
        url = getattr(inner, "url", "") or ""
        self.server = _server(url) if url else None  # a single endpoint: it is the replica

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, request: TracedRequest) -> ModelReply:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.model,
            "agentfleet.task.id": request.task_id,
            "agentfleet.step": request.step,
            "agentfleet.step.kind": request.kind,
        }
        if self.server is not None:
            attrs.update(
                {
                    "server.address": self.server[0],
                    "server.port": self.server[1],
                    "agentfleet.replica": f"{self.server[0]}:{self.server[1]}",
                }
            )
        with self.tracer.start_as_current_span(
            f"chat {self.model}",
            kind=SpanKind.CLIENT,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            token = _chat.set((self.tracer, span))
            try:
                reply = await self.inner.complete(request)
            except Exception as e:
                span.set_status(Status(StatusCode.ERROR, type(e).__name__))  # never the message: it may quote a body
                span.set_attribute("error.type", type(e).__name__)
                raise
            finally:
                _chat.reset(token)
            span.set_attribute("gen_ai.response.model", reply.model or self.model)
            span.set_attribute("gen_ai.usage.input_tokens", reply.usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", reply.usage.completion_tokens)
            span.set_attribute("gen_ai.response.finish_reasons", [reply.finish_reason])
            return reply

    async def close(self) -> None:
        await self.inner.close()


def attempt(replica: str, base_url: str) -> contextlib.AbstractContextManager[Any]:
    """One request to one replica inside a ``chat`` span (routing client): hedges and failovers
    show each request; the one that answers names its replica on the chat span. A no-op outside
    a recording chat span."""
    current = _chat.get()
    if current is None or not current[1].is_recording():
        return _NULL
    return _attempt_span(*current, replica, base_url)


@contextlib.contextmanager
def _attempt_span(tracer: Any, chat: Any, replica: str, base_url: str) -> Iterator[Any]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    host, port = _server(base_url)
    attrs = {"agentfleet.replica": replica, "server.address": host, "server.port": port}
    with tracer.start_as_current_span(
        f"attempt {replica}",
        kind=SpanKind.CLIENT,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as e:
            # Cancelled while another request of the same call answered: the hedge that lost.
            outcome = "lost" if not isinstance(e, Exception) else "error"
            span.set_attribute("agentfleet.attempt.outcome", outcome)
            if outcome == "error":
                span.set_status(Status(StatusCode.ERROR, type(e).__name__))  # never the message: it may quote a body
                span.set_attribute("error.type", type(e).__name__)
            raise
        span.set_attribute("agentfleet.attempt.outcome", "won")
        chat.set_attribute("agentfleet.replica", replica)
        chat.set_attribute("server.address", host)
        chat.set_attribute("server.port", port)


# -- execute_tool ------------------------------------------------------------------------------

# gen_ai.tool.type's values: a search is a datastore, an HTTP endpoint an extension, sub-agents a function of ours
_TOOL_TYPES = {
    "RetrievalTool": ("datastore", "retrieval"),
    "SpawnTool": ("function", "spawn"),
    "HTTPTool": ("extension", "http"),
}


class TracedTool:
    """A tool whose calls are ``execute_tool`` spans; its name, schema, flags and timeout are the
    wrapped tool's (the ToolBox reads them as attributes)."""

    def __init__(self, inner: Any, tracer: Any) -> None:
        self.inner = inner
        self.tracer = tracer
        self.tool_type, self.kind = _TOOL_TYPES.get(type(inner).__name__, ("extension", type(inner).__name__))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run(self, arguments: dict[str, Any], ctx: Any, *rest: Any) -> str:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": self.inner.name,
            "gen_ai.tool.type": self.tool_type,
            "agentfleet.tool.kind": self.kind,
            "gen_ai.tool.call.id": ctx.idempotency_key,
            "agentfleet.step": ctx.step,
        }
        with self.tracer.start_as_current_span(
            f"execute_tool {self.inner.name}",
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self.inner.run(arguments, ctx, *rest)
            except Exception as e:
                span.set_status(Status(StatusCode.ERROR, type(e).__name__))  # never the message: it may quote a body
                span.set_attribute("error.type", type(e).__name__)
                raise


def traced_tools(tools: list[Any], tracer: Any) -> list[Any]:
    return tools if tracer is None else [TracedTool(t, tracer) for t in tools]


def traced_model(model: Any, tracer: Any, name: str) -> Any:
    return model if tracer is None else TracedModel(model, tracer, name)
