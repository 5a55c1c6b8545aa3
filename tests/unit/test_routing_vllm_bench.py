"""The real-vLLM routing bench's own arithmetic: the prefix-cache ceiling its "of ceiling" figure
divides by, and the share of calls that moved replica (e2e/bench/routing_vllm.py)."""

from __future__ import annotations

from e2e.bench.routing_vllm import BLOCK, Call, Run, ceiling


def call(task: str, step: int, replica: str, at: float, prompt: int) -> Call:
    return Call(task, step, replica, at, at + 0.5, prompt)


def test_the_ceiling_is_each_previous_prompt_in_whole_blocks_short_of_the_last_token() -> None:
    run = Run("x")
    run.calls = [
        call("a", 0, "r0", 0.0, 700),  # first arrival: shares nothing
        call("b", 0, "r1", 1.0, 700),  # shares the system prompt, 600 tokens -> 4 whole blocks
        call("a", 1, "r1", 2.0, 1100),  # its previous prompt, 700 -> 5 blocks
        call("b", 1, "r1", 3.0, 1100),
        call("a", 2, "r0", 4.0, 2 * BLOCK + 1),  # previous 1100, capped at prompt - 1 = 256 -> 2 blocks
    ]
    hit = 0 + 4 * BLOCK + 5 * BLOCK + 5 * BLOCK + 2 * BLOCK
    total = 700 + 700 + 1100 + 1100 + 2 * BLOCK + 1
    assert ceiling(run, {"a": 0, "b": 600}) == hit / total


def test_a_prompt_equal_to_what_is_cached_still_computes_its_last_token() -> None:
    run = Run("x")
    run.calls = [call("a", 0, "r0", 0.0, 2 * BLOCK), call("a", 1, "r0", 1.0, 2 * BLOCK)]
    # vLLM reuses at most prompt - 1 tokens: 255 -> 1 whole block, not 2
    assert ceiling(run, {"a": 0}) == BLOCK / (4 * BLOCK)


def test_moves_are_counted_against_the_same_tasks_previous_call_in_time_order() -> None:
    run = Run("x")
    run.calls = [
        call("a", 1, "r1", 2.0, 10),
        call("a", 0, "r0", 0.0, 10),
        call("b", 0, "r1", 1.0, 10),
        call("b", 1, "r1", 3.0, 10),
        call("a", 2, "r1", 4.0, 10),
    ]
    assert run.moved() == [True, False, False]
    stayed, moved = run.ttfts_by_move()
    assert (len(stayed), len(moved)) == (2, 1)
