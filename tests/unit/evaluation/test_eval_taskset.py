"""Task set files: both formats, and refusals that name the task and the field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from agentfleet_eval.claims import as_form
from agentfleet_eval.taskset import Fact, TaskSetError, load_taskset, parse_taskset

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml"


def test_yaml_and_jsonl_read_the_same(tmp_path: Path) -> None:
    rows = [
        {
            "id": "a",
            "part": "dev",
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
        ({"id": "x", "part": "dev", "facts": ["a"], "supporting": ["p"]}, "task x: question is required"),
        (
            {"id": "x", "part": "dev", "question": "q", "supporting": ["p"]},
            "task x: an answerable task needs at least one fact",
        ),
        ({"id": "x", "part": "dev", "question": "q", "facts": ["a"]}, "task x: supporting is required"),
        (
            {"id": "x", "part": "dev", "question": "q", "expect": "decline", "facts": ["a"]},
            "task x: a task that expects a decline has no facts",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [True], "supporting": ["p"]},
            "task x facts[0]: a fact is a string",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [[]], "supporting": ["p"]},
            "task x facts[0]: an empty list",
        ),
        (
            {"id": "x", "question": "q", "part": "test", "facts": ["a"], "supporting": ["p"]},
            "task x: part must be one of dev, heldout",
        ),
        ({"id": "x", "part": "dev", "question": "q", "answer": "a"}, "task x: unknown field(s) answer"),
        (
            {"id": "x", "question": "q", "facts": ["a"], "supporting": ["p"]},
            "task x: part is required: dev (tune on it) or heldout",
        ),
        ({"question": "q", "facts": ["a"], "supporting": ["p"]}, "task task-0: part is required"),
        (
            {"id": "x", "part": "dev", "question": "Is it 5 min?", "facts": ["300s"], "supporting": ["p"]},
            "task x facts[0]: the question itself states '300s'; ask without giving the answer away",
        ),
        (
            {
                "id": "x",
                "part": "dev",
                "question": "Does it block?",
                "facts": ["z", [{"number": 1}, "block"]],
                "supporting": ["p"],
            },
            "task x facts[1]: the question itself states 'block | 1'",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [{"any": ["a"], "about": ""}], "supporting": ["p"]},
            "task x facts[0]: about names the thing the fact answers for (a non-empty string); got ''",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": [{"any": ["a"], "about": 3}], "supporting": ["p"]},
            "task x facts[0]: about names the thing",
        ),
        (
            {
                "id": "x",
                "part": "dev",
                "question": "q",
                "facts": [{"any": ["a"], "about": "b", "x": 1}],
                "supporting": ["p"],
            },
            (
                "task x facts[0]: a fact is a string, a list of alternatives, {number: N} or {any: [...]} (either "
                "with an optional about: NAME); got {"
            ),
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": ["a"], "wrong": "b", "supporting": ["p"]},
            "task x: wrong must be a list",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": "a", "supporting": ["p"]},
            "task x: facts must be a list",
        ),
        (
            {"id": "x", "part": "dev", "question": "q", "facts": ["a"], "wrong": [[]], "supporting": ["p"]},
            "task x wrong[0]: an empty list",
        ),
    ],
)
def test_bad_tasks_are_refused_by_name(task: dict, message: str) -> None:
    with pytest.raises(TaskSetError, match="^" + re.escape(message)):
        parse_taskset([task], "t")


def _task(tid: str, part: str, facts: list, pages: list[str]) -> dict:
    return {"id": tid, "part": part, "question": "q?", "facts": facts, "supporting": pages}


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [_task("a", "dev", ["x"], ["p.html"]), _task("b", "heldout", ["y"], ["q.html", "p.html"])],
            "task b: part heldout shares supporting page p.html with dev task a; move one of them",
        ),
        (
            [_task("a", "dev", ["x", "5min"], ["p.html"]), _task("b", "heldout", [["300 seconds", "z"]], ["q.html"])],
            "task b: part heldout shares the fact '300 seconds | z' with dev task a; move one of them",
        ),
        (
            [_task("a", "dev", [["Blank-padded"]], ["p.html"]), _task("b", "heldout", ["blank padded"], ["q.html"])],
            "task b: part heldout shares the fact 'blank padded' with dev task a",
        ),
        ([_task("a", "dev", ["x"], ["p.html"]), _task("a", "heldout", ["y"], ["q.html"])], "task a: id used twice"),
    ],
)
def test_parts_share_no_page_and_no_fact(tasks: list, message: str) -> None:
    with pytest.raises(TaskSetError, match="^" + re.escape(message)):
        parse_taskset(tasks, "t")


def test_disjoint_parts_and_shared_values_within_a_part_load() -> None:
    ts = parse_taskset(
        [
            _task("a", "dev", ["5min", {"number": 4}], ["p.html"]),
            _task("b", "dev", ["300 s"], ["p.html"]),
            _task("c", "heldout", ["4MB", "10min"], ["q.html"]),
            {"id": "d", "part": "heldout", "kind": "unanswerable", "question": "q?"},
        ],
        "t",
    )
    assert [t.id for t in ts.part("heldout").tasks] == ["c", "d"]
    t = parse_taskset(
        [{**_task("w", "dev", [{"any": ["x"], "about": " VACUUM "}], ["p"]), "wrong": ["y", {"number": 2}]}], "t"
    ).tasks[0]
    assert t.facts == (Fact(("x",), (), "VACUUM"),) and t.wrong == (Fact(("y",)), Fact(numbers=(2.0,)))


def test_shipped_postgres_task_set() -> None:
    ts = load_taskset(SHIPPED)
    kinds = {t.kind for t in ts.tasks}
    assert len(ts.tasks) >= 60 and {"default", "command", "comparison", "multihop", "unanswerable"} <= kinds
    dev, held = ts.part("dev").tasks, ts.part("heldout").tasks
    assert dev and held and len(dev) + len(held) == len(ts.tasks)
    for part in (dev, held):  # every kind in both parts
        assert {t.kind for t in part} == kinds
    assert all(len(t.supporting) >= 2 for t in ts.tasks if t.kind == "multihop")


# Facts of one kind the scorer cannot bind to their subjects, with the reason: "before" and "after" the
# decimal point are no names, and a value is said of the nearest name before it.
UNBOUND_OK = {"cmp-numeric-digits"}


def _kinds(fact) -> set[tuple[str, str | None]]:
    """A fact's kinds: each quantity's dimension (None: a bare number) and each vocabulary; phrases
    are not values that two subjects could swap."""
    out: set[tuple[str, str | None]] = {("quantity", None) for _ in fact.numbers}
    for text in fact.texts:
        form = as_form(text)
        if form.quantity:
            out.add(("quantity", form.quantity.dim))
        elif form.vocab:
            out.add(("vocabulary", form.vocab))
    return out


@pytest.mark.parametrize("name", ["postgres-manual", "python-library"])
def test_facts_of_one_kind_say_what_they_are_about(name: str) -> None:
    # Seen on held-out py-cmp-blake2b-vs-blake2s: "blake2b is 32 bytes, blake2s is 64 bytes" swaps
    # the two defaults and was scored right, since nothing said which value was whose. Two facts of
    # one kind need an about each, unless the question names as many snake_case settings as it has
    # facts (the scorer then binds them in order).
    taskset = load_taskset(ROOT / "e2e" / "eval" / f"{name}-tasks.yaml")
    unbound = []
    for t in taskset.tasks:
        same_kind = any(_kinds(a) & _kinds(b) for i, a in enumerate(t.facts) for b in t.facts[i + 1 :])
        by_order = len(re.findall(r"\b[a-z]+_[a-z0-9_]+\b", t.question)) == len(t.facts)
        if same_kind and not by_order and not all(f.about for f in t.facts) and t.id not in UNBOUND_OK:
            unbound.append(t.id)
    assert not unbound, f"facts of one kind without about: {unbound}"
