"""The simulator's switches for vLLM-compatible engines that are not vLLM (agentfleet_sim.quirks)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfleet_sim import (
    ApiError,
    Engine,
    EngineConfig,
    Flavor,
    ManualClock,
    Quirks,
    Replica,
    ReplicaConfig,
    exposed_names,
    render_metrics,
    run_virtual,
)
from agentfleet_sim.toolcalls import arguments_for, decide_tool_call

FAST = EngineConfig(
    served_name="m",
    model="m",
    max_model_len=4096,
    kv_cache_tokens=64 * 1024,
    prefill_tokens_per_s=100_000.0,
    decode_base_s=0.01,
    decode_per_seq_s=0.0,
    kv_read_s_per_token=0.0,
    max_num_seqs=2,
    output_length_mode="max_tokens",
)


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "number": (int, float), "integer": int}


def validate(value: object, schema: dict) -> None:
    """The JSON Schema keywords the tools use, checked by hand (no validator in the test tools)."""
    if "enum" in schema:
        assert value in schema["enum"], (value, schema)
        return
    kind = schema.get("type")
    if kind:
        assert isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool)), (
            value,
            kind,
        )
    if isinstance(value, dict):
        assert set(schema.get("required", ())) <= set(value), (value, schema)
        assert set(value) <= set(schema.get("properties", {})), value
        for k, v in value.items():
            validate(v, schema["properties"][k])
    if isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9)
        for v in value:
            validate(v, schema.get("items", {}))
    if isinstance(value, str):
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf), (value, schema)


def families(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_flavor_both_exports_removed_names_beside_current_ones() -> None:
    both = exposed_names(Flavor.BOTH)
    assert exposed_names(Flavor.CURRENT) <= both and exposed_names(Flavor.LEGACY) <= both
    assert "vllm:time_per_output_token_seconds" in both and "vllm:request_time_per_output_token_seconds" in both


def queued_engine(ttft_from_scheduling: bool) -> Engine:
    """Six requests at t=0 on two slots: four wait in the queue."""
    eng = Engine(FAST)
    eng.ttft_from_scheduling = ttft_from_scheduling
    clock = ManualClock()
    for i in range(6):
        eng.add_request(f"r{i}", [100 + i] * 50, now=0.0, max_tokens=20)
    while (result := eng.step(clock.now())) is not None:
        clock.set(result.end)
    return eng


def test_ttft_from_scheduling_hides_queue_time_from_ttft_only() -> None:
    vllm, other = queued_engine(False), queued_engine(True)
    assert vllm.stats.h_queue.sum == pytest.approx(other.stats.h_queue.sum) and other.stats.h_queue.sum > 0.5
    assert vllm.stats.h_e2e.sum == pytest.approx(other.stats.h_e2e.sum)
    # vLLM's TTFT includes the queue; the other engine's TTFT is the prefill alone.
    assert vllm.stats.h_ttft.sum == pytest.approx(other.stats.h_ttft.sum + vllm.stats.h_queue.sum)
    assert other.stats.h_ttft.sum < 6 * 0.02


def test_lazy_series_label_spelling_and_absent_engine_label() -> None:
    quirks = Quirks(lazy_series=True, finish_reason_label="finish_reason", engine_label=False)
    eng = Engine(FAST)
    before = families(render_metrics(eng, Flavor.CURRENT, quirks))
    # Only gauges before the first request; vLLM shows every family from the start.
    assert {f.type for f in before.values() if f.name.startswith("vllm:") and f.name != "vllm:cache_config_info"} == {
        "gauge"
    }
    assert "vllm:request_success" in families(render_metrics(eng))
    clock = ManualClock()
    eng.add_request("a", [5] * 40, now=0.0, max_tokens=3)
    while (result := eng.step(clock.now())) is not None:
        clock.set(result.end)
    after = families(render_metrics(eng, Flavor.CURRENT, quirks))
    success = after["vllm:request_success"]
    assert [(s.labels, s.value) for s in success.samples if s.name.endswith("_total")] == [
        ({"model_name": "m", "finish_reason": "length"}, 1.0)
    ]
    for fam in after.values():
        for s in fam.samples:
            assert "engine" not in s.labels or fam.name == "vllm:cache_config_info", (fam.name, s.labels)
    assert "vllm:time_to_first_token_seconds" in after


def body(tools: list[dict] | None = None, max_tokens: int = 5, messages: list[dict] | None = None) -> dict:
    out: dict = {
        "model": "m",
        "messages": messages or [{"role": "user", "content": "hello there"}],
        "max_tokens": max_tokens,
    }
    if tools is not None:
        out["tools"] = tools
    return out


def test_no_abort_on_disconnect_runs_the_loser_to_the_end() -> None:
    async def run(quirks: Quirks) -> tuple[int, dict[str, int], int]:
        replica = Replica(ReplicaConfig(engine=FAST, quirks=quirks))
        await replica.start()
        call = asyncio.ensure_future(replica.completion(body(max_tokens=200)))
        await asyncio.sleep(0.05)
        call.cancel()  # the client goes away (a hedge loser)
        await asyncio.gather(call, return_exceptions=True)
        await asyncio.sleep(5.0)
        reasons = dict(replica.stats().request_success)
        generated = replica.stats().generation_tokens
        await replica.stop()
        return replica.orphans, reasons, generated

    orphans, reasons, generated = run_virtual(run(Quirks()))
    assert (orphans, reasons["abort"], reasons["length"]) == (0, 1, 0) and generated < 10
    orphans, reasons, generated = run_virtual(run(Quirks(abort_on_disconnect=False)))
    assert (orphans, reasons["abort"], reasons["length"]) == (1, 0, 1) and generated == 200


STRICT_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
    },
}


def test_strict_tool_schemas_refuse_additional_properties_objects() -> None:
    async def run(quirks: Quirks, tools: list[dict]) -> int:
        replica = Replica(ReplicaConfig(engine=FAST, quirks=quirks))
        await replica.start()
        try:
            await replica.completion(body(tools))
            return 200
        except ApiError as e:
            assert "additionalProperties" in e.message
            return e.status
        finally:
            await replica.stop()

    assert run_virtual(run(Quirks(), [STRICT_TOOL])) == 200
    assert run_virtual(run(Quirks(strict_tool_schemas=True), [STRICT_TOOL])) == 400
    portable = json.loads(json.dumps(STRICT_TOOL))
    portable["function"]["parameters"]["additionalProperties"] = True
    assert run_virtual(run(Quirks(strict_tool_schemas=True), [portable])) == 200


SEARCH = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 3},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 50},
        "mode": {"enum": ["fast", "exact"]},
        "goals": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4},
        "nested": {
            "type": "object",
            "properties": {"flag": {"type": "boolean"}, "w": {"type": "number", "minimum": 0.5}},
            "required": ["flag"],
        },
    },
    "required": ["query", "goals"],
}


def test_generated_arguments_validate_against_their_schema() -> None:
    for seed in range(300):
        validate(arguments_for(SEARCH, random.Random(seed), seed), SEARCH)


def test_tool_calls_are_seeded_and_stop_after_the_configured_steps() -> None:
    tools = [
        {"type": "function", "function": {"name": "search", "parameters": SEARCH}},
        {"type": "function", "function": {"name": "spawn", "parameters": SEARCH}},
    ]
    b = body(tools)
    calls = [decide_tool_call(b, seed, 0.5, 3) for seed in range(400)]
    made = [c for c in calls if c is not None]
    assert 150 < len(made) < 250  # about half
    assert {c["function"]["name"] for c in made} == {"search", "spawn"}
    assert calls == [decide_tool_call(b, seed, 0.5, 3) for seed in range(400)]  # same seed, same call
    for c in made:
        validate(json.loads(c["function"]["arguments"]), SEARCH)
    done = body(
        tools,
        messages=[
            {"role": "user", "content": "x"},
            *[{"role": "tool", "content": "r", "tool_call_id": str(i)} for i in range(3)],
        ],
    )
    assert all(decide_tool_call(done, seed, 1.0, 3) is None for seed in range(50))


def test_replica_answers_with_tool_calls_plain_and_streamed() -> None:
    tools = [{"type": "function", "function": {"name": "search", "parameters": SEARCH}}]
    engine = dataclasses.replace(FAST, output_length_mode="natural", output_tokens_median=12.0)

    async def run() -> tuple[dict, list[dict]]:
        replica = Replica(ReplicaConfig(engine=engine, quirks=Quirks(tool_call_rate=1.0)))
        await replica.start()
        plain = await replica.completion(body(tools, max_tokens=100))
        stream = await replica.completion({**body(tools, max_tokens=100), "stream": True})
        chunks = [c async for c in stream]  # type: ignore[union-attr]
        await replica.stop()
        return plain, chunks  # type: ignore[return-value]

    plain, chunks = run_virtual(run())
    choice = plain["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    validate(json.loads(call["function"]["arguments"]), SEARCH)
    pieces = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls", [])]
    assert pieces[0]["function"]["name"] == "search" and pieces[0]["id"] == call["id"]
    assert "".join(p["function"]["arguments"] for p in pieces) == call["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
