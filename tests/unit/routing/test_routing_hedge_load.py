"""Hedging's extra load on an engine that does not abort a loser (issue 18): the real client on
in-process simulator replicas (virtual clock) whose engines run cancelled requests to the end
(``quirks.abort_on_disconnect`` off), as an independent vLLM-compatible engine was measured to.

The whole-call hedge fires on the calls still running at the kind's p90, which are mostly the ones
writing long answers; each loser then keeps writing to its end. Extra load is what the engines
computed (prompt plus generated tokens, from their counters) over what the answered calls used,
and maxExtraPercent 5 must hold for it, not only for the count of extra calls."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import fleet_config, run_virtual, start_replicas
from agentfleet_sim.transport import SimTransport


def extra_load(*, stream: bool, abort: bool, tasks: int = 48, steps: int = 12) -> tuple[float, float, int]:
    """(extra tokens the engines computed, extra calls sent, orphaned losers) for one run."""

    async def main() -> tuple[float, float, int]:
        engine = {"output_tokens_sigma": 1.0, "max_model_len": 8192}
        # The first-token hedge fires early only on a call late for reasons of its own (overtake.py):
        # give it some, 5% of the calls 10x slow.
        faults = {"seed": 3, "slow_fraction": 0.05, "slow_factor": 10.0} if stream else {}
        sims = await start_replicas(
            4, fleet_config(4, engine=engine, faults=faults, quirks={"abort_on_disconnect": abort})
        )
        by_name = {r.name: r for r in sims}
        settings = RoutingSettings(hedging=True, hedge_after_percentile=90, hedge_max_extra_percent=5)
        client = RoutingModelClient(
            (Tier("llama", "llama-70b", settings), StaticSource([Endpoint(n, f"sim://{n}/v1") for n in by_name])),
            transport=SimTransport(by_name),
            metrics=RoutingMetrics(CollectorRegistry()),
            timeout=600.0,
            max_output_tokens=2048,
            rng=random.Random(1),
            stream=stream,
        )
        used = [0]
        rng = random.Random(7)

        async def task(i: int) -> None:
            await asyncio.sleep(rng.uniform(0, 60))
            for step in range(steps):
                msgs = [{"role": "user", "content": f"task {i} step {step}: say something"}]
                reply = await client.complete(
                    ModelRequest(messages=msgs, task_id=f"t{i}", root_id=f"t{i}", step=step, kind="step")
                )
                used[0] += reply.usage.total
                await asyncio.sleep(rng.uniform(0.1, 1.0))

        await asyncio.gather(*(task(i) for i in range(tasks)))
        await asyncio.sleep(120.0)  # losers the engines run on finish
        computed = sum(r.stats().prompt_tokens + r.stats().generation_tokens for r in sims)
        sent = sum(r.calls for r in sims)
        orphans = sum(r.orphans for r in sims)
        await client.close()
        for r in sims:
            await r.stop()
        return computed / used[0] - 1.0, sent / (tasks * steps) - 1.0, orphans

    return run_virtual(main())


@pytest.mark.parametrize("stream", [False, True], ids=["whole-call", "first-token"])
@pytest.mark.parametrize("abort", [False, True], ids=["runs-losers-on", "aborts"])
def test_hedges_stay_within_the_extra_load_whether_the_engine_aborts_losers_or_not(stream: bool, abort: bool) -> None:
    # Before the budget counted tokens, the whole-call rows cost 15.1% (runs on) and 7.1% (aborts,
    # its losers caught late in long answers) extra tokens for 4.9% extra calls.
    load, calls, orphans = extra_load(stream=stream, abort=abort)
    assert (
        orphans >= 5 if not abort else orphans == 0
    )  # hedging happened, and its losers ran on where the engine does not abort
    # 5%, plus what one loser may overdraw at the end (the budget charges losers after the race).
    assert load <= 0.06, f"losers cost {load:.1%} extra tokens ({calls:.1%} extra calls)"
    assert calls <= 0.06, f"{calls:.1%} extra calls"
