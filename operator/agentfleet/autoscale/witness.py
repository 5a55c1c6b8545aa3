"""Queue time as a witness for the TTFT objective, whichever side of the queue an engine's clock starts.

vLLM V1 measures time to first token from a request's arrival, so queueing shows in
``vllm:time_to_first_token_seconds``. Some vLLM-compatible engines start that clock when the
request is first scheduled: under a long queue their TTFT histogram says every request met the
SLO while clients waited seconds. Both kinds export ``vllm:request_queue_time_seconds`` (arrival to
first scheduling), and a client's TTFT is at least its queue time on either kind, so a request
whose queue time alone exceeds the TTFT SLO surely missed it. The witness share is therefore an
upper bound of the true TTFT attainment; goodput takes the minimum over shares, so it can only
lower goodput, and only by requests that surely missed.

The share's denominator is the larger of the queue histogram's count and the TTFT histogram's:
vLLM observes queue time for every finished request, but some engines (llm-d's simulator) observe
it only for requests that waited for a slot, so their queue count can be half the requests. The
requests it leaves out did not wait, so none of them surely missed: dividing the sure misses by
every request that got a first token keeps the share an upper bound on both kinds of engine,
where dividing by the waiters alone would fall below the true attainment.

Rounding: the witness rounds the SLO UP to the next bucket edge (the opposite of an objective's
share, goodput.py): a request is counted as a miss only when its queue time exceeds an edge at or
above the SLO, i.e. only when it surely waited longer than the SLO. An SLO beyond the last finite
edge gives no witness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from agentfleet.autoscale.goodput import Buckets, Goodput, Objective, Share, goodput

QUEUE_METRIC = "vllm:request_queue_time_seconds"


def witness_metrics(objectives: tuple[Objective, ...] | list[Objective]) -> tuple[str, ...]:
    """The extra histogram families goodput needs beyond the objectives' own."""
    return (QUEUE_METRIC,) if any(o.name == "ttft" for o in objectives) else ()


def _count(buckets: Buckets | None) -> float:
    """A histogram's observation count (its +Inf bucket, else its last)."""
    ordered = sorted(buckets or ())
    return next((c for le, c in ordered if math.isinf(le)), ordered[-1][1]) if ordered else 0.0


def queue_witness(ttft: Objective, buckets: Buckets, requests: float = 0.0) -> Share | None:
    """Share of requests whose queue time was at most the TTFT SLO (rounded up to an edge), over the
    larger of the queue histogram's count and ``requests`` (the TTFT histogram's count)."""
    ordered = sorted(buckets)
    if not ordered:
        return None
    observed = _count(ordered)
    above = [(le, c) for le, c in ordered if not math.isinf(le) and le >= ttft.seconds * (1 - 1e-9)]
    if not above or observed <= 0:
        return None
    edge, within = above[0]
    objective = Objective("ttft-queue", QUEUE_METRIC, ttft.seconds)
    missed = observed - within
    total = max(observed, requests)
    note = None
    if missed > 0:
        note = (
            f"ttft: {missed / total:.0%} of requests queued longer than {edge:g}s, above the TTFT SLO, "
            f"whatever the engine's TTFT histogram says (its clock may start at scheduling): counted as misses"
        )
    return Share(objective, total - missed, total, edge, note)


def goodput_with_witnesses(objectives: Sequence[Objective], buckets_by_metric: Mapping[str, Buckets]) -> Goodput:
    """``goodput()`` over the objectives, then lowered by the queue witness of the TTFT objective
    when the queue-time histogram is there (a share of an objective, so the minimum still holds)."""
    base = goodput(objectives, buckets_by_metric)
    ttft = next((o for o in objectives if o.name == "ttft"), None)
    queue = buckets_by_metric.get(QUEUE_METRIC)
    share = None
    if ttft is not None and queue:
        share = queue_witness(ttft, queue, _count(buckets_by_metric.get(ttft.metric)))
    if share is None or share.fraction is None:
        return base
    fractions = [f for f in (base.fraction, share.fraction) if f is not None]
    notes = base.notes + (
        (share.note,) if share.note and (base.fraction is None or share.fraction < base.fraction) else ()
    )
    return Goodput(min(fractions), max(base.requests, share.total), (*base.shares, share), notes)
