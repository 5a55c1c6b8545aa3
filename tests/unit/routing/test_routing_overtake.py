"""The overtake watch (routing/overtake.py): which calls waiting for a first token a later call on
the same replica has passed, and when; and the client's bookkeeping that feeds it, through a race.
Virtual clock: the times are exact."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.hedging import HedgeBudget
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.overtake import OvertakeWatch
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual


def test_first_tokens_in_the_order_the_calls_left_overtake_nobody() -> None:
    w = OvertakeWatch()
    for key in "abc":
        w.sent("r1", key)
    for t, key in enumerate("abc"):
        w.first_token("r1", key, float(t))
    assert w.overtakes == 0 and w.queues["r1"].overtaken == {} and not w.queues["r1"].waiting


def test_a_later_calls_first_token_marks_every_earlier_one_still_waiting_and_no_later_one() -> None:
    w = OvertakeWatch()
    for key in "abcd":
        w.sent("r1", key)
    w.sent("r2", "x")  # another replica's queue is its own
    w.first_token("r1", "a", 1.0)
    w.first_token("r1", "c", 2.5)
    q = w.queues["r1"]
    assert q.overtaken == {"b": 2.5} and list(q.waiting) == ["d"] and w.overtakes == 1
    assert list(w.queues["r2"].waiting) == ["x"]
    w.first_token("r1", "b", 3.0)  # its own first token at last: no longer overtaken, nobody else is
    assert q.overtaken == {} and w.overtakes == 1


def test_the_future_resolves_at_the_overtake_and_is_done_at_once_for_a_call_already_passed() -> None:
    async def main() -> tuple[float, float, bool, bool]:
        w = OvertakeWatch()
        for key in "abc":
            w.sent("r1", key)
        fut_a = w.overtaken("r1", "a")
        assert fut_a is not None and not fut_a.done()
        w.first_token("r1", "b", 4.0)
        late = w.overtaken("r1", "a")  # asked again after the fact
        assert late is not None
        return await fut_a, late.result(), w.overtaken("r1", "b") is None, w.overtaken("r9", "a") is None

    assert run_virtual(main()) == (4.0, 4.0, True, True)


def test_a_call_that_ends_or_a_replica_that_leaves_cancels_its_waiters_and_is_forgotten() -> None:
    async def main() -> tuple[bool, bool, bool]:
        w = OvertakeWatch()
        w.sent("r1", "a")
        w.sent("r1", "b")
        fut_a = w.overtaken("r1", "a")
        w.finished("r1", "a")  # cancelled before its first token: it leaves the queue
        w.first_token("r1", "b", 1.0)
        w.sent("r2", "c")
        fut_c = w.overtaken("r2", "c")
        w.forget("r2")
        await asyncio.sleep(0)
        assert fut_a is not None and fut_c is not None
        return fut_a.cancelled(), fut_c.cancelled(), w.overtakes == 0 and "r2" not in w.queues

    assert run_virtual(main()) == (True, True, True)


class FirstTokenAfter:
    """A transport that writes a request's first token ``slow`` s after it arrives when its prompt
    says "slow" on its first replica, else ``fast`` s after, then answers; it records each request."""

    def __init__(self, slow: float, fast: float) -> None:
        self.slow, self.fast = slow, fast
        self.sent: list[tuple[str, str, float]] = []  # replica, prompt, when

    async def stream(self, endpoint: Endpoint, body: dict[str, Any], timeout: float, observer: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        prompt = body["messages"][0]["content"]
        first_time = not any(p == prompt for _, p, _ in self.sent)
        self.sent.append((endpoint.name, prompt, round(loop.time(), 6)))
        await asyncio.sleep(self.slow if "slow" in prompt and first_time else self.fast)
        observer.on_progress()
        observer.on_first()
        return {
            "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1},
        }

    async def close(self) -> None:
        return None


def test_a_call_a_later_call_on_its_replica_overtakes_is_hedged_at_once_through_the_client() -> None:
    # The first-token percentile is 1 s, so a call nothing overtakes would be hedged at 4 s. Task
    # a's call is slow on its replica (first token at 10 s); task b, of the same root and so the
    # same replica, is sent at 0.2 s and gets its first token at 0.3 s: the client's bookkeeping
    # tells the race that a was overtaken, and a's hedge leaves at 0.35 s for the other replica.
    transport = FirstTokenAfter(slow=10.0, fast=0.1)
    eps = [Endpoint(n, f"http://{n}/v1") for n in ("r0", "r1")]
    client = RoutingModelClient(
        (Tier("big", "big", RoutingSettings(hedging=True)), StaticSource(eps)),
        transport=transport,
        metrics=RoutingMetrics(CollectorRegistry()),
        rng=random.Random(0),
        stream=True,
    )  # type: ignore[arg-type]
    pool = client.primary
    for _ in range(50):
        pool.quantile("step:ttft").add(1.0)
    pool.budget = HedgeBudget(0.05, credit=2.0, tokens=500.0, mean=100.0)
    ended: dict[str, float] = {}

    async def call(task: str, prompt: str, at: float) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(at)
        await client.complete(
            ModelRequest(messages=[{"role": "user", "content": prompt}], task_id=task, root_id="root", kind="step")
        )
        ended[task] = round(loop.time(), 6)

    async def main() -> None:
        await asyncio.gather(call("a", "slow", 0.0), call("b", "fast", 0.2))
        await client.close()

    run_virtual(main())
    home = transport.sent[0][0]
    other = "r1" if home == "r0" else "r0"
    assert transport.sent == [(home, "slow", 0.0), (home, "fast", 0.2), (other, "slow", 0.35)]
    assert ended == {"a": 0.45, "b": 0.3}
    assert pool.overtakes.overtakes == 1
