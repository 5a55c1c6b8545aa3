"""The eval's scorer against a blind reader, on a stored `agentfleet eval` run.

The scorer (agentfleet_eval.scoring) decides two things of an answer: whether it is correct, and
whether it is grounded (a cited, retrieved passage states each fact it gives). Each of its fixes so
far was made from the answers of the run that found the hole. So agreement with a reader counts only
on answers the scorer was never tuned on: a run made after the scorer's commit.

Two steps:

    python -m e2e.bench.reader_agreement export JOURNAL.jsonl[.gz] TASKSET.yaml PACKETS.jsonl [--passes P,Q]
    python -m e2e.bench.reader_agreement compare JOURNAL.jsonl[.gz] TASKSET.yaml LABELS.jsonl

``--passes`` names the passes read (default: the candidate's, ``cand``, and ``one-shot-rag``).
``export`` writes one packet per answer, in a shuffled order, with no pass name and no verdict:
- the question, the task's facts and whether it expects a decline;
- the answer, the documents it cites, and the passages the task retrieved: each by its source, and
  the text of those of a cited document.

The reader copies each packet's ``key`` into a labels file, one line each:
``{"key": ..., "correct": true|false, "grounded": true|false|null, "why": "..."}``.
``grounded`` is null for a question that expects a decline.

``compare`` scores each answer with the scorer, joins the labels by key, and prints the agreement:
- on correct, over every labelled answer;
- on grounded, over the answers both call correct;
- every disagreement, with both reasons.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet_eval.scoring import TaskScore, same_document, score
from agentfleet_eval.taskset import EvalTask, Fact, load_taskset

from agentfleet_client.evaluation.journal import outcome_from

PASSES = ("cand", "one-shot-rag")


def records(journal: Path, passes: Sequence[str]) -> list[dict[str, Any]]:
    """The journal's task records of ``passes``, in order."""
    opener = gzip.open if journal.suffix == ".gz" else open
    with opener(journal, "rt") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r for r in rows if "outcome" in r and r.get("pass") in passes]


def key(record: dict[str, Any]) -> str:
    """An answer's key: it names neither the pass nor the task, so a reader cannot tell them."""
    return hashlib.sha256(f"{record['pass']}\0{record['task']}".encode()).hexdigest()[:12]


def packet(task: EvalTask, record: dict[str, Any]) -> dict[str, Any]:
    """What the reader sees of one answer. Pure."""
    o = record["outcome"]
    cited = list(o.get("citations") or [])
    passages = []
    for p in o.get("retrieved") or []:
        source = str(p.get("source", ""))
        is_cited = any(same_document(c, source) for c in cited)
        # Grounded asks only what cited passages state: the others are named, not shown.
        passages.append({"source": source, "cited": is_cited, "text": p.get("text", "") if is_cited else ""})
    return {
        "key": key(record),
        "question": task.question,
        "expect": task.expect or "answer",
        "facts": [_describe(f) + (f" (of {f.about})" if f.about else "") for f in task.facts],
        "answer": o.get("answer", ""),
        "cites": cited,
        "passages": passages,
    }


def _describe(fact: Fact) -> str:
    """A fact's forms as a reader reads them: whole numbers in full (80877103, not 8.08771e+07)."""
    numbers = (str(int(n)) if float(n).is_integer() else repr(float(n)) for n in fact.numbers)
    return " | ".join([*fact.texts, *numbers])


def export(tasks: dict[str, EvalTask], rows: Iterable[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """The packets of every answer, shuffled (``seed``) so that a pass's answers do not come together."""
    out = [packet(tasks[r["task"]], r) for r in rows if r["task"] in tasks]
    random.Random(seed).shuffle(out)
    return out


@dataclass(frozen=True)
class Compared:
    task: str
    pass_: str
    scorer: TaskScore
    correct: bool  # the reader's
    grounded: bool | None  # the reader's
    why: str  # the reader's


def compare(
    tasks: dict[str, EvalTask], rows: Iterable[dict[str, Any]], labels: dict[str, dict[str, Any]]
) -> list[Compared]:
    """Each labelled answer with the scorer's verdict and the reader's."""
    out = []
    for r in rows:
        label = labels.get(key(r))
        if label is None or r["task"] not in tasks:
            continue
        s = score(tasks[r["task"]], outcome_from(r["outcome"]))
        out.append(
            Compared(r["task"], r["pass"], s, bool(label["correct"]), label.get("grounded"), label.get("why", ""))
        )
    return out


def agreement(rows: Sequence[Compared]) -> dict[str, Any]:
    """Agreement on correct (every answer) and on grounded (answers both call correct, not declines)."""
    on_correct = [c.scorer.success == c.correct for c in rows]
    both = [c for c in rows if c.scorer.success and c.correct and c.scorer.grounded is not None]
    on_grounded = [bool(c.scorer.grounded) == bool(c.grounded) for c in both]
    return {
        "answers": len(rows),
        "correct_agree": sum(on_correct),
        "scorer_only_correct": sum(c.scorer.success and not c.correct for c in rows),
        "reader_only_correct": sum(c.correct and not c.scorer.success for c in rows),
        "both_correct": len(both),
        "grounded_agree": sum(on_grounded),
        "scorer_only_grounded": sum(bool(c.scorer.grounded) and not c.grounded for c in both),
        "reader_only_grounded": sum(bool(c.grounded) and not c.scorer.grounded for c in both),
    }


def _pct(n: int, d: int) -> str:
    return f"{n} of {d} ({100 * n / d:.0f}%)" if d else "-"


def report(rows: Sequence[Compared]) -> str:
    lines = []
    for p in sorted({c.pass_ for c in rows}):
        a = agreement([c for c in rows if c.pass_ == p])
        lines.append(
            f"[{p}] correct: agree on {_pct(a['correct_agree'], a['answers'])}; scorer only "
            f"{a['scorer_only_correct']}, reader only {a['reader_only_correct']}. grounded (both correct): agree on "
            f"{_pct(a['grounded_agree'], a['both_correct'])}; scorer only {a['scorer_only_grounded']}, reader only "
            f"{a['reader_only_grounded']}"
        )
    for c in rows:
        if c.scorer.success != c.correct:
            lines.append(f"  correct {c.pass_} {c.task}: scorer {c.scorer.success} ({c.scorer.why}) / reader: {c.why}")
        elif c.correct and c.scorer.grounded is not None and bool(c.scorer.grounded) != bool(c.grounded):
            lines.append(
                f"  grounded {c.pass_} {c.task}: scorer {c.scorer.grounded} ({c.scorer.why}) / reader: {c.why}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("export", "compare"))
    ap.add_argument("journal", type=Path)
    ap.add_argument("taskset", type=Path)
    ap.add_argument("file", type=Path, help="export: packets to write; compare: the reader's labels")
    ap.add_argument("--passes", default=",".join(PASSES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tasks = {t.id: t for t in load_taskset(args.taskset).tasks}
    rows = records(args.journal, args.passes.split(","))
    if args.step == "export":
        packets = export(tasks, rows, args.seed)
        args.file.write_text("".join(json.dumps(p) + "\n" for p in packets))
        print(f"{len(packets)} packets -> {args.file}")
        return
    labels = {}
    for line in args.file.read_text().splitlines():
        if line.strip():
            label = json.loads(line)
            labels[label["key"]] = label
    print(report(compare(tasks, rows, labels)))


if __name__ == "__main__":
    main()
