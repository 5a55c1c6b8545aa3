"""Promote or hold: the rule of spec.rollout.evaluation applied to both versions' per-task results.

Every checked measure is compared task by task on the tasks both versions scored, with the paired
95% interval of agentfleet eval (agentfleet_contract.paired: Newcombe's method 10, exact McNemar):
the change passes a measure when the interval's low end for candidate minus current is at or
above minus the rule's limit. That is a non-inferiority test: a drop is ruled out, not merely
unobserved. Cost per task (tokens when the fleet has no prices) is a ratio. A spent budget holds:
a gate never promotes on a run it could not finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from agentfleet_contract.agentfleet import GateBudget, GateRule
from agentfleet_contract.gate import GateFigures, GateMeasure, GateTaskResult, Reason
from agentfleet_contract.paired import table

# A low end equal to the limit passes; float noise must not turn -0.15 into a hold.
_EPS = 1e-9


@dataclass(frozen=True)
class Spent:
    """What the gate has spent so far, both versions together."""

    tokens: int = 0
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: Reason
    message: str  # fixed text with the figures: what status, the Event and the log say
    figures: GateFigures


def _by_task(results: Iterable[GateTaskResult], version: str) -> dict[str, GateTaskResult]:
    return {r.task_id: r for r in results if r.version == version}


def _measure(
    pairs: list[tuple[GateTaskResult, GateTaskResult]],
    outcome: Callable[[GateTaskResult], bool | None],
    limit: int | None,
) -> GateMeasure | None:
    scored = [(outcome(a), outcome(b)) for a, b in pairs]
    p = table((bool(a), bool(b)) for a, b in scored if a is not None and b is not None)
    if p is None:
        return None
    return GateMeasure(
        tasks=p.n,
        current=(p.both + p.only_first) / p.n,
        candidate=(p.both + p.only_other) / p.n,
        delta=p.delta,
        low=p.low,
        high=p.high,
        p=p.p,
        max_drop_points=limit,
        passed=limit is None or p.low >= -limit / 100 - _EPS,
    )


def _per_task(pairs: list[tuple[GateTaskResult, GateTaskResult]]) -> tuple[str, float, float]:
    """(basis, current per task, candidate per task): cost, or tokens when neither version is priced."""
    n = len(pairs)
    cur = sum(Decimal(a.cost) for a, _ in pairs)
    cand = sum(Decimal(b.cost) for _, b in pairs)
    if cur > 0 or cand > 0:
        return "cost", float(cur) / n, float(cand) / n
    return "tokens", sum(a.tokens for a, _ in pairs) / n, sum(b.tokens for _, b in pairs) / n


def _points(x: float) -> str:
    return f"{x * 100:+.0f}pp"


def _measure_text(name: str, m: GateMeasure) -> str:
    return (
        f"{name} candidate minus current {_points(m.delta)}, 95% interval [{_points(m.low)}, {_points(m.high)}], "
        f"McNemar p={m.p:.3f} on {m.tasks} tasks; the rule allows a drop of {m.max_drop_points}pp"
    )


def decide(
    rule: GateRule,
    budget: GateBudget,
    current: Iterable[GateTaskResult],
    candidate: Iterable[GateTaskResult],
    spent: Spent = Spent(),
) -> Decision:
    """Promote or hold from the results both versions have; pure.

    ``current`` and ``candidate`` may be one list (each result names its version). Tasks only one
    version finished are left out of every comparison."""
    results = [*current, *candidate]
    cur, cand = _by_task(results, "current"), _by_task(results, "candidate")
    both = sorted(cur.keys() & cand.keys())
    # A task one version never got to a model with (its worker lost, the store refused it) says
    # nothing of either version: left out, counted, never a failure of either side.
    pairs = [(cur[t], cand[t]) for t in both if not (cur[t].not_run or cand[t].not_run)]
    base = GateFigures(
        tasks=len(pairs), tokens=spent.tokens, wall_seconds=spent.wall_seconds, not_run=len(both) - len(pairs)
    )
    if spent.tokens > budget.max_tokens or spent.wall_seconds > budget.timeout_seconds:
        what = "tokens" if spent.tokens > budget.max_tokens else "time"
        return Decision(False, "BudgetExhausted", f"the gate's {what} budget ran out after {len(pairs)} tasks", base)
    if not pairs:
        return Decision(False, "NoTasks", "no task was finished by both versions", base)
    success = _measure(pairs, lambda r: r.success, rule.max_success_drop_points)
    grounded = _measure(
        [p for p in pairs if not p[0].unanswerable], lambda r: r.grounded, rule.max_grounded_drop_points
    )
    declines = _measure([p for p in pairs if p[0].unanswerable], lambda r: r.success, rule.max_decline_drop_points)
    basis, cur_per, cand_per = _per_task(pairs)
    ratio = cand_per / cur_per if cur_per > 0 else None
    figures = base.model_copy(
        update={
            "success": success,
            "grounded": grounded,
            "declines": declines,
            "cost_basis": basis,
            "current_per_task": cur_per,
            "candidate_per_task": cand_per,
            "cost_ratio": ratio,
        }
    )
    checks: list[tuple[Reason, str, GateMeasure | None]] = [
        ("SuccessDropped", "task success", success),
        ("GroundingDropped", "grounded answers", grounded),
        ("DeclinesDropped", "unanswerable questions declined", declines),
    ]
    for reason, name, m in checks:
        if m is not None and not m.passed:
            return Decision(False, reason, _measure_text(name, m), figures)
    if rule.max_cost_ratio is not None:
        limit = float(Decimal(rule.max_cost_ratio))
        rose = cand_per > 0 if ratio is None else ratio > limit + _EPS
        if rose:
            shown = "from nothing" if ratio is None else f"{ratio:.2f}x"
            return Decision(
                False, "CostRose", f"{basis} per task rose {shown}; the rule allows {rule.max_cost_ratio}x", figures
            )
    unmeasured = [name for reason, name, m in checks if m is None and _limit(rule, reason) is not None]
    note = f" ({', '.join(unmeasured)}: no task in the sample)" if unmeasured else ""
    said = _measure_text("task success", success) if success else "task success not measured"
    return Decision(True, "Passed", said + note, figures)


def _limit(rule: GateRule, reason: Reason) -> int | None:
    return {
        "SuccessDropped": rule.max_success_drop_points,
        "GroundingDropped": rule.max_grounded_drop_points,
        "DeclinesDropped": rule.max_decline_drop_points,
    }[reason]
