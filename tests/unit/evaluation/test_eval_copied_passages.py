"""An answer that is the retrieved passages copied under their number heads is no answer, whatever
value the copy holds (the 0.5B's one-shot answer to the Python held-out's subprocess question, scored
right before: issue 59's one "lost by the loop" of the 0.5B table). Quoting the sentence an answer
comes from, or listing sources by number after answering, stays an answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agentfleet_eval.scoring import Outcome, copied_passages, failure_cause, judge_answer, score
from agentfleet_eval.taskset import load_taskset

from agentfleet_client.evaluation import report

ROOT = Path(__file__).resolve().parents[3]
TASK = next(
    t
    for t in load_taskset(ROOT / "e2e" / "eval" / "python-library-tasks.yaml").tasks
    if t.id == "fresh2-py-hop-subprocess-shell-quote"
)
# The passages that task retrieved (journal 2026-11-28-05b-python-heldout-reread), first three.
SHELL = (
    "On POSIX with shell=True, the shell defaults to /bin/sh. If args is a string, the string specifies the "
    "command to execute through the shell. This means that the string must be formatted exactly as it would be "
    "when typed at the shell prompt."
)
EXECUTABLE = (
    "The executable argument specifies a replacement program to execute. It is very seldom needed. When "
    "shell=False, executable replaces the program to execute specified by args. If shell=True, on POSIX the "
    "executable argument specifies a replacement shell for the default /bin/sh."
)
QUOTE = (
    "Consider using functions that pass command arguments with lists such as subprocess.run() with "
    "shell=False.\n\nThis idiom would be unsafe:\n\n```\n>>> filename = 'somefile; rm -rf ~'\n```\n\n"
    "quote() lets you plug the security hole:"
)
PAGES = (("subprocess.html", SHELL), ("subprocess.html", EXECUTABLE), ("shlex.html", QUOTE))
RETRIEVED = tuple({"rank": i, "source": src, "text": text} for i, (src, text) in enumerate(PAGES, 1))
# What the 0.5B answered: the passages under rewritten heads, cut off where its tokens ran out.
COPY = f"[1] [source: POSIX]\n{SHELL}\n\n[2] [source: POSIX]\n{EXECUTABLE}\n\n[3] [source: POSIX]\n{QUOTE[:-25]}"


def outcome(answer: str) -> Outcome:
    return Outcome(
        status="done", reason="final_answer", answer=answer, retrieved=RETRIEVED, citations=("subprocess.html",)
    )


def test_the_passages_copied_under_their_heads_score_wrong_though_they_hold_both_values() -> None:
    assert judge_answer(TASK, COPY).ok  # the values are in it: reading the text alone passes it
    s = score(TASK, outcome(COPY))
    assert not s.success
    assert s.why.startswith("the answer is the retrieved passages copied under their numbers, not an answer")
    assert failure_cause(s) == "format"


def test_the_tool_s_own_heads_count_as_heads() -> None:
    copy = f"[1] (subprocess.html, score 0.033)\n{SHELL}\n[2] (shlex.html, score 0.016)\n{QUOTE}"
    assert copied_passages(copy, [SHELL, QUOTE])


def test_an_answer_quoting_the_sentences_it_answers_from_stays_an_answer() -> None:
    answer = (
        "The shell is /bin/sh and the function is shlex.quote(). "
        '"On POSIX with shell=True, the shell defaults to /bin/sh." [source: subprocess.html] '
        '"quote() lets you plug the security hole" [source: shlex.html]'
    )
    assert not copied_passages(answer, [SHELL, EXECUTABLE, QUOTE])
    assert score(TASK, outcome(answer)).success


def test_sources_listed_by_number_after_the_answer_stay_an_answer() -> None:
    answer = (
        "With shell=True on POSIX the command runs through /bin/sh; shlex.quote() escapes a string for it.\n\n"
        "[1] (subprocess.html, score 0.033)\n[2] (shlex.html, score 0.016)"
    )
    assert not copied_passages(answer, [SHELL, EXECUTABLE, QUOTE])
    assert score(TASK, outcome(answer)).success


def test_one_head_over_one_passage_is_not_a_listing() -> None:
    assert not copied_passages(f"[1] (subprocess.html, score 0.033)\n{SHELL}", [SHELL])


def test_the_report_names_a_copy_a_passage_in_the_answer_s_place_and_no_first_answer_right() -> None:
    # "lost by the loop" scores the first answer as the final one (report.first_score): a copy the
    # loop turned into a decline is no loss.
    copy = score(TASK, outcome(COPY))
    assert report.cause(copy) == report.PASSAGE_AS_ANSWER
    declined = score(TASK, replace(outcome("The documents do not say."), first_answer=COPY))
    first = report.first_score(declined)
    assert first is not None and not first.success
