"""What two runtime changes do to a stored `agentfleet eval` run, without running it again.

Reads a run's journal (`results.jsonl` in `--out`) and its task set, takes the fleet's pass (the
first pass that is not a baseline), and for each task:
- **citations** (`agentfleet_runtime.answering.citing.cite`): the stored answer completed as the loop now
  completes a final answer, with the task's stored retrieved passages, then rescored with the eval's
  own scorer: correct answers grounded before and after, and success (which must not move).
- **tokens** (`agentfleet_runtime.tools.retrieval.RepeatsElided`): each stored search result rendered
  in full and as the loop's history now shows it, counted with a tokenizer file (the served model's
  `tokenizer.json`), times the model calls after it that re-read it; the agent's tokens before and
  after, against the one-shot RAG pass's.

A replay is not a run: the model, given the shorter history, may search and answer differently.
It says how much of a stored run's gap a change closes on the same answers; a journal the change
was designed from is in-sample (say so beside the figure).

    python -m e2e.bench.eval_replay RESULTS.jsonl TASKSET.yaml [--tokenizer tokenizer.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentfleet_eval.scoring import Outcome, score
from agentfleet_eval.taskset import load_taskset

from agentfleet_client.evaluation.journal import outcome_from
from agentfleet_runtime.answering.citing import cite
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.tools.retrieval import RepeatsElided, format_passages


def passes(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """pass -> task id -> the journal's last outcome for it."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for line in path.read_text().splitlines()[1:]:
        row = json.loads(line)
        if "outcome" in row and "task" in row:
            out.setdefault(row["pass"], {})[row["task"]] = row["outcome"]
    return out


def in_order(o: Outcome) -> list[dict[str, Any]]:
    return sorted(o.retrieved, key=lambda p: (p.get("step", 0), p.get("call", 0), p.get("rank", 0)))


def recited(o: Outcome, question: str) -> Outcome:
    """The outcome with its answer completed as citing.cite completes a final answer now."""
    if o.status != "done" or not o.answer:
        return o
    answer = cite(o.answer, [(str(p["source"]), str(p["text"])) for p in in_order(o)], question)
    return dataclasses.replace(o, answer=answer, citations=tuple(parse_citations(answer)))


def tokens_saved(o: Outcome, count: Callable[[str], int]) -> int:
    """Prompt tokens the elided repeats would have saved: per search result after the first, its
    full rendering minus the history's, times the model calls after it (one per later step)."""
    steps = sorted({int(p.get("step", 0)) for p in o.retrieved})
    if len(steps) < 2:
        return 0
    view, saved, last = RepeatsElided(), 0, steps[-1]
    for s in range(last + 1):
        shown = [p for p in in_order(o) if int(p.get("step", 0)) == s]
        full = format_passages(shown)
        elided = view(full)
        if s > 0:
            saved += (count(full) - count(elided)) * (last + 1 - s)
    return saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("journal", type=Path)
    ap.add_argument("taskset", type=Path)
    ap.add_argument("--tokenizer", type=Path, help="the served model's tokenizer.json (no token figures without it)")
    ap.add_argument("--rag-pass", default="one-shot-rag")
    args = ap.parse_args()
    tasks = {t.id: t for t in load_taskset(args.taskset).tasks}
    runs = passes(args.journal)
    fleet = next(name for name in runs if not name.startswith(("closed-book", "one-shot-rag")))
    agent = {tid: outcome_from(d) for tid, d in runs[fleet].items()}

    before = [score(tasks[tid], o) for tid, o in agent.items()]
    after = [score(tasks[tid], recited(o, tasks[tid].question)) for tid, o in agent.items()]
    grounded = [sum(1 for s in ss if s.success and s.grounded) for ss in (before, after)]
    answerable = [sum(1 for s in ss if s.success and s.grounded is not None) for ss in (before, after)]
    print(f"{fleet}: {len(agent)} tasks")
    print(f"  success            {sum(s.success for s in before)} -> {sum(s.success for s in after)}")
    for b, a in zip(before, after, strict=True):
        if a.outcome.answer != b.outcome.answer:
            print(f"    {b.task.id}: grounded {b.grounded} -> {a.grounded}; cites {list(a.outcome.citations)}")
    print(
        f"  correct grounded   {grounded[0]}/{answerable[0]} ({grounded[0] / max(1, answerable[0]):.1%})"
        f" -> {grounded[1]}/{answerable[1]} ({grounded[1] / max(1, answerable[1]):.1%})"
    )
    if args.tokenizer:
        from tokenizers import Tokenizer  # the replay's only use of it: the runtime counts what engines report

        tk = Tokenizer.from_file(str(args.tokenizer))
        saved = sum(tokens_saved(o, lambda text: len(tk.encode(text).ids)) for o in agent.values())
        total = sum(o.tokens for o in agent.values())
        rag = sum(outcome_from(d).tokens for d in runs.get(args.rag_pass, {}).values())
        ratio = (lambda t: f" ({t / rag:.3f}x {args.rag_pass}'s {rag})") if rag else (lambda t: "")
        print(f"  agent tokens       {total}{ratio(total)} -> {total - saved}{ratio(total - saved)}: {saved} saved")


if __name__ == "__main__":
    main()
