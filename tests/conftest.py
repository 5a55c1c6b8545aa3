"""Session guard for the full test command: every required tier must run, none may skip.

e2e/test.sh sets AGENTFLEET_REQUIRE_TIERS (e.g. "unit,integration,e2e"). A tier that ran no
test, or skipped any, fails the run: a silently skipped e2e tier must never look green.

Every report counts, whichever phase made it: a module skipped at collection
(``pytest.importorskip``, ``pytest.skip(allow_module_level=True)``) is as silent as a skip in
the test body. An xfail is a failure unless its reason names the issue that tracks it
("issue #21" or an .../issues/21 URL): a known bug is visible, an unexplained one is not
allowed to hide. An xpass means the marker is stale, and fails too. A test of a required tier
deselected by ``-k``, ``-m`` or ``--deselect`` fails the run as well: the full test command runs
every test, and a narrowed run must not look like a complete one.
"""

from __future__ import annotations

import os
import re

import pytest

from e2e.harness import shared, testplan
from e2e.harness.testplan import tier_of

# "issue 21", "issue #21" or an .../issues/21 URL; a bare "#1" ("step #1", "attempt #2") is no name.
NAMES_AN_ISSUE = re.compile(r"(?i)\bissues?\s*#?\d+|/issues/\d+")


def outcome_of(report: pytest.CollectReport | pytest.TestReport) -> str | None:
    """What one report says about its test: passed, failed, skipped, xfailed, xpassed, or
    None when it says nothing (a setup or teardown that passed, a collected module)."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.skipped or report.failed:
        return report.outcome
    return "passed" if getattr(report, "when", None) == "call" else None


def xfail_names_an_issue(report: pytest.TestReport) -> bool:
    return bool(NAMES_AN_ISSUE.search(str(getattr(report, "wasxfail", ""))))


def tier_problems(required: list[str], outcomes: dict[str, list[str]]) -> list[str]:
    """outcomes: outcome -> the tier of each report with that outcome ("xfailed" lists only
    the xfails that name no issue)."""
    problems = []
    for tier in required:
        if not outcomes.get("passed", []).count(tier) and not outcomes.get("failed", []).count(tier):
            problems.append(f"tier {tier!r} ran no test")
        for outcome, what in (
            ("skipped", "skipped"),
            ("xfailed", "xfailed without naming an issue"),
            ("xpassed", "xpassed"),
            ("deselected", "deselected (-k, -m or --deselect)"),
        ):
            n = outcomes.get(outcome, []).count(tier)
            if n:
                problems.append(f"tier {tier!r} {what}: {n} test(s)")
    return problems


class TierGuard:
    """Registered as a plugin (not left as conftest hooks) so it sees the reports of every
    directory, e2e/ included, and those made at collection time."""

    def __init__(self, required: list[str]):
        self.required = required
        self.outcomes: dict[str, list[str]] = {}
        self.worker_deselected: set[str] = set()

    def _record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        outcome = outcome_of(report)
        if outcome is None or (outcome == "xfailed" and xfail_names_an_issue(report)):
            return
        tier = tier_of(report.nodeid)
        if tier is not None:
            self.outcomes.setdefault(outcome, []).append(tier)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            tier = tier_of(item.nodeid)
            if tier is not None:
                self.outcomes.setdefault("deselected", []).append(tier)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: object, error: object) -> None:
        # Under pytest-xdist every worker collects, and deselects, the whole run; each one's
        # WorkerDeselections reports what it deselected here when it ends, counted once.
        for nodeid in getattr(node, "workeroutput", {}).get(WORKER_DESELECTED, []):
            tier = tier_of(nodeid)
            if tier is not None and nodeid not in self.worker_deselected:
                self.worker_deselected.add(nodeid)
                self.outcomes.setdefault("deselected", []).append(tier)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        problems = tier_problems(self.required, self.outcomes)
        if not problems:
            return
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_sep("!", "test tiers incomplete: " + "; ".join(problems), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


WORKER_DESELECTED = "agentfleet_deselected_tiers"


class WorkerDeselections:
    """On a pytest-xdist worker, which sees only the tests it was given: the tiers of what it
    deselected go to the controller's TierGuard, which judges the whole run."""

    def __init__(self, config: pytest.Config):
        self.workeroutput = config.workeroutput  # type: ignore[attr-defined]
        self.workeroutput[WORKER_DESELECTED] = []

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.workeroutput[WORKER_DESELECTED] += [item.nodeid for item in items]


def pytest_configure(config: pytest.Config) -> None:
    testplan.register(config)
    shared.register(config)
    required = [t for t in os.environ.get("AGENTFLEET_REQUIRE_TIERS", "").split(",") if t]
    if not required or config.pluginmanager.has_plugin("agentfleet-tier-guard"):
        return
    if hasattr(config, "workerinput"):
        config.pluginmanager.register(WorkerDeselections(config), "agentfleet-tier-guard")
    else:
        config.pluginmanager.register(TierGuard(required), "agentfleet-tier-guard")
