import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tier_of, tier_problems

REPO = Path(__file__).resolve().parents[2]


def test_nodeids_map_to_tiers() -> None:
    assert tier_of("tests/unit/test_a.py::t") == "unit"
    assert tier_of("tests/integration/x/test_b.py::t") == "integration"
    assert tier_of("e2e/tests/test_crds.py::t[x]") == "e2e"
    assert tier_of("other/test_c.py::t") is None


def test_a_missing_or_skipping_tier_is_a_problem() -> None:
    ok = {"passed": ["unit", "e2e"], "failed": [], "skipped": []}
    assert tier_problems(["unit", "e2e"], ok) == []
    assert tier_problems(["unit", "e2e"], {"passed": ["unit"], "failed": [], "skipped": ["e2e"]}) == [
        "tier 'e2e' ran no test",
        "tier 'e2e' skipped: 1 test(s)",
    ]
    # A tier whose tests all failed still ran; the failures fail the run on their own.
    assert tier_problems(["e2e"], {"passed": [], "failed": ["e2e"], "skipped": []}) == []


# The guard itself, run by a real pytest over a throwaway project: the project's root conftest
# takes the guard's hooks from tests/conftest.py, and its tiers are tests/unit/ and e2e/.
PASSING = "def test_ok():\n    assert True\n"
GUARD_CONFTEST = "from tests.conftest import *  # noqa: F401,F403\n"


def _run_throwaway(
    tmp_path: Path, e2e_module: str, extra: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (tmp_path / "conftest.py").write_text(GUARD_CONFTEST)
    files = {"tests/unit/test_unit_ok.py": PASSING, "e2e/test_e2e_case.py": e2e_module, **(extra or {})}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    env = dict(os.environ, AGENTFLEET_REQUIRE_TIERS="unit,e2e", PYTHONPATH=str(REPO))
    env.pop("AGENTFLEET_TIMINGS", None)  # the throwaway run's tests are not the suite's
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests", "e2e", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_guard_passes_a_complete_run(tmp_path: Path) -> None:
    proc = _run_throwaway(tmp_path, PASSING)
    assert proc.returncode == 0, proc.stdout
    assert "test tiers incomplete" not in proc.stdout


@pytest.mark.parametrize(
    ("e2e_module", "problem"),
    [
        # Skipped at collection: the module never yields a test item (the old guard counted only
        # the call and setup phases, so these passed unseen next to a passing e2e test elsewhere).
        (
            PASSING.replace("def", "import pytest\npytest.skip('no cluster', allow_module_level=True)\ndef", 1),
            "skipped: 1",
        ),
        ("import pytest\npytest.importorskip('agentfleet_no_such_module')\n" + PASSING, "skipped: 1"),
        (
            "import pytest\n@pytest.fixture\ndef need():\n    pytest.skip('no cluster')\ndef test_x(need):\n    pass\n"
            + PASSING,
            "skipped: 1",
        ),
        (
            "import pytest\n@pytest.mark.xfail(reason='flaky')\ndef test_x():\n    assert False\n" + PASSING,
            "xfailed without naming an issue: 1",
        ),
        ("import pytest\ndef test_x():\n    pytest.xfail('later')\n" + PASSING, "xfailed without naming an issue: 1"),
        ("import pytest\n@pytest.mark.xfail(reason='flaky')\ndef test_x():\n    pass\n" + PASSING, "xpassed: 1"),
    ],
    ids=["module-skip", "importorskip", "fixture-skip", "xfail-mark", "xfail-call", "xpass"],
)
def test_guard_fails_a_run_that_hides_a_test(tmp_path: Path, e2e_module: str, problem: str) -> None:
    # A second, passing e2e module keeps the tier from looking empty: the hidden test alone must fail the run.
    proc = _run_throwaway(tmp_path, e2e_module, {"e2e/test_e2e_other.py": PASSING})
    assert proc.returncode == 1, proc.stdout
    assert f"tier 'e2e' {problem} test(s)" in proc.stdout, proc.stdout


def test_guard_accepts_an_xfail_that_names_its_issue(tmp_path: Path) -> None:
    module = (
        "import pytest\n@pytest.mark.xfail(reason='known bug, issue #21')\ndef test_x():\n    assert False\n" + PASSING
    )
    proc = _run_throwaway(tmp_path, module)
    assert proc.returncode == 0, proc.stdout


def test_guard_takes_no_bare_number_for_an_issue(tmp_path: Path) -> None:
    module = (
        "import pytest\n@pytest.mark.xfail(reason='fails on attempt #1')\ndef test_x():\n    assert False\n" + PASSING
    )
    proc = _run_throwaway(tmp_path, module)
    assert proc.returncode == 1, proc.stdout
    assert "tier 'e2e' xfailed without naming an issue: 1 test(s)" in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "args", [("-k", "not test_x"), ("--deselect", "e2e/test_e2e_case.py::test_x"), ("-m", "not slow")]
)
def test_guard_fails_a_run_that_deselects_a_test(tmp_path: Path, args: tuple[str, ...]) -> None:
    module = "import pytest\n@pytest.mark.slow\ndef test_x():\n    pass\n" + PASSING
    proc = _run_throwaway(tmp_path, module, args=args)
    assert proc.returncode == 1, proc.stdout
    assert "tier 'e2e' deselected (-k, -m or --deselect): 1 test(s)" in proc.stdout, proc.stdout


def test_guard_reports_a_tier_with_no_test(tmp_path: Path) -> None:
    proc = _run_throwaway(tmp_path, "import pytest\npytest.skip('no cluster', allow_module_level=True)\n")
    assert proc.returncode == 1, proc.stdout
    assert "tier 'e2e' ran no test" in proc.stdout, proc.stdout


# The same guard when the tiers run on parallel workers (pytest-xdist, as e2e/test.sh runs them):
# the workers collect, deselect and skip; the controller, which sees every report, judges.
XDIST = ("-n", "2", "-p", "xdist")


def test_guard_passes_a_complete_run_on_parallel_workers(tmp_path: Path) -> None:
    proc = _run_throwaway(tmp_path, PASSING, {"e2e/test_e2e_other.py": PASSING}, args=XDIST)
    assert proc.returncode == 0, proc.stdout
    assert "test tiers incomplete" not in proc.stdout


@pytest.mark.parametrize(
    "e2e_module",
    [
        PASSING.replace("def", "import pytest\npytest.skip('no cluster', allow_module_level=True)\ndef", 1),
        "import pytest\n@pytest.fixture\ndef need():\n    pytest.skip('no cluster')\ndef test_x(need):\n    pass\n",
    ],
    ids=["module-skip", "fixture-skip"],
)
def test_guard_sees_a_skip_on_a_parallel_worker(tmp_path: Path, e2e_module: str) -> None:
    proc = _run_throwaway(tmp_path, e2e_module, {"e2e/test_e2e_other.py": PASSING}, args=XDIST)
    assert proc.returncode == 1, proc.stdout
    assert "tier 'e2e' skipped: 1 test(s)" in proc.stdout, proc.stdout


def test_guard_sees_a_deselection_on_parallel_workers(tmp_path: Path) -> None:
    module = "import pytest\n@pytest.mark.slow\ndef test_x():\n    pass\n" + PASSING
    proc = _run_throwaway(tmp_path, module, args=(*XDIST, "-k", "not test_x"))
    assert proc.returncode == 1, proc.stdout
    # Each worker collects and deselects the same test: counted once.
    assert "tier 'e2e' deselected (-k, -m or --deselect): 1 test(s)" in proc.stdout, proc.stdout
