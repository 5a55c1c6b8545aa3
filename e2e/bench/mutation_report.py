#!/usr/bin/env python3
"""Mutation testing of the pure modules with mutmut (prints a report; not a test, not in CI).

mutmut rewrites each module into many mutants (an operator flipped, a constant moved, a call's
argument dropped, ...) and runs the unit tests that reach each mutated function; a mutant is
killed when a test fails, survives when all pass. The killed share says how much of the code's
behaviour the unit tests pin; every survivor is a behaviour change no test notices.

The modules: placement, capacity, autoscale (policy, terms, signals, reading, state, goodput,
common, workers, pods, and the learned terms: forecast, floors, schedule, credit, witness),
replica_rollout, evaluation (claims, scoring, taskset, paired), routing (the pure parts: client, pool, hashing,
ejection, hedging, quantile, backoff, sources, settings, abortwatch, spillwait, streaming, ttfthedge) and the agent
loop; the keys autoscale-core, autoscale-learned, routing-client, routing-rest and routing-parts score a part of
one (routing-parts without the client-level tests, a floor: see ROUTING_PART_TESTS).
Only their unit tests run (the tiers above need real services).

mutmut imports the mutated code from ``mutants/`` under the project's own module names, which
needs a plain ``src/`` layout; the repository keeps its two packages under ``operator/`` and
``runtime/``, so this script stages a copy (each package under src/, and tests/) in a
scratch directory and runs mutmut there. mutmut itself (pinned below) is installed into the
running interpreter when missing.

    .venv/bin/python -m e2e.bench.mutation_report [--modules placement,capacity] [--only FILE,...]
        [--tests-from REV] [--keep DIR]

``--tests-from REV`` takes tests/ from a git revision instead of the working tree (the code is
always the working tree's): the killed share before and after a change to the tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTMUT = "mutmut==3.8.1"

# The pure files of autoscale and routing, by name (the packages also hold I/O: routing's
# transport, kube, factory, metrics and ratelimit (Redis) are left out).
AUTOSCALE_CORE = ["policy", "terms", "signals", "reading", "state", "goodput", "common", "workers", "pods"]
AUTOSCALE_LEARNED = ["forecast", "floors", "schedule", "credit", "witness"]
ROUTING_CLIENT = ["client"]
ROUTING_REST = [
    "pool", "hashing", "ejection", "hedging", "quantile", "backoff", "sources", "settings",
    "abortwatch", "spillwait", "streaming", "ttfthedge",
]  # fmt: skip
# The fused-benchmark test runs two simulations per mutant and can fail only where the other
# autoscale tests do (it compares two loops over the same mutated policy), so it is left out.
AUTOSCALE_TESTS = ["tests/unit/autoscale", "--ignore=tests/unit/autoscale/test_autoscale_bench_fused.py"]
# routing-parts: routing's files other than client.py, scored without the client-level tests (the
# client's own files and the hedge-load simulation). Every client test reaches these helpers, so
# mutmut runs some 40 slow, partly timing-sensitive tests per mutant with them; without them a run
# finishes. The killed share is then a floor: a mutant only a client test would kill counts as
# survived (or as reaching no test).
ROUTING_PARTS = [
    f for f in ROUTING_REST if f not in ("settings", "backoff")
]  # those two are scored in full by routing-rest
ROUTING_PART_TESTS = ["tests/unit/routing"] + [
    f"--ignore=tests/unit/routing/{t}.py"
    for t in (
        "test_routing_client",
        "test_routing_client_fit",
        "test_routing_client_metrics",
        "test_routing_hedge_load",
    )
]

# The unit tests that run the agent loop (a TaskRun against a fake store, model and tools), and
# the budget arithmetic it calls. The first two were the whole selection up to the sixth round;
# test_runtime_decisions.py drives the loop through JSON decisions, repairs and tool policies;
# test_runtime_loop_steps.py pins one step's requests, checkpoints, metrics, logs and endings.
LOOP_TESTS = [
    "tests/unit/runtime/test_runtime_loop_checkpoints.py",
    "tests/unit/runtime/test_runtime_budget.py",
    "tests/unit/runtime/test_runtime_decisions.py",
    "tests/unit/runtime/test_runtime_loop_steps.py",
]
# The answer policies' pipeline and their tests, the stored journals' replay among them.
ANSWERING_TESTS = [
    "tests/unit/runtime/test_runtime_answer_first.py",
    "tests/unit/runtime/test_runtime_reread.py",
    "tests/unit/runtime/test_runtime_cascade_hold.py",
    "tests/unit/runtime/test_runtime_answer_policy.py",
    "tests/unit/runtime/test_runtime_journal_replay.py",
]

# The evaluation's pure modules (claims, scoring, taskset, paired) and their unit tests (the ones that
# read the documentation corpora are in tests/integration/evaluation, out of the unit tier).
EVALUATION_TESTS = ["tests/unit/evaluation"]
# The scorer's readings, claims.py's and those split from it and scoring.py to keep each under 600 lines.
EVALUATION_MODULES = ("claims", "scoring", "taskset", "bounds", "lists", "pages", "subjects")

# module key -> (files under src/, unit tests that exercise them). "autoscale" and "routing" are
# the whole pure parts; the keys with a dash are parts of them, for a run that fits in the time.
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "placement": (["agentfleet/placement/*.py"], ["tests/unit/placement"]),
    "capacity": (["agentfleet/capacity/*.py"], ["tests/unit/capacity"]),
    "autoscale": ([f"agentfleet/autoscale/{m}.py" for m in AUTOSCALE_CORE + AUTOSCALE_LEARNED], AUTOSCALE_TESTS),
    "autoscale-core": ([f"agentfleet/autoscale/{m}.py" for m in AUTOSCALE_CORE], AUTOSCALE_TESTS),
    "autoscale-learned": ([f"agentfleet/autoscale/{m}.py" for m in AUTOSCALE_LEARNED], AUTOSCALE_TESTS),
    "replica_rollout": (["agentfleet/replica_rollout/*.py"], ["tests/unit/controllers/test_replica_rollout.py"]),
    "routing": ([f"agentfleet_runtime/routing/{m}.py" for m in ROUTING_CLIENT + ROUTING_REST], ["tests/unit/routing"]),
    "routing-client": ([f"agentfleet_runtime/routing/{m}.py" for m in ROUTING_CLIENT], ["tests/unit/routing"]),
    "routing-rest": ([f"agentfleet_runtime/routing/{m}.py" for m in ROUTING_REST], ["tests/unit/routing"]),
    "routing-parts": ([f"agentfleet_runtime/routing/{m}.py" for m in ROUTING_PARTS], ROUTING_PART_TESTS),
    "loop": (["agentfleet_runtime/loop/agent.py"], LOOP_TESTS),
    "answering": ([f"agentfleet_runtime/answering/{m}.py" for m in ("stages", "policies")], ANSWERING_TESTS),
    "evaluation": (
        [
            *(f"agentfleet_eval/{m}.py" for m in EVALUATION_MODULES),
            "agentfleet_contract/paired.py",  # the statistics agentfleet eval and the gate share
        ],
        EVALUATION_TESTS,
    ),
    "gate": (
        ["agentfleet/gate/*.py", "agentfleet/render/gate.py"],
        ["tests/unit/gate", "tests/unit/render/test_render_gate.py"],
    ),
}

STATUS = re.compile(r"^\s*(?P<name>[\w.]+__mutmut_\d+): (?P<status>[\w ]+?)\s*$")


def ensure_mutmut() -> None:
    try:
        import mutmut  # noqa: F401
    except ImportError:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", MUTMUT], check=True)
        print(f"installed {MUTMUT} in {time.monotonic() - t0:.0f}s", flush=True)


def stage(work: Path, files: list[str], tests: list[str], tests_from: str | None) -> None:
    (work / "src").mkdir(parents=True)
    for top in ("operator", "runtime", "shared"):  # every package the project installs (pyproject's packages.find)
        for pkg in sorted(p for p in (ROOT / top).iterdir() if (p / "__init__.py").exists()):
            shutil.copytree(pkg, work / "src" / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))
    if tests_from:
        subprocess.run(f"git -C {ROOT} archive {tests_from} tests | tar -x -C {work}", shell=True, check=True)
    else:
        shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    # Some unit tests import helpers from e2e/ (the placement tests read e2e/cluster/topology.yaml through
    # e2e.harness.nodes); e2e/ is a namespace package found from the project root, so it is staged beside
    # tests/ and the root goes on pytest's path, as the project's own pyproject does.
    shutil.copytree(ROOT / "e2e", work / "e2e", ignore=shutil.ignore_patterns("__pycache__"))
    # The CLI tests of capacity read the example manifests (examples/*.yaml) from the project root.
    shutil.copytree(ROOT / "examples", work / "examples")
    # Only the unit tests that are run; the guard in tests/conftest.py is inert without its env.
    quoted = lambda xs: ", ".join(f'"{x}"' for x in xs)  # noqa: E731
    (work / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'addopts = "-p no:cacheprovider"\n'
        'pythonpath = ["."]\n'
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        'also_copy = ["e2e", "examples"]\n'
        f"only_mutate = [{quoted('src/' + f for f in files)}]\n"
        f"pytest_add_cli_args_test_selection = [{quoted(tests)}]\n"
        "use_git_change_detection = false\n"
    )


def run(key: str, tests_from: str | None, keep: Path | None, only: list[str] | None = None) -> Counter:
    files, tests = MODULES[key]
    if only:  # a part of the key's files, by file name without .py (a run split by file)
        files = [f for f in files if Path(f).stem in only]
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{key}-", dir=keep))
    stage(work, files, tests, tests_from)
    env = {k: v for k, v in os.environ.items() if k != "AGENTFLEET_REQUIRE_TIERS"}
    env["PYTHONPATH"] = ""  # the staged src/ (mutmut puts mutants/src first), never the checkout
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(os.cpu_count() or 1)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        raise SystemExit(f"mutmut run failed for {key} (exit {proc.returncode}); staged in {work}")
    results = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True
    )
    counts: Counter = Counter()
    survivors: list[str] = []
    for line in results.stdout.splitlines():
        m = STATUS.match(line)
        if m:
            counts[m["status"]] += 1
            if m["status"] == "survived":
                survivors.append(m["name"])
    counts["wall_s"] = round(wall)
    (Path(keep or tempfile.gettempdir()) / f"mutation-{key}-survivors.txt").write_text("\n".join(survivors) + "\n")
    if keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--modules",
        default=",".join(k for k in MODULES if "-" not in k),
        help=f"comma-separated subset of {', '.join(MODULES)}",
    )
    ap.add_argument("--tests-from", default=None, help="git revision to take tests/ from (default: the working tree)")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated file names (no .py) to keep of each key's files, e.g. ejection,pool",
    )
    ap.add_argument(
        "--keep", type=Path, default=None, help="keep the staged projects (and survivor lists) under this directory"
    )
    args = ap.parse_args()
    ensure_mutmut()
    keys = [k for k in args.modules.split(",") if k]
    unknown = [k for k in keys if k not in MODULES]
    if unknown:
        ap.error(f"unknown modules {unknown}; choose from {list(MODULES)}")
    print(
        (
            f"mutmut over {', '.join(keys)}; tests from {args.tests_from or 'the working tree'}; load average "
            f"{os.getloadavg()[0]:.1f}"
        ),
        flush=True,
    )
    print(
        f"  {'module':10} {'mutants':>8} {'killed':>7} {'survived':>9} {'no tests':>9} {'timeout':>8} "
        f"{'other':>6} {'killed share':>13} {'wall s':>7}"
    )
    total: Counter = Counter()
    for key in keys:
        c = run(key, args.tests_from, args.keep, args.only.split(",") if args.only else None)
        wall = c.pop("wall_s")
        n = sum(c.values())
        killed = c["killed"]
        other = n - killed - c["survived"] - c["no tests"] - c["timeout"]
        total.update(c)
        print(
            (
                f"  {key:10} {n:8d} {killed:7d} {c['survived']:9d} {c['no tests']:9d} {c['timeout']:8d} {other:6d} "
                f"{killed / n if n else 0:13.1%} {wall:7d}"
            ),
            flush=True,
        )
    n = sum(total.values())
    print(
        f"  {'all':10} {n:8d} {total['killed']:7d} {total['survived']:9d} {total['no tests']:9d} "
        f"{total['timeout']:8d} {'':6} {total['killed'] / n if n else 0:13.1%}"
    )
    print(
        "  killed share = killed / all mutants (a timeout counts as not killed); survivors are listed per module "
        "in mutation-<module>-survivors.txt"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
