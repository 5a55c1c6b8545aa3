"""Where each failed task went wrong (scoring.failure_cause): the counts the evaluation prints
when a goal is not reached, so each stage is pinned by an answer that fails there and nowhere else."""

from __future__ import annotations

import io

import pytest
from agentfleet_eval.scoring import FAILURE_CAUSES, Outcome, failure_cause, score, summarize
from agentfleet_eval.taskset import parse_task

from agentfleet_client.evaluation import report

PAGE = "runtime-config-resource.html"
STATES = {"source": PAGE, "rank": 1, "text": "work_mem (integer): the default is 4MB. Sets the base memory."}
SAME_PAGE_ELSEWHERE = {"source": PAGE, "rank": 2, "text": "maintenance_work_mem (integer): the default is 64MB."}
OTHER_PAGE = {"source": "sql-vacuum.html", "rank": 1, "text": "VACUUM reclaims storage occupied by dead tuples."}


def task(**extra: object) -> object:
    raw = {
        "id": "t",
        "part": "dev",
        "kind": "default",
        "question": "What is the default of work_mem?",
        "facts": ["4MB"],
        "supporting": [PAGE],
    }
    return parse_task({**raw, **extra}, 0)


def cause(answer: str, *passages: dict, t: object = None, **o: object) -> str | None:
    fields = {"status": "done", "reason": "final_answer", "answer": answer, "retrieved": passages, **o}
    return failure_cause(score(t or task(), Outcome(**fields)))


def test_a_right_answer_has_no_cause() -> None:
    assert cause("The default of work_mem is 4MB [1].", STATES, citations=(PAGE,)) is None


def test_a_wrong_value_with_the_fact_in_a_seen_passage_is_a_misread() -> None:
    assert cause("The default of work_mem is 64MB.", STATES) == "misread"


def test_the_page_found_without_the_passage_that_states_the_fact_is_passage_missed() -> None:
    assert cause("The default of work_mem is 64MB.", SAME_PAGE_ELSEWHERE) == "passageMissed"


def test_no_supporting_page_among_the_passages_is_not_retrieved() -> None:
    assert cause("The default of work_mem is 64MB.", OTHER_PAGE) == "notRetrieved"
    assert cause("The default of work_mem is 64MB.") == "notRetrieved"  # closed book: nothing seen


def test_a_passage_far_below_the_first_five_still_counts_as_seen() -> None:
    deep = {**STATES, "rank": 12}
    assert cause("The default of work_mem is 64MB.", OTHER_PAGE, deep) == "misread"


def test_a_fact_stated_only_in_another_sense_is_not_in_the_passage() -> None:
    negated = {"source": PAGE, "rank": 1, "text": "work_mem (integer): the default is not 4MB on every platform."}
    assert cause("The default of work_mem is 64MB.", negated) == "passageMissed"


def test_a_decline_with_the_fact_in_a_seen_passage_is_declined() -> None:
    assert cause("The documentation does not mention a default for work_mem.", STATES) == "declined"


def test_a_decline_without_the_page_is_a_retrieval_failure_first() -> None:
    assert cause("The documentation does not mention a default for work_mem.", OTHER_PAGE) == "notRetrieved"


@pytest.mark.parametrize("reason", ["max_steps", "max_tokens", "timeout", "max_cost", "max_context"])
def test_a_budget_end_is_budget_whatever_the_answer(reason: str) -> None:
    assert cause("The default of work_mem is 64MB.", STATES, reason=reason) == "budget"


def test_no_end_within_the_harness_timeout_is_budget() -> None:
    assert cause("", status="timeout", reason="harness_timeout", error="no end within 300s") == "budget"


def test_a_failed_or_dead_task_is_an_error() -> None:
    assert cause("", STATES, status="dead", reason="failed", error="worker lost") == "error"


@pytest.mark.parametrize(
    "answer", ["", "   ", '{"action": "answer", "answer": "4 MB"}', '{ "tool": "search_docs", "arguments": {}}']
)
def test_no_text_or_the_raw_decision_is_format(answer: str) -> None:
    assert cause(answer, STATES) == "format"


def test_an_answered_unanswerable_question_is_invented() -> None:
    t = task(expect="decline", facts=[], supporting=[], kind="unanswerable")
    assert cause("The default of max_vector_dimensions is 2.", t=t) == "invented"
    assert cause("The documentation does not mention max_vector_dimensions.", t=t) is None


def test_only_the_facts_the_answer_gets_wrong_are_looked_for_in_the_passages() -> None:
    # Two facts: the answer states the first from the model's own knowledge (no passage has it)
    # and misses the second, which a seen passage states: the failure is the reading, not retrieval.
    t = task(
        question="What are the defaults of work_mem and maintenance_work_mem?",
        facts=["4MB", "64MB"],
    )
    ok_first = "work_mem defaults to 4MB and maintenance_work_mem to 16MB."
    assert cause(ok_first, SAME_PAGE_ELSEWHERE, t=t) == "misread"
    # Missing the first instead, whose passage nobody retrieved: passage missed.
    ok_second = "work_mem defaults to 1MB and maintenance_work_mem to 64MB."
    assert cause(ok_second, SAME_PAGE_ELSEWHERE, t=t) == "passageMissed"


def test_the_summary_counts_failures_per_cause_in_order_and_the_report_prints_them() -> None:
    scores = [
        score(task(), Outcome(status="done", reason="final_answer", answer=a, retrieved=p))
        for a, p in [
            ("The default of work_mem is 64MB.", (STATES,)),
            ("The default of work_mem is 64MB.", (STATES,)),
            ("The default of work_mem is 64MB.", (OTHER_PAGE,)),
            ("The default of work_mem is 4MB.", (STATES,)),
        ]
    ]
    s = summarize(scores)
    assert s["failureCauses"] == {"notRetrieved": 1, "misread": 2}
    assert list(s["failureCauses"]) == [c for c in FAILURE_CAUSES if c in s["failureCauses"]]
    out = io.StringIO()
    report.summary_table(["agent"], [s], out)
    assert "[agent] where the 3 failures come from: notRetrieved 1, misread 2\n" in out.getvalue()
    table = io.StringIO()
    report.task_table(scores, table)
    causes = [line.split()[10] for line in table.getvalue().splitlines()[2:]]
    assert causes == ["misread", "misread", "notRetrieved", "-"]
    assert [report.task_record(x)["cause"] for x in scores] == ["misread", "misread", "notRetrieved", None]


def test_the_raw_decision_is_scored_wrong_and_says_why() -> None:
    s = score(task(), Outcome(status="done", reason="final_answer", answer='{"action": "answer", "answer": "4MB"}'))
    assert not s.success and s.why.startswith("the answer is the model's raw decision JSON;")


def test_an_answer_stating_every_fact_and_a_competing_value_is_judged_on_all_facts() -> None:
    assert cause("The default of work_mem is 4MB, or 64MB on some systems.", STATES) == "misread"
    assert cause("The default of work_mem is 4MB, or 64MB on some systems.", SAME_PAGE_ELSEWHERE) == "passageMissed"


def test_a_passage_without_text_states_nothing() -> None:
    t = task(
        kind="behaviour",
        question="What does os.cpu_count() return when the number of CPUs is unknown?",
        facts=["None"],
        supporting=["os.html"],
    )
    assert cause("It raises NotImplementedError.", {"source": "os.html", "rank": 1}, t=t) == "passageMissed"


def test_the_fact_must_be_in_a_passage_near_its_own_subject() -> None:
    # The passage gives 64 bytes for blake2s only: for blake2b's missed fact it is no passage that states it.
    t = task(
        kind="comparison",
        question="Compare the default digest sizes of hashlib.blake2b and hashlib.blake2s.",
        facts=[{"any": ["64 bytes"], "about": "blake2b"}, {"any": ["32 bytes"], "about": "blake2s"}],
        supporting=["hashlib.html"],
    )
    wrong_of_blake2s = {"source": "hashlib.html", "rank": 1, "text": "blake2s: digest_size defaults to 64 bytes here."}
    answer = "blake2b defaults to 16 bytes and blake2s to 32 bytes."
    assert cause(answer, wrong_of_blake2s, t=t) == "passageMissed"


def test_a_decline_that_repeats_the_questions_own_value_is_still_a_decline() -> None:
    t = task(question="What is the default of work_mem when shared_buffers is 128MB?")
    answer = "The documentation does not mention work_mem's default for a shared_buffers of 128MB."
    assert cause(answer, STATES, t=t) == "declined"
