"""What the verifying search (`answering.verifySearch`) does to a stored `agentfleet eval` run's
cascade pass, against the live index, without a model call.

For each task of the pass, the journal's first answer is judged as the answer-first stage judges it
over the task's first passages (the search-first step's, and the unknown-names search's:
`answerfirst.plain_answer`). One that fails only for values no passage holds
(`answerfirst.verifiable`) is searched for as the runtime searches (`answerfirst.verify_query`, the
Retrieval tool's topK and filter, a neighbouring chunk a side: `VERIFY_READ_AROUND`), and judged
again over all of them (`answerfirst.held`). Where it is held, the task would have ended with it: the
eval's scorer scores that answer beside the task's stored final one. Every other task ends as it did.

A replay is not a run: the first answers are the journal's, and the index must be the one the run
used (the same corpus, chunking and embedding). A journal whose failures the change was designed
from is in-sample (say so beside the figure).

    python -m e2e.bench.verify_replay JOURNAL.jsonl[.gz] PASS TASKSET.yaml RUNTIME.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agentfleet_eval.scoring import Outcome, TaskScore, score
from agentfleet_eval.taskset import EvalTask, load_taskset

from agentfleet_client.evaluation.journal import outcome_from
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.loop.answerfirst import VERIFY_READ_AROUND, held, plain_answer, verifiable, verify_query
from agentfleet_runtime.tools.retrieval import format_passages

Search = Callable[[str], Awaitable[list[dict[str, Any]]]]  # query -> passages (source, text, score)
FIRST_STEPS = (0, 1)  # search first, then the unknown-names search: the steps before any model call


@dataclasses.dataclass(frozen=True)
class Replayed:
    task: str
    kind: str  # verified, not-held, not-verifiable, no-first-answer
    before: TaskScore
    after: TaskScore | None = None  # the score of the answer the task would have ended with
    query: str = ""


def opening_outputs(o: Outcome) -> list[str]:
    """The first passages as the first reading was shown them: one search output per opening step. Pure."""
    outs = [format_passages([p for p in o.retrieved if p.get("step") == n]) for n in FIRST_STEPS]
    return [s for s in outs if s != format_passages([])]


async def replay_one(task: EvalTask, o: Outcome, search: Search, settings: dict[str, Any]) -> Replayed:
    """One task of the pass: the verifying search's effect on it."""
    before = score(task, o)
    first = (o.first_answer or "").strip()
    if not first:
        return Replayed(task.id, "no-first-answer", before)
    opening = [p for p in o.retrieved if p.get("step") in FIRST_STEPS]
    seen = opening_outputs(o)
    shown = [(str(p["source"]), str(p["text"])) for p in opening]
    answer, why = plain_answer(first, seen, shown, task.question, settings["check_names"])
    if not verifiable(answer, why, seen, task.question):
        return Replayed(task.id, "not-verifiable", before)
    query = verify_query(answer, task.question)
    found = await search(query)
    seen_all, shown_all = [*seen, format_passages(found)], shown + [(str(p["source"]), str(p["text"])) for p in found]
    cited = held(answer, seen_all, shown_all, task.question, **settings)
    if cited is None:
        return Replayed(task.id, "not-held", before, query=query)
    step = max(FIRST_STEPS) + 1
    retrieved = tuple(opening) + tuple({"step": step, "call": 0, "rank": i + 1, **p} for i, p in enumerate(found))
    ended = dataclasses.replace(o, answer=cited, citations=tuple(parse_citations(cited)), retrieved=retrieved)
    return Replayed(task.id, "verified", before, score(task, ended), query)


def pass_outcomes(path: Path, name: str) -> dict[str, Outcome]:
    """task id -> the pass's last outcome for it in the journal."""
    opener = gzip.open if path.suffix == ".gz" else open
    out: dict[str, Outcome] = {}
    with opener(path, "rt") as f:
        for line in f:
            row = json.loads(line)
            if row.get("pass") == name and "outcome" in row:
                out[row["task"]] = outcome_from(row["outcome"])
    return out


def summary(rows: list[Replayed]) -> list[str]:
    """The replay's lines: how many tasks each way, and what the verified ones became."""
    done = [r for r in rows if r.after is not None]
    won = [r.task for r in done if r.after.success and not r.before.success]
    lost = [r.task for r in done if r.before.success and not r.after.success]
    ungrounded = [r.task for r in done if r.after.success and r.after.grounded is False]
    lines = [
        f"tasks {len(rows)}: " + ", ".join(f"{k} {n}" for k, n in sorted(Counter(r.kind for r in rows).items())),
        f"verified {len(done)}: won {len(won)} {won}, lost {len(lost)} {lost}; right but not grounded {ungrounded}",
    ]
    for r in done:
        was, now = ("right" if s.success else "wrong" for s in (r.before, r.after))
        lines.append(f"  {r.task}: {was} -> {now} (grounded {r.after.grounded}) {r.after.why[:100]}")
    return lines


async def _replay(args: argparse.Namespace) -> list[Replayed]:
    from agentfleet_runtime.core.config import load_config
    from agentfleet_runtime.tools.registry import answer_policy_tool, default_retriever
    from agentfleet_runtime.tools.retrieval import search_passages

    config = load_config(args.runtime)
    tool = next(t for t in config.tools if t.type == "Retrieval")
    rs = tool.retrieval
    retriever = default_retriever(config, tool)
    _, policy = answer_policy_tool(config)  # the fleet's policy with the configuration's answering settings
    plan = {
        "check_names": policy.check_answer_names,
        "other_subjects": policy.decline_other_subjects,
        "subject": config.system_prompt,
    }

    async def search(query: str) -> list[dict[str, Any]]:
        # As the Retrieval tool answers the runtime's verifying search: its readAround, or the search's.
        return await search_passages(retriever, query, rs.top_k, rs.filter, max(rs.read_around, VERIFY_READ_AROUND))

    tasks = {t.id: t for t in load_taskset(args.taskset).tasks}
    try:
        outcomes = pass_outcomes(args.journal, args.pass_name)
        return [await replay_one(tasks[tid], o, search, plan) for tid, o in outcomes.items() if tid in tasks]
    finally:
        close = getattr(retriever, "close", None)
        if close is not None:
            await close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("journal", type=Path)
    ap.add_argument("pass_name", metavar="PASS")
    ap.add_argument("taskset", type=Path)
    ap.add_argument("runtime", type=Path, help="the fleet's runtime configuration (the index the run used)")
    args = ap.parse_args()
    for line in summary(asyncio.run(_replay(args))):
        print(line)


if __name__ == "__main__":
    main()
