"""Two passes over the same tasks, compared task by task. Pure: no I/O.

Every pass of a run answers the same questions, so a difference in success rates is a paired
difference: a question both passes get right, or both get wrong, says nothing about which is
better; only the discordant ones (right in one pass, wrong in the other) do. Treating the two
rates as independent samples would ignore that and give too wide an interval when the passes agree
on most questions. On a run of 20 to 25 questions one question is 4 to 5 points, so the report
gives the interval and the test beside the delta rather than the delta alone.

- the interval: Newcombe's method 10 (Newcombe 1998, Stat Med 17:2635-2650), the Wilson score
  intervals of the two passes' success rates combined with the correlation of the paired outcomes
  (phi, continuity-corrected as in Altman et al. 2000, "Statistics with Confidence", ch. 6). It stays
  inside [-1, 1], has width when no question is discordant, and is not degenerate at 0% or 100%;
- the test: McNemar's, exact (a binomial test of the discordant questions at 1/2), since with a
  handful of discordant questions the chi-squared approximation is poor.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentfleet_contract.paired import Z95, Paired, mcnemar_exact, newcombe, phi, table, wilson
from agentfleet_eval.scoring import TaskScore

__all__ = ["Z95", "Paired", "mcnemar_exact", "newcombe", "paired", "phi", "wilson"]


def paired(first: Sequence[TaskScore], other: Sequence[TaskScore]) -> Paired | None:
    """``other`` against ``first`` on the tasks both scored, matched by task id; None when none.

    A task one pass did not run (a time budget, a sample) or did not score is left out of both:
    the comparison stays on the same questions. The figures are agentfleet_contract.paired's, the
    same the operator's evaluation gate computes."""
    mine = {s.task.id: s.success for s in first if s.success is not None}
    return table((mine[s.task.id], s.success) for s in other if s.success is not None and s.task.id in mine)
