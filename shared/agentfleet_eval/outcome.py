"""An Outcome from the task API's views of a task tree: what `agentfleet eval` reads over HTTP and
the gate's runner renders from the store with the API's own view function. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from agentfleet_eval.scoring import Outcome


def outcome_of(tree: Sequence[dict[str, Any]]) -> Outcome:
    """An Outcome from the task API's views of a root task (first) and its sub-agents."""
    root = tree[0]
    tools: Counter[str] = Counter()
    retrieved: list[dict[str, Any]] = []
    for view in tree:
        for step in view.get("steps") or []:
            tools.update(c.get("name", "") for c in step.get("toolCalls") or [])
        retrieved += [{**p, "task": view["id"]} for p in view.get("retrieved") or []]
    usage = root.get("treeUsage") or {}
    try:
        cost = Decimal(str(usage.get("cost", root.get("cost") or "0")))
    except InvalidOperation:
        cost = Decimal(0)
    return Outcome(
        task_id=root["id"],
        status=root.get("status") or "",
        reason=root.get("reason") or "",
        answer=root.get("answer") or "",
        error=root.get("error") or "",
        citations=tuple(root.get("citations") or ()),
        retrieved=tuple(retrieved),
        steps=int(root.get("stepCount") or 0),
        model_calls=sum(_model_calls(v) for v in tree),
        tool_calls=dict(tools),
        sub_agents=len(tree) - 1,
        tokens=int(usage.get("totalTokens") or (root.get("usage") or {}).get("totalTokens") or 0),
        cost=cost,
        latency_seconds=float(root.get("durationSeconds") or 0.0),
        first_answer=next((st["firstAnswer"] for st in root.get("steps") or [] if st.get("firstAnswer")), ""),
    )


def _model_calls(view: dict[str, Any]) -> int:
    """How many model calls a task made: each step's ``modelCalls``, the calls its tokens are of (0
    for the loop's own searches, 2 for an answer read a second time, more for a decision repaired).
    Counting steps said 2 calls for a task that ended on its first answer, and counting steps with
    tokens said 1 for a second reading. A view from before ``modelCalls`` counts the steps with
    tokens or model time; one whose steps carry no usage (the one-shot baselines') counts its steps."""
    steps = view.get("steps")
    if not steps or any("usage" not in s for s in steps):
        return int(view.get("stepCount") or 0)
    if all("modelCalls" in s for s in steps):
        return sum(int(s["modelCalls"]) for s in steps)
    return sum(1 for s in steps if s.get("modelSeconds") or sum((s.get("usage") or {}).values()))
