"""The asyncio layers (runner, replica, faults) on the simulated clock: no sockets, no waiting."""

from __future__ import annotations

import asyncio
import time

import pytest

from agentfleet_sim import (
    ApiError,
    EngineConfig,
    FaultConfig,
    Replica,
    ReplicaConfig,
    run_virtual,
    start_replicas,
)

FAST = EngineConfig(served_name="m", max_model_len=8192, kv_cache_tokens=65536, output_tokens_median=50)


def chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def test_virtual_loop_skips_waiting() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(asyncio.sleep(3600), asyncio.wait_for(asyncio.sleep(10), timeout=20))
        return loop.time() - start

    wall = time.monotonic()
    assert run_virtual(main()) == pytest.approx(3600)
    assert time.monotonic() - wall < 2


def test_simulated_hour_of_traffic_runs_fast_and_is_deterministic() -> None:
    async def main() -> tuple[int, int, float]:
        (replica,) = await start_replicas(1, ReplicaConfig(engine=FAST))
        loop = asyncio.get_running_loop()

        async def user(i: int) -> int:
            total = 0
            for step in range(6):
                await asyncio.sleep(60 + i)  # think/tool time
                done = await replica.generate([7] * 500 + [i] * (50 * step + 10), max_tokens=100)
                total += done.completion_tokens
            return total

        tokens = sum(await asyncio.gather(*(user(i) for i in range(40))))
        return tokens, replica.stats().prefix_hits, loop.time()

    wall = time.monotonic()
    first = run_virtual(main())
    assert time.monotonic() - wall < 20
    assert first == run_virtual(main())
    assert first[1] > 0 and first[2] > 360


def test_startup_delay_then_ready() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST, startup_seconds=120))
        assert not replica.ready
        await replica.start()
        assert not replica.ready
        with pytest.raises(ApiError) as err:
            await replica.completion(chat("hi"))
        assert err.value.status == 503
        await asyncio.sleep(120)
        assert replica.ready
        response = await replica.completion(chat("hi", max_tokens=5))
        assert isinstance(response, dict) and response["usage"]["completion_tokens"] <= 5
        await replica.stop()

    run_virtual(main())


def test_calls_while_loading_are_counted() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST, startup_seconds=60))
        await replica.start()
        for _ in range(2):
            with pytest.raises(ApiError):
                await replica.completion(chat("hi"))
        await asyncio.sleep(60)
        await replica.completion(chat("hi", max_tokens=5))
        assert replica.calls_while_loading == 2 and replica.state()["calls_while_loading"] == 2
        await replica.stop()

    run_virtual(main())


def test_error_rate_slow_calls_and_added_latency() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST, faults=FaultConfig(error_rate=1.0)))
        await replica.start()
        with pytest.raises(ApiError) as err:
            await replica.completion(chat("x"))
        assert err.value.status == 500
        replica.configure(error_rate=0.0)
        loop = asyncio.get_running_loop()

        async def timed(content: str) -> float:
            t0 = loop.time()
            await replica.completion(chat(content, max_tokens=40, ignore_eos=True))
            return loop.time() - t0

        base = await timed("same prompt")
        replica.configure(slow_fraction=1.0, slow_factor=10.0)
        assert await timed("same prompt") == pytest.approx(10 * base, rel=0.05)
        replica.configure(slow_fraction=0.0, added_latency_s=2.5)
        assert await timed("same prompt") == pytest.approx(base + 2.5, rel=0.05)
        with pytest.raises(ValueError):
            replica.configure(error_rate=2.0)
        with pytest.raises(ValueError):
            replica.configure(bogus=1)
        await replica.stop()

    run_virtual(main())


def test_slow_fraction_hits_about_that_share_of_calls() -> None:
    async def main() -> int:
        faults = FaultConfig(slow_fraction=0.05, slow_factor=10.0, seed=3)
        replica = Replica(ReplicaConfig(engine=FAST, faults=faults))
        await replica.start()
        loop = asyncio.get_running_loop()
        slow = 0
        for i in range(400):
            t0 = loop.time()
            await replica.generate([5, 6, 7, i], max_tokens=4, ignore_eos=True)
            slow += loop.time() - t0 > 0.3
        await replica.stop()
        return slow

    assert 8 <= run_virtual(main()) <= 35


def test_hang_blocks_until_the_client_gives_up() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST, faults=FaultConfig(hang=True)))
        await replica.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(replica.completion(chat("x")), timeout=30)
        assert replica.ready  # a hung replica still looks healthy: the case timeouts must catch
        await replica.stop()

    run_virtual(main())


def test_drain_refuses_new_calls_and_finishes_running_ones() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        running = asyncio.create_task(replica.completion(chat("long one", max_tokens=300, ignore_eos=True)))
        await asyncio.sleep(0.5)
        assert replica.inflight == 1
        replica.drain()
        assert not replica.ready
        with pytest.raises(ApiError) as err:
            await replica.completion(chat("new"))
        assert err.value.status == 503
        response = await running
        assert response["choices"][0]["finish_reason"] == "length"  # type: ignore[index]
        assert replica.inflight == 0
        await replica.stop()

    run_virtual(main())


def test_streaming_chunks_match_the_full_response_and_abort_on_close() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        full = await replica.completion(chat("stream me", max_tokens=12, ignore_eos=True))
        stream = await replica.completion(
            chat("stream me", max_tokens=12, ignore_eos=True, stream=True, stream_options={"include_usage": True})
        )
        chunks = [c async for c in stream]  # type: ignore[union-attr]
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == full["choices"][0]["message"]["content"]  # type: ignore[index]
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 12
        # A client that stops reading early aborts the engine request.
        stream = await replica.completion(chat("another", max_tokens=200, ignore_eos=True, stream=True))
        async for _ in stream:  # type: ignore[union-attr]
            break
        await stream.aclose()  # type: ignore[union-attr]
        await asyncio.sleep(0)
        assert replica.stats().request_success["abort"] == 1
        assert not replica.engine.has_work()
        await replica.stop()

    run_virtual(main())


def test_openai_validation_errors() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        cases = [
            ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404),
            ({"model": "m", "messages": []}, 400),
            ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400),
            ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 9000}, 400),
            ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400),
        ]
        for body, status in cases:
            with pytest.raises(ApiError) as err:
                await replica.completion(body)
            assert err.value.status == status, body
            assert err.value.body()["error"]["code"] == status
        done = await replica.completion({"model": "m", "prompt": "once upon a time"}, kind="completion")
        assert done["object"] == "text_completion" and done["usage"]["completion_tokens"] <= 16  # type: ignore[index]
        await replica.stop()

    run_virtual(main())


def test_stopping_a_replica_fails_waiting_and_streaming_calls() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        waiting = asyncio.create_task(replica.completion(chat("a", max_tokens=500, ignore_eos=True)))
        stream = await replica.completion(chat("b", max_tokens=500, ignore_eos=True, stream=True))
        await stream.__anext__()  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        await replica.stop()
        with pytest.raises(ApiError) as err:
            await waiting
        assert err.value.status == 503
        with pytest.raises(ApiError):
            async for _ in stream:  # type: ignore[union-attr]
                pass
        assert not replica.ready

    run_virtual(main())
