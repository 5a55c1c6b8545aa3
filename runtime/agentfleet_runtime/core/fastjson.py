"""JSON on the per-step hot path: orjson when it is installed, the standard library otherwise.

A step encodes its checkpoint, progress events and the model request (the whole history) and
decodes the model's reply; with the standard library that was the largest single share of a
step's CPU. orjson comes with pymilvus (a dependency); the fallback keeps the runtime correct
without it. Output is compact JSON, UTF-8, and anything orjson refuses (integers over 64 bits,
non-string keys) goes through the standard library, so callers see no difference but speed.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only where orjson is missing
    _orjson = None

_SEPARATORS = (",", ":")


def dumpb(obj: Any) -> bytes:
    """Compact UTF-8 JSON as bytes (for Redis arguments and HTTP bodies)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj)
        except TypeError:
            pass
    return json.dumps(obj, separators=_SEPARATORS, ensure_ascii=False).encode()


def dumps(obj: Any) -> str:
    """Compact JSON as str."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj).decode()
        except TypeError:
            pass
    return json.dumps(obj, separators=_SEPARATORS, ensure_ascii=False)


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON; raises ValueError (json.JSONDecodeError or orjson's subclass of it) on bad input."""
    if _orjson is not None:
        try:
            return _orjson.loads(data)
        except _orjson.JSONDecodeError:
            # The standard library accepts a little more (NaN, Infinity, huge integers).
            pass
    if isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data).decode("utf-8", errors="replace")
    return json.loads(data)
