"""The evaluation's corpora as installed: the Debian documentation packages (installed with apt-get when
missing, ~25 s each) read page by page. Integration tier: these read hundreds of real pages."""

from __future__ import annotations

from pathlib import Path

from agentfleet_eval.taskset import load_taskset

from e2e.eval.corpus import CORPORA

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml"


def test_shipped_facts_are_in_their_supporting_pages() -> None:
    """Every expected fact is stated by one of its supporting pages, as the ingestion extracts them
    (postgresql-doc-15 is installed with apt-get when missing, ~25 s)."""
    from e2e.eval.corpus import ensure_manual

    manual = ensure_manual()
    from agentfleet_eval.scoring import subjects, supports

    from agentfleet_runtime.ingest.documents import html_to_text

    for t in load_taskset(SHIPPED).tasks:
        pages = [html_to_text((manual / s).read_text(encoding="utf-8")) for s in t.supporting]
        for f, subject in zip(t.facts, subjects(t)[0], strict=True):
            # in the same sense: the quantity with its unit, not negated, near the setting asked about
            assert any(supports(t, f, subject, p) for p in pages), (t.id, f.describe())


def test_the_python_corpus_is_html_pages_only() -> None:
    """library/ holds the reference's pages and nothing else: no Sphinx sources (each page twice) or
    scripts, which the package keeps in html/_sources and html/_static (python3.11-doc is installed
    with apt-get when missing)."""
    pages = list(CORPORA["python"].ensure().rglob("*"))
    assert len(pages) > 300 and all(p.suffix == ".html" for p in pages if p.is_file())
