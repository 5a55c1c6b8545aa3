"""A hedged model call in a trace: the routing client against four simulator replicas, spans read
back from Jaeger v2's all-in-one. The chat span holds one attempt span per request sent, the
hedge's loser ends as lost, and the chat span names the replica whose answer was used."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from agentfleet_contract.runtime_config import TracingSettings
from test_routing_http import client_for, req

from agentfleet_runtime.core import tracing
from agentfleet_sim import FleetThread
from e2e.harness import jaeger as jaeger_harness
from e2e.harness.jaeger import Jaeger, tags

pytestmark = pytest.mark.integration
collector = jaeger_harness.collector  # the module's Jaeger (a fixture)


def test_a_hedged_call_shows_both_attempts_and_which_won(fleet4: FleetThread, collector: Jaeger) -> None:
    service = "hedge-" + uuid.uuid4().hex[:8]

    async def body() -> str:
        client, _, _ = client_for(fleet4, hedging=True, hedge_max_extra_percent=50)
        for i in range(60):  # learn the p95 of step calls (~0.1 s) and earn hedge tokens; untraced
            await client.complete(req(f"warm-{i}"))
        model = tracing.traced_model(
            client, tracing.configure(TracingSettings(endpoint=collector.otlp_endpoint), service), "llama-70b"
        )
        home = client.primary.order("slow", 0)[0].name
        handle = next(h for h in fleet4.replicas if h.name == home)
        fleet4.configure(handle.index, added_latency_s=3.0)
        try:
            await model.complete(req("slow"))
        finally:
            fleet4.configure(handle.index, added_latency_s=0.0)
        await asyncio.sleep(0.3)  # the loser's cancellation ends its span
        await asyncio.to_thread(tracing.flush)
        await model.close()
        return home

    home = asyncio.run(body())
    spans = collector.wait_spans(service, lambda s: len(s) >= 3)
    chat = next(s for s in spans if tags(s).get("gen_ai.operation.name") == "chat")
    attempts = {
        tags(s)["agentfleet.attempt.outcome"]: tags(s) for s in spans if s["operationName"].startswith("attempt ")
    }
    assert set(attempts) == {"won", "lost"}, [tags(s) for s in spans]
    assert attempts["lost"]["agentfleet.replica"] == home and attempts["won"]["agentfleet.replica"] != home
    assert tags(chat)["agentfleet.replica"] == attempts["won"]["agentfleet.replica"]
    assert all(s["traceID"] == chat["traceID"] for s in spans)
