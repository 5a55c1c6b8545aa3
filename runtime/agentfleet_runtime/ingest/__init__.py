"""Ingestion: documents -> chunks -> embeddings -> Milvus upserts, run as an indexed Job's workers.

Modules, lightest first (importing this package imports none of them):
    documents   finding, reading and refusing documents (pure parsing + file/HTTP reads)
    chunking    sentence/paragraph chunking in a token budget, deterministic chunk ids (pure)
    partition   which worker owns which document (pure)
    progress    the progress record the operator reads back (pure, stdlib only)
    embedding   the Embedder interface shared with retrieval, and its factory
    bert_onnx   the MiniLM/BERT encoder as an ONNX graph built from the packaged weights
    minilm      the Local embedder (ONNX Runtime, int8 by default)
    openai_embed  the OpenAI-compatible /v1/embeddings embedder
    pipeline    one worker's run
    cli         ``python -m agentfleet_runtime.ingest``
"""
