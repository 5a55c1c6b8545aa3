"""The factory that picks an embedder: Local runs MiniLM in-process with ONNX Runtime, OpenAI calls
an OpenAI-compatible /v1/embeddings endpoint (e.g. vLLM serving an embedding model).

The only module that imports the implementations, so they can import the interface in
``embedding`` without a cycle.
"""

from __future__ import annotations

from agentfleet_runtime.ingest.embedding import Embedder, EmbeddingError, EmbeddingSettings


def make_embedder(settings: EmbeddingSettings) -> Embedder:
    """The embedder the settings name. Heavy imports happen here, not at module import."""
    if settings.provider == "Local":
        from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

        emb: Embedder = MiniLMEmbedder(
            precision=settings.precision, batch_size=settings.batch_size, threads=settings.threads
        )
    elif settings.provider == "OpenAI":
        from agentfleet_runtime.ingest.openai_embed import OpenAIEmbedder

        if not settings.endpoint:
            raise EmbeddingError("the OpenAI embedding provider needs an endpoint (the server's /v1 base URL)")
        emb = OpenAIEmbedder(
            settings.endpoint,
            settings.model,
            api_key=settings.api_key,
            batch_size=settings.batch_size,
            dimension=settings.dimension,
        )
    else:
        raise EmbeddingError(f"unknown embedding provider {settings.provider!r}")
    if settings.dimension is not None and emb.dimension != settings.dimension:
        raise EmbeddingError(
            f"the embedding model {emb.name} produces {emb.dimension} values but the index expects {settings.dimension}"
        )
    return emb
