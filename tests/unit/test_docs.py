"""The design pages in docs/ read as design, not as lab notebooks.

A user who opens "how does hedging work" should land on how it works, its knobs and today's
figures with the command that reproduces them, not on a session's stop-by-stop log. Dated
measurement logs belong in docs/results/; this test keeps them there and keeps every link
between the pages (and from the README) pointing at a file that exists.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DESIGN_PAGES = sorted(DOCS.glob("*.md"))

# Narration of how a page came to be: "Stop 35's runs", "the fourth round", "this round". ("The
# second pass" is left alone: a reconcile has passes.)
NARRATION = re.compile(
    r"\b[Ss]top \d+\b"
    r"|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth) round\b"
    r"|\b[Tt]his (?:round|session|stop)\b"
    r"|\b[Ll]ast (?:round|session|stop)\b"
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SECTIONS = ("## How it works", "## Knobs", "## Today's figures")


def narration(text: str) -> list[str]:
    return [m.group(0) for m in NARRATION.finditer(text)]


def test_the_narration_pattern_catches_what_it_is_for():
    assert narration("Stop 35's 600 s runs on seeds 1-20") == ["Stop 35"]
    assert narration("as the fourth round found, and this round") == ["fourth round", "this round"]
    assert narration("it stops 2 replicas; the first token; a round-robin floor; its second pass") == []


def test_there_are_design_pages():
    names = {p.name for p in DESIGN_PAGES}
    assert {"autoscaling.md", "hedging.md", "routing.md", "evaluation.md", "security.md", "runtime.md"} <= names


@pytest.mark.parametrize("page", DESIGN_PAGES, ids=lambda p: p.name)
def test_design_pages_do_not_narrate_sessions(page: Path):
    found = narration(page.read_text())
    assert not found, (
        f"{page.relative_to(ROOT)} narrates its history ({found[:5]}): move it to docs/results/ as a dated log"
    )


@pytest.mark.parametrize("page", ["autoscaling.md", "hedging.md", "routing.md"])
def test_area_pages_say_how_knobs_and_figures(page: str):
    text = (DOCS / page).read_text()
    missing = [s for s in SECTIONS if s not in text]
    assert not missing, f"docs/{page} lacks {missing}"
    figures = text[text.index("## Today's figures") :]
    assert "python -m e2e.bench." in figures, f"docs/{page}: today's figures name no command that reproduces them"


@pytest.mark.parametrize(
    "page", [*DESIGN_PAGES, *sorted((DOCS / "results").glob("*.md")), ROOT / "README.md"], ids=lambda p: p.name
)
def test_links_point_at_files_that_exist(page: Path):
    broken = []
    for target in LINK.findall(page.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        if not (page.parent / target).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_results_are_dated():
    logs = [p for p in (DOCS / "results").glob("*.md") if p.name != "README.md"]  # README.md: the logs' index
    undated = [p.name for p in logs if not re.match(r"\d{4}-\d{2}-\d{2}-", p.name)]
    assert not undated, f"docs/results/ holds dated logs, named YYYY-MM-DD-topic.md: rename {undated}"


# A backticked repository path in a page a user reads: `e2e/harness/ports.py`, `docs/routing.md`.
# Wildcards and placeholders (`e2e/bench/*.py`, `<name>`) name no one file and are left alone.
BACKTICKED = re.compile(r"`([^`\s]+)`")
REPO_PATH = re.compile(r"^(?:operator|runtime|shared|e2e|tests|docs|examples|charts|crds)/[\w./-]*$")
READ_PAGES = [*DESIGN_PAGES, ROOT / "README.md", ROOT / "e2e" / "README.md", ROOT / "charts/agentfleet/README.md"]


def missing_paths(text: str, root: Path = ROOT) -> list[str]:
    out = []
    for token in BACKTICKED.findall(text):
        path = token.split("::")[0]  # a test named as path::name
        if REPO_PATH.match(path) and not any(c in path for c in "*<>{}") and not (root / path.rstrip("/")).exists():
            out.append(path)
    return out


def test_the_path_pattern_catches_what_it_is_for():
    text = "see `e2e/harness/ports.py`, `e2e/tests/test_x.py::test_y`, `e2e/nowhere.py`, `e2e/bench/*.py`, `kubectl`"
    assert missing_paths(text) == ["e2e/tests/test_x.py", "e2e/nowhere.py"]


@pytest.mark.parametrize("page", READ_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_backticked_paths_name_files_that_exist(page: Path):
    missing = missing_paths(page.read_text())
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


# Pages outside docs/ a user reads that may cite a dated log.
CITING_READMES = [ROOT / "README.md", ROOT / "e2e" / "README.md", ROOT / "charts/agentfleet/README.md"]


def test_every_dated_log_is_one_a_design_page_cites():
    """docs/results keeps the runs the design pages cite; the rest leave the tree (git keeps them)."""
    cited = {
        name
        for page in [*DESIGN_PAGES, *CITING_READMES]
        for name in re.findall(r"results/([\w.-]+\.md)", page.read_text())
    }
    uncited = sorted(p.name for p in (DOCS / "results").glob("*.md") if p.name != "README.md" and p.name not in cited)
    assert not uncited, f"no design page cites these logs: cite them where their figures are, or remove {uncited}"


def test_the_logs_are_at_most_a_third_of_the_docs():
    def lines(paths: list[Path]) -> int:
        return sum(len(p.read_text().splitlines()) for p in paths)

    logs, everything = lines(sorted((DOCS / "results").glob("*.md"))), lines(sorted(DOCS.rglob("*.md")))
    assert logs * 3 <= everything, f"docs/results is {logs} of {everything} doc lines: more than a third"
