"""The real-node tier's mutants (e2e/cluster/node/mutants/) still apply to the code they mutate.

A patch that no longer applies (a reformat, a moved line) leaves its mutant unbuilt, and the tier
cannot show that it catches the change: this fails first, naming the patch.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATCHES = sorted((ROOT / "e2e" / "cluster" / "node" / "mutants").glob("*.patch"))


def test_there_are_mutants() -> None:
    assert PATCHES, "e2e/cluster/node/mutants/ holds no patch"


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_a_mutant_applies_to_the_checkout_and_changes_only_product_code(patch: Path) -> None:
    text = patch.read_text()
    changed = [line[len("+++ b/") :] for line in text.splitlines() if line.startswith("+++ b/")]
    assert changed and all(f.split("/")[0] in {"operator", "runtime", "shared"} for f in changed), (
        f"{patch.name}: e2e/cluster/node/mutant.sh builds only files under operator/, runtime/ or shared/, "
        f"not {changed}"
    )
    check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, f"{patch.name} no longer applies; regenerate it with git diff: {check.stderr}"
