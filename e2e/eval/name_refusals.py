"""How often the answer-first name checks refuse an answer known right, offline (issue 59, item 1).

For every answerable task of a part of both task sets: the supporting pages as ingestion reads them
(``html_to_text``, chunked as the example VectorIndex chunks: 128 tokens, 16 overlapping; tokens
counted as words x 1.3), the passages a first search could show (per supporting page its first chunk
that states a fact, by the scorer's own reading ``claims.fact_stated``, then the page's other chunks
sharing most words with the question, 5 in all; the question's names no passage mentions searched
alone, as the runtime's step 1 does, over the supporting pages), and a right answer built from the task's facts
("It is FACT. [source: PAGE]"). The example fleet's checks are run on them as the runtime runs them:
``declineUnknownNames`` (the question's names against the search result), ``declineOtherSubjects``
(the answer's values against the pages naming the question's identifiers) and, off by default,
``checkAnswerNames``. A check that fires is a false refusal. ``--old FILE`` runs an earlier
``answercheck.py`` beside the current one.

    python -m e2e.eval.name_refusals --part dev [--old /tmp/answercheck_old.py]

This is a stand-in for the stored first answers of real runs, which the evaluation journal does not
keep (it stores the final answer only): the right answers here are the facts, not a model's words.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml
from agentfleet_eval import claims
from agentfleet_eval.taskset import EvalTask, load_taskset

from agentfleet_runtime.answering import answercheck
from agentfleet_runtime.ingest.chunking import chunk_text
from agentfleet_runtime.ingest.documents import html_to_text
from agentfleet_runtime.tools.retrieval import format_passages
from e2e.eval.corpus import CORPORA

_WORD = re.compile(r"[a-z_][\w.]+")


def _count(texts):
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


def _chunks(task: EvalTask, pages: Path) -> list[tuple[str, str]]:
    chunks = []
    for page in task.supporting:
        path = pages / page
        if path.exists():
            text = html_to_text(path.read_bytes().decode("utf-8", "replace"))
            chunks += [(page, t) for t, _ in chunk_text(text, _count, 128, 16)]
    return chunks


def _closest(chunks: list[tuple[str, str]], query: str, n: int) -> list[tuple[str, str]]:
    asked = set(_WORD.findall(query.casefold()))
    return sorted(chunks, key=lambda c: -len(asked & set(_WORD.findall(c[1].casefold()))))[:n]


def _shown(task: EvalTask, chunks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first search's 5 passages: per supporting page its first chunk stating a fact, then the
    chunks sharing most words with the question."""
    stating = []
    for page in task.supporting:
        found = [c for c in chunks if c[0] == page and any(claims.fact_stated(f, c[1]) for f in task.facts)]
        stating += found[:1]
    return (stating + _closest([c for c in chunks if c not in stating], task.question, 5))[:5]


def _answer(task: EvalTask, shown: list[tuple[str, str]]) -> str:
    said = ", ".join(f.texts[0] if f.texts else format(f.numbers[0], "g") for f in task.facts)
    return f"It is {said}. [source: {shown[0][0] if shown else 'none'}]"


def refusals(ac: ModuleType, task: EvalTask, chunks: list[tuple[str, str]], subject: str) -> list[str]:
    """The checks of ``ac`` (an answercheck module) that refuse the right answer."""
    shown = _shown(task, chunks)
    results = [format_passages([{"source": s, "text": t, "score": 0.5} for s, t in shown])]
    answer, out = _answer(task, shown), []
    unknown = ac.unknown_names(task.question, results, subject)
    if unknown:  # the runtime's step 1: the names no passage mentions, searched alone
        found = _closest(chunks, " ".join(unknown), 5)
        results.append(format_passages([{"source": s, "text": t, "score": 0.5} for s, t in found]))
        if ac.unknown_names(task.question, results, subject):
            out.append("declineUnknownNames")
    if ac.other_subject(answer, shown, task.question, subject):
        out.append("declineOtherSubjects")
    if ac.unknown_answer_names(answer, results, task.question):
        out.append("checkAnswerNames")
    return out


def _system_prompt(objects: Path) -> str:
    """The example fleet's system prompt: the subject the question-name check leaves out."""
    for doc in yaml.safe_load_all(objects.read_text()):
        if doc and doc.get("kind") == "AgentFleet":
            return doc["spec"]["systemPrompt"]["inline"]
    return ""


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("answercheck_old", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="dev")
    ap.add_argument("--old", help="an earlier answercheck.py to run beside the current one")
    args = ap.parse_args(argv)
    versions = {"now": answercheck, **({"old": _load(args.old)} if args.old else {})}
    for corpus in CORPORA.values():
        tasks = [t for t in load_taskset(corpus.tasks).part(args.part).tasks if t.expect == "answer"]
        subject = _system_prompt(corpus.objects)
        counts = {v: 0 for v in versions}
        for task in tasks:
            chunks = _chunks(task, corpus.directory)
            for name, ac in versions.items():
                why = refusals(ac, task, chunks, subject)
                counts[name] += bool(why)
                if why:
                    print(f"  {name:3} {corpus.name} {task.id}: {', '.join(why)}")
        line = ", ".join(f"{v} {n} of {len(tasks)}" for v, n in counts.items())
        print(f"{corpus.name} {args.part}: answers known right refused: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
