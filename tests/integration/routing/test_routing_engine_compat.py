"""Both model clients against simulator replicas that behave like the independent vLLM-compatible
engine measured for issue 18, over real HTTP: a 1,024-token default context and a strict
tool-schema validator. Today's clients get non-retryable 400s from both."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model import ModelError, ModelRequest, OpenAIChatClient
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import FleetThread, start_fleet

pytestmark = pytest.mark.integration

ENGINE = {"max_model_len": 1024, "kv_cache_tokens": 64_000, "prefill_tokens_per_s": 200_000.0, "output_tokens_median": 8.0}
# A tool whose schema a strict validator refuses: extra properties typed by a schema object.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Looks a key up.",
            "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "additionalProperties": {"type": "string"}},
        },
    }
]


@pytest.fixture(scope="module")
def strict_small() -> Iterator[FleetThread]:
    fleet = start_fleet(2, model="small", engine=ENGINE, quirks={"strict_tool_schemas": True})
    yield fleet
    fleet.stop()


def request(words: int, task: str = "t1") -> ModelRequest:
    messages = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "find it " * words}]
    return ModelRequest(messages=messages, tools=TOOLS, task_id=task, root_id=task)


def routing_client(fleet: FleetThread) -> RoutingModelClient:
    src = StaticSource([Endpoint(h.name, h.base_url) for h in fleet.replicas])
    return RoutingModelClient((Tier("small", "small", RoutingSettings()), src), metrics=RoutingMetrics(CollectorRegistry()), timeout=10.0, rng=random.Random(1))


def chat_client(fleet: FleetThread) -> OpenAIChatClient:
    return OpenAIChatClient(fleet.replicas[0].base_url, "small", timeout=10.0, max_retries=0)


@pytest.mark.parametrize("make", [routing_client, chat_client], ids=["routing", "plain"])
def test_default_max_tokens_fits_a_small_served_context_and_strict_schemas(strict_small: FleetThread, make: Any) -> None:
    async def main() -> list[Any]:
        client = make(strict_small)
        try:
            # ~300-token prompts with the default max_tokens 1024: prompt + max_tokens > 1024.
            return [await client.complete(request(100, task=f"t{i}")) for i in range(4)]
        finally:
            await client.close()

    replies = asyncio.run(main())
    assert all(r.usage.completion_tokens > 0 for r in replies)


@pytest.mark.parametrize("make", [routing_client, chat_client], ids=["routing", "plain"])
def test_a_prompt_that_leaves_no_room_fails_naming_the_setting(strict_small: FleetThread, make: Any) -> None:
    async def main() -> None:
        client = make(strict_small)
        try:
            await client.complete(request(700))
        finally:
            await client.close()

    with pytest.raises(ModelError) as err:
        asyncio.run(main())
    assert not err.value.retryable
    assert "maxModelLen" in str(err.value) and "--max-model-len" in str(err.value), str(err.value)
