"""Pure pieces of the demo's output: the progress bar, metric sums, the report."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from agentfleet_contract.percentiles import percentile
from prometheus_client.parser import text_string_to_metric_families


def bar(done: int, total: int, failed: int = 0, width: int = 30, elapsed: float = 0.0) -> str:
    filled = 0 if total == 0 else int(width * done / total)
    tail = f"  {failed} failed" if failed else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks  {elapsed:5.1f}s{tail}"


def metric_sums(
    texts: Iterable[str], name: str, by: str | None = None, where: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Sum of the samples named ``name`` (with the labels ``where``) over several /metrics pages,
    keyed by label ``by`` (or "" for all)."""
    out: dict[str, float] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name != name or any(s.labels.get(k) != v for k, v in (where or {}).items()):
                    continue
                key = s.labels.get(by, "") if by else ""
                out[key] = out.get(key, 0.0) + s.value
    return out


def summarize(tasks: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Figures of the finished root tasks as the task API returned them (GET /v1/tasks/{id})."""
    done = [t for t in tasks if t.get("status") == "done"]
    failed = [t for t in tasks if t.get("status") in ("dead", "cancelled")]
    durations = [float(t["durationSeconds"]) for t in done if t.get("durationSeconds") is not None]
    # treeUsage counts sub-agents too: a task's cost is its whole tree's.
    costs = [Decimal(str((t.get("treeUsage") or {}).get("cost") or t.get("cost") or "0")) for t in done]
    tokens = sum(
        int((t.get("treeUsage") or {}).get("totalTokens") or (t.get("usage") or {}).get("totalTokens") or 0)
        for t in tasks
    )
    reasons: dict[str, int] = {}
    for t in done:
        reasons[str(t.get("reason"))] = reasons.get(str(t.get("reason")), 0) + 1
    return {
        "total": len(tasks),
        "done": len(done),
        "failed": len(failed),
        "reasons": reasons,
        "p50": percentile(durations, 50, empty=None),
        "p95": percentile(durations, 95, empty=None),
        "steps": sum(int(t.get("stepCount") or 0) for t in tasks),
        "children": sum(len(t.get("children") or []) for t in tasks),
        "tokens": tokens,
        "cost_per_task": (sum(costs, Decimal(0)) / len(costs)) if costs else None,
        "currency": next((t.get("currency") for t in tasks if t.get("currency")), "USD"),
    }


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def render(
    summary: Mapping[str, Any],
    *,
    model_calls: float,
    model_errors: float,
    calls_by_replica: Mapping[str, float],
    affinity: Mapping[str, float],
    retrieval: Mapping[str, float],
    prefix_cache: tuple[float, float] = (0.0, 0.0),
    placements: list[Mapping[str, Any]],
    model_note: str,
) -> str:
    s = summary
    lines = ["== report"]
    lines.append(
        f"tasks        {s['done']} done, {s['failed']} failed of {s['total']}  (end reasons: "
        + ", ".join(f"{k} {v}" for k, v in sorted(s["reasons"].items()))
        + ")"
    )
    lines.append(f"task time    p50 {_secs(s['p50'])}  p95 {_secs(s['p95'])}  (submit to finish, from the task API)")
    hit, miss, first = (affinity.get(k, 0) for k in ("hit", "miss", "first"))
    aff = f", replica affinity {hit:.0f} hit / {miss:.0f} miss / {first:.0f} first" if affinity else ""
    err = f", {model_errors:.0f} failed attempts" if model_errors else ""
    lines.append(
        f"model calls  {model_calls:.0f} ({s['steps']} steps of the root tasks, {s['children']} sub-agents{err}){aff}"
    )
    hits, queries = prefix_cache
    cache = (
        f"; prefix cache hit {hits / queries:.0%} of {queries:.0f} prompt tokens (vllm:prefix_cache_* on the replicas)"
        if queries
        else ""
    )
    lines.append(f"tokens       {s['tokens']} (tasks and their sub-agents){cache}")
    cpt = s["cost_per_task"]
    lines.append(
        f"cost/task    {'-' if cpt is None else format(cpt.quantize(Decimal('0.0000001')).normalize(), 'f')} "
        f"{s['currency']} (the fleet's spec.pricing)"
    )
    ok = retrieval.get("ok", 0)
    other = sum(v for k, v in retrieval.items() if k != "ok")
    lines.append(f"retrieval    {ok:.0f} searches answered" + (f", {other:.0f} failed" if other else ""))
    lines.append("placements   (ModelReplicaSet status, written by the operator)")
    for p in placements:
        calls = calls_by_replica.get(p["name"])
        lines.append(
            (
                f"  {p['name']:<24} nodes {','.join(p.get('nodes') or [])}  gpus {p.get('gpus', 0)}  zone "
                f"{p.get('zone') or '-'}"
            )
            + (f"  calls {calls:.0f}" if calls is not None else "")
        )
    lines.append(f"model        {model_note}")
    return "\n".join(lines)


_PASSAGE_SOURCE = re.compile(r"^\[\d+\] \((.+?), score -?[0-9.]+\)$", re.MULTILINE)


def passage_sources(text: str) -> list[str]:
    """The sources of the passages a Retrieval tool returned (its "[i] (source, score s)" lines)."""
    return _PASSAGE_SOURCE.findall(text or "")


def agent_figures(trees: list[Mapping[str, Any]], retrieval_tool: str, spawn_tool: str | None) -> dict[str, Any]:
    """What the agents decided, from the task API's records with their steps.

    ``trees``: one per root task, ``{"task": <GET /v1/tasks/{id}>, "children": [trees]}``.
    An answer cites a source when it names a passage's source (or its file name) that its own
    task tree retrieved; a source named but never retrieved does not count.
    """
    tool_calls: dict[str, int] = {}
    steps_per_task: list[int] = []
    model_seconds: list[float] = []
    searched = cited = spawned = subagent_tasks = 0
    for tree in trees:
        stack, retrieved, tree_searched = [tree], set(), False
        while stack:
            node = stack.pop()
            t = node["task"]
            if t.get("parent"):
                subagent_tasks += 1
            for s in t.get("steps") or []:
                if s.get("modelSeconds"):
                    model_seconds.append(float(s["modelSeconds"]))
                for c in s.get("toolCalls") or []:
                    tool_calls[c["name"]] = tool_calls.get(c["name"], 0) + 1
                    tree_searched |= c["name"] == retrieval_tool
                for o in s.get("observations") or []:
                    if o.get("name") == retrieval_tool and o.get("ok"):
                        retrieved.update(passage_sources(o.get("output", "")))
            stack.extend(node.get("children") or [])
        root = tree["task"]
        steps_per_task.append(int(root.get("stepCount") or 0))
        spawned += len(root.get("children") or [])
        searched += tree_searched
        answer = root.get("answer") or ""
        names = retrieved | {s.rsplit("/", 1)[-1] for s in retrieved}
        cited += any(n and n in answer for n in names)
    return {
        "tasks": len(trees),
        "steps_per_task": steps_per_task,
        "tool_calls": dict(sorted(tool_calls.items())),
        "spawned": spawned,
        "subagent_tasks": subagent_tasks,
        "searched": searched,
        "cited": cited,
        "step_p50": percentile(model_seconds, 50, empty=None),
        "step_p95": percentile(model_seconds, 95, empty=None),
        "model_steps": len(model_seconds),
    }


def render_agents(f: Mapping[str, Any]) -> str:
    steps = f["steps_per_task"]
    mean = sum(steps) / len(steps) if steps else 0.0
    dist = ", ".join(f"{k} steps: {steps.count(k)}" for k in sorted(set(steps)))
    calls = ", ".join(f"{k} {v}" for k, v in f["tool_calls"].items()) or "none"
    n = f["tasks"] or 1
    return "\n".join(
        [
            "== what the agents decided (from each task's steps, GET /v1/tasks/{id})",
            f"steps/task   mean {mean:.1f}  ({dist})",
            f"tool calls   {calls}",
            f"sub-agents   {f['spawned']} spawned by the root tasks ({f['subagent_tasks']} sub-agent tasks in all)",
            f"searched     {f['searched']} of {f['tasks']} tasks ({f['searched'] / n:.0%})",
            (
                f"cited        {f['cited']} of {f['tasks']} answers name a source their task retrieved "
                f"({f['cited'] / n:.0%})"
            ),
            (
                f"model step   p50 {_secs(f['step_p50'])}  p95 {_secs(f['step_p95'])}  over {f['model_steps']} steps "
                "(modelSeconds, repairs included)"
            ),
        ]
    )
