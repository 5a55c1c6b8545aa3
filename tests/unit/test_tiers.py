from tests.conftest import tier_of, tier_problems


def test_nodeids_map_to_tiers() -> None:
    assert tier_of("tests/unit/test_a.py::t") == "unit"
    assert tier_of("tests/integration/x/test_b.py::t") == "integration"
    assert tier_of("e2e/test_crds.py::t[x]") == "e2e"
    assert tier_of("other/test_c.py::t") is None


def test_a_missing_or_skipping_tier_is_a_problem() -> None:
    ok = {"passed": ["unit", "e2e"], "failed": [], "skipped": []}
    assert tier_problems(["unit", "e2e"], ok) == []
    assert tier_problems(["unit", "e2e"], {"passed": ["unit"], "failed": [], "skipped": ["e2e"]}) == [
        "tier 'e2e' ran no test",
        "tier 'e2e' skipped 1 test(s)",
    ]
    # A tier whose tests all failed still ran; the failures fail the run on their own.
    assert tier_problems(["e2e"], {"passed": [], "failed": ["e2e"], "skipped": []}) == []
