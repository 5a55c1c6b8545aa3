"""Two right answers the scorer judged wrong on the Python fresh-d set (2026-11-28), in both the
candidate's and one-shot RAG's pass:

- "The default access mask for winreg.CreateKeyEx() is KEY_WRITE, which is equivalent to
  KEY_SET_VALUE and KEY_CREATE_SUB_KEY ...": the names after "which is equivalent to" say what the
  value is made of; they were counted as 4 values the question does not ask for.
- "... marshals as an XML-RPC int value is -2147483648": "XML-RPC" is the kind of value the question
  asks about ("an XML-RPC int value"), and was read as what the value is said of.
"""

from __future__ import annotations

from pathlib import Path

from agentfleet_eval.scoring import Outcome, judge_answer, score
from agentfleet_eval.taskset import load_taskset

from tests.unit.evaluation.test_eval_strict import candidates, scattershot

ROOT = Path(__file__).resolve().parents[3]
SET = load_taskset(ROOT / "e2e" / "eval" / "python-library-fresh-d-tasks.yaml")
TASKS = {t.id: t for t in SET.tasks}
WINREG = TASKS["pyfd-cmp-winreg-createkeyex-vs-openkey-access"]
XMLRPC = TASKS["pyfd-cmp-xmlrpc-int-range"]


def test_names_that_say_what_a_stated_value_is_made_of_are_not_candidates() -> None:
    right = (
        "The default access mask for `winreg.CreateKeyEx()` is `KEY_WRITE`, which is equivalent to "
        "`KEY_SET_VALUE` and `KEY_CREATE_SUB_KEY`. The default access mask for `winreg.OpenKey()` is "
        "`KEY_READ`, which is equivalent to `KEY_QUERY_VALUE` and `KEY_ENUMERATE_SUB_KEYS`."
    )
    assert judge_answer(WINREG, right).ok
    # The same names listed beside the values, not after them, are still a list of candidates.
    listed = (
        "CreateKeyEx() uses KEY_WRITE and OpenKey() uses KEY_READ; also KEY_SET_VALUE, KEY_CREATE_SUB_KEY, "
        "KEY_QUERY_VALUE and KEY_ENUMERATE_SUB_KEYS."
    )
    assert not judge_answer(WINREG, listed).ok


def test_the_kind_of_value_asked_for_is_not_what_it_is_said_of() -> None:
    right = (
        "The smallest Python int that xmlrpc.client marshals as an XML-RPC int value is -2147483648, and "
        "the largest is 2147483647. [source: xmlrpc.client.html]"
    )
    assert judge_answer(XMLRPC, right).ok
    swapped = "The largest is -2147483648 and the smallest XML-RPC int value is 2147483647."
    assert not judge_answer(XMLRPC, swapped).ok


def test_a_scattershot_answer_still_scores_zero_on_the_set() -> None:
    answer = scattershot(candidates(SET.tasks))
    assert [t.id for t in SET.tasks if judge_answer(t, answer).ok] == []


WINSOUND = TASKS["pyfd-cmp-winsound-beep-frequency-range"]
BEEP = (
    "winsound.Beep(frequency, duration)\nBeep the PC's speaker. The frequency parameter specifies frequency, in "
    "hertz, of the sound, and must be in the range 37 through 32,767. The duration parameter specifies the "
    "number of milliseconds the sound should last."
)


def _grounded(task, answer: str, passage: str, source: str) -> bool | None:
    o = Outcome(status="done", answer=answer, citations=(source,), retrieved=({"source": source, "text": passage},))
    s = score(task, o)
    assert s.success, s.why
    return s.grounded


def test_the_ends_of_a_range_ground_the_lowest_and_the_highest() -> None:
    answer = "The lowest is 37 Hz and the highest is 32,767 Hz [source: winsound.html]."
    assert _grounded(WINSOUND, answer, BEEP, "winsound.html")
    # The range's ends are read in order: a passage giving the range the other way round grounds neither.
    backwards = BEEP.replace("range 37 through 32,767", "range 32,767 down to 37, from 32,767 through 37")
    assert not _grounded(WINSOUND, answer, backwards, "winsound.html")
    # and a passage that writes both numbers without a range grounds neither
    loose_numbers = BEEP.replace("must be in the range 37 through 32,767", "is 37 or else 32,767")
    assert not _grounded(WINSOUND, answer, loose_numbers, "winsound.html")
