"""Import contracts in pyproject.toml: the API and pure logic do no I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_package_shadows_the_standard_library() -> None:
    for top in ("operator", "runtime"):
        assert not (ROOT / top / "__init__.py").exists(), f"{top}/ must not be a package: it shadows the stdlib"
    import operator as stdlib_operator

    assert hasattr(stdlib_operator, "itemgetter")


def test_test_module_names_are_unique() -> None:
    # pytest's default import mode imports test files by basename; two alike would collide.
    names = [p.name for top in ("tests", "e2e") for p in (ROOT / top).rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
