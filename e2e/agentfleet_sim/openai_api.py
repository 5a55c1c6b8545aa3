"""OpenAI wire format: request parsing and response/chunk shaping (pure, no I/O).

Shapes follow vLLM's OpenAI server: errors as ``{"error": {message, type, param, code}}``, a model
name other than the served one is a 404 ``NotFoundError``, chat ``max_tokens`` defaults to the
room left in the context while ``/v1/completions`` defaults to 16 (as OpenAI's API), and usage
carries ``prompt_tokens_details.cached_tokens`` so a client can see prefix-cache hits per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from .runner import Completion
from .tokenizer import ChatTokenizer, output_text

Kind = Literal["chat", "completion"]


class ApiError(Exception):
    def __init__(self, status: int, message: str, err_type: str = "BadRequestError", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.err_type, "param": self.param, "code": self.status}}


@dataclass(frozen=True)
class GenerationRequest:
    kind: Kind
    prompt: list[int]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    ignore_eos: bool


def _int_or_none(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ApiError(400, f"{name} must be a positive integer", param=name)
            return value
    return None


def parse_request(body: Any, kind: Kind, served_name: str, tokenizer: ChatTokenizer) -> GenerationRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model != served_name:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported by the simulator", param="n")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "messages must be a non-empty list of objects", param="messages")
        prompt = tokenizer.chat_prompt(messages, add_generation_prompt=bool(body.get("add_generation_prompt", True)))
        max_tokens = _int_or_none(body, "max_completion_tokens", "max_tokens")
    else:
        raw = body.get("prompt")
        if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str | list):
            raw = raw[0]  # a batch of one
        if isinstance(raw, str) and raw:
            prompt = tokenizer.text_tokens(raw)
        elif isinstance(raw, list) and raw and all(isinstance(t, int) and not isinstance(t, bool) for t in raw):
            prompt = list(raw)
        else:
            raise ApiError(
                400,
                "prompt must be a non-empty string or list of token ids (batches are not supported)",
                param="prompt",
            )
        max_tokens = _int_or_none(body, "max_tokens")
        if max_tokens is None and "max_tokens" not in body:
            max_tokens = 16
    if not prompt:
        raise ApiError(400, "the prompt is empty", param="prompt")
    options = body.get("stream_options") or {}
    return GenerationRequest(
        kind=kind,
        prompt=prompt,
        max_tokens=max_tokens,
        stream=bool(body.get("stream", False)),
        include_usage=bool(options.get("include_usage", False)) if isinstance(options, dict) else False,
        ignore_eos=bool(body.get("ignore_eos", False)),
    )


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def _envelope(kind: Kind, response_id: str, model: str, chunk: bool) -> dict[str, Any]:
    if kind == "chat":
        obj = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        obj = "text_completion"
    return {"id": response_id, "object": obj, "created": int(time.time()), "model": model}


def response_id(kind: Kind, request_id: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + request_id


def _reason(finish_reason: str | None, tool_call: dict[str, Any] | None) -> str | None:
    return "tool_calls" if tool_call is not None and finish_reason == "stop" else finish_reason


def full_response(
    kind: Kind, request_id: str, model: str, done: Completion, tool_call: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``tool_call``: answer with this call (no text), as vLLM's tool parser reports one."""
    out = _envelope(kind, response_id(kind, request_id), model, chunk=False)
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None if tool_call else done.text,
                "tool_calls": [tool_call] if tool_call else [],
            },
            "logprobs": None,
            "finish_reason": _reason(done.finish_reason, tool_call),
            "stop_reason": None,
        }
    else:
        choice = {
            "index": 0,
            "text": done.text,
            "logprobs": None,
            "finish_reason": done.finish_reason,
            "stop_reason": None,
        }
    out["choices"] = [choice]
    out["usage"] = usage(done.prompt_tokens, done.completion_tokens, done.cached_tokens)
    return out


def first_chunk(kind: Kind, request_id: str, model: str) -> dict[str, Any] | None:
    """Chat streams open with an empty assistant delta, as vLLM's do; completions don't."""
    if kind != "chat":
        return None
    out = _envelope(kind, response_id(kind, request_id), model, chunk=True)
    out["choices"] = [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    return out


def _tool_call_delta(tool_call: dict[str, Any], index: int, total: int) -> dict[str, Any]:
    """Token ``index`` of ``total`` carries its share of the arguments; the first also the id and
    name (the shape of vLLM's streamed tool calls)."""
    args = tool_call["function"]["arguments"]
    total = max(1, total)
    lo, hi = len(args) * index // total, len(args) * (index + 1) // total
    if index + 1 >= total:
        hi = len(args)
    piece: dict[str, Any] = {"index": 0, "function": {"arguments": args[lo:hi]}}
    if index == 0:
        piece.update(id=tool_call["id"], type="function")
        piece["function"]["name"] = tool_call["function"]["name"]
    return {"tool_calls": [piece]}


def token_chunk(
    kind: Kind,
    request_id: str,
    model: str,
    seed: int,
    index: int,
    finish_reason: str | None,
    tool_call: dict[str, Any] | None = None,
    total: int = 1,
) -> dict[str, Any]:
    out = _envelope(kind, response_id(kind, request_id), model, chunk=True)
    text = output_text(seed, index, 1)
    if kind == "chat":
        delta = _tool_call_delta(tool_call, index, total) if tool_call else {"content": text}
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": _reason(finish_reason, tool_call),
        }
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
    if finish_reason is not None:
        choice["stop_reason"] = None
    out["choices"] = [choice]
    return out


def usage_chunk(kind: Kind, request_id: str, model: str, done: Completion) -> dict[str, Any]:
    out = _envelope(kind, response_id(kind, request_id), model, chunk=True)
    out["choices"] = []
    out["usage"] = usage(done.prompt_tokens, done.completion_tokens, done.cached_tokens)
    return out


def models_response(served_name: str, root: str, max_model_len: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": served_name,
                "object": "model",
                "created": int(time.time()),
                "owned_by": "vllm",
                "root": root,
                "parent": None,
                "max_model_len": max_model_len,
            }
        ],
    }
