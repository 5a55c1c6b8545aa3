"""One streamed attempt with its hedges, decided on time to first token and on stalls.

A stalled queue or a slow replica shows in the first token long before the whole answer is late,
and the first token's latency varies far less than the answer's (which grows with its length),
so the hedge fires earlier and on fewer false alarms than a hedge on the whole call:

1. Start the call on the task's replica; wait for its first token until a call sent to that
   replica after it gets its own first (overtake.py: the call is slow for reasons of its own), or
   the replica is judged stalled (stallwatch.py), or ``hedge_in_order_factor`` times the kind's
   TTFT percentile (hedgeAfterPercentile of the first tokens seen, per kind) has passed, whichever
   comes first. A call late with its replica's whole queue gains little from a duplicate that
   computes the task's history cold elsewhere, hence the factor.
2. No first token by then: start the same call on the next replica, budget permitting. A hedge the
   budget denies is asked for again while the first token is still missing (``retry_after``): a
   queue that stalls holds its calls far past the percentile, and the budget refills meanwhile
   (the steady tail's hedges drain it; a stall's calls must not be left waiting because they
   asked once, at the worst moment).
3. The attempt that produces a first token first wins; the other is cancelled at that moment
   (the engine aborts it, so the loser costs only its queue time and prefill). On an engine that
   does not abort (abortwatch.py) the loser would run to the end anyway, so both race to the end
   and the first complete answer wins.
4. Past its first token, alone again, the call can still stall with its replica (the first-token
   hedge is behind it): when the replica is judged stalled it is hedged once more, to the first
   other replica not judged stalled, and the first whole answer wins.
5. Only the winner's text reaches ``delta_sink`` (buffered until it wins); a later winner sends
   only what the earlier one had not (the same prompt writes the same text).
6. The hedge budget is charged each loser's cost (hedging.py): nothing more where the engine was
   seen to abort it at the winner's first token, its completion where it was cancelled at the
   winner's answer, a whole call where it runs on (or may).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Hashable
from typing import Any

from agentfleet_runtime.core.types import ModelReply
from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.hedging import loser_cost
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import StreamObserver, delta_sink

# Calls of one engine step get their first tokens within this of each other over separate streams.
OVERTAKE_GRACE_S = 0.05


class AttemptFailed(Exception):
    """An attempt's failure with the replicas it used (for the failover order)."""

    def __init__(self, error: ModelError, replicas: list[str]) -> None:
        super().__init__(str(error))
        self.error = error
        self.replicas = replicas


def ttft_kind(kind: str) -> str:
    return kind + ":ttft"


class _Attempt:
    __slots__ = ("buffer", "endpoint", "first", "observer", "started", "task", "written")

    def __init__(self, endpoint: Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.endpoint = endpoint
        self.first: asyncio.Future[float] = loop.create_future()
        self.buffer: list[str] | None = []  # text before this attempt won; None once it has
        self.started = loop.time()
        self.written = 0  # characters of its text so far
        self.task: asyncio.Task[ModelReply]


async def hedged_stream(
    client: Any, pool: ReplicaPool, order: list[Endpoint], req: ModelRequest, body: dict[str, Any], timeout: float
) -> tuple[ModelReply, str]:
    """``client``: the RoutingModelClient (its ``_call``, ``metrics`` and ``aborts``)."""
    return await HedgedStream(client, pool, order, req, body, timeout).run()


class HedgedStream:
    """One streamed call: its first attempt and the hedges raced against it, as named steps.

    ``run``: launch the first attempt; hedge on its first token (``_hedge_on_first_token``); then,
    until an attempt answers or all failed: crown the first attempt to write a first token and stop
    the losers the engine aborts (``_crown_first_token``), hedge a crowned call whose replica stalls
    (``_hedge_midstream``), wait for progress, and take an answer or a failure (``_collect``).
    ``_settle`` charges the budget what the race cost and cancels what is left, however it ended."""

    def __init__(
        self,
        client: Any,
        pool: ReplicaPool,
        order: list[Endpoint],
        req: ModelRequest,
        body: dict[str, Any],
        timeout: float,
    ) -> None:
        self.client = client
        self.pool = pool
        self.order = order
        self.req = req
        self.body = body
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.sink = delta_sink.get()
        self.started = self.loop.time()
        self.attempts: list[_Attempt] = []
        self.live: list[_Attempt] = []  # attempts still running and still in the race
        self.winner: _Attempt | None = None  # the attempt whose text the sink gets
        self.handed = ""  # the text handed to the sink so far
        self.quiet = False  # a later winner's text differs from what was handed: the task's answer says the rest
        self.delay: float | None = None  # the first-token hedge delay; None: no hedging for this call
        self.advance: float | None = None  # the budget's advance for the hedge whose race is still on
        self.race: list[_Attempt] = []  # the two attempts of the hedge whose advance is unsettled
        self.aborted: list[_Attempt] = []  # losers cancelled at the winner's first token on an engine seen to abort
        self.cost: float | None = None  # what the race's loser cost, once an answer says
        self.midstream = False  # a hedge started after the call's first token (its replica stalled)
        self.errors: list[ModelError] = []

    async def run(self) -> tuple[ModelReply, str]:
        first = self._launch(self.order[0], self.timeout)
        try:
            await self._hedge_on_first_token(first)
            self.live = list(self.attempts)
            while self.live:
                if self.winner is None:
                    await self._crown_first_token()
                if self._may_hedge_midstream():
                    await self._hedge_midstream()
                await self._wait_for_progress()
                answer = self._collect(first)
                if answer is not None:
                    return answer
            if len(self.attempts) > 1:
                self._count("failed")
            raise AttemptFailed(self.errors[0], [a.endpoint.name for a in self.attempts])
        finally:
            await self._settle()

    # -- attempts and the sink -------------------------------------------------------------------

    def _launch(self, endpoint: Endpoint, left: float) -> _Attempt:
        a = _Attempt(endpoint, self.loop)
        on_text = functools.partial(self._text, a) if self.sink is not None else None
        a.observer = StreamObserver(functools.partial(self._first_token, a), on_text)
        a.task = asyncio.create_task(self.client._call(self.pool, endpoint, self.req.kind, self.body, left, a.observer))
        self.attempts.append(a)
        return a

    def _left(self, now: float) -> float:
        return max(0.001, self.timeout - (now - self.started))

    def _first_token(self, a: _Attempt) -> None:
        if not a.first.done():
            a.first.set_result(self.loop.time())
            self.pool.quantile(ttft_kind(self.req.kind)).add(self.loop.time() - a.started)

    def _text(self, a: _Attempt, text: str) -> None:
        if a.buffer is None:
            self._hand(a, text)
        else:
            a.buffer.append(text)

    def _hand(self, a: _Attempt, piece: str) -> None:
        """The winner's next piece. A winner after another attempt wrote (a failed one, a stalled
        one) repeats that text (the same prompt, at temperature 0 alike): only what is new goes."""
        at = a.written
        a.written += len(piece)
        if self.quiet or self.sink is None:
            return
        overlap = self.handed[at : at + len(piece)]
        if not piece.startswith(overlap):
            self.quiet = True
            return
        if len(piece) > len(overlap):
            self.sink(piece[len(overlap) :])
            self.handed += piece[len(overlap) :]

    def _crown(self, a: _Attempt) -> None:
        self.winner = a
        for piece in a.buffer or ():
            self._hand(a, piece)
        a.buffer = None

    def _count(self, outcome: str) -> None:
        self.client.metrics.hedges.labels(self.pool.tier.name, outcome).inc()

    def _denied(self) -> None:  # counted once per call
        self._count("denied")

    # -- the steps ---------------------------------------------------------------------------------

    async def _hedge_on_first_token(self, first: _Attempt) -> None:
        """Wait for the first attempt's first token until a hedge comes due and is granted; then
        race a duplicate on the next replica."""
        self.delay = _ttft_delay(self.client, self.pool, self.req.kind) if len(self.order) > 1 else None
        if self.delay is None:
            return
        self.advance = await hedge_due(
            self.pool,
            self.order[0].name,
            {first.first, first.task},
            self.started,
            self.delay,
            self.timeout,
            self._denied,
            attempt=first.observer,
            in_order=self.pool.settings.hedge_in_order_factor,
        )
        if self.advance is not None:
            self.race = [first, self._launch(self.order[1], self._left(self.loop.time()))]

    async def _crown_first_token(self) -> None:
        """The attempt that wrote a first token first wins. The engine aborts the loser: stop it now.
        One that does not: let it race on to the end."""
        firsts = [a for a in self.live if a.first.done()]
        if not firsts:
            return
        a = min(firsts, key=lambda x: x.first.result())
        self._crown(a)
        losers = [b for b in self.live if b is not a and self.client.aborts(self.pool, b.endpoint)]
        self.aborted += [b for b in losers if self.client.seen_aborting(self.pool, b.endpoint)]
        for b in losers:
            b.task.cancel()
            self.live.remove(b)
        if losers:
            await asyncio.gather(*(b.task for b in losers), return_exceptions=True)
        if losers and self.advance is not None and all(b in self.aborted for b in losers):
            # Aborted at the winner's first token, the loser costs nothing more (loser_cost,
            # share 0): the race is settled, and the call may hedge again if it stalls.
            self.pool.budget.settle(self.advance, 0.0)
            self.advance = None

    def _may_hedge_midstream(self) -> bool:
        return (
            self.winner is not None
            and self.live == [self.winner]
            and self.advance is None
            and self.delay is not None
            and not self.midstream
        )

    async def _hedge_midstream(self) -> None:
        """Past its first token the call can still stall with its replica: hedge then, to the first
        other replica not judged stalled; the first whole answer wins."""
        a = self.winner
        assert a is not None
        self.advance = await hedge_due(
            self.pool,
            a.endpoint.name,
            {a.task},
            self.started,
            math.inf,
            self.timeout,
            self._denied,
            retry_base=self.delay,
        )
        if self.advance is None:
            return
        self.midstream = True
        now = self.loop.time()
        others = [e for e in self.order if e.name != a.endpoint.name]
        to = next((e for e in others if not self.pool.stalled(e.name, now)), others[0])
        self.race = [a, self._launch(to, self._left(now))]
        self.live.append(self.race[1])

    async def _wait_for_progress(self) -> None:
        waits: set[asyncio.Future[Any]] = {a.task for a in self.live}
        if self.winner is None:
            waits |= {a.first for a in self.live}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    def _collect(self, first: _Attempt) -> tuple[ModelReply, str] | None:
        """Take the finished attempts: the first answer wins the call; a failure leaves the rest racing."""
        for a in [a for a in self.live if a.task.done()]:
            self.live.remove(a)
            exc = a.task.exception()
            if exc is None:
                if self.winner is not a:
                    self._crown(a)
                reply = a.task.result()
                if len(self.attempts) > 1:
                    self._count("lost" if a is first else "won")
                if self.advance is not None:
                    self.cost = self._loser_cost(a, reply)
                return reply, a.endpoint.name
            self.errors.append(exc if isinstance(exc, ModelError) else ModelError(str(exc)))
            if self.winner is a:
                self.winner = None
        return None

    def _loser_cost(self, a: _Attempt, reply: ModelReply) -> float | None:
        """What the race's other attempt cost, now that ``a`` answered; None: a failed loser keeps
        the advance."""
        loser = self.race[0] if a is self.race[1] else self.race[1]
        t = loser.task
        if t.done() and not t.cancelled() and t.exception() is not None:
            return None
        u = reply.usage
        if self.midstream:  # cancelled in _settle, at this answer: it may have written it all
            return loser_cost(
                u.prompt_tokens, u.completion_tokens, aborted=self.client.seen_aborting(self.pool, loser.endpoint)
            )
        return loser_cost(u.prompt_tokens, u.completion_tokens, aborted=loser in self.aborted, share=0.0)

    async def _settle(self) -> None:
        if self.advance is not None:
            self.pool.budget.settle(self.advance, self.advance if self.cost is None else self.cost)
        left_over = [a for a in self.attempts if not a.task.done()]
        for a in left_over:
            a.task.cancel()
        if left_over:
            await asyncio.gather(*(a.task for a in left_over), return_exceptions=True)


async def hedge_due(
    pool: ReplicaPool,
    replica: str,
    watch: set[asyncio.Future[Any]],
    started: float,
    delay: float,
    timeout: float,
    on_denied: Callable[[], None],
    retry_base: float | None = None,
    attempt: Hashable | None = None,
    in_order: float = 1.0,
) -> float | None:
    """Wait on ``watch`` (a first token, an answer) for a hedge to come due and be granted: the
    budget's advance, or None once something in ``watch`` is done or no hedge can start before
    ``timeout`` (from ``started``). Due ``in_order`` times ``delay`` after the start (the call waits
    its turn in its replica's queue); at once when ``replica`` is judged stalled (stallwatch.py: a
    call there waits for nothing the percentile foretold; ``delay`` with not one token from
    ``replica`` since the start judges it); or ``OVERTAKE_GRACE_S`` after a call sent to
    ``replica`` later than ``attempt`` got its first token first (overtake.py: the call is slow for
    reasons of its own). A denied hedge is asked for again ``retry_after(retry_base or delay)``
    later; ``on_denied`` hears the first denial."""
    loop = asyncio.get_running_loop()
    due = started + delay * in_order
    denied = False
    await asyncio.sleep(0)  # the attempt just launched counts itself in flight (its _call's first step)
    overtaken = pool.overtakes.overtaken(replica, attempt) if attempt is not None else None

    def overtaken_at() -> float | None:
        if overtaken is None or not overtaken.done() or overtaken.cancelled():
            return None
        return overtaken.result() + OVERTAKE_GRACE_S

    try:
        while True:
            now = loop.time()
            # Look again at least once a percentile: another call's deadline may judge the replica
            # stalled meanwhile (this one may have nothing decoding there to set one of its own).
            at = min(due, now + delay)
            if not denied:  # after a denial only the retry's time counts: both signals stay on
                stall_at = pool.stall_deadline(replica)
                if stall_at is not None:
                    at = min(at, max(now, stall_at))
                passed = overtaken_at()
                if passed is not None:
                    at = min(at, max(now, passed))
            if at - started >= timeout:
                if denied or overtaken is None or overtaken.done():
                    return None  # nothing can come due before the timeout
                at = started + timeout  # only an overtake can: watch for one until then
            waits = set(watch)
            if overtaken is not None and not overtaken.done() and not denied:
                waits.add(overtaken)
            done, _ = await asyncio.wait(waits, timeout=max(0.0, at - now), return_when=asyncio.FIRST_COMPLETED)
            if done & watch:
                return None
            if done:
                continue  # overtaken: due once the grace has passed
            now = loop.time()
            if now - started >= timeout:
                return None
            if attempt is not None and not denied and now >= started + delay:
                # A percentile gone and not one token from the replica since the send: nothing
                # decodes there for the stall watch to judge, and its queue does not move.
                pool.judge_silent(replica, started, now)
            passed = overtaken_at()
            if now < due and not pool.stalled(replica, now) and (denied or passed is None or now < passed):
                continue  # woke to look for a stall or an overtake and found neither
            advance = pool.budget.try_spend()
            if advance is not None:
                return advance
            if not denied:
                on_denied()
            denied = True
            due = now + retry_after(delay if retry_base is None else retry_base)
    finally:
        if overtaken is not None and not overtaken.done():
            overtaken.cancel()


def retry_after(delay: float) -> float:
    """How soon a call whose hedge was denied asks the budget again: half the hedge delay, at
    least 50 ms (a refill takes calls answered meanwhile; asking more often finds nothing new)."""
    return max(0.05, delay / 2)


def _ttft_delay(client: Any, pool: ReplicaPool, kind: str) -> float | None:
    if not pool.settings.hedging:
        return None
    value = pool.quantile(ttft_kind(kind)).value()
    if value is not None:
        client.metrics.hedge_threshold.labels(pool.tier.name, ttft_kind(kind)).set(value)
    return value
