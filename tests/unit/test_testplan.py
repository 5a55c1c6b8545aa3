"""The test command's scheduling groups and its time table (e2e/harness/testplan.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from e2e.harness import testplan
from e2e.harness.cluster import NAMESPACE_SUFFIX_GLOB, namespace_prefix

REPO = Path(__file__).resolve().parents[2]


def test_a_module_is_its_own_group_unless_a_lane_or_package_takes_it() -> None:
    assert testplan.group_of("e2e/tests/test_crds.py::test_x[a]") == "e2e/tests/test_crds.py"
    assert testplan.group_of("e2e/tests/test_demo.py::test_y") == "real-node"
    assert testplan.group_of("e2e/tests/test_realnode.py::test_y") == "real-node"
    assert testplan.group_of("tests/integration/engines/test_vllm_engine_it.py::t") == "engines"
    assert testplan.group_of("tests/integration/runtime/test_runtime_smollm.py::t") == "engines"
    assert testplan.group_of("tests/integration/milvus_server/test_x.py::t") == "tests/integration/milvus_server"
    # A lane names whole paths: a module whose name only starts like a member's is not in it.
    assert testplan.group_of("e2e/tests/test_demo_more.py::t") == "e2e/tests/test_demo_more.py"


def test_every_lane_member_exists() -> None:
    for members in testplan.LANES.values():
        for m in members:
            assert (REPO / m).exists(), m
    for package in testplan.PACKAGES:
        assert (REPO / package).is_dir(), package


class Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


def test_heaviest_groups_come_first_and_each_group_keeps_its_order() -> None:
    ids = [
        "e2e/tests/test_a.py::t1",
        "e2e/tests/test_realnode.py::t1",
        "e2e/tests/test_a.py::t2",
        "e2e/tests/test_demo.py::t1",
        "tests/integration/engines/test_e.py::t1",
        "e2e/tests/test_b.py::t1",
        "e2e/tests/test_realnode.py::t2",
    ]
    items = [Item(i) for i in ids]
    testplan.TestPlan(None).pytest_collection_modifyitems(None, items)
    assert [i.nodeid for i in items] == [
        # the real node's lane (weight 1500), its modules in LANES order: the demo before realnode
        "e2e/tests/test_demo.py::t1",
        "e2e/tests/test_realnode.py::t1",
        "e2e/tests/test_realnode.py::t2",
        "tests/integration/engines/test_e.py::t1",  # engines (600)
        "e2e/tests/test_a.py::t1",  # then modules in file order, each whole
        "e2e/tests/test_a.py::t2",
        "e2e/tests/test_b.py::t1",
    ]


def test_namespaces_and_their_operator_glob_belong_to_one_module() -> None:
    prefix = namespace_prefix("e2e.tests.test_vectorindex")
    assert prefix == "e2e-vectorindex-"
    import fnmatch

    served = prefix + NAMESPACE_SUFFIX_GLOB
    assert fnmatch.fnmatch(prefix + "a1b2c3", served)
    # A module whose name extends another's gets namespaces the other's operator does not serve.
    other = namespace_prefix("e2e.tests.test_vectorindex_milvus_server") + "a1b2c3"
    assert not fnmatch.fnmatch(other, served)


def records(*rows: tuple[str, str, float, float, str]) -> str:
    return "".join(
        json.dumps({"nodeid": n, "when": w, "start": a, "stop": b, "duration": b - a, "outcome": o}) + "\n"
        for n, w, a, b, o in rows
    )


def test_the_table_gives_each_tier_its_wall_time_and_the_run_a_closing_line(tmp_path: Path) -> None:
    timings = tmp_path / "t.jsonl"
    timings.write_text(
        records(
            ("tests/unit/test_u.py::a", "call", 0, 2, "passed"),
            ("tests/integration/x/test_i.py::b", "setup", 10, 15, "passed"),
            ("tests/integration/x/test_i.py::b", "call", 15, 20, "failed"),
            ("tests/integration/x/test_i.py::b", "teardown", 20, 21, "passed"),
            ("e2e/tests/test_e.py::c", "setup", 12, 13, "skipped"),
            ("e2e/tests/test_e.py::d", "call", 14, 100, "passed"),
        )
    )
    steps = tmp_path / "steps.tsv"
    steps.write_text("42\tcontrol plane binaries\n7\tllama-server\n")
    table = testplan.report(testplan.read_steps(steps), testplan.read_tests(timings))
    lines = table.splitlines()
    assert any(line.split() == ["control", "plane", "binaries", "42"] for line in lines)
    tiers = {line.split()[0]: line.split()[1:] for line in lines if line.split()[:1] in (["unit"], ["e2e"])}
    assert tiers["unit"] == ["1", "2", "2"]
    # Wall: the tier's first start to its last stop (12 to 100), not the sum of its tests' times.
    assert tiers["e2e"] == ["2", "88", "87"]
    integration = next(line for line in lines if line.startswith("integration"))
    assert integration.split()[1:3] == ["1", "11"]
    assert lines[-1] == "tests: 2 passed, 1 failed, 1 skipped"
    # A failed run whose tests all passed (a set-up step, the tier guard) does not close as green.
    passing = {k: v for k, v in testplan.read_tests(timings).items() if v["outcome"] != "failed"}
    closing = testplan.report([], passing, exit_status=2).splitlines()[-1]
    assert (
        closing == "tests: 2 passed, 0 failed, 1 skipped; the run failed (exit status 2) outside the tests' own results"
    )
    slowest = lines.index(next(line for line in lines if line.startswith("slowest tests")))
    assert lines[slowest + 1].startswith("e2e/tests/test_e.py::d")


def test_the_controller_records_every_phase_of_a_parallel_run(tmp_path: Path) -> None:
    # A real pytest with two workers over a throwaway project: the controller alone writes the file.
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (tmp_path / "conftest.py").write_text(
        "from e2e.harness import testplan\n\ndef pytest_configure(config):\n    testplan.register(config)\n"
    )
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_a.py").write_text("def test_one():\n    pass\ndef test_two():\n    pass\n")
    (tmp_path / "tests" / "unit" / "test_b.py").write_text("def test_three():\n    assert False\n")
    (tmp_path / "tests" / "unit" / "test_broken.py").write_text("import agentfleet_no_such_module\n")
    # Two modules of one lane (testplan.LANES["engines"]), each with tests enough to spread.
    lane = {
        "tests/integration/engines/test_e.py": "def test_e1():\n    pass\ndef test_e2():\n    pass\n",
        "tests/integration/runtime/test_runtime_smollm.py": "def test_s1():\n    pass\ndef test_s2():\n    pass\n",
    }
    for rel, text in lane.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    timings = tmp_path / "timings.jsonl"
    env = dict(os.environ, AGENTFLEET_TIMINGS=str(timings), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "xdist", "--dist", "loadgroup", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout
    everything = [json.loads(line) for line in timings.read_text().splitlines()]
    rows = [r for r in everything if r["when"] != "collect"]
    unit = ("test_a.py::test_one", "test_a.py::test_two", "test_b.py::test_three")
    assert {(r["nodeid"], r["when"]) for r in rows if r["nodeid"].startswith("tests/unit/")} == {
        (f"tests/unit/{m}", w) for m in unit for w in ("setup", "call", "teardown")
    }
    assert len(rows) == 7 * 3  # each phase once: the workers write nothing
    assert {r["worker"] for r in rows} <= {"gw0", "gw1"}
    # A module is one group: both of test_a's tests ran on one worker; so did the lane's four.
    assert len({r["worker"] for r in rows if "test_a.py" in r["nodeid"]}) == 1
    assert len({r["worker"] for r in rows if r["nodeid"].startswith("tests/integration/")}) == 1
    tests = testplan.read_tests(timings)
    assert tests["tests/unit/test_b.py::test_three"]["outcome"] == "failed"
    # The module that cannot be imported is a failed test of the run, once, however many workers saw it.
    assert tests["tests/unit/test_broken.py"]["outcome"] == "failed"
    assert testplan.report([], tests).splitlines()[-1] == "tests: 6 passed, 2 failed, 0 skipped"


def test_every_module_that_starts_keda_is_in_one_lane() -> None:
    # Each starts KEDA's metrics API server as the cluster's one external metrics APIService: two
    # modules at once on two workers answer each other's HPAs (test_keda's scale back to 1 timed out
    # beside test_autoscale_real in two runs at 54b65e7 and 0358502).
    tests = REPO / "e2e" / "tests"
    starters = sorted(
        f"e2e/tests/{p.name}"
        for p in tests.glob("test_*.py")
        if any(mark in p.read_text() for mark in ("Keda(", "keda_bin_dir", "from e2e.tests.test_keda import"))
    )
    assert len(starters) >= 3, starters
    assert {testplan.group_of(f"{p}::t") for p in starters} == {"keda"}, starters
