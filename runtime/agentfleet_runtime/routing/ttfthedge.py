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
import math
from collections.abc import Callable, Hashable
from typing import Any

from agentfleet_runtime.model import ModelError, ModelRequest
from agentfleet_runtime.routing.hedging import loser_cost
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import StreamObserver, delta_sink
from agentfleet_runtime.types import ModelReply

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
    """``client``: the RoutingModelClient (its ``_call``, ``metrics`` and ``aborts``).

    Long on purpose: the race of the first attempt and its hedges, start to finish, in one place."""
    loop = asyncio.get_running_loop()
    sink = delta_sink.get()
    started = loop.time()
    attempts: list[_Attempt] = []
    winner: list[_Attempt] = []

    def launch(endpoint: Endpoint, left: float) -> _Attempt:
        a = _Attempt(endpoint, loop)

        def on_first() -> None:
            if not a.first.done():
                a.first.set_result(loop.time())
                pool.quantile(ttft_kind(req.kind)).add(loop.time() - a.started)

        def on_text(text: str) -> None:
            if a.buffer is None:
                hand(a, text)
            else:
                a.buffer.append(text)

        a.observer = observer = StreamObserver(on_first, on_text if sink is not None else None)
        a.task = asyncio.create_task(client._call(pool, endpoint, req.kind, body, left, observer))
        attempts.append(a)
        return a

    handed = ""  # the text handed to the sink so far
    quiet = False  # a later winner's text differs from what was handed: the task's answer says the rest

    def hand(a: _Attempt, piece: str) -> None:
        """The winner's next piece. A winner after another attempt wrote (a failed one, a stalled
        one) repeats that text (the same prompt, at temperature 0 alike): only what is new goes."""
        nonlocal handed, quiet
        at = a.written
        a.written += len(piece)
        if quiet or sink is None:
            return
        overlap = handed[at : at + len(piece)]
        if not piece.startswith(overlap):
            quiet = True
            return
        if len(piece) > len(overlap):
            sink(piece[len(overlap) :])
            handed += piece[len(overlap) :]

    def crown(a: _Attempt) -> None:
        winner.append(a)
        for piece in a.buffer or ():
            hand(a, piece)
        a.buffer = None

    first = launch(order[0], timeout)
    advance: float | None = None  # the budget's advance for the hedge whose race is still on
    aborted: list[_Attempt] = []  # losers cancelled at the winner's first token on an engine seen to abort
    cost: float | None = None
    midstream = False  # a hedge started after the call's first token (its replica stalled)
    race: list[_Attempt] = []  # the two attempts of the hedge whose advance is unsettled

    def denied() -> None:  # counted once per call
        client.metrics.hedges.labels(pool.tier.name, "denied").inc()

    try:
        delay = _ttft_delay(client, pool, req.kind) if len(order) > 1 else None
        if delay is not None:
            advance = await hedge_due(
                pool,
                order[0].name,
                {first.first, first.task},
                started,
                delay,
                timeout,
                denied,
                attempt=first.observer,
                in_order=pool.settings.hedge_in_order_factor,
            )
            if advance is not None:
                race = [first, launch(order[1], max(0.001, timeout - (loop.time() - started)))]
        errors: list[ModelError] = []
        live = list(attempts)
        while live:
            if not winner:
                firsts = [a for a in live if a.first.done()]
                if firsts:
                    a = min(firsts, key=lambda x: x.first.result())
                    crown(a)
                    # The engine aborts the loser: stop it now. One that does not: let it race on.
                    losers = [b for b in live if b is not a and client.aborts(pool, b.endpoint)]
                    aborted += [b for b in losers if client.seen_aborting(pool, b.endpoint)]
                    for b in losers:
                        b.task.cancel()
                        live.remove(b)
                    if losers:
                        await asyncio.gather(*(b.task for b in losers), return_exceptions=True)
                    if losers and advance is not None and all(b in aborted for b in losers):
                        # Aborted at the winner's first token, the loser costs nothing more (loser_cost,
                        # share 0): the race is settled, and the call may hedge again if it stalls.
                        pool.budget.settle(advance, 0.0)
                        advance = None
            if winner and live == winner and advance is None and delay is not None and not midstream:
                # Past its first token the call can still stall with its replica: hedge then, to
                # the first other replica not judged stalled; the first whole answer wins.
                a = winner[0]
                advance = await hedge_due(pool, a.endpoint.name, {a.task}, started, math.inf, timeout, denied, retry_base=delay)
                if advance is not None:
                    midstream = True
                    now = loop.time()
                    others = [e for e in order if e.name != a.endpoint.name]
                    to = next((e for e in others if not pool.stalled(e.name, now)), others[0])
                    race = [a, launch(to, max(0.001, timeout - (now - started)))]
                    live.append(race[1])
            waits: set[asyncio.Future[Any]] = {a.task for a in live}
            if not winner:
                waits |= {a.first for a in live}
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for a in [a for a in live if a.task.done()]:
                live.remove(a)
                exc = a.task.exception()
                if exc is None:
                    if not winner or winner[0] is not a:
                        winner[:] = []
                        crown(a)
                    reply = a.task.result()
                    if len(attempts) > 1:
                        client.metrics.hedges.labels(pool.tier.name, "lost" if a is first else "won").inc()
                    if advance is not None:  # the race still on: what does its loser cost?
                        loser = race[0] if a is race[1] else race[1]
                        t = loser.task
                        if not (t.done() and not t.cancelled() and t.exception() is not None):  # a failed loser keeps the advance
                            u = reply.usage
                            if midstream:  # cancelled below, at this answer: it may have written it all
                                cost = loser_cost(u.prompt_tokens, u.completion_tokens, aborted=client.seen_aborting(pool, loser.endpoint))
                            else:
                                cost = loser_cost(u.prompt_tokens, u.completion_tokens, aborted=loser in aborted, share=0.0)
                    return reply, a.endpoint.name
                errors.append(exc if isinstance(exc, ModelError) else ModelError(str(exc)))
                if winner and winner[0] is a:
                    winner[:] = []
        if len(attempts) > 1:
            client.metrics.hedges.labels(pool.tier.name, "failed").inc()
        raise AttemptFailed(errors[0], [a.endpoint.name for a in attempts])
    finally:
        if advance is not None:
            pool.budget.settle(advance, advance if cost is None else cost)
        left_over = [a for a in attempts if not a.task.done()]
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
