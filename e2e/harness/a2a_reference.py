"""The official A2A SDK's own server (a2a-sdk, JSON-RPC and HTTP+JSON) with a small agent: the
reference an A2A check is run against beside the fleet, so that a check failing on both is known to
be the checker's, not ours.

Its agent works each message for ``--seconds``, as an agent would, then answers with one text
artifact and completes. Nothing here is agentfleet's code: task store, request handling, streaming
and errors are the SDK's defaults.

    python -m e2e.harness.a2a_reference --port 9999 [--seconds 2]
prints ``a2a reference listening on http://127.0.0.1:PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio

WORK_SECONDS = 2.0


def app(base_url: str, seconds: float = WORK_SECONDS):  # noqa: ANN201 (a Starlette app; starlette is a test dependency)
    from a2a.helpers.proto_helpers import new_task, new_text_message
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Part, TaskState
    from starlette.applications import Starlette

    class Worker(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            updater = TaskUpdater(event_queue, context.task_id or "", context.context_id or "")
            if context.current_task is None:  # the SDK wants the Task before any update of it
                history = [context.message] if context.message is not None else []
                await event_queue.enqueue_event(
                    new_task(updater.task_id, updater.context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
                )
            await updater.start_work()
            await asyncio.sleep(seconds)
            text = f"reference answer to: {context.get_user_input()}"
            await updater.add_artifact([Part(text=text)], name="answer")
            await updater.complete(new_text_message(text, context_id=updater.context_id, task_id=updater.task_id))

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()

    card = AgentCard(
        name="a2a-reference",
        description="The a2a-sdk server with an agent that answers each message after a short while",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=base_url, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=base_url + "/rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="answer", name="Answer", description="Answers a message", tags=["reference"])],
    )
    handler = DefaultRequestHandler(agent_executor=Worker(), task_store=InMemoryTaskStore(), agent_card=card)
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url="/"),
        *create_rest_routes(handler, path_prefix="/rest"),
    ]
    return Starlette(routes=routes)


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=WORK_SECONDS, help="how long the agent works on each message")
    args = p.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    config = uvicorn.Config(app(base, args.seconds), host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print(f"a2a reference listening on {base}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
