"""Streamed completions folded into one body (routing.streaming) and the abort watch (routing.abortwatch)."""

from __future__ import annotations

import asyncio
import json
import random

from agentfleet_runtime.model.client import parse_chat_completion
from agentfleet_runtime.routing.abortwatch import AbortWatch, abort_count
from agentfleet_runtime.routing.streaming import SseLines, StreamAccumulator
from agentfleet_sim import EngineConfig, Quirks, Replica, ReplicaConfig, run_virtual

ENGINE = EngineConfig(
    served_name="m",
    model="m",
    max_model_len=4096,
    kv_cache_tokens=64_000,
    prefill_tokens_per_s=100_000.0,
    output_tokens_median=10.0,
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    }
]


def calls(rate: float) -> tuple[dict, list[dict]]:
    body = {"model": "m", "messages": [{"role": "user", "content": "look it up"}], "max_tokens": 64, "tools": TOOLS}

    async def run() -> tuple[dict, list[dict]]:
        replica = Replica(ReplicaConfig(engine=ENGINE, quirks=Quirks(tool_call_rate=rate)))
        await replica.start()
        plain = await replica.completion(body)
        stream = await replica.completion({**body, "stream": True, "stream_options": {"include_usage": True}})
        chunks = [c async for c in stream]  # type: ignore[union-attr]
        await replica.stop()
        return plain, chunks  # type: ignore[return-value]

    return run_virtual(run())


def sse_bytes(chunks: list[dict]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def fold(raw: bytes, cut_seed: int) -> tuple[StreamAccumulator, list[bool], list[dict]]:
    acc, lines, firsts, ready = StreamAccumulator(), SseLines(), [], []
    rng = random.Random(cut_seed)
    i = 0
    while i < len(raw):  # arbitrary TCP segment boundaries
        j = min(len(raw), i + rng.randint(1, 40))
        for payload in lines.feed(raw[i:j]):
            first, _ = acc.feed(payload)
            firsts.append(first)
            ready += acc.ready_tool_calls()
        i = j
    return acc, firsts, ready


def test_a_streamed_text_answer_folds_into_the_plain_answer() -> None:
    plain, chunks = calls(0.0)
    acc, firsts, _ = fold(sse_bytes(chunks), 1)
    assert acc.done and firsts.count(True) == 1
    got, want = parse_chat_completion(acc.body()), parse_chat_completion(plain)
    assert (got.content, got.finish_reason, got.usage) == (want.content, want.finish_reason, want.usage)


def test_a_streamed_tool_call_is_handed_out_whole_and_once() -> None:
    plain, chunks = calls(1.0)
    for seed in range(5):
        acc, firsts, ready = fold(sse_bytes(chunks), seed)
        got, want = parse_chat_completion(acc.body()), parse_chat_completion(plain)
        assert got.tool_calls == want.tool_calls and got.finish_reason == "tool_calls"
        assert ready == plain["choices"][0]["message"]["tool_calls"]  # complete, once, at the end
        assert firsts.count(True) == 1


def test_abort_count_reads_either_label_spelling() -> None:
    text = (
        b'vllm:request_success_total{engine="0",finished_reason="abort",model_name="m"} '
        b'3.0\nvllm:request_success_total{finish_reason="abort",model_name="x"} 2.0\n'
    )
    assert abort_count(text) == 5.0
    assert abort_count(b'vllm:request_success_total{finished_reason="stop"} 9.0\n') is None


def test_abort_watch_tells_an_engine_that_aborts_from_one_that_does_not() -> None:
    async def verdict(aborting: bool) -> bool | None:
        counter = {"n": 0.0}

        async def read(_key: str) -> float | None:
            return counter["n"]

        watch = AbortWatch(read, every_s=5.0, settle_s=1.0, min_cancels=3)
        loop = asyncio.get_running_loop()
        assert watch.aborts("r") is True  # vLLM's behaviour until shown otherwise
        for _ in range(6):
            watch.cancelled("r", loop.time())
            if aborting:
                counter["n"] += 1
            await asyncio.sleep(2.0)
        await asyncio.sleep(20.0)
        known = watch.known("r")
        await watch.close()
        return known

    assert run_virtual(verdict(True)) is True
    assert run_virtual(verdict(False)) is False


def test_abort_watch_without_readable_metrics_keeps_assuming_aborts() -> None:
    async def run() -> bool | None:
        async def read(_key: str) -> float | None:
            raise OSError("no /metrics")

        watch = AbortWatch(read, every_s=1.0, settle_s=0.5)
        for _ in range(5):
            watch.cancelled("r", asyncio.get_running_loop().time())
            await asyncio.sleep(1.0)
        known = watch.known("r")
        await watch.close()
        return known

    assert run_virtual(run()) is None
