"""What the routing client hands its transport: the body with ``max_tokens`` fitted to the served
context of the replica it goes to (asked once per replica, corrected by the engine's own 400),
the attempt's timeout, and, for a streamed call, the observer that reports the first token.
ContextGuard itself is tested in test_routing_wire.py; these check the client uses it per replica."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual


class SmallContextEngine:
    """Replicas serving ``big``. ``/v1/models`` says ``advertised``; the engine itself holds
    ``context`` tokens and counts the prompt as ``prompt_tokens`` (more than the client's
    estimate), answering vLLM's 400 when prompt plus max_tokens do not fit."""

    def __init__(self, advertised: int, context: int, prompt_tokens: int) -> None:
        self.advertised, self.context, self.prompt_tokens = advertised, context, prompt_tokens
        self.models_asked: list[str] = []
        self.sent: list[tuple[str, int, float, str]] = []  # (replica, max_tokens, timeout, how)

    async def models(self, base_url: str) -> Any:
        if not isinstance(base_url, str):
            raise LookupError(base_url)
        self.models_asked.append(base_url)
        return {"data": [{"id": "big", "max_model_len": self.advertised}]}

    def _answer(self, endpoint: Endpoint, body: dict[str, Any], timeout: float, how: str) -> dict[str, Any]:
        self.sent.append((endpoint.name, body["max_tokens"], timeout, how))
        if self.prompt_tokens + body["max_tokens"] > self.context:
            raise ModelError(
                f"This model's maximum context length is {self.context} tokens. However, you requested "
                f"{self.prompt_tokens + body['max_tokens']} tokens ({self.prompt_tokens} in the messages, "
                f"{body['max_tokens']} in the completion).",
                status=400,
                retryable=False,
            )
        return {
            "choices": [{"message": {"content": endpoint.name}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        }

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return self._answer(endpoint, body, timeout, "send")

    async def close(self) -> None:
        return None


class StreamingEngine(SmallContextEngine):
    async def stream(self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: Any) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        out = self._answer(endpoint, body, timeout, "stream")
        observer.on_first()
        return out


def client_for(engine: SmallContextEngine, n: int = 2, stream: bool = False) -> RoutingModelClient:
    src = StaticSource([Endpoint(f"r{i}", f"http://x{i}/v1") for i in range(n)])
    return RoutingModelClient(
        (Tier("big", "big", RoutingSettings()), src),
        transport=engine,
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=0.5,
        max_retries=0,
        max_output_tokens=1024,
        rng=random.Random(0),
        stream=stream,
    )


def req(task: str) -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": "hi"}], task_id=task, root_id=task, kind="step")  # type: ignore[arg-type]


def tasks_on(client: RoutingModelClient, replica: str, k: int) -> list[str]:
    return [t for t in (f"t{i}" for i in range(400)) if client.primary.order(t, 0)[0].name == replica][:k]


def test_max_tokens_is_fitted_per_replica_and_the_engines_400_is_remembered() -> None:
    async def body() -> None:
        # /v1/models overstates the context (4096); the engine holds 600 and counts 500 prompt
        # tokens where the client estimates 4 ("hi"): the first call is refitted after its 400.
        engine = SmallContextEngine(advertised=4096, context=600, prompt_tokens=500)
        client = client_for(engine)
        a, b = tasks_on(client, "r0", 2)
        out = await client.complete(req(a))
        assert out.content == "r0"
        assert engine.sent == [("r0", 1024, 0.5, "send"), ("r0", 100, 0.5, "send")]  # exactly the room the 400 named
        await client.complete(req(b))
        # the engine's 600 is kept for r0 (not the stale 4096); the prompt is again estimated short
        assert engine.sent[2:] == [("r0", 596, 0.5, "send"), ("r0", 100, 0.5, "send")]
        assert engine.models_asked == ["http://x0/v1"]  # asked once per replica
        (c,) = tasks_on(client, "r1", 1)
        await client.complete(req(c))
        assert engine.sent[4:] == [("r1", 1024, 0.5, "send"), ("r1", 100, 0.5, "send")]  # r1's own context, not r0's
        assert engine.models_asked == ["http://x0/v1", "http://x1/v1"]

    run_virtual(body(), start=1000.0)


def test_the_advertised_context_caps_max_tokens_before_the_first_send() -> None:
    async def body() -> None:
        engine = SmallContextEngine(advertised=600, context=600, prompt_tokens=4)
        client = client_for(engine, n=1)
        await client.complete(req("a"))
        assert engine.sent == [("r0", 596, 0.5, "send")]  # 600 less the ~4-token estimate of "hi"

    run_virtual(body(), start=1000.0)


def test_a_400_that_is_not_about_the_context_is_raised_not_retried() -> None:
    async def body() -> None:
        engine = SmallContextEngine(advertised=4096, context=600, prompt_tokens=500)
        client = client_for(engine, n=1)

        async def refuse(endpoint: Endpoint, b: dict[str, Any], timeout: float) -> dict[str, Any]:
            engine.sent.append((endpoint.name, b["max_tokens"], timeout, "send"))
            raise ModelError("tool_choice is not supported", status=400, retryable=False)

        engine.send = refuse  # type: ignore[method-assign]
        with pytest.raises(ModelError, match="tool_choice"):
            await client.complete(req("a"))
        assert len(engine.sent) == 1

    run_virtual(body(), start=1000.0)


def test_a_streamed_call_is_streamed_with_the_fitted_body_the_timeout_and_an_observer() -> None:
    async def body() -> None:
        engine = StreamingEngine(advertised=4096, context=600, prompt_tokens=500)
        client = client_for(engine, n=1, stream=True)
        out = await client.complete(req("a"))
        assert out.content == "r0"
        assert engine.sent == [("r0", 1024, 0.5, "stream"), ("r0", 100, 0.5, "stream")]

    run_virtual(body(), start=1000.0)
