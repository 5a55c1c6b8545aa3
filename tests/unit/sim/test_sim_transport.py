"""The simulator's transport for the model client (agentfleet_sim.transport): errors map as
HttpTransport maps statuses, streams fold into the body a plain call returns, a replica that stops
mid-stream is a retryable failure, and it is the only in-process transport in the tree."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from agentfleet_runtime.model.client import ModelError
from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import StreamObserver
from agentfleet_sim import ApiError, EngineConfig, Replica, ReplicaConfig, run_virtual
from agentfleet_sim.transport import SimTransport, Streamed, replica_name

ROOT = Path(__file__).resolve().parents[3]
FAST = EngineConfig(served_name="m", max_model_len=8192, kv_cache_tokens=65536, output_tokens_median=50)
EP = Endpoint("r0", "sim://r0/v1")


def chat(content: str, **extra: object) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


class Refusing:
    """A replica that answers every call with one status."""

    def __init__(self, status: int) -> None:
        self.status = status

    async def completion(self, body: Any) -> Any:
        raise ApiError(self.status, "refused")


@pytest.mark.parametrize(
    ("status", "retry_429", "retryable"),
    [
        (429, True, True),
        (429, False, False),
        (500, True, True),
        (503, False, True),
        (408, True, True),
        (409, True, True),
        (400, True, False),
        (404, True, False),
    ],
)
def test_statuses_map_to_retryable_as_over_http(status: int, retry_429: bool, retryable: bool) -> None:
    async def main() -> None:
        transport = SimTransport({"r0": Refusing(status)}, retry_429=retry_429)  # type: ignore[dict-item]
        for call in (
            transport.send(EP, chat("x"), 5.0),
            transport.stream(EP, chat("x"), 5.0, StreamObserver(lambda: None)),
        ):
            with pytest.raises(ModelError) as info:
                await call
            assert (info.value.status, info.value.retryable) == (status, retryable)
            assert str(info.value) == f"r0 answered {status}: refused"

    asyncio.run(main())


def test_a_stream_folds_into_the_plain_body_and_is_recorded() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        transport = SimTransport({"r0": replica}, record=True)
        loop = asyncio.get_running_loop()
        plain = await transport.send(EP, chat("same", max_tokens=12, ignore_eos=True), 5.0)
        firsts: list[float] = []
        texts: list[str] = []
        began = loop.time()
        streamed = await transport.stream(
            EP,
            chat("same", max_tokens=12, ignore_eos=True),
            5.0,
            StreamObserver(lambda: firsts.append(loop.time()), texts.append),
        )
        assert (
            streamed["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"] == "".join(texts)
        )
        assert streamed["usage"]["completion_tokens"] == 12
        assert transport.log == [
            Streamed("r0", chat("same", max_tokens=12, ignore_eos=True), streamed["usage"], firsts[0])
        ]
        assert began < firsts[0] < loop.time()
        assert len(SimTransport({"r0": replica}).log) == 0  # recording is off unless asked for
        assert await transport.abort_count("sim://r0/v1") == 0.0
        await replica.stop()

    run_virtual(main())


def test_a_replica_that_stops_mid_stream_is_a_retryable_failure() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        transport = SimTransport({"r0": replica}, record=True)
        started = asyncio.Event()
        call = asyncio.ensure_future(
            transport.stream(EP, chat("long", max_tokens=400, ignore_eos=True), 60.0, StreamObserver(started.set))
        )
        await started.wait()
        await replica.stop()
        with pytest.raises(ModelError) as info:
            await call
        assert info.value.retryable and info.value.status == 503
        assert transport.log == []

    run_virtual(main())


def test_replica_names_come_from_sim_urls() -> None:
    assert replica_name("sim://r3/v1") == "r3"
    assert replica_name("sim://r3") == "r3"


def test_the_simulator_has_one_transport_for_the_model_client() -> None:
    """Tests and benchmarks plug agentfleet_sim.transport.SimTransport into the client; a second
    adapter (one that calls Replica.completion and raises ModelError) would drift from it."""
    copies = []
    for top in ("tests", "e2e", "runtime"):
        for path in (ROOT / top).rglob("*.py"):
            src = path.read_text()
            if path.name != "transport.py" and re.search(r"\.completion\(", src) and "ModelError(" in src:
                copies.append(str(path.relative_to(ROOT)))
    assert copies == []
