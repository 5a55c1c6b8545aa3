"""How the test command schedules the integration and e2e tiers on parallel workers, and what it
records of their time.

Most of those tiers' time is waiting (pods, watches, model servers starting), so e2e/test.sh runs them
under pytest-xdist (``--dist loadgroup``, whose groups are this module's). A group is the unit a worker
takes whole, in file order:
- by default one test module (its module-scoped servers and operator start once, on one worker);
- a package whose ``conftest`` starts a package-scoped server runs as one group (``PACKAGES``);
- ``LANES`` puts modules that share something no two may use at once into one group: the real node
  (one kubelet and containerd, whose images its tests import and whose CPU its model pods use), the
  cluster's one external metrics APIService (KEDA), and the model servers that are CPU-bound on this
  machine's two cores.

Heavy groups are handed out first (``WEIGHT``, seconds from the last measured run): the last group
to start must not be the longest. Every e2e module's operator serves only its own namespaces
(e2e/harness/operator.py), so modules on different workers never reconcile each other's objects.

With ``AGENTFLEET_TIMINGS`` set, the controller appends one JSON line per test phase (nodeid, phase,
start, stop, worker) to that file; ``python -m e2e.harness.testplan report`` turns it and the set-up's
step log into the table e2e/test.sh prints last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import pytest

# A package whose tests share a package-scoped server: one group, so the server starts once.
PACKAGES = (
    "tests/integration/engines/",  # one vLLM engine for the package
    "tests/integration/milvus_server/",  # one Milvus standalone server for the package
)

# Modules that must not run beside each other: each lane is one group, run in this order.
LANES: dict[str, tuple[str, ...]] = {
    # The real node: its pods' images are imported into one containerd, and its model pods and the
    # cluster-script test (a CPU hog by design) load both cores.
    "real-node": (
        "e2e/tests/test_vllm_realnode.py",
        "e2e/tests/test_demo.py",
        "e2e/tests/test_realnode.py",
        "e2e/tests/test_a2a_realnode.py",
        "e2e/tests/test_vectorindex_milvus_server.py",
        "e2e/tests/test_network_policy.py",
        # kube-router's iptables and ipsets on a private bridge: never beside the real node's own
        # kube-router (test_network_policy) or its pods' bridged traffic.
        "tests/integration/operator/test_network_policy_enforced.py",
        "e2e/tests/test_cluster_busy.py",
    ),
    # KEDA: each module runs its own KEDA operator and metrics API server, registered as the
    # cluster's one APIService v1beta1.external.metrics.k8s.io; two at once answer each other's HPAs,
    # which then never see their own metric (a scale back to 1 timed out when test_keda ran beside
    # test_autoscale_real).
    "keda": (
        "e2e/tests/test_autoscale_real.py",
        "e2e/tests/test_keda.py",
        "e2e/tests/test_scale_to_zero.py",
    ),
    # Real model servers on this machine's CPU (llama-server, vLLM for CPU): each takes both cores
    # while it answers, so they take turns.
    "engines": (
        "e2e/tests/test_agentfleet.py",  # the example fleet deciding with the 1.5B on llama-server
        "tests/integration/engines/",
        "tests/integration/runtime/test_runtime_real_agent.py",
        "tests/integration/runtime/test_runtime_mcp_agent.py",
        "tests/integration/runtime/test_runtime_tracing_jaeger.py",
        "tests/integration/runtime/test_runtime_smollm.py",
    ),
}

# Seconds each group took in the fresh-clone run of docs/results/2026-11-29-test-budget.md; groups
# not named weigh 60. Only the order in which groups are handed out depends on it.
WEIGHT: dict[str, float] = {
    "real-node": 1268,  # the fresh-clone run at 24b0133, with the A2A module
    "engines": 540,
    "keda": 679,  # its three modules' sum in the fresh-clone run at 0358502 (269 + 234 + 176 s)
}
DEFAULT_WEIGHT = 60.0


def lane_of(path: str) -> tuple[str, int] | None:
    """The lane a test file is in, and its place there (lanes run in the order LANES lists them)."""
    for lane, members in LANES.items():
        for rank, m in enumerate(members):
            if path == m or (m.endswith("/") and path.startswith(m)):
                return lane, rank
    return None


def group_of(nodeid: str) -> str:
    """The scheduling group of a test: its lane, its package or its module."""
    path = nodeid.split("::", 1)[0]
    lane = lane_of(path)
    if lane:
        return lane[0]
    return next((package.rstrip("/") for package in PACKAGES if path.startswith(package)), path)


def weight_of(group: str) -> float:
    return WEIGHT.get(group, DEFAULT_WEIGHT)


class TestPlan:
    """Registered once per process (controller and each worker), like the tier guard."""

    def __init__(self, timings: Path | None) -> None:
        self.timings = timings

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: object) -> object | None:
        """``--dist loadgroup`` hands out whole groups (group_of), in collection order. xdist's own
        loadgroup reads ``xdist_group`` marks into node ids, which pytest 9 no longer lets it do:
        it scheduled every test alone."""
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class GroupScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid)

        return GroupScheduling(config, log)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        # Every worker collects the same items in this order; the scheduler hands out groups in it.
        # The sort is stable: a group's tests keep their file order, and the heaviest group comes first.
        groups = {item.nodeid: group_of(item.nodeid) for item in items}
        first_seen = {}
        for i, item in enumerate(items):
            first_seen.setdefault(groups[item.nodeid], i)
        items.sort(
            key=lambda it: (
                -weight_of(groups[it.nodeid]),
                first_seen[groups[it.nodeid]],
                (lane_of(it.nodeid.split("::", 1)[0]) or ("", 0))[1],
            )
        )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # A module that failed to import is a failed test of the run (xdist passes on only the
        # reports of collections that did not pass).
        if self.timings is not None and report.failed:
            self._write(
                {
                    "nodeid": report.nodeid,
                    "when": "collect",
                    "start": None,
                    "stop": None,
                    "duration": 0.0,
                    "outcome": "failed",
                    "worker": None,
                }
            )

    def _write(self, record: dict) -> None:
        assert self.timings is not None
        with self.timings.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.timings is None:
            return
        record = {
            "nodeid": report.nodeid.split("@", 1)[0],
            "when": report.when,
            "start": getattr(report, "start", None),
            "stop": getattr(report, "stop", None),
            "duration": report.duration,
            "outcome": report.outcome,
            "worker": getattr(getattr(getattr(report, "node", None), "gateway", None), "id", None),
        }
        self._write(record)


def register(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("agentfleet-testplan"):
        return
    # Only the controller writes timings (a worker's reports reach it); without xdist the one process.
    is_worker = hasattr(config, "workerinput")
    path = os.environ.get("AGENTFLEET_TIMINGS")
    config.pluginmanager.register(TestPlan(Path(path) if path and not is_worker else None), "agentfleet-testplan")


# ---------------------------------------------------------------------------------------------
# The table e2e/test.sh prints last.

TIER_ROOTS = {"unit": "tests/unit/", "integration": "tests/integration/", "e2e": "e2e/"}


def tier_of(nodeid: str) -> str | None:
    """The tier of a test, or of a collection report (whose directory nodeid has no trailing slash)."""
    path = nodeid.split("::", 1)[0] + ("/" if "::" not in nodeid else "")
    return next((tier for tier, root in TIER_ROOTS.items() if nodeid.startswith(root) or path.startswith(root)), None)


def read_steps(path: Path) -> list[tuple[str, float]]:
    """e2e/test.sh's step log: one ``SECONDS<TAB>STEP`` line per finished step."""
    steps = []
    if path.exists():
        for line in path.read_text().splitlines():
            seconds, _, name = line.partition("\t")
            if name:
                steps.append((name, float(seconds)))
    return steps


def read_tests(path: Path) -> dict[str, dict]:
    """nodeid -> {start, stop, seconds (setup + call + teardown), outcome} from the timings file;
    a test failed if any of its phases failed, and skipped if a phase skipped it."""
    tests: dict[str, dict] = {}
    if not path.exists():
        return tests
    for line in path.read_text().splitlines():
        r = json.loads(line)
        t = tests.setdefault(r["nodeid"], {"start": float("inf"), "stop": 0.0, "seconds": 0.0, "outcome": "passed"})
        t["seconds"] += r["duration"] or 0.0
        if r["outcome"] == "failed" or (r["outcome"] == "skipped" and t["outcome"] == "passed"):
            t["outcome"] = r["outcome"]
        if r.get("start") is not None:
            t["start"] = min(t["start"], r["start"])
        if r.get("stop") is not None:
            t["stop"] = max(t["stop"], r["stop"])
    return tests


def report(steps: list[tuple[str, float]], tests: dict[str, dict], slowest: int = 25, exit_status: int = 0) -> str:
    lines = ["", "== where the time went", "", f"{'set-up step':<64} {'seconds':>8}"]
    for name, seconds in steps:
        lines.append(f"{name:<64} {seconds:>8.0f}")
    by_tier: dict[str, list[dict[str, float]]] = defaultdict(list)
    for nodeid, t in tests.items():
        by_tier[tier_of(nodeid) or "other"].append(t)
    header = f"{'tier':<12} {'tests':>6} {'wall s':>8} {'test s':>8}"
    lines += ["", header + "   (wall: first test's start to last test's end)"]
    for tier in (*TIER_ROOTS, "other"):
        ts = by_tier.get(tier)
        if not ts:
            continue
        starts = [t["start"] for t in ts if t["start"] != float("inf")]
        stops = [t["stop"] for t in ts if t["stop"]]
        wall = (max(stops) - min(starts)) if starts and stops else 0.0
        lines.append(f"{tier:<12} {len(ts):>6} {wall:>8.0f} {sum(t['seconds'] for t in ts):>8.0f}")
    groups: dict[str, float] = defaultdict(float)
    for nodeid, t in tests.items():
        groups[group_of(nodeid)] += t["seconds"]
    lines += ["", f"{'heaviest scheduling groups (e2e/harness/testplan.py)':<64} {'seconds':>8}"]
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"{group:<64} {seconds:>8.0f}")
    lines += ["", f"{'slowest tests (setup + call + teardown)':<100} {'seconds':>8}"]
    for nodeid, t in sorted(tests.items(), key=lambda kv: -kv[1]["seconds"])[:slowest]:
        lines.append(f"{nodeid[:100]:<100} {t['seconds']:>8.1f}")
    # The run's plain closing line, every tier counted (each tier's pytest printed its own above). A
    # run that failed with no test failed (a set-up step, the tier guard) must not read as green.
    counts = {o: sum(t["outcome"] == o for t in tests.values()) for o in ("passed", "failed", "skipped")}
    closing = f"tests: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if exit_status and not counts["failed"]:
        closing += f"; the run failed (exit status {exit_status}) outside the tests' own results"
    lines += ["", closing]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m e2e.harness.testplan")
    sub = ap.add_subparsers(dest="cmd", required=True)
    rep = sub.add_parser("report", help="print the set-up steps, tier wall times and slowest tests")
    rep.add_argument("--steps", type=Path, required=True, help="e2e/test.sh's step log")
    rep.add_argument("--tests", type=Path, required=True, help="the AGENTFLEET_TIMINGS file")
    rep.add_argument("--slowest", type=int, default=25)
    rep.add_argument("--exit-status", type=int, default=0, help="the test command's exit status")
    args = ap.parse_args(argv)
    print(report(read_steps(args.steps), read_tests(args.tests), args.slowest, args.exit_status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
