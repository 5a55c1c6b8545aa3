"""Queue time as a witness for the TTFT objective, whichever side of the queue an engine's clock starts.

vLLM V1 measures time to first token from a request's arrival, so queueing shows in
``vllm:time_to_first_token_seconds``. Some vLLM-compatible engines start that clock when the
request is first scheduled: under a long queue their TTFT histogram says every request met the
SLO while clients waited seconds. Both kinds export ``vllm:request_queue_time_seconds`` (arrival to
first scheduling), and a client's TTFT is at least its queue time on either kind, so a request
whose queue time alone exceeds the TTFT SLO surely missed it. The witness share is therefore an
upper bound of the true TTFT attainment; goodput takes the minimum over shares, so it can only
lower goodput, and only by requests that surely missed.

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


def queue_witness(ttft: Objective, buckets: Buckets) -> Share | None:
    """Share of requests whose queue time was at most the TTFT SLO (rounded up to an edge)."""
    ordered = sorted(buckets)
    if not ordered:
        return None
    total = next((c for le, c in ordered if math.isinf(le)), ordered[-1][1])
    above = [(le, c) for le, c in ordered if not math.isinf(le) and le >= ttft.seconds * (1 - 1e-9)]
    if not above or total <= 0:
        return None
    edge, good = above[0]
    objective = Objective("ttft-queue", QUEUE_METRIC, ttft.seconds)
    missed = total - good
    note = None
    if missed > 0:
        note = (
            f"ttft: {missed / total:.0%} of requests queued longer than {edge:g}s, above the TTFT SLO, "
            f"whatever the engine's TTFT histogram says (its clock may start at scheduling): counted as misses"
        )
    return Share(objective, good, total, edge, note)


def goodput_with_witnesses(objectives: Sequence[Objective], buckets_by_metric: Mapping[str, Buckets]) -> Goodput:
    """``goodput()`` over the objectives, then lowered by the queue witness of the TTFT objective
    when the queue-time histogram is there (a share of an objective, so the minimum still holds)."""
    base = goodput(objectives, buckets_by_metric)
    ttft = next((o for o in objectives if o.name == "ttft"), None)
    queue = buckets_by_metric.get(QUEUE_METRIC)
    share = queue_witness(ttft, queue) if ttft is not None and queue else None
    if share is None or share.fraction is None:
        return base
    fractions = [f for f in (base.fraction, share.fraction) if f is not None]
    notes = base.notes + ((share.note,) if share.note and (base.fraction is None or share.fraction < base.fraction) else ())
    return Goodput(min(fractions), max(base.requests, share.total), (*base.shares, share), notes)
