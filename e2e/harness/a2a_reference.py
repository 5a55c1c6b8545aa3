"""The official A2A SDK's own server (a2a-sdk 1.3.0: its request handler, task store, JSON-RPC and
card routes, served by uvicorn) with a small agent: code nobody here wrote. It is the remote agent of
the A2A tool's tests (tests/integration/runtime/test_runtime_a2a_tool.py, in the test's event loop:
``sdk_agent``), and the reference the A2A kit runs against beside a fleet (e2e/tests/test_a2a_realnode.py,
as a process: ``python -m e2e.harness.a2a_reference --port P``), so that a kit test failing on both
is known to be the kit's.

What it does with a message: "#slow" works until cancelled; anything else gets a working update, an
artifact that answers and cites sdk-guide.html, and a completion that reports its usage in the Task's
metadata as an agentfleet server does (agentfleet.io/usage). It records what it was sent (message ids,
context ids, metadata, the Authorization header) and the tasks it was asked to cancel."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from a2a.helpers.proto_helpers import new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TaskState
from google.protobuf.json_format import MessageToDict
from google.protobuf.struct_pb2 import Value
from starlette.applications import Starlette

from e2e.harness.ports import free_port

ANSWER = "The SDK's default page size is 50 [source: sdk-guide.html]."
USAGE = {"totalTokens": 1234, "cost": "0.0021", "currency": "USD"}
CANCELLED_USAGE = {"totalTokens": 100, "cost": "0.0005", "currency": "USD"}


@dataclass
class Seen:
    messages: list[dict[str, Any]] = field(default_factory=list)
    authorization: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


class Executor(AgentExecutor):
    def __init__(self, seen: Seen, usage: dict[str, Any]) -> None:
        self.seen = seen
        self.usage = usage

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        self.seen.messages.append(MessageToDict(context.message) | {"metadata": dict(context.metadata)})
        headers = context.call_context.state.get("headers", {}) if context.call_context else {}
        self.seen.authorization.append(headers.get("authorization", ""))
        task_id, ctx_id = context.task_id or "", context.context_id or ""
        if context.current_task is None:
            await event_queue.enqueue_event(new_task(task_id, ctx_id, TaskState.TASK_STATE_SUBMITTED))
        updater = TaskUpdater(event_queue, task_id, ctx_id)
        await updater.start_work(new_text_message("looking it up", context_id=ctx_id, task_id=task_id))
        if "#slow" in context.get_user_input():
            await asyncio.sleep(3600)  # until cancelled
            return
        cites = Value()
        cites.struct_value.update({"citations": ["sdk-guide.html"]})
        await updater.add_artifact([Part(text=ANSWER), Part(data=cites)], artifact_id="sdk-answer", name="answer")
        await updater.update_status(
            TaskState.TASK_STATE_COMPLETED, metadata={"agentfleet.io/usage": self.usage} if self.usage else None
        )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.seen.cancelled.append(context.task_id or "")
        updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
        # What it spent until cancelled, reported on the cancelled Task.
        await updater.update_status(TaskState.TASK_STATE_CANCELED, metadata={"agentfleet.io/usage": CANCELLED_USAGE})


def agent_card(base: str, streaming: bool, rpc_path: str = "/a2a") -> AgentCard:
    return AgentCard(
        name="sdk-docs",
        description="Answers questions about the SDK",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=base + rpc_path.rstrip("/"), protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=streaming),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="docs", name="docs", description="SDK docs", tags=["docs"])],
    )


def make_app(
    base: str, seen: Seen, *, streaming: bool = True, usage: dict[str, Any] | None = USAGE, rpc_path: str = "/a2a"
) -> Starlette:
    card = agent_card(base, streaming, rpc_path)
    handler = DefaultRequestHandler(Executor(seen, usage), InMemoryTaskStore(), card)
    return Starlette(routes=[*create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_path)])


@contextlib.asynccontextmanager
async def sdk_agent(
    *, streaming: bool = True, usage: dict[str, Any] | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[str, Seen]]:
    """The SDK agent on a free port in this event loop: (its card URL, what it saw)."""
    seen = Seen()
    port = free_port()
    base = f"http://{host}:{port}"
    app = make_app(base, seen, streaming=streaming, usage=USAGE if usage is None else usage)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not serving.done(), serving
        await asyncio.sleep(0.02)
    try:
        yield f"{base}/.well-known/agent-card.json", seen
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)


def main() -> None:
    """The agent as a process for the A2A kit, which posts JSON-RPC to the URL it is given and reads
    the card under it: JSON-RPC at the root. Prints "a2a reference listening on URL" once it serves."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    app = make_app(base, Seen(), rpc_path="/")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning"))

    async def serve() -> None:
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.05)
        print(f"a2a reference listening on {base}", flush=True)
        await serving

    asyncio.run(serve())


if __name__ == "__main__":
    main()
