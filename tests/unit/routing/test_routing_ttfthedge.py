"""The first-token hedge race (ttfthedge.hedged_stream) against a scripted client, on virtual time:
when the hedge fires and how often a denied one asks again, who wins, which attempt is cancelled,
what the budget is charged and which outcome is counted. Issue 21, the fifth round continued: the client tests
reach this code, but mutation testing runs routing's parts without them (they are slow), so the
race is pinned here on its own. Every figure is worked by hand from the script."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentfleet_runtime.core.types import ModelReply, Usage
from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.hedging import HedgeBudget
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.stallwatch import StallWatch
from agentfleet_runtime.routing.streaming import StreamObserver, delta_sink
from agentfleet_runtime.routing.ttfthedge import AttemptFailed, hedged_stream, retry_after, ttft_kind
from agentfleet_sim import run_virtual

R1, R2 = Endpoint("r1", "http://r1/v1"), Endpoint("r2", "http://r2/v1")
BODY = {"model": "m", "stream": True}


@dataclass
class Script:
    """One replica's answer: first token ``ttft`` s after its start (None: never), the end at
    ``end`` s after its start, or ``error`` raised then."""

    ttft: float | None
    end: float
    text: tuple[str, ...] = ("a", "b")
    error: str | Exception | None = None
    usage: Usage = Usage(10, 20)
    gap: float = 0.0  # between the pieces of text after the first


class Labels:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def labels(self, *labels: str) -> Labels:
        self._labels = labels
        return self

    def inc(self) -> None:
        self.seen.append(self._labels)

    def set(self, value: float) -> None:
        self.seen.append((*self._labels, value))


@dataclass
class Metrics:
    hedges: Labels = field(default_factory=Labels)
    hedge_threshold: Labels = field(default_factory=Labels)


class FakeClient:
    def __init__(self, scripts: dict[str, Script], *, aborts: bool = True, seen: bool = True) -> None:
        self.scripts = scripts
        self._aborts = aborts
        self._seen = seen
        self.metrics = Metrics()
        self.started: list[tuple[str, float, float]] = []  # (replica, time, timeout it was given)
        self.cancelled: list[tuple[str, float]] = []
        self.sunk_at: list[float] = []

    async def _call(
        self, pool: ReplicaPool, endpoint: Endpoint, kind: str, body: dict, left: float, observer: StreamObserver
    ) -> ModelReply:
        assert isinstance(pool, ReplicaPool) and (kind, body) == ("step", BODY)
        loop = asyncio.get_running_loop()
        s = self.scripts[endpoint.name]
        t0 = loop.time()
        self.started.append((endpoint.name, round(t0, 6), round(left, 6)))
        try:
            if s.ttft is not None:
                await asyncio.sleep(s.ttft)
                pool.stalls.progress(endpoint.name, loop.time())  # a token: the real _call tells the stall watch
                observer.fold(None, True, s.text[0])  # type: ignore[arg-type]
                for t in s.text[1:]:
                    if s.gap:
                        await asyncio.sleep(s.gap)
                    pool.stalls.progress(endpoint.name, loop.time())
                    observer.fold(None, False, t)  # type: ignore[arg-type]
            await asyncio.sleep(t0 + s.end - loop.time())
        except asyncio.CancelledError:
            self.cancelled.append((endpoint.name, round(loop.time(), 6)))
            raise
        if isinstance(s.error, Exception):
            raise s.error
        if s.error is not None:
            raise ModelError(s.error)
        return ModelReply("".join(s.text), usage=s.usage)

    def aborts(self, pool: ReplicaPool, endpoint: Endpoint) -> bool:
        assert isinstance(pool, ReplicaPool) and endpoint.name in self.scripts
        return self._aborts

    def seen_aborting(self, pool: ReplicaPool, endpoint: Endpoint) -> bool:
        assert isinstance(pool, ReplicaPool) and endpoint.name in self.scripts
        return self._seen


class Budget(HedgeBudget):
    """A hedge budget that notes when it was asked."""

    asked: list[float]

    def try_spend(self) -> float | None:
        self.asked.append(round(asyncio.get_running_loop().time(), 6))
        return super().try_spend()


def pool_for(
    *, hedging: bool = True, p95: float | None = 1.0, credit: float = 2.0, in_order: float = 1.0
) -> ReplicaPool:
    """A pool whose first-token percentile is ``p95``. A call no later one overtakes waits
    ``in_order`` percentiles: 1 here, so the race's figures read in percentiles; the factor's own
    test asks for the default."""
    settings = RoutingSettings(hedging=hedging, hedge_in_order_factor=in_order)
    pool = ReplicaPool(Tier("t", "m", settings), StaticSource([R1, R2]))
    if p95 is not None:
        for _ in range(50):  # min_samples: the percentile of 50 equal first tokens is that value
            pool.quantile("step:ttft").add(p95)
    budget = Budget(0.05, credit=credit, tokens=500.0, mean=100.0)
    budget.asked = []
    pool.budget = budget
    return pool


def race(
    client: FakeClient,
    pool: ReplicaPool,
    *,
    timeout: float = 30.0,
    order: tuple[Endpoint, ...] = (R1, R2),
    start: float = 0.0,
    sink: bool = True,
) -> tuple[Any, float, list[str]]:
    """hedged_stream's result (or its exception), the virtual time it ended and the text sunk
    (the times of the text in ``client.sunk_at``). The race starts at ``start`` and the loop runs
    on 1 s after it, so an attempt it left running would show."""
    sunk: list[str] = []
    client.sunk_at = []

    async def main() -> tuple[Any, float]:
        loop = asyncio.get_running_loop()

        def to_sink(text: str) -> None:
            sunk.append(text)
            client.sunk_at.append(round(loop.time(), 6))

        if sink:
            delta_sink.set(to_sink)
        await asyncio.sleep(start)
        try:
            out: Any = await hedged_stream(
                client, pool, list(order), ModelRequest(messages=[], kind="step"), BODY, timeout
            )
        except AttemptFailed as e:
            out = e
        at = round(loop.time(), 6)
        await asyncio.sleep(1.0)
        return out, at

    out, at = run_virtual(main())
    return out, at, sunk


def test_the_ttft_kind_and_the_retry_interval() -> None:
    # Pins ttft_kind's suffix and retry_after: half the delay, never under 50 ms.
    assert ttft_kind("step") == "step:ttft"
    assert retry_after(1.0) == 0.5
    assert retry_after(0.06) == 0.05
    assert retry_after(0.1) == 0.05


def test_without_hedging_or_a_second_replica_one_attempt_runs_and_its_first_token_is_measured() -> None:
    # Pins _ttft_delay's hedging switch, the one-replica case (no threshold read, no budget asked) and the first token's
    # latency from the attempt's start (3 s) fed to the ttft quantile.
    for pool, order in ((pool_for(hedging=False, p95=None), (R1, R2)), (pool_for(), (R1,))):
        client = FakeClient({"r1": Script(ttft=5.0, end=6.0)})
        out, at, sunk = race(client, pool, order=order, start=3.0)
        assert (out[0].content, out[1], at) == ("ab", "r1", 9.0)
        assert client.started == [("r1", 3.0, 30.0)] and pool.budget.asked == []  # type: ignore[attr-defined]
        assert client.metrics.hedges.seen == [] and client.metrics.hedge_threshold.seen == []
        assert sunk == ["a", "b"]
    client = FakeClient({"r1": Script(ttft=5.0, end=6.0)})
    pool = pool_for(hedging=False, p95=None)
    race(client, pool, start=3.0)
    q = pool.quantile("step:ttft")
    assert (q.count, q._current.value()) == (1, 5.0)


def test_without_a_sink_text_after_the_first_token_goes_nowhere() -> None:
    # Pins the observer's text callback only with a sink: a call with none still answers.
    client = FakeClient({"r1": Script(ttft=0.5, end=2.0, gap=0.5)})
    out, _, sunk = race(client, pool_for(hedging=False, p95=None), sink=False)
    assert out[0].content == "ab" and sunk == []


def test_a_hedge_that_wins_the_first_token_cancels_an_aborting_loser_and_costs_no_tokens() -> None:
    # Pins the hedge at the p95 delay (its timeout what is left), the cancel at the winner's first token, "won", and
    # settle(advance, 0) for a loser seen aborting.
    pool = pool_for()
    client = FakeClient({"r1": Script(ttft=5.0, end=6.0, text=("x", "y")), "r2": Script(ttft=0.5, end=1.5)})
    out, at, sunk = race(client, pool, start=3.0)
    assert (out[0].content, out[1], at) == ("ab", "r2", 5.5)
    assert client.started == [("r1", 3.0, 30.0), ("r2", 4.0, 29.0)]
    assert client.cancelled == [("r1", 4.5)]
    assert sunk == ["a", "b"]  # only the winner's text
    assert client.metrics.hedge_threshold.seen == [("t", "step:ttft", 1.0)]
    assert client.metrics.hedges.seen == [("t", "won")]
    b = pool.budget
    assert (b.asked, b.credit, b.tokens, b.charged, b.hedges) == ([4.0], 1.0, 500.0, 0.0, 1)  # type: ignore[attr-defined]


def test_a_hedge_started_near_the_timeout_gets_what_is_left_of_it() -> None:
    # Pins the hedge's own timeout: what is left of the call's (1.5 - 1 = 0.5 s here; the 1 ms floor only guards against
    # nothing left).
    client = FakeClient({"r1": Script(ttft=None, end=5.0), "r2": Script(ttft=0.2, end=0.3)})
    out, at, _ = race(client, pool_for(), timeout=1.5)
    assert client.started == [("r1", 0.0, 1.5), ("r2", 1.0, 0.5)]
    assert (out[1], at) == ("r2", 1.3)


def test_two_first_tokens_at_the_same_instant_go_to_the_first_attempt() -> None:
    # Pins the crowning by first-token time over every attempt that has one (a tie keeps the order): r1 at 1.5 s, r2
    # started at 1 s and first at 1.5 s.
    client = FakeClient({"r1": Script(ttft=1.5, end=3.0), "r2": Script(ttft=0.5, end=3.0)})
    out, at, sunk = race(client, pool_for())
    assert (out[1], at, sunk) == ("r1", 3.0, ["a", "b"])
    assert client.cancelled == [("r2", 1.5)]
    assert client.metrics.hedges.seen == [("t", "lost")]


def test_text_streams_from_the_leader_as_it_is_written_and_a_loser_that_never_won_writes_none() -> None:
    # Pins the buffering: r1 leads at 1.2 s and its text goes out as written (1.2, 1.7 s); r2's text, buffered, never
    # goes out when r1 ends first.
    client = FakeClient(
        {"r1": Script(ttft=1.2, end=2.5, text=("x", "y"), gap=0.5), "r2": Script(ttft=0.9, end=3.0)}, aborts=False
    )
    out, at, sunk = race(client, pool_for())
    assert (out[1], at) == ("r1", 2.5)
    assert (sunk, client.sunk_at) == (["x", "y"], [1.2, 1.7])
    assert client.metrics.hedges.seen == [("t", "lost")]


def test_the_first_error_is_kept_as_raised_and_any_other_exception_becomes_a_model_error() -> None:
    # Pins errors[0]: a ModelError (a subclass here) is the very exception; a ValueError is wrapped as ModelError with
    # its text.
    class Overloaded(ModelError):
        pass

    first = Overloaded("r1 overloaded")
    client = FakeClient(
        {"r1": Script(ttft=None, end=2.0, error=first), "r2": Script(ttft=None, end=2.0, error=ValueError("r2 broke"))}
    )
    out, _, _ = race(client, pool_for())
    assert out.error is first
    client = FakeClient(
        {"r1": Script(ttft=None, end=2.0, error=ValueError("boom")), "r2": Script(ttft=None, end=2.0, error="r2 broke")}
    )
    out, _, _ = race(client, pool_for())
    assert type(out.error) is ModelError and str(out.error) == "boom"


def test_an_attempt_answering_first_after_a_hedge_is_lost_and_charged_a_whole_call_unless_seen_aborting() -> None:
    # Pins "lost" for the first attempt winning, and the loser's cost: 10 + 20 tokens when the engine is only assumed to
    # abort, 0 when seen.
    for seen, tokens, charged in ((False, 470.0, 30.0), (True, 500.0, 0.0)):
        pool = pool_for()
        client = FakeClient({"r1": Script(ttft=1.2, end=2.0), "r2": Script(ttft=0.5, end=3.0)}, seen=seen)
        out, at, _ = race(client, pool)
        assert (out[0].content, out[1], at) == ("ab", "r1", 2.0)
        assert client.cancelled == [("r2", 1.2)]
        assert client.metrics.hedges.seen == [("t", "lost")]
        b = pool.budget
        assert (b.tokens, b.charged) == (tokens, charged)


def test_on_an_engine_that_does_not_abort_the_loser_races_on_and_the_first_whole_answer_wins() -> None:
    # Pins no cancel when the engine runs losers on, the re-crowning of the attempt that ends first, and a whole call
    # charged for the loser.
    pool = pool_for()
    client = FakeClient(
        {"r1": Script(ttft=1.2, end=10.0, text=("x",)), "r2": Script(ttft=0.9, end=2.0, text=("a", "b"))},
        aborts=False,
        seen=False,
    )
    out, at, sunk = race(client, pool)
    assert (out[0].content, out[1], at) == ("ab", "r2", 3.0)
    assert client.cancelled == [("r1", 3.0)]  # only once the race is over
    # r1 led on the first token; r2's text on its win does not continue r1's, so the sink goes
    # quiet (the task's answer has the rest) rather than hand the client "xab".
    assert sunk == ["x"]
    assert client.metrics.hedges.seen == [("t", "won")]
    b = pool.budget
    assert (b.tokens, b.charged) == (470.0, 30.0)


def test_a_denied_hedge_is_counted_once_and_asked_for_again_every_half_delay_until_the_first_token() -> None:
    # Pins the retry loop: the budget asked at 1.0, 1.5 and 2.0 s, "denied" once, and no hedge started.
    pool = pool_for(credit=0.0)
    client = FakeClient({"r1": Script(ttft=2.2, end=3.0)})
    out, at, _ = race(client, pool)
    assert (out[1], at) == ("r1", 3.0)
    assert pool.budget.asked == [1.0, 1.5, 2.0]  # type: ignore[attr-defined]
    assert client.metrics.hedges.seen == [("t", "denied")]
    assert client.started == [("r1", 0.0, 30.0)]


@pytest.mark.parametrize(("timeout", "asked"), [(1.0, []), (1.5, [1.0]), (1.6, [1.0, 1.5])])
def test_the_hedge_is_asked_for_only_while_the_next_ask_falls_within_the_timeout(
    timeout: float, asked: list[float]
) -> None:
    # Pins delay < timeout and elapsed + wait < timeout: a delay of 1 s and denials every 0.5 s.
    pool = pool_for(credit=0.0)
    client = FakeClient({"r1": Script(ttft=None, end=5.0)})
    race(client, pool, timeout=timeout, start=3.0)
    assert pool.budget.asked == [t + 3.0 for t in asked]  # type: ignore[attr-defined]


def test_a_first_token_or_an_early_end_before_the_delay_means_no_hedge() -> None:
    # Pins the break on the first attempt's first token or its end inside the delay.
    for script in (Script(ttft=0.5, end=4.0), Script(ttft=None, end=0.5)):
        pool = pool_for()
        client = FakeClient({"r1": script})
        out, at, _ = race(client, pool)
        assert out[1] == "r1" and at == script.end
        assert pool.budget.asked == [] and client.metrics.hedges.seen == []  # type: ignore[attr-defined]


def test_a_loser_that_failed_keeps_the_advance_and_both_failing_raise_the_first_error() -> None:
    # Pins the failed loser and the failure of both (the first error, both replicas named, "failed"): either way the
    # hedge is charged its advance.
    pool = pool_for()
    client = FakeClient({"r1": Script(ttft=None, end=1.2, error="r1 broke"), "r2": Script(ttft=0.5, end=1.0)})
    out, at, _ = race(client, pool)
    assert (out[1], at) == ("r2", 2.0)
    assert client.metrics.hedges.seen == [("t", "won")]
    assert (pool.budget.tokens, pool.budget.charged) == (400.0, 100.0)

    pool = pool_for()
    client = FakeClient(
        {"r1": Script(ttft=None, end=2.0, error="r1 broke"), "r2": Script(ttft=None, end=2.0, error="r2 broke")}
    )
    out, at, _ = race(client, pool)
    assert isinstance(out, AttemptFailed) and at == 3.0
    assert (str(out), str(out.error), out.replicas) == ("r1 broke", "r1 broke", ["r1", "r2"])
    assert client.metrics.hedges.seen == [("t", "failed")]
    assert (pool.budget.tokens, pool.budget.charged) == (400.0, 100.0)


def test_a_winner_that_fails_after_its_first_token_hands_the_race_to_the_other() -> None:
    # Pins the winner reset on failure: the hedge leads on the first token, fails, and the first attempt (aborts=False,
    # so still running) answers.
    pool = pool_for()
    client = FakeClient(
        {"r1": Script(ttft=2.0, end=4.0, text=("x",)), "r2": Script(ttft=0.2, end=0.5, error="r2 broke")}, aborts=False
    )
    out, at, sunk = race(client, pool)
    assert (out[0].content, out[1], at) == ("x", "r1", 4.0)
    assert client.metrics.hedges.seen == [("t", "lost")]
    assert (sunk, client.sunk_at) == (
        ["a", "b"],
        [1.2, 1.2],
    )  # r2's text at its first token; r1's "x" does not continue it
    assert (pool.budget.tokens, pool.budget.charged) == (400.0, 100.0)


def test_a_later_winner_that_repeats_the_text_handed_so_far_hands_only_what_is_new() -> None:
    # Pins hand()'s overlap: r2 led with "a" and failed; r1 (the same answer, later) hands only "b", "c".
    pool = pool_for()
    client = FakeClient(
        {
            "r1": Script(ttft=2.0, end=4.0, text=("a", "b", "c"), gap=0.5),
            "r2": Script(ttft=0.2, end=0.5, text=("a",), error="r2 broke"),
        },
        aborts=False,
    )
    out, at, sunk = race(client, pool)
    assert (out[0].content, out[1], at) == ("abc", "r1", 4.0)
    assert (sunk, client.sunk_at) == (
        ["a", "b", "c"],
        [1.2, 2.5, 3.0],
    )  # r1: "a" at 2.0 (handed already), "b" at 2.5, "c" at 3.0


class Progressing:
    """An observer that first tells the pool's stall and overtake watches of the chunk, as the
    client's _call does."""

    def __init__(self, inner: StreamObserver, pool: ReplicaPool, name: str) -> None:
        self.inner, self.pool, self.name = inner, pool, name
        self.decoding = False

    def fold(self, acc: Any, first: bool, text: str) -> None:
        now = asyncio.get_running_loop().time()
        self.pool.stalls.progress(self.name, now)
        if first:
            self.decoding = True
            self.pool.stalls.first_token(self.name)
            self.pool.overtakes.first_token(self.name, self.inner, now)
        self.inner.fold(acc, first, text)


class TrackingClient(FakeClient):
    """The scripted client with the real _call's bookkeeping for the stall and overtake watches:
    the send and the count in flight, a token per chunk, the first token, and the end of a call."""

    async def _call(
        self, pool: ReplicaPool, endpoint: Endpoint, kind: str, body: dict, left: float, observer: StreamObserver
    ) -> ModelReply:
        name = endpoint.name
        tracked = Progressing(observer, pool, name)
        pool.stalls.sent(name, asyncio.get_running_loop().time(), pool.inflight.get(name, 0))
        pool.overtakes.sent(name, observer)
        pool.inflight[name] = pool.inflight.get(name, 0) + 1
        try:
            return await super()._call(pool, endpoint, kind, body, left, tracked)  # type: ignore[arg-type]
        finally:
            pool.inflight[name] -= 1
            pool.overtakes.finished(name, observer)
            if tracked.decoding:
                pool.stalls.finished(name)


def later_call(pool: ReplicaPool, name: str, sent: float, first: float) -> None:
    """Another task's call sent to ``name`` at ``sent`` s that gets its first token at ``first`` s."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        key = object()
        await asyncio.sleep(sent - loop.time())
        pool.overtakes.sent(name, key)
        await asyncio.sleep(first - loop.time())
        pool.overtakes.first_token(name, key, loop.time())

    asyncio.get_running_loop().create_task(run())


def race_beside(
    client: FakeClient,
    pool: ReplicaPool,
    later: list[tuple[str, float, float]],
    timeout: float = 30.0,
    writes: tuple[float, ...] = (),
) -> tuple[Any, float]:
    """hedged_stream's result and end, with ``later`` calls (later_call's arguments) beside it and
    r1 writing a token (another call's) at each of ``writes``."""

    async def write(at: float) -> None:
        await asyncio.sleep(at)
        pool.stalls.progress("r1", at)

    async def main() -> tuple[Any, float]:
        for args in later:
            later_call(pool, *args)
        for at in writes:
            asyncio.get_running_loop().create_task(write(at))
        await asyncio.sleep(0)
        out = await hedged_stream(client, pool, [R1, R2], ModelRequest(messages=[], kind="step"), BODY, timeout)
        return out, round(asyncio.get_running_loop().time(), 6)

    return run_virtual(main())


def test_a_call_a_later_one_overtakes_on_its_replica_is_hedged_at_the_overtake_not_the_percentile() -> None:
    # The first-token percentile is 5 s; r1 never writes our call's first token. Another task's
    # call, sent to r1 at 0.1 s, gets its first token at 0.3 s: ours is slow for reasons of its
    # own, and r2 starts at 0.35 s (the overtake plus the grace), answering at 0.95 s.
    pool = pool_for(p95=5.0)
    client = TrackingClient({"r1": Script(ttft=None, end=30.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at = race_beside(client, pool, [("r1", 0.1, 0.3)])
    assert (out[1], at) == ("r2", 0.95)
    assert client.started == [("r1", 0.0, 30.0), ("r2", 0.35, 29.65)]
    assert client.cancelled == [("r1", 0.55)]
    assert pool.overtakes.overtakes == 1


def test_a_call_whose_in_order_due_lies_past_its_timeout_is_still_hedged_when_overtaken() -> None:
    # 4 percentiles of 5 s (20 s) lie past the 10 s timeout, so no percentile hedge can start;
    # an overtake at 0.3 s still can, and r2 starts at 0.35 s.
    pool = pool_for(p95=5.0, in_order=4.0)
    client = TrackingClient({"r1": Script(ttft=None, end=9.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at = race_beside(client, pool, [("r1", 0.1, 0.3)], timeout=10.0)
    assert client.started == [("r1", 0.0, 10.0), ("r2", 0.35, 9.65)]
    assert (out[1], at) == ("r2", 0.95)


@pytest.mark.parametrize(
    ("later", "overtaken"),
    [([("r1", 0.1, 0.3)], True), ([("r2", 0.1, 0.3)], False), ([("r1", 0.1, 0.7)], False), ([], False)],
)
def test_only_a_later_call_on_the_same_replica_first_overtakes_and_not_after_the_calls_own_first_token(
    later: list[tuple[str, float, float]], overtaken: bool
) -> None:
    # Our call's first token comes at 0.6 s, the percentile at 5 s, and the budget denies every
    # hedge (so each ask shows). A later call on r1 first at 0.3 s overtakes it: the hedge is
    # asked for at 0.35 s, and the next ask (0.35 + 2.5 s) never comes. One on r2, one on r1
    # first only at 0.7 s, or none at all overtakes nothing, and no hedge is asked for.
    pool = pool_for(p95=5.0, credit=0.0)
    client = TrackingClient({"r1": Script(ttft=0.6, end=0.8)})
    out, at = race_beside(client, pool, later)
    assert (out[1], at) == ("r1", 0.8)
    assert pool.budget.asked == ([0.35] if overtaken else [])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("writes", "hedge_at"), [((0.5,), 4.0), ((), 1.0)])
def test_a_call_not_overtaken_waits_the_in_order_factor_while_its_replica_writes_and_a_silent_one_is_judged(
    writes: tuple[float, ...], hedge_at: float
) -> None:
    # Nothing overtakes our call on r1 (a later call there is still waiting too). When r1 writes
    # another call's token meanwhile (0.5 s) its queue moves and our call waits its turn: the
    # hedge waits the default 4 x the 1 s percentile. When not one token came from r1 in a whole
    # percentile, nothing decodes there for the stall watch and its queue does not move: r1 is
    # judged stalled at 1 s and the call hedged then.
    assert RoutingSettings().hedge_in_order_factor == 4.0
    pool = pool_for(p95=1.0, in_order=RoutingSettings().hedge_in_order_factor)
    client = TrackingClient({"r1": Script(ttft=None, end=30.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at = race_beside(client, pool, [("r1", 0.1, 20.0)], writes=writes)
    assert client.started == [("r1", 0.0, 30.0), ("r2", hedge_at, 30.0 - hedge_at)]
    assert (out[1], at) == ("r2", round(hedge_at + 0.6, 6))
    assert pool.stalls.judged == ({} if writes else {"r1": 1.0})


def test_a_call_looks_again_once_a_percentile_and_is_hedged_when_another_call_got_its_replica_judged() -> None:
    # Nothing decodes on r1 when our call arrives, so it has no stall deadline of its own; r1
    # writes another call's token at 0.5 s, so the call waits for 4 percentiles of 1 s. At 1.5 s
    # another call's deadline judges r1 stalled: our call sees it at its next look (2 s) and is
    # hedged then, not at 4 s.
    pool = pool_for(p95=1.0, in_order=4.0)
    stall_watch_learned(pool)
    client = TrackingClient({"r1": Script(ttft=None, end=30.0), "r2": Script(ttft=0.2, end=0.6)})

    async def judge() -> None:
        await asyncio.sleep(0.5)
        pool.stalls.progress("r1", 0.5)
        await asyncio.sleep(1.0)
        pool.stalls.judged["r1"] = 1.5

    async def main() -> tuple[Any, float]:
        asyncio.get_running_loop().create_task(judge())
        out = await hedged_stream(client, pool, [R1, R2], ModelRequest(messages=[], kind="step"), BODY, 30.0)
        return out, round(asyncio.get_running_loop().time(), 6)

    out, at = run_virtual(main())
    assert client.started == [("r1", 0.0, 30.0), ("r2", 2.0, 28.0)]
    assert (out[1], at) == ("r2", 2.6)


def test_a_call_on_a_replica_judged_stalled_is_hedged_at_once_though_nothing_decodes_there_any_more() -> None:
    # r1 is judged stalled at 0.2 s and the call that decoded there is gone (hedged away): our
    # call, waiting there for its first token, is due at the judgment, not at its percentile (5 s).
    pool = pool_for(p95=5.0)
    stall_watch_learned(pool)
    pool.stalls.judged["r1"] = 0.2
    client = TrackingClient({"r1": Script(ttft=None, end=30.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at = race_beside(client, pool, [])
    assert client.started == [("r1", 0.0, 30.0), ("r2", 0.2, 29.8)]
    assert (out[1], at) == ("r2", 0.8)


def stall_watch_learned(pool: ReplicaPool) -> None:
    """1,000 gaps of 0.1 s between a decoding replica's tokens (another one's): at 4 gaps, a stall
    is 0.4 s without a token."""
    pool.stalls = StallWatch(factor=4.0)
    pool.stalls.progress("r9", -1000.0)
    pool.stalls.first_token("r9")
    for i in range(1, 1001):
        pool.stalls.progress("r9", -1000.0 + i * 0.1)


@pytest.mark.parametrize("learned", [True, False])
def test_a_replica_that_stalls_after_the_first_token_gets_the_call_hedged_and_the_first_whole_answer_wins(
    learned: bool,
) -> None:
    # r1 writes "a" at 0.3 s and then nothing until 20.3 s. Learned, the watch judges r1 stalled at
    # 0.7 s (0.4 s after its last token), past the first-token hedge: r2 starts then, answers at
    # 1.3 s and wins; the sink gets only r2's "b" (its "a" repeats r1's). The loser, cancelled at
    # the answer on an engine seen to abort, is charged its completion (20 tokens).
    pool = pool_for()
    if learned:
        stall_watch_learned(pool)
    client = TrackingClient({"r1": Script(ttft=0.3, end=21.0, gap=20.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at, sunk = race(client, pool)
    if not learned:  # nothing to judge the stall by: the call waits for r1
        assert (out[1], at, client.started) == ("r1", 21.0, [("r1", 0.0, 30.0)])
        return
    assert (out[0].content, out[1], at) == ("ab", "r2", 1.3)
    assert client.started == [("r1", 0.0, 30.0), ("r2", 0.7, 29.3)]
    assert client.cancelled == [("r1", 1.3)]
    assert (sunk, client.sunk_at) == (["a", "b"], [0.3, 1.3])  # r1's "a" as it came, not held for the race
    assert client.metrics.hedges.seen == [("t", "won")]
    assert (pool.budget.tokens, pool.budget.charged, pool.stalls.stalls) == (480.0, 20.0, 1)
    assert pool.stalls.decoding == {"r9": 1, "r1": 0, "r2": 0}


@pytest.mark.parametrize(
    ("learned", "other_decoding", "hedge_at"), [(True, True, 0.4), (True, False, 5.0), (False, True, 5.0)]
)
def test_a_call_waiting_for_its_first_token_on_a_stalled_replica_is_hedged_at_the_judgment_not_the_percentile(
    learned: bool, other_decoding: bool, hedge_at: float
) -> None:
    # The first-token percentile is 5 s; r1 never writes. Another task's call decodes on r1 (its
    # last token at 0 s): learned, the watch judges r1 stalled at 0.4 s and r2 starts then. With
    # nothing decoding on r1 (its calls may be in long prefills) the percentile decides.
    pool = pool_for(p95=5.0)
    if learned:
        stall_watch_learned(pool)
    if other_decoding:
        pool.stalls.progress("r1", 0.0)
        pool.stalls.first_token("r1")
    client = TrackingClient({"r1": Script(ttft=None, end=30.0), "r2": Script(ttft=0.2, end=0.6)})
    out, at, _ = race(client, pool)
    assert (out[1], at) == ("r2", round(hedge_at + 0.6, 6))
    assert client.started == [("r1", 0.0, 30.0), ("r2", hedge_at, 30.0 - hedge_at)]
    assert client.cancelled == [("r1", round(hedge_at + 0.2, 6))]  # at r2's first token


def test_a_call_whose_first_token_hedge_lost_can_hedge_again_when_its_replica_stalls() -> None:
    # The 1 s first-token hedge goes to r2; r1's first token (1.5 s) wins that race and r2, on an
    # engine seen to abort, is cancelled and costs nothing. r1 then writes nothing: judged stalled
    # at 1.9 s, the call hedges again (r2, the other replica), and r2's whole answer (4.4 s) wins.
    pool = pool_for()
    stall_watch_learned(pool)
    client = TrackingClient({"r1": Script(ttft=1.5, end=30.0, gap=20.0), "r2": Script(ttft=2.0, end=2.5)})
    out, at, sunk = race(client, pool)
    assert (out[0].content, out[1], at) == ("ab", "r2", 4.4)
    assert client.started == [("r1", 0.0, 30.0), ("r2", 1.0, 29.0), ("r2", 1.9, 28.1)]
    assert client.cancelled == [("r2", 1.5), ("r1", 4.4)]
    assert (sunk, client.sunk_at) == (["a", "b"], [1.5, 4.4])
    assert client.metrics.hedges.seen == [("t", "won")]
    b = pool.budget
    assert (b.hedges, b.credit, b.tokens, b.charged) == (
        2,
        0.0,
        480.0,
        20.0,
    )  # the first loser settled at 0, the second charged its completion
