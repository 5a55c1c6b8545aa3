"""Session guard for the full test command: every required tier must run, none may skip.

e2e/test.sh sets AGENTFLEET_REQUIRE_TIERS (e.g. "unit,integration,e2e"). A tier that ran no
test, or skipped any, fails the run: a silently skipped e2e tier must never look green.
"""

from __future__ import annotations

import os

import pytest

TIER_ROOTS = {"unit": "tests/unit/", "integration": "tests/integration/", "e2e": "e2e/"}


def tier_of(nodeid: str) -> str | None:
    return next((tier for tier, root in TIER_ROOTS.items() if nodeid.startswith(root)), None)


def tier_problems(required: list[str], outcomes: dict[str, list[str]]) -> list[str]:
    problems = []
    for tier in required:
        if not outcomes.get("passed", []).count(tier) and not outcomes.get("failed", []).count(tier):
            problems.append(f"tier {tier!r} ran no test")
        skipped = outcomes.get("skipped", []).count(tier)
        if skipped:
            problems.append(f"tier {tier!r} skipped {skipped} test(s)")
    return problems


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    required = [t for t in os.environ.get("AGENTFLEET_REQUIRE_TIERS", "").split(",") if t]
    if not required:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter else {}
    outcomes = {
        outcome: [tier_of(r.nodeid) for r in stats.get(outcome, []) if getattr(r, "when", "call") in ("call", "setup")]
        for outcome in ("passed", "failed", "skipped")
    }
    problems = tier_problems(required, outcomes)
    if problems:
        if reporter:
            reporter.write_sep("!", "test tiers incomplete: " + "; ".join(problems), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
