"""Chunking: sentence/paragraph boundaries, token budget, overlap, deterministic ids."""

from __future__ import annotations

import random
import re

import pytest

from agentfleet_runtime.ingest.chunking import chunk_document, chunk_id, chunk_text, split_units

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count(texts: list[str]) -> list[int]:
    """A stand-in tokenizer: words and punctuation marks (WordPiece splits at least this finely)."""
    return [len(_TOKEN.findall(t)) for t in texts]


def units(text: str) -> list[str]:
    return [text[u.start : u.end] for u in split_units(text)]


def test_units_follow_sentences_paragraphs_lists_and_headings() -> None:
    text = "# Title\nIntro sentence one. Intro two!\n\n- item a\n- item b\n1. first\n\nLast para? Yes.  \n"
    assert units(text) == [
        "# Title",
        "Intro sentence one.",
        "Intro two!",
        "- item a",
        "- item b",
        "1. first",
        "Last para?",
        "Yes.",
    ]
    paragraphs = [u.paragraph for u in split_units(text)]
    assert paragraphs == [0, 0, 0, 1, 1, 1, 2, 2]


def test_hard_wrapped_prose_is_not_split_at_line_breaks() -> None:
    text = "This sentence is wrapped\nacross two lines. Next one."
    assert units(text) == ["This sentence is wrapped\nacross two lines.", "Next one."]


def test_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert units('He said "stop." Then (quietly.) left.') == ['He said "stop."', "Then (quietly.)", "left."]


def _random_text(rng: random.Random) -> str:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    paras = []
    for _ in range(rng.randint(1, 6)):
        sents = []
        for _ in range(rng.randint(1, 8)):
            n = rng.choice([3, 8, 15, 40, 90]) if rng.random() < 0.9 else 300
            sents.append(" ".join(rng.choice(words) for _ in range(n)).capitalize() + rng.choice([".", "!", "?"]))
        paras.append(" ".join(sents))
    return "\n\n".join(paras)


@pytest.mark.parametrize("seed", range(25))
def test_every_chunk_fits_the_budget_and_the_text_is_covered(seed: int) -> None:
    rng = random.Random(seed)
    text = _random_text(rng)
    budget, overlap = rng.choice([(16, 0), (32, 8), (64, 16), (128, 32)])
    chunks = chunk_text(text, count, budget, overlap)
    assert chunks
    for t, n in chunks:
        assert n <= budget and count([t])[0] <= budget
    # Every word of the document appears in some chunk, in order of first appearance.
    covered = " ".join(t for t, _ in chunks)
    for w in set(_TOKEN.findall(text)):
        assert w in covered


def test_overlap_repeats_whole_trailing_sentences() -> None:
    text = " ".join(f"Sentence number {i} has five tokens." for i in range(12))  # 7 tokens each
    chunks = [t for t, _ in chunk_text(text, count, max_tokens=28, overlap_tokens=7)]
    assert len(chunks) > 2
    for a, b in zip(chunks, chunks[1:], strict=False):
        last = re.findall(r"Sentence number \d+ has five tokens\.", a)[-1]
        assert b.startswith(last)  # one 7-token sentence carried over
    no_overlap = [t for t, _ in chunk_text(text, count, max_tokens=28, overlap_tokens=0)]
    assert sum(len(c) for c in no_overlap) == len(text) - (len(no_overlap) - 1)  # only the separating spaces are lost


def test_a_chunk_ends_at_a_paragraph_when_the_next_does_not_fit() -> None:
    p1 = "One two three four five six seven eight nine ten. Eleven twelve thirteen."  # 16 tokens
    p2 = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda. Mu nu xi omicron."  # 17 tokens
    chunks = [t for t, _ in chunk_text(p1 + "\n\n" + p2, count, max_tokens=24, overlap_tokens=4)]
    assert chunks == [p1, p2]  # no chunk mixes the tail of p1 with the head of p2


def test_an_overlong_sentence_is_cut_at_words_and_a_huge_word_at_characters() -> None:
    long_sentence = " ".join(f"w{i}" for i in range(100)) + "."
    pieces = chunk_text(long_sentence, count, max_tokens=20, overlap_tokens=4)
    assert len(pieces) >= 5 and all(n <= 20 for _, n in pieces)
    blob = "x" * 5000

    def char_count(texts: list[str]) -> list[int]:  # a tokenizer that splits a long word into pieces
        return [sum(-(-len(w) // 10) for w in t.split()) for t in texts]

    cut = chunk_text("Before. " + blob + " after.", char_count, max_tokens=50)
    assert all(n <= 50 for _, n in cut)
    assert "".join(t for t, _ in cut).count("x") == 5000


def test_empty_and_whitespace_documents_make_no_chunks() -> None:
    assert chunk_text("", count, 32) == []
    assert chunk_text(" \n\n\t ", count, 32) == []


def test_chunk_ids_are_deterministic_and_distinct() -> None:
    a = chunk_document("doc.md", "First sentence here. Second one there.", count, max_tokens=5)
    b = chunk_document("doc.md", "First sentence here. Second one there.", count, max_tokens=5)
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", c.id) for c in a)
    assert [c.index for c in a] == [0, 1]
    assert chunk_id("doc.md", 0, "x") != chunk_id("doc.md", 1, "x")
    assert chunk_id("doc.md", 0, "x") != chunk_id("other.md", 0, "x")
    assert chunk_id("doc.md", 0, "x") != chunk_id("doc.md", 0, "y")
    # Length-prefixed fields: moving bytes between source and text changes the id.
    assert chunk_id("ab", 1, "c") != chunk_id("a", 1, "bc")


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunk_text("x.", count, 0)
