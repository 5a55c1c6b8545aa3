"""The autoscale benchmark's plots: the frontier of task goodput against GPU-hours, and one run's timeline."""

from __future__ import annotations

import statistics
from pathlib import Path

from e2e.bench.autoscale.report import Config, pareto
from e2e.bench.autoscale.run import RunResult


def plot_frontier(workload: str, configs: list[Config], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    colors = {
        "hpa": "tab:blue",
        "keda": "tab:orange",
        "fixed": "tab:gray",
        "agentfleet": "tab:red",
        "reactive": "tab:purple",
    }
    base = [c for c in configs if c.kind in ("hpa", "keda", "fixed")]
    for kind in ("hpa", "keda", "fixed", "reactive", "agentfleet"):
        cs = [c for c in configs if c.kind == kind]
        if not cs:
            continue
        xs, ys = [c.gpu_hours for c in cs], [c.goodput for c in cs]
        ye = [statistics.stdev([r.task_goodput for r in c.rows]) if len(c.rows) > 1 else 0.0 for c in cs]
        xe = [statistics.stdev([r.gpu_hours for r in c.rows]) if len(c.rows) > 1 else 0.0 for c in cs]
        ax.errorbar(
            xs,
            ys,
            xerr=xe,
            yerr=ye,
            fmt="o" if kind != "agentfleet" else "*",
            ms=7 if kind != "agentfleet" else 14,
            color=colors[kind],
            label=kind,
            alpha=0.8,
            capsize=2,
        )
        for c in cs:
            ax.annotate(
                c.name.split("@")[-1] if kind != "agentfleet" else c.name,
                (c.gpu_hours, c.goodput),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    front = pareto([(c.gpu_hours, c.goodput) for c in base])
    ax.plot([h for h, _ in front], [g for _, g in front], "k--", lw=1, label="baseline frontier")
    ax.set_xlabel("GPU-hours (mean over seeds; bars: sd)")
    ax.set_ylabel("task goodput (share of tasks within 60 s)")
    ax.set_title(f"Goodput per GPU-hour, workload '{workload}' ({len(configs[0].rows)} seeds)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_timeline(rows: list[RunResult], path: Path) -> None:
    """One seed over time: offered load, replicas (incl. loading) and call goodput per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    first = rows[0].timeline
    axes[0].plot([t / 60 for t, *_ in first], [x[1] for x in first], color="black")
    axes[0].set_ylabel("offered tasks/s")
    axes[0].set_title(f"Seed {rows[0].seed}: offered load, replicas and goodput (simulated 70B TP-4 replicas)")
    for r in rows:
        ts = [t / 60 for t, *_ in r.timeline]
        axes[1].step(ts, [x[2] for x in r.timeline], where="post", label=f"{r.name} ({r.gpu_hours:.1f} GPU-h)")
        # Smooth the per-period call goodput over 4 periods for readability.
        g = [x[4] for x in r.timeline]
        sm = []
        for i in range(len(g)):
            vals = [v for v in g[max(0, i - 3) : i + 1] if v is not None]
            sm.append(sum(vals) / len(vals) if vals else float("nan"))
        axes[2].plot(ts, sm, label=f"{r.name} (tasks in SLO {r.task_goodput:.2f})")
    axes[1].set_ylabel("replicas (incl. loading)")
    axes[1].legend(fontsize=8, loc="upper left")
    axes[2].set_ylabel("call goodput (1 min)")
    axes[2].set_xlabel("simulated minutes")
    axes[2].set_ylim(0, 1.05)
    axes[2].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
