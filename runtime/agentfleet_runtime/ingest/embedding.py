"""The embedder interface shared by ingestion and retrieval: what every implementation imports.

Both sides must embed with the same model, so both build their embedder from the same settings
(the VectorIndex's spec.embedding) through ``embedders.make_embedder``, the only module that
imports the implementations (``minilm``, ``openai_embed``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Provider = Literal["Local", "OpenAI"]
Precision = Literal["int8", "fp32"]


@runtime_checkable
class Embedder(Protocol):
    """Texts -> float32 vectors of ``dimension``; unit length, so COSINE and IP agree."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_input_tokens(self) -> int:
        """Content tokens one input may hold; the chunker keeps chunks within it."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Content tokens of each text, without the model's special tokens."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), dimension] float32. Raises EmbeddingError when the model cannot answer."""
        ...


class EmbeddingError(RuntimeError):
    """The embedder failed (model files missing, endpoint down or answering garbage)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class EmbeddingSettings:
    provider: Provider = "Local"
    model: str = "all-MiniLM-L6-v2"
    endpoint: str | None = None
    api_key: str | None = None
    batch_size: int = 64
    # Local only: int8 (dynamic quantization, ~2x faster on CPU, cosine >= 0.98 to fp32) or fp32.
    precision: Precision = "int8"
    threads: int | None = None
    dimension: int | None = None  # expected width; checked against the model when set

    @classmethod
    def from_spec(
        cls,
        embedding: object,
        *,
        dimension: int | None = None,
        api_key: str | None = None,
        precision: Precision = "int8",
    ) -> EmbeddingSettings:
        """From a VectorIndex spec.embedding (pydantic model or anything with the same attributes)."""
        return cls(
            provider=getattr(embedding, "provider", "Local"),
            model=getattr(embedding, "model", "all-MiniLM-L6-v2"),
            endpoint=getattr(embedding, "endpoint", None),
            api_key=api_key,
            batch_size=int(getattr(embedding, "batch_size", 64)),
            precision=precision,
            dimension=dimension,
        )


def available_cpus() -> int:
    """CPUs this process may use: affinity mask, capped by a cgroup v2 CPU quota (a pod's limit)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) / int(period) + 0.5)))
    except (OSError, ValueError):
        pass
    return max(1, n)


def normalize(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)
