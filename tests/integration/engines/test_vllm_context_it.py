"""Issue 56 defect 2 on real vLLM 0.32: its context errors ("However, [you requested M output
tokens and] your prompt contains [at least] N input tokens") reach the runtime's model client,
which raises ContextOverflow when the prompt alone is past the served context. (A prompt that fits
alone with too large a max_tokens is served: vLLM 0.32 lowers max_tokens itself, no 400.)

The prompts are CJK characters: about one token each, three times what the client's estimate
(characters / 3) assumes, so the client's own cap lets the request through and vLLM's 400 decides
(the path the error text matters on)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from agentfleet_runtime.model.client import ModelRequest, OpenAIChatClient
from agentfleet_runtime.model.wire import ContextOverflow, context_error, prompt_estimate
from e2e.harness import vllm

CONTEXT = 4096  # the fixture's spec.engine.maxModelLen


def _count(engine: vllm.Engine, messages: list[dict]) -> int:
    body = {"model": vllm.SERVED, "messages": messages, "add_generation_prompt": True}
    req = urllib.request.Request(
        engine.base + "/tokenize", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - 127.0.0.1
        return int(json.loads(resp.read())["count"])


def _text(n: int) -> str:
    # Rare CJK ideographs in a fixed order: no merges between neighbours, about one token each.
    return "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(n))


def _messages(engine: vllm.Engine, tokens: int) -> list[dict]:
    """A user message the engine counts at about ``tokens`` tokens (calibrated on its /tokenize)."""
    probe = 1000
    per_char = (_count(engine, [{"role": "user", "content": _text(probe)}]) - 20) / probe
    return [{"role": "user", "content": "Reply with one word. " + _text(int(tokens / per_char))}]


def _complete(engine: vllm.Engine, messages: list[dict], max_tokens: int) -> tuple[str, int]:
    async def go() -> tuple[str, int]:
        client = OpenAIChatClient(
            engine.api, vllm.SERVED, api_key=vllm.API_KEY, max_output_tokens=max_tokens, max_retries=0, timeout=300
        )
        try:
            reply = await client.complete(ModelRequest(messages=messages))
            return reply.content, client._context.capped
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_prompt_past_the_served_context_raises_context_overflow(engine: vllm.Engine) -> None:
    messages = _messages(engine, CONTEXT + 300)
    assert _count(engine, messages) > CONTEXT
    assert prompt_estimate({"messages": messages}) < CONTEXT - 256  # the client's estimate lets it through
    with pytest.raises(ContextOverflow, match="served context"):
        _complete(engine, messages, 256)


def test_vllm_0_32_words_the_error_as_the_runtime_reads_it(engine: vllm.Engine) -> None:
    # The text itself, so a vLLM upgrade that rewords it fails here first.
    messages = _messages(engine, CONTEXT + 300)
    body = {"model": vllm.SERVED, "messages": messages, "max_tokens": 16}
    req = urllib.request.Request(
        engine.api + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {vllm.API_KEY}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=120)  # noqa: S310 - 127.0.0.1
    assert err.value.code == 400
    text = err.value.read().decode()
    found = context_error(text)
    assert found is not None, text
    assert found[0] == CONTEXT and found[1] > CONTEXT
