"""Cutting a document into chunks on sentence and paragraph boundaries, within a token budget.

Pure: the only outside input is a token counter (the embedding model's tokenizer), passed in.

A document is split into units: sentences, list items and headings, each tagged with its
paragraph. Units are packed greedily up to ``max_tokens``; a chunk ends early at a paragraph
boundary when it is at least half full and the next paragraph would not fit, so chunks follow the
author's structure. Consecutive chunks share whole trailing sentences up to ``overlap_tokens``.
A single unit over the budget (a run-on line, a table row, a blob) is cut at word boundaries,
and a word over the budget at character boundaries, so no chunk exceeds the budget.

Chunk ids hash the source id, the chunk's index and its text: a re-run over the same document
produces the same ids and Milvus upserts replace rows instead of duplicating them.

Section titles (spec.chunking.sectionTitles): a chunk cut from the middle of a page often never
names what it is about ("The default is five minutes" under "Checkpoints"). With titles on, each
chunk begins with the path of ``#`` headings that enclose it (the page's own title first, e.g.
``20.5. Write Ahead Log > 20.5.2. Checkpoints``), in the text that is embedded and that the model
reads. The path takes at most a quarter of the token budget (outer headings dropped first, then
words), and the body is packed into the rest, so a chunk still fits the encoder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TokenCounter = Callable[[Sequence[str]], list[int]]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
# A line that starts its own unit: list item, quote, table row, heading, numbered item.
_LINE_START = re.compile(r"[ \t]*(?:[-*+>|]\s|#{1,6}\s|\d{1,3}[.)]\s)")
_HEADING = re.compile(r"[ \t]*#{1,6}\s")
_HEADING_LINE = re.compile(r"^[ \t]*(#{1,6})[ \t]+(.+?)[ \t]*$", re.M)
TITLE_SEPARATOR = " > "
# End of a sentence: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*(?=\s)")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    id: str
    source: str
    index: int
    text: str
    tokens: int


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    paragraph: int
    tokens: int = 0


def chunk_id(source: str, index: int, text: str) -> str:
    """Deterministic id: 32 hex digits of sha256(source, index, text)."""
    h = hashlib.sha256()
    for part in (source.encode(), str(index).encode(), text.encode()):
        h.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two inputs hash the same bytes
        h.update(part)
    return h.hexdigest()[:32]


def _strip_span(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _paragraphs(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _PARAGRAPH.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def _blocks(text: str, a: int, b: int) -> list[tuple[int, int]]:
    """Split a paragraph at lines that begin a list item/heading/row, and after headings."""
    blocks, block_start, pos, prev_heading = [], a, a, False
    while pos < b:
        nl = text.find("\n", pos, b)
        line_end = b if nl < 0 else nl
        if pos > block_start and (prev_heading or _LINE_START.match(text, pos, line_end)):
            blocks.append((block_start, pos))
            block_start = pos
        prev_heading = bool(_HEADING.match(text, pos, line_end))
        pos = line_end + 1
    blocks.append((block_start, b))
    return blocks


def split_units(text: str) -> list[_Unit]:
    """Sentences / list items / headings with character spans and paragraph numbers, in order."""
    units: list[_Unit] = []
    for p, (pa, pb) in enumerate(_paragraphs(text)):
        for ba, bb in _blocks(text, pa, pb):
            start = ba
            marker = _LINE_START.match(text, ba, bb)
            # "1. first" is a list item, not a sentence ending at "1.".
            for m in _SENTENCE_END.finditer(text, marker.end() if marker else ba, bb):
                s, e = _strip_span(text, start, m.end())
                if s < e:
                    units.append(_Unit(s, e, p))
                start = m.end()
            s, e = _strip_span(text, start, bb)
            if s < e:
                units.append(_Unit(s, e, p))
    return units


def _split_word(word: str, tokens: int, budget: int, count: TokenCounter) -> list[str]:
    """Character slices of one over-long word, each within the budget."""
    pieces, rest, rest_tokens = [], word, tokens
    while rest_tokens > budget:
        n = max(1, len(rest) * budget // (rest_tokens + 1))
        while n > 1 and count([rest[:n]])[0] > budget:
            n = n * 3 // 4
        pieces.append(rest[:n])
        rest = rest[n:]
        rest_tokens = count([rest])[0]
    if rest:
        pieces.append(rest)
    return pieces


def _split_long(text: str, budget: int, overlap: int, count: TokenCounter) -> list[tuple[str, int]]:
    """A unit over the budget, cut at word boundaries with a word-level overlap."""
    words = [m.group() for m in _WORD.finditer(text)]
    wt = count(words)
    flat: list[tuple[str, int]] = []
    for w, t in zip(words, wt, strict=True):
        if t > budget:
            parts = _split_word(w, t, budget, count)
            flat.extend(zip(parts, count(parts), strict=True))
        else:
            flat.append((w, t))
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(flat):
        j, used = i, 0
        while j < len(flat) and used + flat[j][1] <= budget:
            used += flat[j][1]
            j += 1
        out.append((" ".join(w for w, _ in flat[i:j]), used))
        if j >= len(flat):
            break
        # Step back over at most `overlap` tokens of words, but always advance.
        k, back = j, 0
        while k - 1 > i and back + flat[k - 1][1] <= overlap:
            k -= 1
            back += flat[k][1]
        i = k
    return out


def chunk_text(text: str, count: TokenCounter, max_tokens: int, overlap_tokens: int = 0) -> list[tuple[str, int]]:
    """(chunk text, token count) pairs covering ``text``; every count <= max_tokens."""
    return [(t, n) for t, n, _ in chunk_spans(text, count, max_tokens, overlap_tokens)]


def chunk_spans(text: str, count: TokenCounter, max_tokens: int, overlap_tokens: int = 0) -> list[tuple[str, int, int]]:
    """(chunk text, token count, offset in ``text`` where the chunk starts), in order."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be positive")
    overlap_tokens = max(0, min(overlap_tokens, max_tokens - 1))
    raw = split_units(text)
    if not raw:
        return []
    units = [
        _Unit(u.start, u.end, u.paragraph, t)
        for u, t in zip(raw, count([text[u.start : u.end] for u in raw]), strict=True)
    ]
    para_tokens: dict[int, int] = {}
    for u in units:
        para_tokens[u.paragraph] = para_tokens.get(u.paragraph, 0) + u.tokens

    out: list[tuple[str, int, int]] = []
    cur: list[int] = []  # indices into units
    cur_tokens = 0
    fresh = False  # cur holds a unit not emitted yet

    def emit() -> None:
        nonlocal fresh
        if cur and fresh:
            out.append((text[units[cur[0]].start : units[cur[-1]].end], cur_tokens, units[cur[0]].start))
        fresh = False

    def tail() -> list[int]:
        keep, used = [], 0
        for idx in reversed(cur):
            if used + units[idx].tokens > overlap_tokens:
                break
            keep.append(idx)
            used += units[idx].tokens
        return keep[::-1]

    for i, u in enumerate(units):
        if u.tokens > max_tokens:
            emit()
            pieces = _split_long(text[u.start : u.end], max_tokens, overlap_tokens, count)
            out.extend((t, n, u.start) for t, n in pieces)
            cur, cur_tokens = [], 0
            continue
        if cur:
            new_paragraph = u.paragraph != units[cur[-1]].paragraph
            if cur_tokens + u.tokens > max_tokens:
                emit()
                cur = tail() if not new_paragraph else []
                cur_tokens = sum(units[j].tokens for j in cur)
                while cur and cur_tokens + u.tokens > max_tokens:
                    cur_tokens -= units[cur.pop(0)].tokens
            elif (
                new_paragraph
                and fresh
                and cur_tokens * 2 >= max_tokens
                and cur_tokens + para_tokens[u.paragraph] > max_tokens
            ):
                emit()
                cur, cur_tokens = [], 0
        cur.append(i)
        cur_tokens += u.tokens
        fresh = True
    emit()
    return out


def heading_paths(text: str) -> list[tuple[int, tuple[str, ...]]]:
    """(offset, enclosing headings) at each ``#`` heading line: the path in force from that offset
    on. A heading closes the headings of its own level and deeper."""
    out: list[tuple[int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    for m in _HEADING_LINE.finditer(text):
        level = len(m.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, m.group(2)))
        out.append((m.start(), tuple(t for _, t in stack)))
    return out


def title_at(paths: Sequence[tuple[int, tuple[str, ...]]], offset: int, chunk: str) -> str:
    """The heading path in force at ``offset``, less a last heading the chunk itself begins with."""
    path: tuple[str, ...] = ()
    for start, p in paths:
        if start > offset:
            break
        path = p
    head = _HEADING_LINE.match(chunk)
    if path and head is not None and head.group(2) == path[-1]:
        path = path[:-1]
    return TITLE_SEPARATOR.join(path)


def _fit_title(title: str, budget: int, count: TokenCounter) -> tuple[str, int]:
    """The title within ``budget`` tokens, with its token count: outer headings are dropped first
    (the nearest one says most about the chunk), then the nearest is cut at words."""
    parts = title.split(TITLE_SEPARATOR) if title else []
    while parts:
        t = TITLE_SEPARATOR.join(parts)
        n = count([t])[0]
        if n <= budget:
            return t, n
        if len(parts) > 1:
            parts = parts[1:]
            continue
        words = parts[0].split()
        parts = [" ".join(words[:-1])] if len(words) > 1 else []
    return "", 0


def chunk_document(
    source: str,
    text: str,
    count: TokenCounter,
    max_tokens: int,
    overlap_tokens: int = 0,
    *,
    section_titles: bool = False,
) -> list[Chunk]:
    if not section_titles:
        return [
            Chunk(id=chunk_id(source, i, t), source=source, index=i, text=t, tokens=n)
            for i, (t, n) in enumerate(chunk_text(text, count, max_tokens, overlap_tokens))
        ]
    allowance = max(1, max_tokens // 4)
    body = max(1, max_tokens - allowance)
    paths = heading_paths(text)
    chunks, fitted = [], {}
    for i, (t, n, start) in enumerate(chunk_spans(text, count, body, min(overlap_tokens, body - 1))):
        title = title_at(paths, start, t)
        if title not in fitted:
            fitted[title] = _fit_title(title, allowance, count)
        prefix, pn = fitted[title]
        full = f"{prefix}\n{t}" if prefix else t
        chunks.append(Chunk(id=chunk_id(source, i, full), source=source, index=i, text=full, tokens=n + pn))
    return chunks
