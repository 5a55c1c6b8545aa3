"""The simulator's LoRA adapters (agentfleet_sim.adapters): vLLM's run-time load/unload API, the
base as each adapter's parent in /v1/models, and GPU slots that cost a swap on a miss."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from agentfleet_sim import ApiError, EngineConfig, Replica, ReplicaConfig, run_virtual
from agentfleet_sim.adapters import AdapterSlots

FAST = EngineConfig(
    served_name="m", max_model_len=8192, kv_cache_tokens=65536, output_tokens_median=20, max_loras=2, lora_swap_s=0.5
)


def chat(model: str) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def test_slots_are_lru_and_only_a_miss_waits() -> None:
    s = AdapterSlots(max_loras=2, swap_s=0.5)
    for name in "abc":
        s.load(name, f"/adapters/{name}")
    assert [s.acquire(n) for n in "abab"] == [0.5, 0.5, 0.0, 0.0]
    assert s.acquire("c") == 0.5 and s.in_gpu == ["b", "c"]  # a, least recently used, left the GPU
    assert (s.hits, s.misses) == (2, 3)
    s.unload("b")
    assert s.in_gpu == ["c"] and "b" not in s.registered


def test_load_and_unload_answer_as_vllm_does() -> None:
    s = AdapterSlots(max_loras=1)
    assert "added successfully" in s.load("a", "/p")
    with pytest.raises(ApiError) as dup:
        s.load("a", "/p")
    assert dup.value.status == 400 and "already been loaded" in str(dup.value)
    with pytest.raises(ApiError) as gone:
        s.unload("x")
    assert gone.value.status == 404
    with pytest.raises(ApiError) as off:
        AdapterSlots(max_loras=0).load("a", "/p")
    assert off.value.status == 400 and "--enable-lora" in str(off.value)


def test_a_call_names_an_adapter_and_waits_for_its_slot_once() -> None:
    async def main() -> tuple[list[float], dict, list[str]]:
        loop = asyncio.get_running_loop()
        r = Replica(ReplicaConfig(engine=FAST))
        await r.start()
        r.load_adapter({"lora_name": "sql", "lora_path": "/adapters/sql"})
        times = []
        for _ in range(2):
            t0 = loop.time()
            out = await r.completion(chat("sql"))
            times.append(loop.time() - t0)
        with pytest.raises(ApiError):
            await r.completion(chat("unknown"))
        models = r.models()
        await r.stop()
        return times, out, [m["id"] for m in models["data"]] + [str(models["data"][1]["parent"])]

    times, out, models = run_virtual(main())
    assert times[0] - times[1] == pytest.approx(0.5, abs=0.05), (
        "the first call waits for the swap, the second finds it in its slot"
    )
    assert out["model"] == "sql"
    assert models == ["m", "sql", "m"]


def test_lora_off_by_default() -> None:
    r = Replica(ReplicaConfig(engine=dataclasses.replace(FAST, max_loras=0)))
    with pytest.raises(ApiError):
        r.load_adapter({"lora_name": "a", "lora_path": "/p"})
