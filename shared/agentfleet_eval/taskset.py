"""Task sets: questions with the facts a correct answer states and the documents that support them. Pure.

A task set is YAML (a mapping with ``tasks:``, or a list) or JSONL (one task per line)::

    name: postgres-manual
    tasks:
    - id: wal-01
      part: dev                      # dev (tune on it) or heldout (report it)
      kind: default                  # free text; reports group by it
      question: What is the default value of checkpoint_timeout?
      facts:                         # every fact must be stated; each fact is one of:
      - 5min                         #   a string (normalised match),
      - [five minutes, 5 min, 300s]  #   a list of alternatives (any one),
      - {number: 0.9}                #   a number, matched numerically (0.9 = .90)
      - {any: [replica, {number: 1}]}  # alternatives of either form
      supporting: [runtime-config-wal.html]   # documents holding the facts (recall@k)
    - id: cmp-01
      part: dev
      kind: comparison
      question: Compare plain VACUUM and VACUUM FULL. Which lock does each take?
      facts:
      - {any: [SHARE UPDATE EXCLUSIVE], about: VACUUM}   # about: the thing this fact is the answer for
      - {any: [ACCESS EXCLUSIVE], about: VACUUM FULL}
      wrong: [[VACUUM FULL can run alongside]]          # distractors: stating one fails the answer
      supporting: [sql-vacuum.html]
    - id: fsync-01
      part: dev
      question: How long does pg_test_fsync run each test by default?
      facts: [[5 seconds, 5s]]
      alongside: [[2 minutes]]       # the page's own related value: stating it competes with nothing
    - id: none-01
      part: heldout
      kind: unanswerable
      question: What is the default value of the setting max_cluster_ram?
      expect: decline                # the right answer says the documents do not answer it

How facts are read (scoring.py does the matching): a string that is a number with a unit ("5min",
"128 MB", "five minutes", "1 gigabyte") is a quantity, compared as a quantity (5min = 300 s;
1GB = 1024MB, as PostgreSQL counts); ``{number: N}`` is a bare number, which never matches a
number with a unit; any other string is a phrase, matched as whole words. ``about`` names what
the fact answers when a question asks about several things (without it, a question that names as
many snake_case settings as it has facts binds them in order): an answer that states the fact
for another of those things is wrong. ``wrong`` lists facts a correct answer must not state.
``alongside`` lists values of the asked kind that a right answer may state beside the fact because
the page states them in the same breath ("5 seconds each, about 2 minutes in all"); any other value
of that kind competes with the fact and fails the answer.

Every task names its ``part``. A task set is refused when its parts share a supporting page or a
fact (held-out questions must be about pages and values never tuned on), or when a question
contains one of its own facts. Errors name the task and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from agentfleet_eval.claims import fact_keys, fact_stated

PARTS = ("dev", "heldout")
FIELDS = frozenset({"id", "question", "kind", "part", "facts", "supporting", "expect", "notes", "wrong", "alongside"})


class TaskSetError(ValueError):
    """A task set that cannot be used; the message names the task and the field to fix."""


@dataclass(frozen=True)
class Fact:
    """One fact an answer must state: any of ``texts`` or any of ``numbers`` (bare numbers), said of ``about``."""

    texts: tuple[str, ...] = ()
    numbers: tuple[float, ...] = ()
    about: str = ""  # the thing the fact answers for, where a question asks about several

    def describe(self) -> str:
        forms = [*self.texts, *(format(n, "g") for n in self.numbers)]
        return " | ".join(forms)


@dataclass(frozen=True)
class EvalTask:
    id: str
    question: str
    kind: str
    part: str
    facts: tuple[Fact, ...] = ()
    supporting: tuple[str, ...] = ()
    expect: Literal["answer", "decline"] = "answer"
    notes: str = ""
    wrong: tuple[Fact, ...] = ()  # distractors: an answer stating one of them is wrong
    alongside: tuple[Fact, ...] = ()  # related values of the asked kind a right answer may also state


@dataclass(frozen=True)
class TaskSet:
    name: str
    tasks: tuple[EvalTask, ...] = field(default_factory=tuple)

    def part(self, part: str | None) -> TaskSet:
        if part in (None, "all"):
            return self
        if part not in PARTS:
            raise TaskSetError(f"--part {part!r}: use one of {', '.join(PARTS)} or all")
        return TaskSet(f"{self.name}#{part}", tuple(t for t in self.tasks if t.part == part))


FACT_FORMS = (
    "a fact is a string, a list of alternatives, {number: N} or {any: [...]} (either with an optional about: NAME)"
)


def _fact(raw: Any, where: str) -> Fact:
    texts: list[str] = []
    numbers: list[float] = []
    about = ""
    if isinstance(raw, dict) and "about" in raw and set(raw) - {"about"} in ({"any"}, {"number"}):
        about = raw["about"]
        if not isinstance(about, str) or not about.strip():
            raise TaskSetError(
                f"{where}: about names the thing the fact answers for (a non-empty string); got {about!r}"
            )
        raw = {k: v for k, v in raw.items() if k != "about"}

    def one(x: Any) -> None:
        if isinstance(x, bool):
            raise TaskSetError(f"{where}: {FACT_FORMS}; got {x!r}")
        if isinstance(x, str) and x.strip():
            texts.append(x)
        elif isinstance(x, (int, float)):
            numbers.append(float(x))
        elif (
            isinstance(x, dict)
            and set(x) == {"number"}
            and isinstance(x["number"], (int, float))
            and not isinstance(x["number"], bool)
        ):
            numbers.append(float(x["number"]))
        else:
            raise TaskSetError(f"{where}: {FACT_FORMS}; got {x!r}")

    if isinstance(raw, dict) and set(raw) == {"any"}:
        raw = raw["any"]
    if isinstance(raw, list):
        if not raw:
            raise TaskSetError(f"{where}: an empty list of alternatives matches nothing")
        for x in raw:
            one(x)
    else:
        one(raw)
    return Fact(tuple(texts), tuple(numbers), about.strip())


def _facts(raw: Any, where: str, name: str) -> tuple[Fact, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TaskSetError(f"{where}: {name} must be a list")
    return tuple(_fact(f, f"{where} {name}[{i}]") for i, f in enumerate(raw))


def parse_task(raw: Any, index: int) -> EvalTask:
    where = f"tasks[{index}]"
    if not isinstance(raw, dict):
        raise TaskSetError(f"{where}: a task is a mapping with question, kind, facts, supporting")
    tid = raw.get("id") or f"task-{index}"
    where = f"task {tid}"
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise TaskSetError(f"{where}: unknown field(s) {', '.join(unknown)}")
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TaskSetError(f"{where}: question is required (a non-empty string)")
    kind = str(raw.get("kind") or "general")
    part = raw.get("part")
    if part is None:
        raise TaskSetError(f"{where}: part is required: dev (tune on it) or heldout (report it)")
    if part not in PARTS:
        raise TaskSetError(f"{where}: part must be one of {', '.join(PARTS)}; got {part!r}")
    expect = raw.get("expect") or ("decline" if kind == "unanswerable" else "answer")
    if expect not in ("answer", "decline"):
        raise TaskSetError(f"{where}: expect must be answer or decline; got {expect!r}")
    facts = _facts(raw.get("facts"), where, "facts")
    wrong = _facts(raw.get("wrong"), where, "wrong")
    alongside = _facts(raw.get("alongside"), where, "alongside")
    for i, f in enumerate(alongside):
        if any(fact_keys(f) & fact_keys(w) for w in wrong):
            raise TaskSetError(f"{where} alongside[{i}]: {f.describe()!r} is also listed as wrong; keep it in one")
    if expect == "answer" and not facts:
        raise TaskSetError(f"{where}: an answerable task needs at least one fact (or expect: decline)")
    if expect == "decline" and facts:
        raise TaskSetError(f"{where}: a task that expects a decline has no facts; remove them or set expect: answer")
    supporting = raw.get("supporting") or []
    if not isinstance(supporting, list) or not all(isinstance(s, str) and s for s in supporting):
        raise TaskSetError(f"{where}: supporting must be a list of document names")
    if expect == "answer" and not supporting:
        raise TaskSetError(
            f"{where}: supporting is required for an answerable task (the documents that hold its facts)"
        )
    notes = str(raw.get("notes") or "")
    task = EvalTask(str(tid), question.strip(), kind, part, facts, tuple(supporting), expect, notes, wrong, alongside)
    for i, f in enumerate(facts):
        if fact_stated(f, task.question):
            raise TaskSetError(
                f"{where} facts[{i}]: the question itself states {f.describe()!r}; ask without giving the answer away"
            )
    return task


def check_parts(tasks: tuple[EvalTask, ...]) -> None:
    """Held-out tasks share no supporting page and no fact with dev tasks: what is tuned on dev must
    not have seen the held-out answers."""
    dev = [t for t in tasks if t.part == "dev"]
    for t in (t for t in tasks if t.part == "heldout"):
        for d in dev:
            pages = sorted(set(t.supporting) & set(d.supporting))
            if pages:
                raise TaskSetError(
                    f"task {t.id}: part heldout shares supporting page {pages[0]} with dev task {d.id}; move one "
                    "of them"
                )
            for f in t.facts:
                if any(fact_keys(f) & fact_keys(g) for g in d.facts):
                    raise TaskSetError(
                        f"task {t.id}: part heldout shares the fact {f.describe()!r} with dev task {d.id}; move "
                        "one of them"
                    )


def parse_taskset(raw: Any, name: str) -> TaskSet:
    if isinstance(raw, dict):
        name = str(raw.get("name") or name)
        raw = raw.get("tasks")
    if not isinstance(raw, list) or not raw:
        raise TaskSetError(f"{name}: no tasks (give a list, or a mapping with a tasks: list)")
    tasks = tuple(parse_task(t, i) for i, t in enumerate(raw))
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise TaskSetError(f"task {t.id}: id used twice")
        seen.add(t.id)
    check_parts(tasks)
    return TaskSet(name, tasks)


def load_taskset(path: str | Path) -> TaskSet:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TaskSetError(f"cannot read task set {p}: {e.strerror or e}") from e
    if p.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    raise TaskSetError(f"{p.name} line {n}: not JSON ({e})") from e
        return parse_taskset(rows, p.stem)
    try:
        return parse_taskset(yaml.safe_load(text), p.stem)
    except yaml.YAMLError as e:
        raise TaskSetError(f"{p.name}: not YAML ({e})") from e
