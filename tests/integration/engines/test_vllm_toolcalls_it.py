"""Issue 56 defect 3 on real vLLM 0.32: Qwen2.5-Coder answers ``tool_choice: auto`` with a JSON
object in its text (fenced in the spike's runs, bare in this tier's), not in ``<tool_call>`` tags,
so vLLM's hermes parser returns no ``tool_calls``. The runtime's text fallback
(model/textcalls.py, ``toolCalling: auto``, the default) must read the block as the call the
model meant, with its arguments, so that the decision passes the runtime's own check
(loop/decisions.py ``problem``) instead of a repair turn or a raw-JSON "answer"."""

from __future__ import annotations

import asyncio

from agentfleet_runtime.loop.decisions import Offer, problem
from agentfleet_runtime.model.client import ModelRequest, OpenAIChatClient
from agentfleet_runtime.model.textcalls import parse_text_reply
from e2e.harness import vllm

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the documents for passages.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
]
QUESTIONS = {
    "get_weather": "What is the weather in Paris?",
    "search": "Which Milvus index types does agentfleet support? Search the docs.",
}


def _ask(engine: vllm.Engine, question: str):
    async def go():
        client = OpenAIChatClient(engine.api, vllm.SERVED, api_key=vllm.API_KEY, max_output_tokens=96, timeout=300)
        try:
            messages = [
                {"role": "system", "content": "You are a helpful agent. Use the tools."},
                {"role": "user", "content": question},
            ]
            return await client.complete(ModelRequest(messages=messages, tools=TOOLS, tool_choice="auto"))
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_json_call_in_the_text_becomes_the_call_the_model_meant(engine: vllm.Engine) -> None:
    names = [t["function"]["name"] for t in TOOLS]
    for tool, question in QUESTIONS.items():
        reply = _ask(engine, question)
        print(f"[{tool}] content={reply.content!r} tool_calls={reply.tool_calls!r}")
        if reply.tool_calls:  # the engine parsed a native call: nothing for the fallback to do
            calls = list(reply.tool_calls)
        else:
            assert "{" in reply.content, reply.content  # the JSON this test is about
            _, calls = parse_text_reply(reply.content, names)
        assert [c.name for c in calls] == [tool], reply.content
        assert problem(calls, "", Offer(tools=tuple(names)), TOOLS) is None, (reply.content, calls)
