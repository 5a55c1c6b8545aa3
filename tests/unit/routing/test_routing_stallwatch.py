"""Replica stalls judged from the tokens of its decoding calls (stallwatch.py), and the pool's
order around a stalled replica. Figures worked by hand; the clock is passed in."""

from __future__ import annotations

import pytest

from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.stallwatch import StallWatch


def learned(gap: float = 0.1, n: int = 1000, **kw: float) -> StallWatch:
    """A watch (a stall at 4 gaps) that has seen ``n`` gaps of ``gap`` s between a decoding
    replica's tokens (its percentile is then ``gap``); that call has ended."""
    w = StallWatch(**{"factor": 4.0, **kw})
    w.progress("warm", 0.0)
    w.first_token("warm")
    for i in range(1, n + 1):
        w.progress("warm", i * gap)
    w.finished("warm")
    return w


def decoding(w: StallWatch, name: str, at: float) -> None:
    """A call on ``name`` writes its first token at ``at``."""
    w.progress(name, at)
    w.first_token(name)


def test_an_unlearned_watch_judges_nothing() -> None:
    w = learned(n=999)  # one short of the minimum sample
    decoding(w, "r1", 0.0)
    assert w.threshold() is None and w.deadline("r1") is None
    assert not w.stalled("r1", 10_000.0)


def test_gaps_count_only_while_a_call_decodes() -> None:
    w = StallWatch()
    w.progress("r1", 0.0)  # a first token: nothing decoded before it, so its wait is no gap
    w.first_token("r1")
    w.progress("r1", 5.0)
    w.finished("r1")
    w.progress("r1", 60.0)  # the next call's first token, a minute later: not a gap either
    w.finished("r1")  # (ended twice: the count stays at zero)
    w.progress("r1", 61.0)
    assert w.gaps.count == 1 and w.decoding["r1"] == 0


def test_a_replica_silent_past_factor_times_the_gap_percentile_while_a_call_decodes_is_stalled_until_a_token() -> None:
    w = learned(0.1)  # threshold 4 x 0.1 = 0.4 s
    assert w.threshold() == pytest.approx(0.4)
    decoding(w, "r1", 10.0)
    assert w.deadline("r1") == pytest.approx(10.4)
    assert not w.stalled("r1", 10.39)
    assert w.stalled("r1", 10.41) and w.stalls == 1
    assert w.stalled("r1", 10.5) and w.stalls == 1  # one judgment, not one per look
    w.progress("r1", 10.6)  # a token: no longer stalled, and the clock restarts
    assert not w.stalled("r1", 10.9) and w.deadline("r1") == pytest.approx(11.0)


def test_a_replica_with_no_call_decoding_is_never_stalled() -> None:
    w = learned(0.1)
    decoding(w, "r1", 1.0)
    w.finished("r1")
    w.sent("r1", 2.0, 1)  # calls wait there for their first tokens (long prefills, perhaps)
    assert w.deadline("r1") is None and not w.stalled("r1", 100.0)


def test_a_call_to_an_idle_replica_restarts_its_clock() -> None:
    w = StallWatch()
    w.progress("r1", 1.0)
    w.sent("r1", 50.0, 3)  # busy: its clock runs on from its last token
    assert w.marks["r1"] == 1.0
    w.sent("r1", 60.0, 0)
    assert w.marks["r1"] == 60.0


def test_a_judged_replica_stays_judged_until_a_token_and_each_probe_without_one_waits_twice_as_long() -> None:
    w = learned(0.01)  # 4 x 0.01 = 0.04 s, under the 0.25 s floor
    assert w.threshold() == pytest.approx(0.25)
    decoding(w, "r1", 0.0)
    assert w.stalled("r1", 0.3)
    w.finished("r1")  # its call was hedged and cancelled: nothing decodes there now...
    # ...and it stays judged (no timed hold); the calls still waiting there are due from the
    # judgment on, whatever decodes there now.
    assert w.deadline("r1") == 0.3 and w.stalled("r1", 1_000.0)
    waits = []
    for _ in range(5):  # a probe waits 4 thresholds for its token, twice as long after each miss, up to 8x
        waits.append(w.probe_timeout("r1"))
        w.probe_missed("r1")
    assert waits == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0])
    gaps = w.gaps.count
    w.first_token("r1")  # a call still there (an engine that does not abort) writes again after the stall
    w.progress("r1", 1_000.5)  # a token: the judgment ends, the misses with it
    assert not w.stalled("r1", 1_000.6) and w.probe_timeout("r1") == pytest.approx(1.0)
    assert w.gaps.count == gaps  # the stall's own silence is no healthy gap
    w.probe_missed("r1")  # a probe that ends after the judgment counts for nothing
    assert w.misses == {}


def test_each_judgment_is_heard_once() -> None:
    heard: list[str] = []
    w = learned(0.1)
    w.on_judged = heard.append
    decoding(w, "r1", 0.0)
    for t in (0.5, 0.6, 0.7):
        w.stalled("r1", t)
    assert heard == ["r1"]


def test_with_hedging_the_pool_routes_around_a_stalled_replica_and_without_it_does_not() -> None:
    for hedging in (True, False):
        eps = [Endpoint(n, f"http://{n}/v1") for n in ("r1", "r2", "r3")]
        p = ReplicaPool(Tier("t", "m", RoutingSettings(hedging=hedging)), StaticSource(eps))
        p.stalls = learned(0.1)
        home = p.order("task-7", 0.0)[0].name
        decoding(p.stalls, home, 0.0)
        assert p.order("task-7", 0.3)[0].name == home
        order = [e.name for e in p.order("task-7", 0.5)]
        assert (home not in order and len(order) == 2) is hedging  # judged: left out, like an ejected one
        assert p.stall_deadline(home) == (pytest.approx(0.5) if hedging else None)  # judged at 0.5


def test_the_threshold_tightens_from_the_warm_factor_to_the_factor_once_a_window_of_gaps_is_seen() -> None:
    # Early gaps come from light load and short prompts: their p99.9 (0.2 s here) is below the
    # longest healthy step, so a stall is 4 gaps (the warm factor) until warm_gaps have been
    # seen, then 2 (the factor).
    w = learned(0.2, n=1000, factor=2.0, warm_factor=4.0, warm_gaps=1500)
    assert w.threshold() == pytest.approx(0.8)
    w.first_token("warm")
    for i in range(1001, 1500):
        w.progress("warm", i * 0.2)
    assert w.learned == 1499 and w.threshold() == pytest.approx(0.8)
    w.progress("warm", 300.0)
    assert w.learned == 1500 and w.threshold() == pytest.approx(0.4)
    decoding(w, "r1", 400.0)
    assert not w.stalled("r1", 400.39) and w.stalled("r1", 400.41)
