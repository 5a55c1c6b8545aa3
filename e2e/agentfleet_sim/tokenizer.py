"""A deterministic stand-in tokenizer and chat template.

Real BPE averages about 4 characters per English token; this splits text into words and
punctuation, then cuts words into pieces of at most 4 characters (``piece_chars``), and maps each
piece to an id by CRC-32 (stable across processes, unlike ``hash(str)``). At 4 it counts about 3
characters a token of English prose; at 8 (quirks.tokenizer_piece_chars) it counts as a real
tokenizer does: 4.3-4.5 characters a token on the PostgreSQL manual's settings pages, where
MiniLM's WordPiece counts 4.3-4.8. Messages are tokenized one by one and
concatenated, so a conversation that grows by appending messages keeps exactly the same token
prefix: the property prefix caching (and sticky routing) depends on.
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

VOCAB_SIZE = 128_000
_PIECE = re.compile(r" ?[A-Za-z]+| ?\d+| ?[^\sA-Za-z\d]|\s+")
_MAX_PIECE = 4
_SPECIAL_BASE = 1  # ids 1..255 are reserved for role markers


def _piece_id(piece: str) -> int:
    return 256 + zlib.crc32(piece.encode()) % (VOCAB_SIZE - 256)


@lru_cache(maxsize=1 << 16)
def _word_ids(word: str, piece: int = _MAX_PIECE) -> tuple[int, ...]:
    return tuple(_piece_id(word[start : start + piece]) for start in range(0, len(word), piece))


def tokenize_text(text: str, piece: int = _MAX_PIECE) -> list[int]:
    # Words repeat (agent prompts reuse a vocabulary), so each word's pieces are hashed once: the
    # simulator's benchmarks spent half their time here.
    out: list[int] = []
    for word in _PIECE.findall(text):
        out.extend(_word_ids(word, piece))
    return out


_ROLE_IDS = {"system": 1, "user": 2, "assistant": 3, "tool": 4, "function": 5, "developer": 6}
_END_ID = 7
_GENERATION_PROMPT = (8, _ROLE_IDS["assistant"])


def _content_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; only text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


class ChatTokenizer:
    """Chat template: [role marker] tokens(content) [tool calls] [end] per message, then the
    generation prompt. Per-message results are memoised (bounded LRU) because agent prompts repeat
    the same long history on every call."""

    def __init__(self, cache_size: int = 4096, piece_chars: int = _MAX_PIECE) -> None:
        if piece_chars < 1:
            raise ValueError("piece_chars must be >= 1")
        self._cache: OrderedDict[tuple[str, str], tuple[int, ...]] = OrderedDict()
        self._cache_size = cache_size
        self.piece_chars = piece_chars

    def text_tokens(self, text: str) -> list[int]:
        return tokenize_text(text, self.piece_chars)

    def message_tokens(self, message: dict[str, Any]) -> tuple[int, ...]:
        role = str(message.get("role", "user"))
        text = _content_text(message.get("content"))
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, dict) else {}
            text += f"\n<tool_call>{fn.get('name', '')}({fn.get('arguments', '')})"
        key = (role, text)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        ids = (_ROLE_IDS.get(role, 9), *tokenize_text(text, self.piece_chars), _END_ID)
        self._cache[key] = ids
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ids

    def chat_prompt(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True) -> list[int]:
        out: list[int] = []
        for message in messages:
            out.extend(self.message_tokens(message))
        if add_generation_prompt:
            out.extend(_GENERATION_PROMPT)
        return out


# Output vocabulary: deterministic filler text; one word = one token.
_WORDS: tuple[str, ...] = tuple(
    """the agent reads the tool output and plans next step call search result file value check
    answer task user data list item query index table node pod replica cache prefix token block
    batch queue wait run ok done error retry route model serve scale drain load time call step
    plan fetch parse write read open close send store update delete create compute merge sort
    filter map reduce count sum mean max min report summary note fact source cite link page""".split()
)


def output_token_id(seed: int, index: int) -> int:
    return _piece_id(" " + output_word(seed, index))


def output_word(seed: int, index: int) -> str:
    # A cheap deterministic walk through the word list (Knuth's multiplicative hash).
    return _WORDS[((seed + index * 2654435761) >> 7) % len(_WORDS)]


def output_text(seed: int, start: int, count: int) -> str:
    return "".join(" " + output_word(seed, i) for i in range(start, start + count))


def count_tokens(texts: Iterable[str]) -> int:
    return sum(len(tokenize_text(t)) for t in texts)
