"""The autoscale benchmark's report: the onset split, the table, the Pareto frontier and the goals."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from e2e.bench.autoscale.run import RunResult
from e2e.bench.autoscale.workload import LOAD_RANGE_S, TASK_SLO_S

ONSET_S = LOAD_RANGE_S[1]


PHASES = ("onset", "rest", "outside")


WORKLOADS = {
    # name: (minutes, burst seconds, kind)
    "default": (60.0, 150.0, "bursts"),
    "long": (240.0, 600.0, "bursts"),
    "trace": (60.0, 0.0, "trace"),
}


def phase(r: RunResult, t: float) -> str:
    """A task's start: in a burst's first ONSET_S seconds (only replicas running or already
    loading when the burst began can serve it: that measures held capacity), in the rest of a
    burst, or outside bursts."""
    for s, d in r.bursts:
        if s <= t < s + min(ONSET_S, d):
            return "onset"
        if s + ONSET_S <= t < s + d:
            return "rest"
    return "outside"


def split(rows: list[RunResult]) -> dict[str, tuple[int, int]]:
    tally = {p: [0, 0] for p in PHASES}
    for r in rows:
        for start, latency in r.task_records:
            t = tally[phase(r, start)]
            t[0] += latency > TASK_SLO_S
            t[1] += 1
    return {p: (m, n) for p, (m, n) in tally.items()}


@dataclass
class Config:
    name: str
    kind: str  # agentfleet, hpa, keda, fixed
    rows: list[RunResult]

    @property
    def goodput(self) -> float:
        return statistics.fmean(r.task_goodput for r in self.rows)

    @property
    def gpu_hours(self) -> float:
        return statistics.fmean(r.gpu_hours for r in self.rows)

    def spread(self, attr: str) -> str:
        v = [getattr(r, attr) for r in self.rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        return (
            f"sd {sd:.3f} [{min(v):.3f}-{max(v):.3f}]"
            if attr == "task_goodput"
            else f"sd {sd:.2f} [{min(v):.1f}-{max(v):.1f}]"
        )


def table(configs: list[Config]) -> str:
    head = (
        f"{'configuration':<20} {'n':>3} {'task goodput':>12} {'spread over seeds':>25} {'GPU-hours':>9} "
        f"{'spread over seeds':>22} "
        f"{'p95 s':>6} {'peak':>4} " + " ".join(f"{'missed ' + p:>15}" for p in PHASES)
    )
    lines = [head, "-" * len(head)]
    for c in configs:
        sp = split(c.rows)
        p95 = statistics.fmean(r.task_p95 for r in c.rows)
        peak = max(r.peak_replicas for r in c.rows)
        lines.append(
            (
                f"{c.name:<20} {len(c.rows):>3} {c.goodput:>12.3f} {c.spread('task_goodput'):>25} {c.gpu_hours:>9.2f} "
                f"{c.spread('gpu_hours'):>22} {p95:>6.1f} {peak:>4d} "
            )
            + " ".join(f"{f'{m}/{n}':>15}" for m, n in sp.values())
        )
    return "\n".join(lines)


def engines_table(configs: list[Config], engines: list[str]) -> str:
    """Each configuration on the other engines against itself on the first, seed by seed (paired):
    the share of evaluations that set the same replica count, the largest gap, the seeds whose
    whole timeline matched, scale events and peaks (means), and the GPU-hours and task goodput
    differences (mean and range over the seeds)."""
    by_name = {c.name: c for c in configs}
    lines = [
        f"replica decisions on each engine against {engines[0]}'s, paired by seed ({len(configs[0].rows)} seeds):",
        f"{'configuration':<40} {'same count':>10} {'max gap':>7} {'same seeds':>10} {'scale events':>13} {'peak':>11} "
        f"{'GPU-h diff':>20} {'goodput diff':>24}",
    ]
    for c in configs:
        ref = by_name.get(c.name.split("[")[0])
        if ref is None or ref is c:
            continue
        same, gaps, whole, dh, dg = [], [0], 0, [], []
        for a, b in zip(ref.rows, c.rows, strict=True):
            counts = [(x[2], y[2]) for x, y in zip(a.timeline, b.timeline, strict=False)]
            same.append(sum(1 for x, y in counts if x == y) / max(1, len(counts)))
            gaps.extend(abs(x - y) for x, y in counts)
            whole += all(x == y for x, y in counts) and len(a.timeline) == len(b.timeline)
            dh.append(b.gpu_hours - a.gpu_hours)
            dg.append(b.task_goodput - a.task_goodput)
        ev = "/".join(f"{statistics.fmean(r.scale_events for r in x.rows):.1f}" for x in (ref, c))
        peak = "/".join(f"{statistics.fmean(r.peak_replicas for r in x.rows):.1f}" for x in (ref, c))
        lines.append(
            f"{c.name:<40} {statistics.fmean(same):>10.1%} {max(gaps):>7} {whole:>10} {ev:>13} {peak:>11} "
            f"{statistics.fmean(dh):>+6.2f} [{min(dh):+.2f},{max(dh):+.2f}] "
            f"{statistics.fmean(dg):>+7.3f} [{min(dg):+.3f},{max(dg):+.3f}]"
        )
    return "\n".join(lines)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The baseline frontier: points (GPU-hours, goodput) that no other point beats on both."""
    front: list[tuple[float, float]] = []
    for h, g in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or g > front[-1][1]:
            front.append((h, g))
    return front


def frontier_at(front: list[tuple[float, float]], h: float) -> float:
    """The frontier's goodput at ``h`` GPU-hours: linear between its points; left of the
    cheapest the cheapest point's goodput (a baseline there would do at least that with more);
    right of the dearest, the dearest's."""
    if h <= front[0][0]:
        return front[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(front):
        if x0 <= h <= x1:
            return y0 + (y1 - y0) * (h - x0) / (x1 - x0)
    return front[-1][1]


def goals(af: Config, baselines: list[Config]) -> list[str]:
    best = max(baselines, key=lambda c: c.goodput)
    need_h = 0.85 * best.gpu_hours
    met1 = af.goodput >= best.goodput and af.gpu_hours <= need_h
    front = pareto([(c.gpu_hours, c.goodput) for c in baselines])
    ref = frontier_at(front, af.gpu_hours)
    margin = (af.goodput - ref) * 100
    return [
        f"{af.name}: {af.goodput:.3f} @ {af.gpu_hours:.2f} GPU-h (mean of {len(af.rows)} seeds)",
        f"  goal 1: best baseline by goodput {best.name} {best.goodput:.3f} @ {best.gpu_hours:.2f} GPU-h; needs >= "
        f"{best.goodput:.3f} at <= {need_h:.2f} GPU-h: "
        f"goodput {(af.goodput - best.goodput) * 100:+.1f} points, GPU-hours "
        f"{(1 - af.gpu_hours / best.gpu_hours) * 100:+.1f} % saved -> {'MET' if met1 else 'MISSED'}",
        f"  goal 2: baseline frontier at {af.gpu_hours:.2f} GPU-h = {ref:.3f} "
        f"({', '.join(f'{h:.1f}->{g:.3f}' for h, g in front)}); {af.name} {margin:+.1f} points "
        f"-> {'above (>= +5)' if margin >= 5 else 'not below' if margin >= 0 else 'BELOW'}"
        + (
            f" [outside the baselines' sweep (most {front[-1][0]:.1f} GPU-h): extend --fixed]"
            if af.gpu_hours > front[-1][0]
            else ""
        ),
    ]
