"""Task set files: both formats, and refusals that name the task and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentfleet.evaluation.taskset import Fact, TaskSetError, load_taskset, parse_taskset

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml"


def test_yaml_and_jsonl_read_the_same(tmp_path: Path) -> None:
    rows = [
        {
            "id": "a",
            "kind": "default",
            "question": "q1",
            "facts": ["5min", ["x", "y"], {"number": 0.9}, {"any": ["z", {"number": 2}]}],
            "supporting": ["p.html"],
        },
        {"id": "b", "kind": "unanswerable", "question": "q2", "part": "heldout"},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "t.yaml").write_text(json.dumps({"name": "t", "tasks": rows}))
    a, b = load_taskset(tmp_path / "t.jsonl"), load_taskset(tmp_path / "t.yaml")
    assert a.tasks == b.tasks
    assert a.tasks[0].facts == (Fact(("5min",)), Fact(("x", "y")), Fact(numbers=(0.9,)), Fact(("z",), (2.0,)))
    assert a.tasks[1].expect == "decline" and a.part("heldout").tasks == (a.tasks[1],)


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"id": "x", "facts": ["a"], "supporting": ["p"]}, "task x: question is required"),
        ({"id": "x", "question": "q", "supporting": ["p"]}, "task x: an answerable task needs at least one fact"),
        ({"id": "x", "question": "q", "facts": ["a"]}, "task x: supporting is required"),
        ({"id": "x", "question": "q", "expect": "decline", "facts": ["a"]}, "task x: a task that expects a decline has no facts"),
        ({"id": "x", "question": "q", "facts": [True], "supporting": ["p"]}, "task x facts[0]: a fact is a string"),
        ({"id": "x", "question": "q", "facts": [[]], "supporting": ["p"]}, "task x facts[0]: an empty list"),
        ({"id": "x", "question": "q", "part": "test", "facts": ["a"], "supporting": ["p"]}, "task x: part must be one of dev, heldout"),
        ({"id": "x", "question": "q", "answer": "a"}, "task x: unknown field(s) answer"),
    ],
)
def test_bad_tasks_are_refused_by_name(task: dict, message: str) -> None:
    with pytest.raises(TaskSetError, match="^" + re.escape(message)):
        parse_taskset([task], "t")


def test_shipped_postgres_task_set() -> None:
    ts = load_taskset(SHIPPED)
    kinds = {t.kind for t in ts.tasks}
    assert len(ts.tasks) >= 60 and {"default", "command", "comparison", "multihop", "unanswerable"} <= kinds
    dev, held = ts.part("dev").tasks, ts.part("heldout").tasks
    assert dev and held and len(dev) + len(held) == len(ts.tasks)
    for part in (dev, held):  # every kind in both parts
        assert {t.kind for t in part} == kinds
    assert all(len(t.supporting) >= 2 for t in ts.tasks if t.kind == "multihop")


def test_shipped_facts_are_in_their_supporting_pages() -> None:
    """Every expected fact is stated by one of its supporting pages, as the ingestion extracts them
    (postgresql-doc-15 is installed with apt-get when missing, ~25 s)."""
    from e2e.eval.corpus import ensure_manual

    manual = ensure_manual()
    from agentfleet.evaluation.scoring import fact_stated
    from agentfleet_runtime.ingest.documents import html_to_text

    for t in load_taskset(SHIPPED).tasks:
        pages = [html_to_text((manual / s).read_text(encoding="utf-8")) for s in t.supporting]
        for f in t.facts:
            assert any(fact_stated(f, p) for p in pages), (t.id, f.describe())
