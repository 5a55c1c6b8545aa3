"""Which indexed-Job worker owns which document: a stable hash of the document id, modulo workers.

Pure. Every worker lists the whole source and keeps its share, so workers need no coordination,
a retried worker redoes exactly its own documents, and each source id (and so every chunk of a
document) is written by one worker only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def owner(document_id: str, workers: int) -> int:
    if workers < 1:
        raise ValueError("workers must be at least 1")
    digest = hashlib.sha256(document_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % workers


def owned(items: Iterable[T], index: int, workers: int, key=lambda item: item.id) -> list[T]:  # noqa: B008 - key is a plain function
    """The items whose id hashes to worker ``index`` of ``workers``."""
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} is outside 0..{workers - 1}")
    return [it for it in items if owner(key(it), workers) == index]


def shares(ids: Sequence[str], workers: int) -> list[int]:
    """How many of ``ids`` each worker gets (for balance checks and the operator's estimates)."""
    counts = [0] * workers
    for i in ids:
        counts[owner(i, workers)] += 1
    return counts
