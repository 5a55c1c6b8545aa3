"""Every stored answer keeps the verdict 54b65e7's scorer gave it (issue 76, finding 8).

aa18bca's list rule (a guess among candidates of any kind scores zero) also failed three right
answers in the evaluation journals: an answer naming the parts of the expected value ("column1",
"column2", "column3", etc.), the question's own subjects ("the minimum sizes of the signed short
and the signed long long type codes are 2 and 8, respectively") or the expected tuple's elements
after "which means". This scores every answer of every journal in docs/results/data and compares
with the verdicts 54b65e7's scorer computed (journal_verdicts_54b65e7.json: per journal, one
character per line, "1" right, "0" wrong, "-" a task no shipped set holds). A difference is a
verdict the list rule changed; none is left.

Regenerate the figures with 54b65e7's scorer on the path, from the repository root:
    PYTHONPATH=<54b65e7 checkout>/shared python tests/unit/evaluation/test_eval_journal_verdicts.py
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from agentfleet_eval.scoring import judge_answer
from agentfleet_eval.taskset import load_taskset

ROOT = Path(__file__).resolve().parents[3]
JOURNALS = sorted((ROOT / "docs" / "results" / "data").glob("*.results.jsonl.gz"))
FIGURES = Path(__file__).with_name("journal_verdicts_54b65e7.json")


def _tasks() -> dict:
    tasks: dict = {}
    for p in sorted((ROOT / "e2e" / "eval").glob("*-tasks.yaml")):
        for t in load_taskset(p).tasks:
            tasks.setdefault(t.id, t)
    return tasks


def _records(journal: Path) -> list[dict]:
    with gzip.open(journal, "rt") as f:
        return [json.loads(line) for line in f]


def verdicts(tasks: dict, journal: Path) -> str:
    """One character per line of the journal: the scorer's verdict on its stored answer."""
    out = []
    for r in _records(journal):
        task, answer = tasks.get(r.get("task")), (r.get("outcome") or {}).get("answer")
        out.append("-" if task is None or answer is None else "01"[judge_answer(task, answer).ok])
    return "".join(out)


def test_every_stored_answer_keeps_its_verdict() -> None:
    figures = json.loads(FIGURES.read_text())["verdicts"]
    assert sorted(figures) == [j.name for j in JOURNALS], "a journal without 54b65e7's figures: regenerate them"
    tasks = _tasks()
    differences = []
    for journal in JOURNALS:
        now, then = verdicts(tasks, journal), figures[journal.name]
        assert len(now) == len(then), journal.name
        records = _records(journal)
        differences += [
            (journal.name, records[i]["task"], records[i].get("pass"), old, new, records[i]["outcome"]["answer"])
            for i, (old, new) in enumerate(zip(then, now, strict=True))
            if old != new
        ]
    assert sum(len(v) for v in figures.values()) == 2737
    assert differences == [], f"{len(differences)} verdicts differ from 54b65e7's: {differences}"


if __name__ == "__main__":
    found = _tasks()
    FIGURES.write_text(
        json.dumps(
            {
                "scorer": sys.argv[1] if len(sys.argv) > 1 else "54b65e7",
                "verdicts": {j.name: verdicts(found, j) for j in JOURNALS},
            },
            indent=1,
        )
        + "\n"
    )
