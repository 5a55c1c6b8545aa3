"""The answer policies' pages match the code (issue 77): every `answerPolicy` value names a class, every
class names its design page and the page names it back, and docs/index.md says what is built and links
every design page."""

from __future__ import annotations

import re
from pathlib import Path

from agentfleet_contract.agentfleet.tools import ANSWER_POLICIES

from agentfleet_runtime.answering import policies

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
# A row of docs/answer-policy.md's table: | `Name` ... | `answering.policies.Class` | [page](page.md) | ...
ROW = re.compile(r"^\| `(\w+)`[^|]*\| `answering\.policies\.(\w+)` \| \[[^\]]+\]\(([\w.-]+\.md)\) \|", re.M)


def policy_pages() -> dict[str, tuple[str, str]]:
    """answerPolicy value -> (class name, page) as docs/answer-policy.md's table gives them."""
    return {value: (cls, page) for value, cls, page in ROW.findall((DOCS / "answer-policy.md").read_text())}


def test_every_answer_policy_value_is_one_class():
    assert set(ANSWER_POLICIES) == set(policies.POLICIES)
    for value, cls in policies.POLICIES.items():
        assert cls.__name__ == value and cls.__module__ == "agentfleet_runtime.answering.policies"


def test_every_policy_class_has_a_page_that_names_it():
    pages = policy_pages()
    assert set(pages) == set(policies.POLICIES), "docs/answer-policy.md's table lists each answerPolicy once"
    for value, (cls, page) in pages.items():
        assert cls == value, f"docs/answer-policy.md: {value} is the class {value}, not {cls}"
        text = (DOCS / page).read_text()
        assert f"agentfleet_runtime.answering.policies.{cls}" in text, f"docs/{page} does not name the class {cls}"
        for section in ("## How it works", "## Knobs", "## Today's figure"):
            assert section in text, f"docs/{page} lacks {section}"


def test_every_variant_a_policy_class_defines_is_on_the_overview_page():
    text = (DOCS / "answer-policy.md").read_text()
    for value, cls in policies.POLICIES.items():
        for variant in cls.VARIANTS:
            assert f"| `{value}` | `{variant}` |" in text, f"docs/answer-policy.md: {value}'s variant {variant}"


def test_the_index_links_every_design_page():
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    missing = sorted(p.name for p in DOCS.glob("*.md") if p.name != "index.md" and p.name not in linked)
    assert not missing, f"docs/index.md links no {missing}"


def test_the_index_says_built_what_the_code_has():
    """docs/index.md said "the ModelReplicaSet canary not built" after the canary was merged."""
    index = (DOCS / "index.md").read_text()
    built = {"canary": ROOT / "operator" / "agentfleet" / "controllers" / "modelreplicaset" / "canary.py"}
    for name, module in built.items():
        assert module.exists(), f"{module.relative_to(ROOT)}: the {name} this test checks the index against"
        said = re.findall(rf"[^.;()]*\b{name}\b[^.;()]*", index)
        assert said, f"docs/index.md does not mention the {name}"
        assert not [s for s in said if "not built" in s], f"docs/index.md says the {name} is not built: {said}"
