"""`python -m e2e.demo down` before any up: it stops nothing and makes no directory, so the next
`e2e/up.sh` finds no state dir without the cluster's marker to refuse."""

from __future__ import annotations

from e2e.demo.driver import main


def test_a_down_before_any_up_leaves_no_directory(tmp_path):
    state = tmp_path / "agentfleet-cluster"
    assert main(["down", "--namespace", "af-py", "--state-dir", str(state)]) == 0
    assert main(["down", "--state-dir", str(state)]) == 0
    assert not state.exists()
