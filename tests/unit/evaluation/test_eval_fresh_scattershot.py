"""Every fresh set's tasks (e2e/eval/corpus.py's ``Corpus.fresh``) score zero for a scattershot
answer: every value the set's facts and wrong values accept, with every value of their vocabularies,
listed as one answer. Each writer checked its own set this way; this keeps it checked."""

from __future__ import annotations

import pytest
from agentfleet_eval.scoring import judge_answer
from agentfleet_eval.taskset import load_taskset

from e2e.eval.corpus import CORPORA
from tests.unit.evaluation.test_eval_strict import candidates, scattershot

FRESH = [load_taskset(path) for corpus in CORPORA.values() for path in corpus.fresh]


@pytest.mark.parametrize("taskset", FRESH, ids=lambda s: s.name)
def test_a_scattershot_answer_scores_zero_on_every_fresh_task(taskset) -> None:
    answer = scattershot(candidates(taskset.tasks))
    assert len(answer) > 1000
    assert [t.id for t in taskset.tasks if judge_answer(t, answer).ok] == []
