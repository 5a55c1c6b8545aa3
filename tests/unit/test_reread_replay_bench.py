"""e2e/bench/reread_replay.py: the second reading replayed in both passage orders over a stored cascade
pass, with a model written here (the judging is the runtime's own checks)."""

from __future__ import annotations

import asyncio

import pytest
from agentfleet_eval.scoring import Outcome

from agentfleet_runtime.loop.answercheck import DECLINE
from e2e.bench.reread_replay import GuardError, guard, replay_one, summary
from tests.unit.test_verify_replay_bench import TASK  # nntplib.NNTP's default port, 119

FIRST = {"step": 0, "call": 0, "rank": 1, "source": "nntplib.html", "text": "class nntplib.NNTP(host, port=119)"}
SECOND = {"step": 0, "call": 0, "rank": 2, "source": "nntplib.html", "text": "NNTP_SSL uses port 563 if omitted."}
DECLINED = "The passages do not say."


def replayed(first: str, replies: dict[str, str]):
    """The task replayed with a model that answers by which passage it is shown first."""
    asked: list[str] = []

    async def ask(messages):
        shown = messages[-1]["content"]
        asked.append(shown)
        first_shown = "Ranked" if shown.index("port=119") < shown.index("563") else "Reversed"
        return replies[first_shown]

    o = Outcome(status="done", answer=DECLINE, retrieved=(FIRST, SECOND), first_answer=first, tokens=10)
    return asyncio.run(replay_one(TASK, o, ask, "")), asked


def test_each_order_is_asked_in_the_fleet_form_and_scored_as_the_task_would_have_ended():
    row, asked = replayed(DECLINED, {"Ranked": DECLINED, "Reversed": "NNTP uses port 119 [2]."})
    assert len(asked) == 2 and all(a.endswith(f"Question: {TASK.question}") for a in asked)
    ranked, reversed_ = row.endings["Ranked"], row.endings["Reversed"]
    # After a first decline the second decline ends as the decline; the right value ends right, and its
    # number names the document the reversed request numbered 2 (the first ranked, shown second).
    assert (ranked.kind, ranked.answer, ranked.score.success) == ("held", DECLINE, False)
    assert reversed_.kind == "answered" and reversed_.score.success and reversed_.score.grounded
    assert "[source: nntplib.html]" in reversed_.answer
    lines = summary([row])
    assert (
        lines[0].startswith("read again 1 (and 0 ") and "Ranked right 0" in lines[0] and "Reversed right 1" in lines[0]
    )
    assert lines[1] == "Reversed won 1 ['nntp'], lost 0 []"
    # Ranked then reversed: the Ranked reading failed its check, so the reversed one ends the task.
    assert row.endings["RankedThenReversed"] == reversed_ and lines[2] == "RankedThenReversed won 1 ['nntp'], lost 0 []"


def test_ranked_then_reversed_keeps_a_ranked_ending_that_ended_the_task():
    right = "NNTP uses port 119 [source: nntplib.html]."
    row, _ = replayed(DECLINED, {"Ranked": right, "Reversed": DECLINED})
    assert row.endings["RankedThenReversed"] == row.endings["Ranked"] and row.endings["Ranked"].score.success
    assert summary([row])[2] == "RankedThenReversed won 0 [], lost 0 []"
    assert summary([row])[1] == "Reversed won 0 [], lost 1 ['nntp']"


def test_a_value_no_passage_holds_after_a_first_decline_ends_as_the_decline():
    row, _ = replayed(DECLINED, {"Ranked": "It uses port 8119 [1].", "Reversed": "It uses port 8119 [1]."})
    assert {e.kind for e in row.endings.values()} == {"held"} and not row.endings["Reversed"].score.success


def test_a_first_answer_that_passes_its_check_is_not_read_again():
    row, asked = replayed("NNTP uses port 119 [source: nntplib.html].", {})
    assert row is None and asked == []


@pytest.mark.parametrize(
    "task_set",
    ["python-library-fresh-e#heldout", "postgres-manual-fresh#heldout", "python-library#dev", "postgres-manual#dev"],
)
def test_the_guard_reads_the_tuning_sets(task_set):
    guard(task_set)


@pytest.mark.parametrize(
    "task_set",
    [
        "python-library#heldout",
        "postgres-manual#heldout",
        "python-library-fresh-f#heldout",
        "postgres-manual-fresh-f#heldout",
        "",
    ],
)
def test_the_guard_refuses_a_held_out_part_and_a_reserved_set(task_set):
    with pytest.raises(GuardError, match="not a set to tune on"):
        guard(task_set)
