"""Edges of routing's parts that mutation testing without the client tests (issue 21, fifth
round continued: ``mutation_report.py --modules routing-parts``) found unpinned: the P-squared estimator's
marker updates worked by hand, the hedge budget's accounts, the pool's stay-after-move, least-loaded
and round-robin orders, the load cap and bounded pick, bare-URL endpoints, the stream
accumulator's model, first token and tool-call index, and the spill wait's queue cleanup."""

from __future__ import annotations

import asyncio

import pytest

from agentfleet_runtime.routing.hashing import bounded_pick, load_cap, rendezvous_order
from agentfleet_runtime.routing.hedging import HedgeBudget, loser_cost
from agentfleet_runtime.routing.pool import LastReplica, ReplicaPool
from agentfleet_runtime.routing.quantile import P2Quantile, WindowedQuantile
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.spillwait import RoomWaiter
from agentfleet_runtime.routing.streaming import StreamAccumulator
from agentfleet_sim import run_virtual


def p2(values: list[float], p: float = 0.5) -> P2Quantile:
    q = P2Quantile(p)
    for x in values:
        q.add(x)
    return q


def test_p2_markers_move_up_by_the_parabola_as_values_arrive_above_and_below() -> None:
    # Pins P2Quantile.add's marker positions and heights, step by step (Jain and Chlamtac's update, worked by hand for p
    # = 0.5).
    q = p2([1, 2, 3, 4, 5])
    assert (q._q, q._n) == ([1, 2, 3, 4, 5], [0, 1, 2, 3, 4])
    q.add(6)  # above the top: the top height moves, only the top position
    assert (q._q, q._n) == ([1, 2, 3, 4, 6], [0, 1, 2, 3, 5])
    q.add(7)  # marker 3 is 1.5 behind its desired position: parabolic 4 + (2 * 3 / 3 + 2 * 1 / 1) / 4 = 5
    assert (q._q, q._n) == ([1, 2, 3, 5, 7], [0, 1, 2, 4, 6])
    q.add(8)  # marker 2: 3 + (2 * 2 / 2 + 1 * 1 / 1) / 3 = 4; then marker 3: 5 + (2 * 3 / 3 + 2 * 1 / 1) / 4 = 6
    assert (q._q, q._n) == ([1, 2, 4, 6, 8], [0, 1, 3, 5, 7])
    q.add(0)  # below the bottom: the bottom height moves, every other position
    assert (q._q, q._n) == ([0, 2, 4, 6, 8], [0, 2, 4, 6, 8])
    q.add(5)  # between markers 2 and 3: the two top positions
    assert (q._q, q._n) == ([0, 2, 4, 6, 8], [0, 2, 4, 7, 9])
    q.add(0.5)
    assert (q._q, q._n) == ([0, 2, 4, 6, 8], [0, 3, 5, 8, 10])
    q.add(0.5)  # marker 1 is 1.25 ahead: down by the parabola, 2 - (3 * 2 / 2 + 3 * 2 / 4) / 6 = 1.25
    assert (q._q, q._n) == ([0, 1.25, 4, 6, 8], [0, 3, 6, 9, 11])
    q.add(4)  # equal to marker 2's height counts above it; marker 3 down: 6 - (3 * 2 / 2 + 3 * 2 / 4) / 6 = 5.25
    assert (q._q, q._n) == ([0, 1.25, 4, 5.25, 8], [0, 3, 6, 9, 12])
    assert q.value() == 4


def test_p2_falls_back_to_the_linear_step_when_the_parabola_leaves_the_neighbours() -> None:
    # Pins the linear fallback and the exact d = 1 and d = -1 thresholds: on the 9th value marker 2 goes up to 3 + (1 *
    # 2 / 4 + 3 * 1 / 1) / 5 = 3.7,
    # then marker 3's parabola, 4 - (2 * 1 / 1 + 2 * 0.3 / 3) / 4 = 3.45, is below it, so it moves linearly: 4 - (3.7 -
    # 4) / (4 - 7) = 3.9.
    q = p2([1, 2, 3, 4, 5, 0, 3.5, 3.5])
    assert (q._q, q._n) == ([0, 2, 3, 4, 5], [0, 2, 3, 6, 7])
    q.add(3.5)
    assert q._q == pytest.approx([0, 2, 3.7, 3.9, 5]) and q._n == [0, 2, 4, 6, 8]


def test_p2_below_five_values_and_at_five_answers_the_middle_marker_and_p_is_open() -> None:
    # Pins value(): the sorted sample's p-th element below 5 values, the middle marker from 5 on; p = 0 or 1 refused
    # with its message.
    assert p2([3, 1, 2, 4], p=0.9).value() == 4
    assert p2([5, 1, 3, 2, 4], p=0.9).value() == 3
    for p in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"^p must be within \(0, 1\)$"):
            P2Quantile(p)


def test_the_answer_rests_on_half_a_window_to_a_window_of_observations() -> None:
    # Pins WindowedQuantile's two estimators: the second starts after window / 2 observations, the
    # fuller restarts at window, and the answer comes from the fuller, so a restart never leaves
    # it resting on a handful (the old wrapper answered from the new estimator's first value).
    w = WindowedQuantile(0.5, window=10, min_samples=1)
    counts = []
    for i in range(30):
        w.add(1.0 if i < 10 else 5.0)
        counts.append(w.count)
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5]
    w = WindowedQuantile(0.5, window=10, min_samples=1)
    for _ in range(10):
        w.add(1.0)
    w.add(5.0)  # the 11th: the answer rests on the 6 values since the second estimator began
    assert (w.count, w.value()) == (6, 1.0)
    for _ in range(4):
        w.add(5.0)  # the 15th: the fuller restarts, the other (5 values, all 5.0) answers
    assert (w.count, w.value()) == (5, 5.0)


def test_the_hedge_budget_takes_a_zero_ratio_and_keeps_exact_accounts() -> None:
    # Pins HedgeBudget: ratio 0 allowed (and the message for 1.5), a zero-token call, the mean's edge at 0 and 1, one
    # call spent, settle adding to the balance and the charges.
    assert HedgeBudget(0.0).ratio == 0.0
    with pytest.raises(ValueError, match=r"^ratio must be within \[0, 1\]$"):
        HedgeBudget(1.5)
    b = HedgeBudget(1.0)
    b.on_call(0, 0.0)
    assert (b.mean, b.call_tokens, b.calls) == (0.0, 0.0, 1)
    assert HedgeBudget(1.0, credit=1.0, tokens=0.0, mean=0.0).try_spend() is None  # a mean call of no tokens: no hedge
    b = HedgeBudget(1.0, credit=2.5, tokens=10.0, mean=1.0)
    assert b.try_spend() == 1.0
    assert (b.credit, b.tokens, b.hedges) == (1.5, 9.0, 1)
    b.settle(1.0, 0.0)
    b.settle(1.0, 2.0)
    b.settle(1.0, 3.0)
    assert (b.tokens, b.charged) == (9.0 + 1 + 1 - 2 + 1 - 3, 5.0)


def test_an_aborted_losers_share_of_the_completion_is_at_most_all_of_it() -> None:
    # Pins loser_cost's clamp of share to [0, 1].
    assert loser_cost(10, 20, aborted=True, share=1.5) == 20
    assert loser_cost(10, 20, aborted=True, share=-1.0) == 0


def test_last_replica_holds_65536_tasks_and_the_pool_budget_is_the_percent() -> None:
    # Pins LastReplica's default size (the 65,537th task evicts the first) and the pool's budget ratio (5% -> 0.05).
    last = LastReplica()
    for i in range(65_536):
        last.swap(f"t{i}", "a")
    assert last.get("t0") == "a"
    last.swap("t65536", "a")
    assert last.get("t0") is None and last.get("t1") == "a"
    pool = ReplicaPool(Tier("t", "m"), StaticSource(["http://a:1/v1"]))
    assert pool.budget.ratio == 0.05


NAMES = ["a", "b", "c"]


def pool_of(**kw: object) -> ReplicaPool:
    return ReplicaPool(
        Tier("t", "m", RoutingSettings(**kw)), StaticSource([Endpoint(n, f"http://{n}/v1") for n in NAMES])
    )  # type: ignore[arg-type]


def test_prefix_affinity_keeps_a_moved_task_where_it_last_ran() -> None:
    # Pins order()'s stay: the task's last replica first (looked up by task, else by key), and only with
    # stay_after_move.
    key = "k"
    home = rendezvous_order(key, NAMES)[0]
    other = next(n for n in NAMES if n != home)
    pool = pool_of()
    pool.last.swap("task-1", other)
    assert pool.order(key, 0.0, task="task-1")[0].name == other
    assert pool.order(key, 0.0, task="task-2")[0].name == home
    pool.last.swap(key, other)
    assert pool.order(key, 0.0)[0].name == other
    pool = pool_of(stay_after_move=False)
    pool.last.swap("task-1", other)
    assert pool.order(key, 0.0, task="task-1")[0].name == home


def test_least_loaded_counts_a_replica_without_calls_as_idle() -> None:
    # Pins LeastLoaded's default of 0 in flight: a replica missing from the counts goes before one with a call, whatever
    # its rank.
    pool = pool_of(policy="LeastLoaded")
    pool.inflight["a"] = 1
    for key in ("k0", "k1", "k2", "k3", "k4", "k5"):
        assert [e.name for e in pool.order(key, 0.0)][-1] == "a"
    assert any(rendezvous_order(k, NAMES)[-1] != "a" for k in ("k0", "k1", "k2", "k3", "k4", "k5"))


def test_round_robin_over_no_replicas_is_empty() -> None:
    # Pins RoundRobin's guard on an empty set (no modulo by zero).
    pool = ReplicaPool(Tier("t", "m", RoutingSettings(policy="RoundRobin")), StaticSource([]))
    assert pool.order("k", 0.0) == []


def test_one_replica_has_a_cap_and_a_bounded_pick_skips_a_full_replica_for_an_uncounted_one() -> None:
    # Pins load_cap for one replica (ceil(1.25 x 1 / 1) = 2) and its message for none; bounded_pick reading a missing
    # count as 0, and its fallback to the first.
    assert load_cap(0, 1, 0.25) == 2
    with pytest.raises(ValueError, match="^no replicas$"):
        load_cap(0, 0, 0.25)
    assert bounded_pick(["a", "b"], {"a": 1}, 0.0) == 1  # cap ceil(2 / 2) = 1: a is full, b has none
    assert bounded_pick(["a", "b"], {"a": 2, "b": 2}, -0.9) == 0  # a cap of 1 (an inconsistent eps): none is under it


def test_a_bare_url_is_its_own_base_url() -> None:
    # Pins StaticSource.set: a URL string becomes an endpoint named by host:port with the URL as its base.
    assert StaticSource(["http://10.0.0.7:8000/v1"]).endpoints() == (
        Endpoint("10.0.0.7:8000", "http://10.0.0.7:8000/v1"),
    )


def test_the_accumulator_keeps_the_first_model_name_and_only_content_or_tool_calls_are_a_first_token() -> None:
    # Pins feed_chunk: the model named once is kept, a role-only chunk is no first token, two choices' text is joined, a
    # tool call without an index is index 0.
    acc = StreamAccumulator()
    assert acc.feed_chunk({"model": "m1", "choices": [{"delta": {"role": "assistant"}}]}) == (False, "")
    assert acc.first_token is False
    assert acc.feed_chunk({"choices": [{"delta": {"content": "a"}}, {"delta": {"content": "b"}}]}) == (True, "ab")
    assert acc.model == "m1" and acc.body()["model"] == "m1"
    acc.feed_chunk(
        {"choices": [{"delta": {"tool_calls": [{"id": "c0", "function": {"name": "f", "arguments": "{}"}}]}}]}
    )
    assert list(acc.calls) == [0] and acc.calls[0].name == "f"


def test_a_spill_waiter_that_times_out_leaves_the_queue_to_the_waiter_behind_it_and_the_table_empties() -> None:
    # Pins RoomWaiter.wait's cleanup: a timed-out waiter's queue still holds another waiter, so it stays (that one is
    # woken at 2 s, not at its 10 s timeout); an emptied one is removed.
    async def main() -> tuple[list[tuple[str, bool, float]], dict]:
        loop = asyncio.get_running_loop()
        waiter, room, out = RoomWaiter(), [False], []

        async def wait(name: str, timeout: float) -> None:
            ok = await waiter.wait("r", lambda: room[0], timeout)
            out.append((name, ok, loop.time()))

        a = asyncio.ensure_future(wait("a", 1.0))
        b = asyncio.ensure_future(wait("b", 10.0))
        await asyncio.sleep(2.0)
        room[0] = True
        waiter.freed("r")
        await asyncio.gather(a, b)
        return out, dict(waiter._waiting)

    out, left = run_virtual(main())
    assert out == [("a", False, 1.0), ("b", True, 2.0)]
    assert left == {}
