"""The figures a run prints and the task set's smaller rules, pinned field by field (the mutants
of issue 38's mutation run that the other tests let through)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from agentfleet_eval.scoring import (
    Outcome,
    TaskScore,
    recall_at,
    same_document,
    score,
    summarize,
)
from agentfleet_eval.taskset import Fact, TaskSet, TaskSetError, load_taskset, parse_task, parse_taskset


def task(tid: str = "t", kind: str = "default", **extra) -> object:
    raw = {"id": tid, "part": "dev", "kind": kind, "question": "What is the default of work_mem?", "facts": ["4MB"]}
    return parse_task({"supporting": ["runtime-config-resource.html"], **raw, **extra}, 0)


PASSAGE = {"source": "runtime-config-resource.html", "rank": 1, "text": "work_mem (integer): the default is 4MB."}


def test_summary_counts_every_figure() -> None:
    a = score(
        task("a", "default"),
        Outcome(
            status="done",
            reason="final_answer",
            answer="4MB",
            citations=("runtime-config-resource.html",),
            retrieved=(PASSAGE,),
            steps=2,
            model_calls=4,
            tool_calls={"search_docs": 2, "fetch": 1},
            sub_agents=1,
            tokens=300,
            cost=Decimal("0.002"),
            latency_seconds=3.0,
            judged=True,
        ),
    )
    b = score(
        task("b", "command"),
        Outcome(
            status="done",
            reason="max_steps",
            answer="8MB",
            steps=4,
            model_calls=2,
            tool_calls={"search_docs": 1},
            tokens=100,
            cost=Decimal("0.001"),
            latency_seconds=1.0,
            judged=False,
        ),
    )
    c = score(task("c", "command"), Outcome(status="timeout", latency_seconds=9.0))
    s = summarize([a, b, c], k=7)
    assert s == {
        "tasks": 3,
        "success": pytest.approx(1 / 3),
        "grounded": pytest.approx(1 / 3),
        "recall": pytest.approx(1 / 3),
        "recallK": 7,
        "judged": 0.5,
        "stepsPerTask": 2.0,
        "modelCallsPerTask": 2.0,
        "toolCallsPerTask": 4 / 3,
        "toolCalls": {"fetch": 1, "search_docs": 3},
        "subAgentsPerTask": 1 / 3,
        "tasksThatSearched": 1,
        "answersWithCitation": 1,
        "tokensPerTask": 400 / 3,
        "costPerTask": "0.001",
        "latencyP50Seconds": 3.0,
        "latencyP95Seconds": 9.0,
        "endReasons": {"final_answer": 1, "max_steps": 1, "timeout": 1},
        "failureCauses": {"budget": 2},
        "byKind": {
            "command": {"tasks": 2, "success": 0.0, "grounded": 0.0, "recall": 0.0},
            "default": {"tasks": 1, "success": 1.0, "grounded": 1.0, "recall": 1.0},
        },
    }
    assert list(s["byKind"]) == ["command", "default"] and list(s["toolCalls"]) == ["fetch", "search_docs"]
    assert list(summarize([c, b, b])["endReasons"]) == ["max_steps", "timeout"]  # most common first
    empty = summarize([])
    assert empty["tasks"] == 0 and empty["costPerTask"] is None and empty["success"] is None and empty["recall"] is None
    assert empty["latencyP50Seconds"] is None and empty["stepsPerTask"] is None and empty["byKind"] == {}


def test_summary_cost_is_rounded_to_nanos() -> None:
    s = score(task(), Outcome(status="done", answer="4MB", cost=Decimal("0.0000000016")))
    assert summarize([s])["costPerTask"] == "2E-9"
    assert summarize([s, s, s])["costPerTask"] == "2E-9"


@pytest.mark.parametrize(
    ("cited", "source", "same"),
    [
        ("sql-vacuum.html", "sql-vacuum.html", True),
        ("sql-vacuum.html#3", "sql-vacuum.html", True),
        ("./html/sql-vacuum.html", "sql-vacuum.html", True),
        ("sql-vacuum.html", "html/sql-vacuum.html", True),
        (" sql-vacuum.html ", "./sql-vacuum.html", True),
        ("a/sql-vacuum.html", "b/sql-vacuum.html", True),
        ("sql-vacuum.htm", "sql-vacuum.html", False),
        ("#3", "sql-vacuum.html", False),
        ("", "", False),
        ("sql-analyze.html", "sql-vacuum.html", False),
        ("x/sql-vacuum.html#a#b", "sql-vacuum.html", True),
    ],
)
def test_same_document(cited: str, source: str, same: bool) -> None:
    assert same_document(cited, source) is same


def test_recall_counts_supporting_pages_in_the_first_k() -> None:
    two = parse_task({"id": "m", "part": "dev", "question": "q", "facts": ["x"], "supporting": ["a.html", "b.html"]}, 0)
    got = [{"source": "a.html", "rank": 5}, {"source": "c.html", "rank": 1}, {"source": "b.html", "rank": 6}]
    assert recall_at(two, got, 5) == 0.5 and recall_at(two, got, 4) == 0.0 and recall_at(two, got, 6) == 1.0
    assert recall_at(two, [{"source": "b.html"}, {"source": "a.html", "rank": "1"}], 1) == 1.0  # no rank: the first
    assert recall_at(two, [{"rank": 1}], 5) == 0.0
    none = parse_task({"id": "n", "part": "dev", "kind": "unanswerable", "question": "q"}, 0)
    assert recall_at(none, got, 5) is None


def test_a_task_that_did_not_finish_says_why() -> None:
    t = task()
    assert score(t, Outcome(status="timeout", reason="no end within 900s")).why.startswith(
        "task timeout: no end within 900s"
    )
    assert score(t, Outcome(status="failed", error="boom")).why.startswith("task failed: boom")
    assert score(t, Outcome()).why.startswith("task unknown: no answer")
    wrong = score(t, Outcome(status="done", answer="8MB", citations=("x.html",), retrieved=(PASSAGE,)))
    assert wrong.why == "missing '4MB'; also states '8mb'; cites x.html, which the task never retrieved"
    assert (
        score(
            t, Outcome(status="done", answer="8MB", citations=("runtime-config-resource.html",), retrieved=(PASSAGE,))
        ).why
        == "missing '4MB'; also states '8mb'"
    )
    assert isinstance(wrong, TaskScore) and wrong.recall == 1.0


def test_task_set_parts_names_and_files(tmp_path: Path) -> None:
    ts = parse_taskset(
        {"name": "pg", "tasks": [{"id": "a", "part": "heldout", "question": "q", "facts": [3], "supporting": ["p"]}]},
        "file",
    )
    assert ts.name == "pg" and ts.part(None) is ts and ts.part("all") is ts
    assert ts.part("dev") == TaskSet("pg#dev", ()) and ts.part("heldout").name == "pg#heldout"
    with pytest.raises(TaskSetError, match=re.escape("--part 'ALL': use one of dev, heldout or all")):
        ts.part("ALL")
    assert parse_taskset({"tasks": ts_raw()}, "file").name == "file"
    (tmp_path / "s.yml").write_text(
        "tasks:\n- {id: a, part: dev, question: q, facts: [x], supporting: [p], notes: why}\n"
    )
    loaded = load_taskset(tmp_path / "s.yml")
    assert loaded.name == "s" and loaded.tasks[0].notes == "why" and loaded.tasks[0].kind == "general"
    (tmp_path / "s.jsonl").write_text(
        '\n{"id": "a", "part": "dev", "question": "q", "facts": ["x"], "supporting": ["p"]}\n\n'
    )
    assert load_taskset(tmp_path / "s.jsonl").name == "s" and len(load_taskset(tmp_path / "s.jsonl").tasks) == 1
    (tmp_path / "bad.jsonl").write_text('{"id": "a"}\n{oops\n')
    with pytest.raises(TaskSetError, match=r"^bad\.jsonl line 2: not JSON \("):
        load_taskset(tmp_path / "bad.jsonl")
    (tmp_path / "bad.yaml").write_text("tasks: [\n")
    with pytest.raises(TaskSetError, match=r"^bad\.yaml: not YAML \("):
        load_taskset(tmp_path / "bad.yaml")
    with pytest.raises(TaskSetError, match=r"^cannot read task set .*missing\.yaml: No such file or directory$"):
        load_taskset(tmp_path / "missing.yaml")
    for empty in ([], {"tasks": []}, {"tasks": "x"}, None):
        with pytest.raises(TaskSetError, match=r"^t: no tasks \(give a list, or a mapping with a tasks: list\)$"):
            parse_taskset(empty, "t")


def ts_raw() -> list[dict]:
    return [{"id": "a", "part": "dev", "question": "q", "facts": ["x"], "supporting": ["p"]}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("just a string", "tasks[0]: a task is a mapping with question, kind, facts, supporting"),
        ({"id": "x", "part": "dev", "question": "q", "b": 1, "a": 2}, "task x: unknown field(s) a, b"),
        (
            {"id": "x", "part": "dev", "question": "q", "expect": "maybe"},
            "task x: expect must be answer or decline; got 'maybe'",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": ["a"], "supporting": "p.html"},
            "task x: supporting must be a list of document names",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": ["a"], "supporting": [""]},
            "task x: supporting must be a list",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": ["a"], "supporting": [3]},
            "task x: supporting must be a list",
        ),
        (
            {"id": "x", "part": "dev", "question": " ", "facts": ["a"], "supporting": ["p"]},
            "task x: question is required",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [{"number": True}], "supporting": ["p"]},
            "task x facts[0]: a fact is",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [{"any": [" "]}], "supporting": ["p"]},
            "task x facts[0]: a fact is",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [{"number": 1, "x": 2}], "supporting": ["p"]},
            "task x facts[0]: a fact is",
        ),
    ],
)
def test_bad_tasks_name_the_field(raw, message: str) -> None:
    with pytest.raises(TaskSetError, match="^" + re.escape(message)):
        parse_task(raw, 0)


def test_fact_forms_and_descriptions() -> None:
    t = parse_task(
        {
            "id": "x",
            "part": "dev",
            "question": "q",
            "supporting": ["p"],
            "facts": [[3, "three"], {"number": 2.5, "about": "b"}, {"any": [1e20]}],
        },
        0,
    )
    assert t.facts == (Fact(("three",), (3.0,)), Fact((), (2.5,), "b"), Fact((), (1e20,)))
    assert [f.describe() for f in t.facts] == ["three | 3", "2.5", "1e+20"]
    assert parse_task({"id": "x", "part": "dev", "question": "q", "facts": ["a"], "supporting": ["p"]}, 0).notes == ""
