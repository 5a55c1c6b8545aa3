"""What a run prints and writes: a table per task, a summary (side by side with deltas when
configurations are compared), the JSON report, and a PNG."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

from agentfleet_contract.passage_refs import citation_in_place
from agentfleet_eval.scoring import (
    COMPARED,
    COPIED_PASSAGES,
    FAILURE_CAUSES,
    TaskScore,
    declined,
    failure_cause,
    score,
    summarize,
)

from agentfleet_client.evaluation.paired import Paired, paired

# Figures that get a delta column when passes are compared: scoring's, and what a platform team
# weighs beside them (tokens, declines, the pass's wall time).
DELTAS = (*COMPARED, "tokensPerTask", "declinedUnanswerable", "declinedAnswerable", "wallSeconds")
_RATES = ("success", "grounded", "recall", "judged", "declinedUnanswerable", "declinedAnswerable")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _mark(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "NO")


def _delta(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    if key in _RATES:
        return f"{100 * v:+.0f}pp"
    if key == "costPerTask":
        return f"{v:+.2e}"
    return f"{v:+.{0 if key == 'tokensPerTask' else 2}f}"


# -- the cascade's balance (issue 59) --------------------------------------------------------------
# A cascade's first answer is one-shot RAG's; the loop runs only when a check sends it on. Per task:
# "lost by the loop" when the first answer was right and the final one is wrong, "won by the loop"
# the other way. Two failure kinds the loop can add, checked before scoring's causes (the names are
# the same in the report, report.json and status.evaluation.failureCauses):
DECLINE_UNDONE = "declineUndone"  # the first answer declined rightly; the final answer asserts a value
PASSAGE_AS_ANSWER = "passageAsAnswer"  # the answer gives a passage (number, head line, score, its text) in its place
CAUSES = (*FAILURE_CAUSES, PASSAGE_AS_ANSWER, DECLINE_UNDONE)
LOST_BY_LOOP, WON_BY_LOOP = "lostByLoop", "wonByLoop"


def first_score(s: TaskScore) -> TaskScore | None:
    """The first answer of a cascade's task, scored by the same scorer as the final one; None for
    a task with no first answer (no cascade, or a decline before any model call). Pure."""
    o = s.outcome
    return score(s.task, replace(o, answer=o.first_answer)) if o.first_answer else None


def cause(s: TaskScore) -> str | None:
    """A failed task's cause: a passage in the answer's place, a right first decline the loop
    undid, else scoring's (``failure_cause``); None for a success. Pure."""
    if s.success:
        return None
    base = failure_cause(s)
    if s.why.startswith(COPIED_PASSAGES):  # scoring's "format": here, passages in the answer's place
        return PASSAGE_AS_ANSWER
    if base in ("budget", "error", "format"):
        return base
    if citation_in_place(s.outcome.answer):
        return PASSAGE_AS_ANSWER
    first = first_score(s)
    if s.task.expect == "decline" and first is not None and first.success:
        return DECLINE_UNDONE
    return base


def causes(scores: Sequence[TaskScore]) -> dict[str, int]:
    """Failed tasks per cause (``cause``), in CAUSES order, causes with none left out. Pure."""
    n = Counter(cause(s) for s in scores)
    return {c: n[c] for c in CAUSES if n[c]}


def loop_balance(scores: Sequence[TaskScore]) -> dict[str, Any] | None:
    """A cascade pass's balance: its tasks with a first answer, how many of those were right, and
    the ids lost and won by the loop; None for a pass without first answers. Pure."""
    firsts = [(s, first_score(s)) for s in scores]
    had = [(s, f) for s, f in firsts if f is not None]
    if not had:
        return None
    return {
        "firstAnswers": len(had),
        "firstRight": sum(1 for _, f in had if f.success),
        LOST_BY_LOOP: [s.task.id for s, f in had if f.success and not s.success],
        WON_BY_LOOP: [s.task.id for s, f in had if s.success and not f.success],
    }


def loop_table(runs: Sequence[tuple[str, Sequence[TaskScore]]], out: TextIO) -> None:
    """For every cascade pass: first answers right, lost and won by the loop, and each such task."""
    for label, scores in runs:
        b = loop_balance(scores)
        if b is None:
            continue
        lost, won = b[LOST_BY_LOOP], b[WON_BY_LOOP]
        out.write(
            f"[{label}] cascade: first answer right {b['firstRight']} of {b['firstAnswers']}; lost by the loop "
            f"{len(lost)}, won by the loop {len(won)} (net {len(won) - len(lost):+d})\n"
        )
        by_id = {s.task.id: s for s in scores}
        for kind, ids in (("lost by the loop", lost), ("won by the loop", won)):
            for tid in ids:
                o = by_id[tid].outcome
                out.write(f"  {kind}: {tid}: first {_short(o.first_answer)} -> final {_short(o.answer)}\n")


def _short(text: str) -> str:
    return repr(" ".join(text.split())[:100])


def task_table(scores: Sequence[TaskScore], out: TextIO) -> None:
    header = (
        f"{'task':<16} {'kind':<13} {'ok':<4} {'grnd':<4} {'recall':>6} {'steps':>5} {'calls':>5} {'subs':>4} "
        f"{'secs':>6} {'end':<12} {'cause':<14} why"
    )
    out.write(header + "\n" + "-" * len(header) + "\n")
    for s in scores:
        o = s.outcome
        out.write(
            f"{s.task.id[:16]:<16} {s.task.kind[:13]:<13} {_mark(s.success):<4} {_mark(s.grounded):<4} "
            f"{_pct(s.recall):>6} {o.steps:>5} "
            f"{o.model_calls:>5} {o.sub_agents:>4} {o.latency_seconds:>6.1f} {(o.reason or o.status)[:12]:<12} "
            f"{cause(s) or '-':<14} {s.why[:90]}\n"
        )


ROWS = [
    ("tasks", "tasks", lambda v: str(v)),
    ("task success", "success", _pct),
    ("grounded (answerable)", "grounded", _pct),
    ("recall@k of supporting docs", "recall", _pct),
    ("judged correct", "judged", _pct),
    ("steps per task (root)", "stepsPerTask", _num),
    ("model calls per task (tree)", "modelCallsPerTask", _num),
    ("tool calls per task", "toolCallsPerTask", _num),
    ("sub-agents per task", "subAgentsPerTask", _num),
    ("tokens per task", "tokensPerTask", lambda v: _num(v, 0)),
    ("cost per task", "costPerTask", lambda v: "-" if v is None else str(v)),
    ("latency p50 s", "latencyP50Seconds", _num),
    ("latency p95 s", "latencyP95Seconds", _num),
    ("declined (unanswerable)", "declinedUnanswerable", _pct),
    ("declined (answerable)", "declinedAnswerable", _pct),
    ("wall time of the pass s", "wallSeconds", lambda v: _num(v, 0)),
]


def _minus(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float | None]:
    """other - base for each figure of DELTAS (None where either is missing)."""
    out: dict[str, float | None] = {}
    for key in DELTAS:
        a, b = base.get(key), other.get(key)
        out[key] = None if a is None or b is None else float(b) - float(a)
    return out


def declines(scores: Sequence[TaskScore]) -> dict[str, float | None]:
    """The share of unanswerable questions declined (as scored), and of answerable ones declined
    (a refusal where the documents do answer); None where a pass had none of that kind."""
    unanswerable = [s.success for s in scores if s.task.expect == "decline"]
    answered = [s for s in scores if s.task.expect != "decline" and s.outcome.status == "done"]
    answerable = [declined(s.outcome.answer) for s in answered]
    return {
        "declinedUnanswerable": sum(unanswerable) / len(unanswerable) if unanswerable else None,
        "declinedAnswerable": sum(answerable) / len(answerable) if answerable else None,
    }


def by_part_kind(scores: Sequence[TaskScore], k: int) -> dict[str, dict[str, Any]]:
    """Every figure of the summary (and the declines) per "part/kind" group, in name order."""
    groups: dict[str, list[TaskScore]] = {}
    for s in scores:
        groups.setdefault(f"{s.task.part}/{s.task.kind}", []).append(s)
    return {g: {**summarize(ss, k), **declines(ss), "failureCauses": causes(ss)} for g, ss in sorted(groups.items())}


KIND_ROWS = [
    ("success", "success", _pct),
    ("grounded (answerable)", "grounded", _pct),
    ("declined (unanswerable)", "declinedUnanswerable", _pct),
    ("recall@k", "recall", _pct),
    ("tokens per task", "tokensPerTask", lambda v: _num(v, 0)),
    ("cost per task", "costPerTask", lambda v: "-" if v is None else str(v)),
    ("latency p50 s", "latencyP50Seconds", _num),
    ("latency p95 s", "latencyP95Seconds", _num),
]


def kind_table(runs: Sequence[tuple[str, Sequence[TaskScore]]], out: TextIO, k: int) -> None:
    """Per part and kind, one column per pass and a delta column of each later pass against the
    first: where the agents win or lose against the baselines, not only on average."""
    labels = [lbl for lbl, _ in runs]
    per_run = [by_part_kind(scores, k) for _, scores in runs]
    width = max(14, *(len(lbl) for lbl in labels))
    for group in sorted({g for groups in per_run for g in groups}):
        figs = [groups.get(group, {}) for groups in per_run]
        n = max(f.get("tasks", 0) for f in figs)
        head = f"{group + f' ({n})':<28}" + "".join(f" {lbl:>{width}}" for lbl in labels)
        out.write(head + "".join(f" {'delta ' + str(i + 2):>12}" for i in range(len(labels) - 1)) + "\n")
        ds = [_minus(figs[0], f) for f in figs[1:]]
        for title, key, fmt in KIND_ROWS:
            if all(f.get(key) is None for f in figs):
                continue
            name = "  " + title.replace("@k", f"@{k}")
            line = f"{name:<28}" + "".join(f" {fmt(f.get(key)):>{width}}" for f in figs)
            out.write(line + "".join(f" {_delta(key, d.get(key)):>12}" for d in ds) + "\n")


def summary_table(labels: Sequence[str], summaries: Sequence[dict[str, Any]], out: TextIO) -> None:
    """One column per configuration; with two or more, each later one gets a delta column against the first."""
    width = max(14, *(len(lbl) for lbl in labels))
    head = f"{'':<28}" + "".join(f" {lbl:>{width}}" for lbl in labels)
    if len(labels) > 1:
        head += "".join(f" {'delta ' + str(i + 2):>12}" for i in range(len(labels) - 1))
    out.write(head + "\n")
    ds = [_minus(summaries[0], s) for s in summaries[1:]]
    for title, key, fmt in ROWS:
        k = summaries[0].get("recallK")
        name = title.replace("@k", f"@{k}") if k else title
        line = f"{name:<28}" + "".join(f" {fmt(s.get(key)):>{width}}" for s in summaries)
        if key in DELTAS:
            for d in ds:
                line += f" {_delta(key, d.get(key)):>12}"
        out.write(line + "\n")
    for s, lbl in zip(summaries, labels, strict=True):
        tools = ", ".join(f"{k} {v}" for k, v in s["toolCalls"].items()) or "none"
        ends = ", ".join(f"{k} {v}" for k, v in s["endReasons"].items())
        kinds = "; ".join(f"{k} {_pct(v['success'])}/{_pct(v['grounded'])}" for k, v in s["byKind"].items())
        out.write(
            f"[{lbl}] tool calls: {tools}; searched {s['tasksThatSearched']}/{s['tasks']}, cited "
            f"{s['answersWithCitation']}/{s['tasks']}; end: {ends}\n"
        )
        out.write(f"[{lbl}] by kind (success/grounded): {kinds}\n")
        causes = ", ".join(f"{k} {v}" for k, v in s["failureCauses"].items()) or "none"
        out.write(f"[{lbl}] where the {sum(s['failureCauses'].values())} failures come from: {causes}\n")


def paired_by_part(first: Sequence[TaskScore], other: Sequence[TaskScore]) -> dict[str, Paired | None]:
    """The paired comparison within each part (dev, heldout) either pass ran, in name order."""
    parts = sorted({s.task.part for s in (*first, *other)})
    return {
        part: paired([s for s in first if s.task.part == part], [s for s in other if s.task.part == part])
        for part in parts
    }


def _pp(x: float) -> str:
    # Whole points: on a few dozen tasks one task is several points, a tenth of one is noise.
    return f"{100 * x:+.0f}pp"


def _paired(p: Paired | None, first: str, other: str) -> str:
    if p is None:
        return "no task scored in both"
    p_value = "<0.001" if p.p < 0.001 else f"{p.p:.3f}"
    return (
        f"{_pp(p.delta)}, 95% CI [{_pp(p.low)}, {_pp(p.high)}], McNemar p={p_value} "
        f"(n={p.n}: right only in {first} {p.only_first}, only in {other} {p.only_other}, "
        f"in both {p.both}, in neither {p.neither})"
    )


def paired_table(runs: Sequence[tuple[str, Sequence[TaskScore]]], out: TextIO, baselines: Collection[str] = ()) -> None:
    """Each later pass's success minus the first's on the tasks both scored, with its interval and
    p-value, overall and (when the run has more than one part) per part: whether a delta of the
    summary is more than the luck of a few questions. "B minus A" names the sign's direction. With
    ``baselines`` (labels of runs), every other pass minus each baseline too: the goals' unit
    ("the agent beats one-shot RAG"), for each configuration an ablation tried, not only the first."""
    if len(runs) < 2:
        return
    (first_label, first), *later = runs
    out.write("\n== paired: task success minus the first column's, on the same tasks\n")
    for label, scores in later:
        _paired_lines(first_label, first, label, scores, out)
    agents = [(label, scores) for label, scores in runs if label not in baselines]
    against = [(label, scores) for label, scores in runs if label in baselines]
    if not agents or not against:
        return
    out.write("\n== paired: each agent pass minus each baseline, on the same tasks\n")
    for label, scores in agents:
        for base_label, base in against:
            _paired_lines(base_label, base, label, scores, out)


def _paired_lines(
    first_label: str, first: Sequence[TaskScore], label: str, scores: Sequence[TaskScore], out: TextIO
) -> None:
    out.write(f"{label} minus {first_label}: {_paired(paired(first, scores), first_label, label)}\n")
    parts = paired_by_part(first, scores)
    if len(parts) > 1:
        for part, p in parts.items():
            out.write(f"  {part}: {_paired(p, first_label, label)}\n")


def paired_record(against: str, first: Sequence[TaskScore], other: Sequence[TaskScore]) -> dict[str, Any] | None:
    """report.json's ``paired`` entry of a later pass: the comparison's fields against the first
    pass (named), and the same per part; None when no task was scored by both."""
    p = paired(first, other)
    if p is None:
        return None
    parts = {part: None if q is None else asdict(q) for part, q in paired_by_part(first, other).items()}
    return {"against": against, **asdict(p), "byPart": parts}


def task_record(s: TaskScore) -> dict[str, Any]:
    o = s.outcome
    return {
        "id": s.task.id,
        "kind": s.task.kind,
        "question": s.task.question,
        "success": s.success,
        "grounded": s.grounded,
        "recall": s.recall,
        "why": s.why,
        "cause": cause(s),
        "taskId": o.task_id,
        "status": o.status,
        "endReason": o.reason,
        "answer": o.answer,
        "citations": list(o.citations),
        "retrievedSources": sorted({p.get("source", "") for p in o.retrieved}),
        "steps": o.steps,
        "modelCalls": o.model_calls,
        "toolCalls": o.tool_calls,
        "subAgents": o.sub_agents,
        "tokens": o.tokens,
        "cost": str(o.cost),
        "latencySeconds": o.latency_seconds,
        "judged": o.judged,
        **_first_record(s),
    }


def _first_record(s: TaskScore) -> dict[str, Any]:
    first = first_score(s)
    if first is None:
        return {}
    loop = "lost" if first.success and not s.success else "won" if s.success and not first.success else None
    return {"firstAnswer": s.outcome.first_answer, "firstSuccess": first.success, "loop": loop}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


def write_png(path: Path, runs: Sequence[tuple[str, Sequence[TaskScore], dict[str, Any]]]) -> str | None:
    """Success and groundedness per kind, latency and cost distributions; None, or why no PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no PNG: matplotlib is not installed (pip install 'agentfleet[eval]')"
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    kinds = sorted({k for _, _, s in runs for k in s["byKind"]})
    n = len(runs)
    bar = 0.8 / max(1, n)
    for ax, key, title in (
        (axes[0][0], "success", "task success by kind"),
        (axes[0][1], "grounded", "grounded answers by kind (answerable)"),
    ):
        first = [runs[0][2]["byKind"].get(k, {}).get(key) for k in kinds]
        for i, (label, _, s) in enumerate(runs):
            raw = [s["byKind"].get(k, {}).get(key) for k in kinds]
            xs = [x + i * bar for x in range(len(kinds))]
            ax.bar(xs, [100 * (v or 0) for v in raw], bar, label=label)
            for x, v, v0 in zip(xs, raw, first, strict=True):
                # Each later pass's bar carries its delta against the first pass, in points.
                if v is not None and (i == 0 or v0 is not None):
                    text = f"{100 * v:.0f}" if i == 0 else f"{100 * (v - v0):+.0f}"
                    ax.annotate(text, (x, 100 * v), ha="center", va="bottom", fontsize=6)
        ax.set_xticks([x + bar * (n - 1) / 2 for x in range(len(kinds))], kinds, rotation=20)
        ax.set_ylim(0, 108)  # room for the labels above a full bar
        ax.set_ylabel("% of tasks")
        ax.set_title(title)
        ax.legend(fontsize=8)
    lat = [[s.outcome.latency_seconds for s in scores] for _, scores, _ in runs]
    axes[1][0].boxplot(lat, tick_labels=[lbl for lbl, _, _ in runs], showmeans=True)
    axes[1][0].set_ylabel("seconds, submit to finish")
    axes[1][0].set_title("task latency")
    cost = [[float(s.outcome.cost) for s in scores] for _, scores, _ in runs]
    axes[1][1].boxplot(cost, tick_labels=[lbl for lbl, _, _ in runs], showmeans=True)
    axes[1][1].set_ylabel("cost per task (fleet pricing)")
    axes[1][1].set_title("cost per task (task and sub-agents)")
    for ax in axes[1]:
        ax.tick_params(axis="x", labelrotation=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None
