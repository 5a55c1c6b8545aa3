"""The harness must be able to fail: planted wrong answers, citations of passages never retrieved,
citations whose passage lacks the fact, and declines are each scored as what they are."""

from __future__ import annotations

from decimal import Decimal

import pytest
from agentfleet_eval.scoring import (
    Outcome,
    declined,
    deltas,
    fact_stated,
    numbers_in,
    score,
    summarize,
)
from agentfleet_eval.taskset import Fact, parse_task

CHECKPOINT = parse_task(
    {
        "id": "wal-1",
        "part": "dev",
        "kind": "default",
        "question": "What is the default of checkpoint_timeout?",
        "facts": [["5min", "five minutes", "5 min"]],
        "supporting": ["runtime-config-wal.html"],
    },
    0,
)
TARGET = parse_task(
    {
        "id": "wal-2",
        "part": "dev",
        "question": "Default checkpoint_completion_target?",
        "facts": [{"number": 0.9}],
        "supporting": ["runtime-config-wal.html"],
    },
    1,
)
NONE = parse_task({"id": "none-1", "part": "dev", "kind": "unanswerable", "question": "Default of max_cluster_ram?"}, 2)
WAL = {
    "source": "runtime-config-wal.html",
    "rank": 1,
    "text": "checkpoint_timeout (integer)\nThe default is five minutes (5min).",
}
LOCKS = {"source": "explicit-locking.html", "rank": 2, "text": "ACCESS EXCLUSIVE conflicts with every mode."}


def outcome(answer: str, citations=(), retrieved=(WAL, LOCKS), status="done") -> Outcome:
    return Outcome(
        task_id="t",
        status=status,
        reason="final_answer",
        answer=answer,
        citations=tuple(citations),
        retrieved=tuple(retrieved),
    )


def test_right_answer_citing_the_retrieved_passage_is_a_grounded_success() -> None:
    s = score(CHECKPOINT, outcome("The default is 5min [source: runtime-config-wal.html]", ["runtime-config-wal.html"]))
    assert (s.success, s.grounded, s.recall, s.why) == (True, True, 1.0, "ok")


def test_planted_wrong_answer_fails() -> None:
    s = score(
        CHECKPOINT,
        outcome("checkpoint_timeout is 10 seconds [source: runtime-config-wal.html]", ["runtime-config-wal.html"]),
    )
    assert s.success is False and "missing" in s.why
    assert s.grounded is False  # no expected fact stated: nothing the passage could support


def test_citation_of_a_passage_never_retrieved_is_ungrounded() -> None:
    s = score(
        CHECKPOINT,
        outcome(
            "The default is 5min [source: runtime-config-wal.html]", ["runtime-config-wal.html"], retrieved=(LOCKS,)
        ),
    )
    assert s.success is True and s.grounded is False
    assert s.why == "correct but ungrounded: cites runtime-config-wal.html, which the task never retrieved"
    assert s.recall == 0.0


def test_citation_whose_passage_lacks_the_fact_is_ungrounded() -> None:
    s = score(CHECKPOINT, outcome("The default is 5min [source: explicit-locking.html]", ["explicit-locking.html"]))
    assert s.success is True and s.grounded is False and "no cited passage states" in s.why


def test_answer_without_citation_is_ungrounded() -> None:
    s = score(CHECKPOINT, outcome("The default is five minutes."))
    assert s.success is True and s.grounded is False and s.why.endswith("no citation")


def test_one_bad_citation_among_good_ones_is_ungrounded() -> None:
    s = score(CHECKPOINT, outcome("5min", ["runtime-config-wal.html", "sql-vacuum.html"]))
    assert s.grounded is False


def test_unanswerable_questions_want_a_decline() -> None:
    assert score(NONE, outcome("The documentation does not mention a max_cluster_ram setting.")).success is True
    invented = score(
        NONE,
        outcome(
            "The default of max_cluster_ram is 4GB [source: runtime-config-resource.html]",
            ["runtime-config-resource.html"],
        ),
    )
    assert invented.success is False and invented.grounded is None and invented.recall is None


def test_failed_and_timed_out_tasks_fail_whatever_their_answer() -> None:
    assert score(CHECKPOINT, outcome("5min", ["runtime-config-wal.html"], status="dead")).success is False
    assert score(NONE, Outcome(status="timeout", reason="no end within 900s")).success is False


def test_numbers_match_as_numbers_and_words_as_whole_words() -> None:
    assert fact_stated(Fact(numbers=(0.9,)), "The default is 0.90 of the interval") is True
    assert fact_stated(Fact(numbers=(0.9,)), "The default is 0.95") is False
    assert fact_stated(Fact(numbers=(1000.0,)), "up to 1,000 rows") is True
    assert fact_stated(Fact(numbers=(8.0,)), "int8 keys") is False  # part of a word, not the number 8
    assert fact_stated(Fact(texts=("on",)), "one of them") is False
    assert fact_stated(Fact(texts=("ACCESS EXCLUSIVE",)), "an **access   exclusive** lock") is True
    assert fact_stated(Fact(texts=("5min",)), "(5min).") is True
    assert numbers_in("version 9.6, -3 and .5") == [9.6, -3.0, 0.5]
    s = score(
        TARGET,
        outcome(
            "It is 0.9 [source: runtime-config-wal.html]",
            ["runtime-config-wal.html"],
            retrieved=({**WAL, "text": "checkpoint_completion_target: the default is 0.9."},),
        ),
    )
    assert s.success and s.grounded


@pytest.mark.parametrize(
    ("answer", "declines"),
    [
        ("The manual does not mention such a parameter.", True),
        ("There is no setting named max_cluster_ram in PostgreSQL 15.", True),
        ("I could not find this in the documentation.", True),
        ("The default is 5min.", False),
        ("When asked about it, the documentation does not mention it.", True),
        # A wrong answer dressed as a decline: the "not specified" is the answer's own condition.
        ("When key is not specified, deque.sort() sorts the items in ascending order.", False),
        ("If the cluster is not mentioned, asyncio.distribute() uses every machine.", False),
    ],
)
def test_declines(answer: str, declines: bool) -> None:
    assert declined(answer) is declines


def test_recall_counts_only_the_first_k_passages_of_each_search() -> None:
    two = parse_task({"id": "m", "part": "dev", "question": "q", "facts": ["x"], "supporting": ["a.html", "b.html"]}, 0)
    got = ({"source": "a.html", "rank": 1, "text": ""}, {"source": "b.html", "rank": 6, "text": ""})
    assert score(two, outcome("x", retrieved=got), k=5).recall == 0.5
    assert score(two, outcome("x", retrieved=got), k=8).recall == 1.0


def test_summary_and_deltas() -> None:
    good = score(
        CHECKPOINT,
        Outcome(
            status="done",
            reason="final_answer",
            answer="5min",
            citations=("runtime-config-wal.html",),
            retrieved=(WAL,),
            steps=2,
            model_calls=3,
            tool_calls={"search_docs": 1},
            tokens=100,
            cost=Decimal("0.001"),
            latency_seconds=4.0,
        ),
    )
    bad = score(
        TARGET,
        Outcome(
            status="done",
            reason="max_steps",
            answer="no idea",
            steps=6,
            model_calls=6,
            cost=Decimal("0.003"),
            latency_seconds=10.0,
        ),
    )
    none = score(
        NONE,
        Outcome(
            status="done",
            reason="final_answer",
            answer="The manual does not say.",
            steps=1,
            model_calls=1,
            latency_seconds=1.0,
        ),
    )
    s = summarize([good, bad, none])
    assert s["tasks"] == 3 and s["success"] == pytest.approx(2 / 3) and s["grounded"] == 0.5 and s["recall"] == 0.5
    assert s["latencyP50Seconds"] == 4.0 and s["latencyP95Seconds"] == 10.0 and s["costPerTask"] == "0.001333333"
    assert s["endReasons"] == {"final_answer": 2, "max_steps": 1} and s["byKind"]["unanswerable"]["success"] == 1.0
    assert s["toolCalls"] == {"search_docs": 1} and s["tasksThatSearched"] == 1 and s["answersWithCitation"] == 1
    d = deltas(s, {**s, "success": 1.0, "latencyP95Seconds": 8.0, "grounded": None})
    assert d["success"] == pytest.approx(1 / 3) and d["latencyP95Seconds"] == -2.0 and d["grounded"] is None
