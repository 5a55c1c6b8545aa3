"""First answers the check sent to the loop though they were right (issue 59 item 1: the checks'
false refusals on answers known right, goal 0). Each case is a Python or PostgreSQL held-out first
answer the scorer accepts (docs/results/2026-11-27-eval-python-heldout.md): a code name in backticks
written with "()" where the page writes its parameters, a digit the page writes as a word, and a
citation "[source: [1]]" read as a passage number in place of the answer."""

from __future__ import annotations

from agentfleet_runtime.answering.answercheck import citation_in_place, first_answer_problem


def test_a_code_name_in_backticks_is_resolved_as_documentation_writes_it():
    page = "[1] (secrets.html, score 0.9)\nsecrets.token_urlsafe([nbytes=None])\nReturn a random URL-safe text string."
    question = "How do I generate a hard-to-guess random token for a password-reset URL?"
    assert first_answer_problem("Use `secrets.token_urlsafe()`.", [page], question) is None
    tee = "[1] (itertools.html, score 0.9)\nitertools.tee(iterable, n=2)\nReturn n independent iterators."
    assert first_answer_problem("`itertools.tee()` gives independent iterators.", [tee], "Which function?") is None
    # A name no passage holds is still what it was: an invented one.
    assert "yaml.safe_load()" in first_answer_problem("Use `yaml.safe_load()`.", [page], "How do I parse YAML?")


def test_a_passage_number_word_supports_the_answers_digit_but_one_supports_nothing():
    page = "[1] (runtime-config-autovacuum.html, score 0.9)\nautovacuum_max_workers: The default is three."
    assert first_answer_problem("The default is 3.", [page], "How many autovacuum workers?") is None
    vague = "[1] (a.html, score 0.9)\nOne of the workers starts first."
    assert "1" in first_answer_problem("The default is 1.", [vague], "How many workers?")


def test_a_citation_label_before_a_passage_number_is_a_citation_not_the_answer():
    assert not citation_in_place("The period of the core generator is 2**19937-1. [source: [1]]")
    assert citation_in_place("The period of the core generator is [1].")
