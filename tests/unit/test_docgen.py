"""docs/reference/ is generated from crds/ (which crdgen makes from the models): it must not drift."""

from __future__ import annotations

import shutil
from pathlib import Path

from agentfleet import docgen


def test_reference_pages_match_the_crds():
    assert docgen.drift() == [], "run `python -m agentfleet.docgen` and commit docs/reference/"


def test_every_kind_has_a_page_with_every_spec_field(tmp_path: Path):
    out = tmp_path / "reference"
    docgen.write(out=out)
    assert sorted(p.name for p in out.glob("*.md")) == ["agentfleet.md", "modelreplicaset.md", "vectorindex.md"]
    page = (out / "vectorindex.md").read_text()
    assert "| `spec.index.type`" in page and "spec.dimension is immutable" in page


def test_drift_names_an_edited_a_missing_and_a_stray_page(tmp_path: Path):
    out = tmp_path / "reference"
    docgen.write(out=out)
    assert docgen.drift(out=out) == []
    (out / "agentfleet.md").write_text("edited by hand\n")
    (out / "vectorindex.md").unlink()
    shutil.copy(out / "modelreplicaset.md", out / "stray.md")
    assert docgen.drift(out=out) == ["agentfleet.md", "stray.md", "vectorindex.md"]
    assert docgen.main(["--check", "--out", str(out)]) == 1
