"""Replica stalls, judged from the tokens its streamed calls write (pure: the caller passes the clock).

A replica whose engine stops stepping (a stalled scheduler, a hung collective, a long pause) keeps
its connections open and answers nothing: no error reaches the ejection machine (ejection.py),
every call sent there waits out its own hedge delay, and a streamed call that already had its
first token is past the first-token hedge altogether. Yet while a replica has a call decoding,
every engine step writes it a token, so its tokens come close together; only a prefill, a step
that admits new requests, ever holds them up. The watch learns the gaps between one replica's
tokens while it has a call decoding (one quantile per pool: the replicas of a ModelReplicaSet run
the same engine) and judges a replica stalled when a call is decoding there and no token has come
for ``factor`` times that quantile, at least ``floor_s``. No healthy gap is longer than one step
that runs a whole prefill chunk, and the p99.9 is about that step, so 2x leaves room while telling
a stall in two steps' time; but until a window of gaps is seen the percentile comes from light
load and short prompts, under that step, so the watch waits ``warm_factor`` (4x) instead. Figures
in docs/hedging.md.

Only decoding calls count: a replica whose calls all wait for their first token may be working
through long prefills, and the gaps before a first token are what the first-token hedge already
times (ttfthedge.py). Unstreamed calls show no tokens, so the watch sees nothing of them.

A stalled replica stays judged until a token comes from it again: new calls go elsewhere, and
the client keeps one probe in flight there (a one-token request, client.py) whose token says the
engine steps again. An active check, because the calls moved away would never show it, and a
timed hold lets calls back into a queue that may still be stalled: each one waits out a whole
threshold before it is hedged and moves its task (a 20 s stall held 4 thresholds took 2 such
calls per stall, and a second judgment). A probe with no token in ``probe_wait`` thresholds is
replaced (the engine may have lost it), each time after a wait twice as long, up to
``max_probe_factor`` times, as the ejection machine doubles its ejections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agentfleet_runtime.routing.quantile import WindowedQuantile

GAP_PERCENTILE = 0.999  # of the gaps between a replica's tokens while a call decodes there
GAP_WINDOW = 20_000  # gaps per estimator window: a streamed call alone makes dozens
GAP_MIN_SAMPLES = 1_000  # before this the tail is unknown, and no replica is judged
FACTOR = 2.0  # a stall is this many times the gap percentile without a token
# ... and this many while the watch has seen fewer than GAP_WINDOW gaps: early gaps come from light
# load and short prompts, before the longest step (a full prefill chunk) has been seen.
WARM_FACTOR = 4.0
FLOOR_S = 0.25  # and at least this long (a noisy start must not judge a replica stalled)
PROBE_WAIT = 4.0  # thresholds a probe of a stalled replica waits for its token before another replaces it
MAX_PROBE_FACTOR = 8  # the wait doubles per probe without a token, up to this many times


@dataclass
class StallWatch:
    factor: float = FACTOR
    warm_factor: float = WARM_FACTOR
    warm_gaps: int = GAP_WINDOW
    floor_s: float = FLOOR_S
    probe_wait: float = PROBE_WAIT
    max_probe_factor: int = MAX_PROBE_FACTOR
    gaps: WindowedQuantile = field(
        default_factory=lambda: WindowedQuantile(GAP_PERCENTILE, GAP_WINDOW, GAP_MIN_SAMPLES)
    )
    marks: dict[str, float] = field(default_factory=dict)  # replica -> its last token
    decoding: dict[str, int] = field(default_factory=dict)  # replica -> calls past their first token
    judged: dict[str, float] = field(default_factory=dict)  # replica -> when it was judged stalled
    misses: dict[str, int] = field(default_factory=dict)  # replica -> its probes with no token since the judgment
    learned: int = 0  # gaps seen in all
    stalls: int = 0  # judgments made (for benchmarks)
    on_judged: Callable[[str], None] | None = None  # hears each judgment (the client's metric and probe)

    def sent(self, name: str, now: float, inflight: int) -> None:
        """A call went to ``name``, which had ``inflight`` calls: an idle replica's silence so far
        says nothing."""
        if inflight <= 0:
            self.marks[name] = now

    def first_token(self, name: str) -> None:
        """A call on ``name`` began decoding (after its ``progress``)."""
        self.decoding[name] = self.decoding.get(name, 0) + 1

    def finished(self, name: str) -> None:
        """A call on ``name`` that had begun decoding ended (answered, failed or cancelled)."""
        self.decoding[name] = max(0, self.decoding.get(name, 0) - 1)

    def progress(self, name: str, now: float) -> None:
        """A token came from ``name``: the gap since the last one counts if a call was decoding
        (not a stall's own gap), and a judgment ends."""
        mark = self.marks.get(name)
        if mark is not None and now >= mark and self.decoding.get(name, 0) > 0 and name not in self.judged:
            self.gaps.add(now - mark)
            self.learned += 1
        self.marks[name] = now
        self.judged.pop(name, None)
        self.misses.pop(name, None)

    def forget(self, name: str) -> None:
        """``name`` left the replica set: drop what the watch kept of it."""
        for table in (self.marks, self.judged, self.decoding, self.misses):
            table.pop(name, None)

    def threshold(self) -> float | None:
        """Seconds without progress that make a busy replica stalled, or None while unlearned."""
        gap = self.gaps.value()
        factor = self.factor if self.learned >= self.warm_gaps else self.warm_factor
        return None if gap is None else max(self.floor_s, factor * gap)

    def deadline(self, name: str) -> float | None:
        """When ``name`` will be judged stalled if no token comes, or was: a judged replica's calls
        are due for their hedges whether or not a call still decodes there (the decoding ones may
        have been hedged away, leaving calls that wait for a first token). None: nothing decoding
        there, or unlearned."""
        if name in self.judged:
            return self.judged[name]
        limit = self.threshold()
        mark = self.marks.get(name)
        if limit is None or mark is None or self.decoding.get(name, 0) <= 0:
            return None
        return mark + limit

    def stalled(self, name: str, now: float) -> bool:
        if name in self.judged:
            return True
        at = self.deadline(name)
        if at is None or now < at:
            return False
        self.judge(name, now)
        return True

    def wrote_since(self, name: str, at: float) -> bool:
        """A token came from ``name`` after ``at`` (a call's send): its engine steps."""
        mark = self.marks.get(name)
        return mark is not None and mark > at

    def judge(self, name: str, now: float) -> None:
        """Judge ``name`` stalled now: from its tokens' gaps (``stalled``), or because a call there
        waited a whole first-token percentile and not one token came from it meanwhile (nothing
        decodes there for the gaps to tell, and its queue does not move: ttfthedge.hedge_due)."""
        if name in self.judged:
            return
        self.judged[name] = now
        self.stalls += 1
        if self.on_judged is not None:
            self.on_judged(name)

    def probe_timeout(self, name: str) -> float:
        """How long the next probe of a judged ``name`` waits for its token."""
        limit = self.threshold() or self.floor_s
        return self.probe_wait * limit * min(2 ** self.misses.get(name, 0), self.max_probe_factor)

    def probe_missed(self, name: str) -> None:
        """A probe of ``name`` ended without a token (timed out or failed)."""
        if name in self.judged:
            self.misses[name] = self.misses.get(name, 0) + 1
