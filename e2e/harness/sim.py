"""The simulator's settings the integration tests share."""

# Fast enough that a test's calls take tens of milliseconds, slow enough that requests overlap.
FAST_ENGINE = {
    "served_name": "llama-8b",
    "model": "llama-8b",
    "max_model_len": 16384,
    "kv_cache_tokens": 200_000,
    "prefill_tokens_per_s": 200_000.0,
    "decode_base_s": 0.002,
    "decode_per_seq_s": 0.0001,
    "output_tokens_median": 20.0,
}
