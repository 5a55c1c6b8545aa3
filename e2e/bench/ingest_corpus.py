"""A generated document corpus with known answers, for ingestion tests and the benchmark.

Deterministic for a seed. Each document describes one made-up project (a name built from random
syllables, so no model has seen it) with facts (maintainer, launch year, city, language) in a
heading and a paragraph, followed by filler paragraphs drawn from the same vocabulary for every
document, so documents compete on topic and only the facts tell them apart. Queries paraphrase
one fact of one document; its id is the expected source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SYLLABLES = "ka lo ri zen var tu mo bel qui dra fen sol ix par gor lum nex tav ory cel bri hal jun pex wor".split()
FIRST = "Elena Marcus Ingrid Tomas Priya Kenji Amara Lucas Sofia Dmitri Hana Omar Leila Pavel Nora Ravi".split()
LAST = "Brisk Holloway Tanaka Okafor Lindqvist Moreau Castell Varga Novak Idris Petrov Quint Sato Ferreira".split()
CITIES = "Lisbon Osaka Tallinn Nairobi Montreal Valparaiso Krakow Hobart Tromso Leipzig Cusco Izmir".split()
LANGS = "Rust Go Python Kotlin Haskell Zig Elixir OCaml Scala Julia".split()
TOPICS = [
    "The build pipeline runs on every merge and publishes signed artifacts.",
    "Releases follow a six week cadence with a short stabilisation window.",
    "Operators can tune the cache size through a single configuration flag.",
    "The storage layer keeps three replicas and repairs them in the background.",
    "Metrics are exported in the Prometheus text format on a dedicated port.",
    "The scheduler prefers nodes with warm caches before spreading load.",
    "Contributors sign off their commits and pass a short review checklist.",
    "The public API is versioned and old versions are supported for a year.",
    "Integration tests start real dependencies instead of mocking them.",
    "Logs are structured as JSON lines and carry a request identifier.",
    "The command line tool completes subcommands in every common shell.",
    "Security advisories are published with a fixed disclosure window.",
]


@dataclass(frozen=True)
class Query:
    text: str
    source: str  # document id expected in the top results


@dataclass(frozen=True)
class Corpus:
    documents: dict[str, str]  # id -> text
    queries: list[Query]
    metadata: dict[str, dict[str, str]]  # id -> sidecar metadata


def _name(rng: random.Random, used: set[str]) -> str:
    while True:
        n = "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()
        if n not in used:
            used.add(n)
            return n


def generate(
    n_documents: int, *, seed: int = 7, filler_paragraphs: int = 1, tenants: int = 4, queries_per_document: float = 0.1
) -> Corpus:
    rng = random.Random(seed)
    used: set[str] = set()
    docs: dict[str, str] = {}
    meta: dict[str, dict[str, str]] = {}
    queries: list[Query] = []
    for i in range(n_documents):
        name = _name(rng, used)
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        year = rng.randint(1995, 2025)
        city = rng.choice(CITIES)
        lang = rng.choice(LANGS)
        doc_id = f"projects/{i // 500:02d}/{name.lower()}.md"
        paras = [
            f"# Project {name}",
            (
                f"{name} is maintained by {person}. The {name} project was launched in {year} in {city}. Its core is "
                f"written in {lang}."
            ),
        ]
        for _ in range(filler_paragraphs):
            paras.append(" ".join(rng.sample(TOPICS, 3)))
        docs[doc_id] = "\n\n".join(paras) + "\n"
        meta[doc_id] = {"tenant": f"t{i % tenants}"}
        if rng.random() < queries_per_document:
            queries.append(
                rng.choice(
                    [
                        Query(f"Who maintains {name}?", doc_id),
                        Query(f"When was the {name} project launched?", doc_id),
                        Query(f"Which programming language is {name} written in?", doc_id),
                        Query(f"Where did {name} start?", doc_id),
                    ]
                )
            )
    return Corpus(docs, queries, meta)


def write(corpus: Corpus, root: Path, *, sidecars: bool = False) -> Path:
    for doc_id, text in corpus.documents.items():
        p = root / doc_id
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        if sidecars:
            import json

            (p.parent / (p.name + ".meta.json")).write_text(json.dumps(corpus.metadata[doc_id]), encoding="utf-8")
    return root


BAD_DOCUMENTS: dict[str, tuple[bytes, str]] = {
    # name -> (content, expected start of the failure reason)
    "bad/image.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "binary content"),
    "bad/blob.bin": (b"abc\x00\x01\x02" * 100, "binary content"),
    "bad/empty.txt": (b"", "empty document"),
    "bad/blank.md": (b"  \n\n\t \n", "empty document"),
    "bad/latin1.txt": ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e".encode("latin-1"), "bad encoding"),
}


def write_bad(root: Path, *, oversize_bytes: int | None = None) -> dict[str, str]:
    """Write the bad documents; returns id -> expected reason prefix (plus a too-large one when asked)."""
    expected = {}
    for doc_id, (data, reason) in BAD_DOCUMENTS.items():
        p = root / doc_id
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        expected[doc_id] = reason
    if oversize_bytes:
        p = root / "bad/huge.md"
        p.write_bytes(b"word " * (oversize_bytes // 5 + 1))
        expected["bad/huge.md"] = "too large"
    return expected
