"""Behaviours of vLLM-compatible engines that are not vLLM, one switch each.

vLLM V1 is the default (every switch off). Each switch reproduces one behaviour measured on an
independent engine that speaks the same OpenAI API and the same ``vllm:*`` metric families, so
the model client and the autoscaler are tested against it:

- ``ttft_from_scheduling``: TTFT measured from the first scheduling, not from arrival; queue
  time vanishes from ``vllm:time_to_first_token_seconds`` (``request_queue_time_seconds`` and
  ``e2e_request_latency_seconds`` still include it).
- ``abort_on_disconnect = False``: a request whose client went away runs to the end and counts
  as finished by ``length``/``stop`` (vLLM aborts it and counts ``abort``).
- ``lazy_series``: counters and histograms appear only after the first finished request, and
  ``request_success`` only for the reasons seen (vLLM pre-creates them all at 0).
- ``finish_reason_label``: the label on ``request_success`` (vLLM: ``finished_reason``).
- ``engine_label = False``: no ``engine`` label on any series.
- ``strict_tool_schemas``: a tool whose JSON schema gives ``additionalProperties`` as a schema
  object is refused with HTTP 400, as a strict validator does.
- ``tool_call_rate``: the share of chat calls offering ``tools`` that the "model" answers with a
  tool call (seeded by the prompt, arguments valid against the tool's schema) rather than text,
  for the first ``tool_call_steps`` calls of a conversation (counted by its ``tool`` messages);
  after that it answers in text, so an agent loop ends with a final answer.
- ``tool_calls_finish_reason``: a request answered with a tool call is counted in
  ``request_success`` under ``tool_calls`` (vLLM's engine counts it as ``stop``; its OpenAI
  layer alone says ``tool_calls``).
- ``queue_time_waiters_only``: ``request_queue_time_seconds`` observes only the requests that
  waited for a slot (passed over by at least one engine step), not every request: its count falls
  below the TTFT histogram's (vLLM observes every finished request).
- ``tokenize_endpoint = False``: no ``POST /tokenize`` (vLLM serves one: the prompt's exact token
  count under the chat template).
- ``tokenizer_piece_chars``: the stand-in tokenizer's longest piece (tokenizer.py). 4 (the
  default) counts about 3 characters a token of English; 8 counts as a real tokenizer does (about
  4.4), below the model client's estimate of 3: the engine measured for issue 46 used the model's
  own tokenizer.
- ``metrics_error_after_disconnect``: the first ``GET /metrics`` after a client went away answers
  HTTP 500 (a bug of the engine measured for issue 46); the next read works.

Removed metric names exported beside the current ones are ``metrics_flavor: both``
(``metrics_spec.Flavor.BOTH``); the small default context is ``engine.max_model_len``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Quirks:
    ttft_from_scheduling: bool = False
    abort_on_disconnect: bool = True
    lazy_series: bool = False
    finish_reason_label: str = "finished_reason"
    engine_label: bool = True
    strict_tool_schemas: bool = False
    tool_call_rate: float = 0.0
    tool_call_steps: int = 3
    tool_calls_finish_reason: bool = False
    queue_time_waiters_only: bool = False
    tokenize_endpoint: bool = True
    tokenizer_piece_chars: int = 4
    metrics_error_after_disconnect: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.tool_call_rate <= 1.0:
            raise ValueError("quirks.tool_call_rate must be within [0, 1]")
        if self.tool_call_steps < 0:
            raise ValueError("quirks.tool_call_steps must be >= 0")
        if self.tokenizer_piece_chars < 1:
            raise ValueError("quirks.tokenizer_piece_chars must be >= 1")
        if not self.finish_reason_label.isidentifier():
            raise ValueError("quirks.finish_reason_label must be a Prometheus label name")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Quirks:
        data = dict(data or {})
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys in quirks: {sorted(unknown)}")
        return cls(**data)


# The independent engine measured for issue 18, all at once (its default context is
# engine.max_model_len = 1024 and its metrics flavour 'both').
INDEPENDENT_ENGINE = Quirks(
    ttft_from_scheduling=True,
    abort_on_disconnect=False,
    lazy_series=True,
    finish_reason_label="finish_reason",
    engine_label=False,
    strict_tool_schemas=True,
)

# llm-d's inference simulator (llm-d-inference-sim, commit eec055a), measured for issue 46, showed
# the behaviours above again (strict schemas not re-checked) plus tool calls counted apart, queue
# time for waiters only, no /tokenize, the model's own tokenizer, and a failed /metrics read after
# each client disconnect.
LLM_D_SIM = dataclasses.replace(
    INDEPENDENT_ENGINE,
    tool_calls_finish_reason=True,
    queue_time_waiters_only=True,
    tokenize_endpoint=False,
    tokenizer_piece_chars=8,
    metrics_error_after_disconnect=True,
)
BEHAVIOURS = {"vllm": Quirks(), "independent": INDEPENDENT_ENGINE, "llm-d-sim": LLM_D_SIM}


def non_portable_schema_path(schema: Any, path: str = "parameters") -> str | None:
    """Where a strict validator would refuse the schema (``additionalProperties`` given as an
    object), or None."""
    if isinstance(schema, dict):
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"{path}.additionalProperties"
        for key, value in schema.items():
            found = non_portable_schema_path(value, f"{path}.{key}")
            if found:
                return found
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found = non_portable_schema_path(value, f"{path}[{i}]")
            if found:
                return found
    return None
