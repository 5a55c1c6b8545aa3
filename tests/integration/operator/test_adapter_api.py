"""The operator's adapter step (controllers/modelreplicaset/adapters.py) against a replica's real
HTTP adapter API: the simulator's, which answers as vLLM's /v1/load_lora_adapter,
/v1/unload_lora_adapter and /v1/models do."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from agentfleet.controllers.modelreplicaset.adapters import AdapterClient, AdapterError, sync_replica
from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.sim import FAST_ENGINE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lora_replica() -> Iterator[FleetThread]:
    fleet = start_fleet(1, engine={**FAST_ENGINE, "max_loras": 2})
    try:
        yield fleet
    finally:
        fleet.stop()


def endpoint(fleet: FleetThread) -> str:
    return fleet.replicas[0].url.removeprefix("http://")


def test_a_replica_is_brought_to_the_list_and_serves_each_adapter(lora_replica: FleetThread) -> None:
    client = AdapterClient(endpoint(lora_replica), api_key=None)
    held, error = sync_replica(client, {"sql": "/adapters/sql", "chat": "/adapters/chat"})
    assert error is None and held == ["chat", "sql"]
    assert client.loaded() == {"sql": "/adapters/sql", "chat": "/adapters/chat"}
    served = openai.OpenAI(base_url=lora_replica.replicas[0].base_url, api_key="sim", max_retries=0, timeout=20)
    reply = served.chat.completions.create(model="sql", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.model == "sql"
    # A removed adapter goes; one whose source moved is loaded again from the new source.
    held, error = sync_replica(client, {"chat": "/adapters/chat-v2"})
    assert error is None and held == ["chat"] and client.loaded() == {"chat": "/adapters/chat-v2"}
    with pytest.raises(openai.NotFoundError):
        served.chat.completions.create(model="sql", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    held, error = sync_replica(client, {})
    assert (held, error) == ([], None) and client.loaded() == {}


def test_a_refusal_and_an_unreachable_replica_are_reported_not_raised(lora_replica: FleetThread) -> None:
    client = AdapterClient(endpoint(lora_replica), api_key=None)
    client.load("dup", "/adapters/dup")
    with pytest.raises(AdapterError) as refused:
        client.load("dup", "/adapters/dup")
    # A fixed text: what the replica answered is in the operator's log, never in the Event.
    assert "HTTP 4xx" in str(refused.value) and "already been loaded" not in str(refused.value)
    client.unload("dup")
    held, error = sync_replica(AdapterClient("127.0.0.1:9", api_key=None, timeout=1.0), {"sql": "/adapters/sql"})
    assert held == [] and error is not None and "/v1/models" in error
