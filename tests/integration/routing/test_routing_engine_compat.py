"""Both model clients against simulator replicas that behave like the independent vLLM-compatible
engines measured for issues 18 and 46, over real HTTP: a 1,024-token default context, a strict
tool-schema validator, a real tokenizer's count (fewer tokens than the client's estimate), with
and without vLLM's ``/tokenize``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest, OpenAIChatClient
from agentfleet_runtime.model.wire import MIN_OUTPUT_TOKENS, prompt_estimate
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import ChatTokenizer, FleetThread, start_fleet

pytestmark = pytest.mark.integration

ENGINE = {
    "max_model_len": 1024,
    "kv_cache_tokens": 64_000,
    "prefill_tokens_per_s": 200_000.0,
    "output_tokens_median": 8.0,
}
# A tool whose schema a strict validator refuses: extra properties typed by a schema object.
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Looks a key up.",
            "parameters": {
                "type": "object",
                "properties": {"key": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            },
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
    return RoutingModelClient(
        (Tier("small", "small", RoutingSettings()), src),
        metrics=RoutingMetrics(CollectorRegistry()),
        timeout=10.0,
        rng=random.Random(1),
    )


def chat_client(fleet: FleetThread) -> OpenAIChatClient:
    return OpenAIChatClient(fleet.replicas[0].base_url, "small", timeout=10.0, max_retries=0)


@pytest.mark.parametrize("make", [routing_client, chat_client], ids=["routing", "plain"])
def test_default_max_tokens_fits_a_small_served_context_and_strict_schemas(
    strict_small: FleetThread, make: Any
) -> None:
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


# English prose, as an agent's history is: a real tokenizer counts ~4.4 characters a token here.
PROSE = "The replicas serve every agent while the autoscaler watches their queues and latency. "


@pytest.fixture(scope="module", params=[True, False], ids=["tokenize", "no-tokenize"])
def real_tokens(request: pytest.FixtureRequest) -> Iterator[FleetThread]:
    """The model's own tokenizer (quirks.tokenizer_piece_chars 8), with vLLM's /tokenize or, as
    llm-d's simulator, without one."""
    quirks = {"tokenizer_piece_chars": 8, "tokenize_endpoint": request.param}
    fleet = start_fleet(1, model="small", engine=ENGINE, quirks=quirks)
    yield fleet
    fleet.stop()


@pytest.mark.parametrize("make", [routing_client, chat_client], ids=["routing", "plain"])
def test_a_prompt_that_fits_by_the_engines_count_is_served_whatever_the_estimate(
    real_tokens: FleetThread, make: Any
) -> None:
    # Issue 46: prompts of 777-937 real tokens in a 1,024-token context were refused on estimates
    # of 1,028-1,241 tokens before the engine was asked.
    messages = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": PROSE * 50}]
    req = ModelRequest(messages=messages, task_id="fits", root_id="fits")
    exact = len(ChatTokenizer(piece_chars=8).chat_prompt(messages))
    assert 0.75 * 1024 < exact < 1024 - 64  # fills the context, and leaves room by the engine's count
    assert prompt_estimate({"messages": messages}) > 1024 - MIN_OUTPUT_TOKENS  # the estimate leaves none

    async def main() -> Any:
        client = make(real_tokens)
        try:
            return await client.complete(req)
        finally:
            await client.close()

    replica = real_tokens.replicas[0].replica
    asked = replica.tokenized
    reply = asyncio.run(main())
    assert reply.usage.prompt_tokens == exact and 0 < reply.usage.completion_tokens <= 1024 - exact
    assert replica.tokenized - asked == int(replica.quirks.tokenize_endpoint)  # the engine counted, where it can
