#!/usr/bin/env python3
"""Scale to zero against its goals, on the real control plane (e2e/tests/test_scale_to_zero.py).

Runs the e2e test's sleep/wake scenario twice: ``--cycles`` sleep/wake cycles (20 by default)
with a short simulated load time, then one cycle with a minutes-long load time. It prints each run's
figures beside the goals of issue 40:

- tasks lost over the cycles: 0;
- wake-to-answer = the replica's load time + at most 2 s of overhead (the operator's poll and
  writes, the controllers', the scheduler's, the harness kubelet's and the router's share);
- calls that reached a replica still loading: 0 (the simulator counts them).

The baseline, run in the same invocation and cluster: the answer time of a task sent while the set
is awake and its replica ready (``warm_answer_s``). The overhead is what sleeping costs beyond the
load time.

Needs the e2e cluster (e2e/cluster/cluster.sh up, with the ports and state dir in the environment), and
takes about ``cycles x (load + 25 s)`` plus the long cycle. Example:

  AGENTFLEET_CLUSTER_DIR=... python -m e2e.bench.scale_to_zero_bench --cycles 20 --load 10 --long-load 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OVERHEAD_GOAL_S = 2.0
SCENARIO = "test_sleeps_when_idle_wakes_for_a_queued_task_and_serves_it_once_a_replica_loaded"


def run(cycles: int, load: float) -> dict:
    report = Path(tempfile.mkdtemp(prefix="af-zero-bench-")) / "report.json"
    env = {
        **os.environ,
        "AGENTFLEET_ZERO_CYCLES": str(cycles),
        "AGENTFLEET_ZERO_LOAD_S": str(load),
        "AGENTFLEET_ZERO_REPORT": str(report),
    }
    test = "e2e/tests/test_scale_to_zero.py::" + SCENARIO
    cmd = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-s"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    if proc.returncode != 0 or not report.exists():
        raise SystemExit(f"the scenario failed (exit {proc.returncode}) for {cycles} cycles at load {load}s")
    return json.loads(report.read_text())


def show(r: dict) -> None:
    o = r["overhead_s"]
    rows = r["rows"]
    print(f"load {r['load_s']:.0f}s, {r['cycles']} cycles:")
    print(f"  tasks lost            {r['tasks_lost']}                       (goal 0)")
    print(f"  calls while loading   {r['calls_while_loading']}                       (goal 0)")
    print(f"  replica load (s)      {min(x['load_s'] for x in rows):.2f} .. {max(x['load_s'] for x in rows):.2f}")
    took = [x["wake_to_answer_s"] for x in rows]
    print(f"  wake-to-answer (s)    {min(took):.2f} .. {max(took):.2f}")
    spread = f"median {o['median']:.2f}, min {o['min']:.2f}, max {o['max']:.2f}"
    print(f"  overhead (s)          {spread}   (goal <= {OVERHEAD_GOAL_S:g})")
    print(f"  submit -> pod (s)     max {max(x['ordered_s'] for x in rows):.2f}")
    print(f"  baseline: warm answer (s) {', '.join(f'{t:.2f}' for t in r['warm_answer_s'])}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--load", type=float, default=10.0, help="simulated load time of the cycles (s)")
    p.add_argument("--long-load", type=float, default=120.0, help="one more cycle with this load time (0: none)")
    a = p.parse_args()
    results = [run(a.cycles, a.load)]
    if a.long_load > 0:
        results.append(run(1, a.long_load))
    for r in results:
        show(r)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
