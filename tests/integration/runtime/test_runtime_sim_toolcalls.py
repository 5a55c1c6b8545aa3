"""The real Worker against simulator replicas that write tool calls (agentfleet_sim.quirks
tool_call_rate) and behave like the independent vLLM-compatible engine measured for issue 18
(strict tool schemas, lazy series, no abort, TTFT from scheduling, a small context): the tool and
sub-agent paths run without a real model, and every task still ends with a final answer."""

from __future__ import annotations

import dataclasses

import pytest
from runtime_helpers import Echo, arun, make_config, running_worker, store_for, submit, wait_ended

from agentfleet_sim import INDEPENDENT_ENGINE, start_fleet

pytestmark = pytest.mark.integration

ENGINE = {
    "max_model_len": 4096,
    "kv_cache_tokens": 200_000,
    "prefill_tokens_per_s": 200_000.0,
    "decode_base_s": 0.002,
    "output_tokens_median": 12.0,
}


def test_worker_runs_tools_and_sub_agents_on_the_simulator(redis_server, fleet):
    quirks = dataclasses.replace(INDEPENDENT_ENGINE, tool_call_rate=0.9, tool_call_steps=3)
    sim = start_fleet(1, model="scripted", engine=ENGINE, quirks=quirks)
    try:

        async def body() -> tuple[dict, list]:
            config = make_config(
                redis_server.url, fleet, sim.replicas[0].base_url, budgets={"maxDepth": 1, "maxFanOut": 3}
            )
            store = store_for(config)
            async with running_worker(config, extra_tools=[Echo()]):
                ids = [await submit(store, config, f"task {i}: find the facts") for i in range(8)]
                states = await wait_ended(store, ids, 60)
            steps = [s for tid in ids for s in await store.steps(tid)]
            await store.r.aclose()
            return states, steps

        states, steps = arun(body())
    finally:
        replica = sim.replicas[0].replica
        tool_answers = replica.tool_calls
        sim.stop()
    assert all(s["status"] == "done" and s["reason"] == "final_answer" for s in states.values()), states
    names = [c.name for s in steps for c in s.tool_calls]
    assert "echo" in names and "spawn" in names, names
    spawned = [o for s in steps for c, o in zip(s.tool_calls, s.observations or (), strict=False) if c.name == "spawn"]
    assert spawned and all("sub-agents finished" in o.output and '"status": "done"' in o.output for o in spawned), (
        spawned
    )
    assert tool_answers >= len(names)
