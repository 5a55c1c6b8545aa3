"""Documents: finding them in a source, reading them, and refusing bad ones with a reason.

A bad document (binary, empty, too large, undecodable, unreachable) becomes a ``Failure`` and the
run goes on; only infrastructure errors (Milvus, the embedder) stop a worker.

Sources:
- a directory: a mounted ConfigMap (keys are files; Kubernetes' own ``..data`` and timestamped
  ``..2024_..`` entries are skipped) or a PersistentVolumeClaim path, read recursively;
- a list of URLs, fetched over HTTP(S) with a bounded body and retries on transient errors.

Metadata for a document comes from an optional JSON sidecar ``<name>.meta.json`` next to it
(a ConfigMap key can have that name too), e.g. ``{"tenant": "acme"}`` for a partition key.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

META_SUFFIX = ".meta.json"
# Enough of the head of a file to tell text from binary without reading all of it twice.
SNIFF_BYTES = 8192
# Share of control characters (other than whitespace) above which bytes are called binary.
MAX_CONTROL_RATIO = 0.05
# Magic numbers of common binary formats that may slip through as "text" with few NULs.
BINARY_MAGIC = (
    (b"%PDF-", "PDF"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive (docx/xlsx/jar?)"),
    (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "ELF executable"),
    (b"BZh", "bzip2 data"),
    (b"\xfd7zXZ\x00", "xz data"),
)
HTTP_RETRIES = 3
HTTP_TIMEOUT_SECONDS = 30.0
USER_AGENT = "agentfleet-ingest/1"


@dataclass(frozen=True)
class DocumentRef:
    """An entry found in a source, not read yet. ``id`` is stable across runs (path or URL)."""

    id: str
    location: str
    size: int | None = None
    meta_location: str | None = None


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    document: str
    reason: str


# --- Pure: bytes -> text or a reason ---------------------------------------------------------


def binary_reason(head: bytes) -> str | None:
    """Why these leading bytes look binary, or None when they look like text."""
    for magic, kind in BINARY_MAGIC:
        if head.startswith(magic):
            return f"binary content ({kind})"
    # UTF-16/32 text has NULs by design; its BOM says so and decode_text handles it.
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None
    if b"\x00" in head:
        return "binary content (NUL bytes)"
    if head:
        control = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
        if control / len(head) > MAX_CONTROL_RATIO:
            return f"binary content ({control} control bytes in the first {len(head)})"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (BOM stripped) or BOM-marked UTF-16; raises UnicodeDecodeError otherwise."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8")


class _TextExtractor(HTMLParser):
    """An HTML page as the markdown-like text a model can cite: what survives and in which form.

    - headings become ``#`` lines (``## 20.5.1. Settings``), so a passage says which section it is;
    - tables become ``| a | b |`` rows, one line per row with a ``|---|`` line under a header row,
      so a value stays next to its column and row names;
    - ``<pre>`` keeps its line breaks and indentation inside a fenced block;
    - list items become ``- `` lines, a definition term (``<dt>``, e.g. a setting's name) stays on
      the line above its definition, in the same paragraph, so the chunker keeps them together;
    - navigation (``<nav>``, role=navigation, DocBook's navheader/navfooter and tables of contents)
      and script/style are dropped: they repeat on every page and answer nothing.
    """

    BLOCK = {
        "p",
        "div",
        "ul",
        "ol",
        "dl",
        "dd",
        "table",
        "section",
        "article",
        "blockquote",
        "body",
        "figure",
        "caption",
        "thead",
        "tbody",
        "tfoot",
    }
    HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
    SKIP = {"script", "style", "noscript", "template", "head", "nav"}
    SKIP_CLASSES = {"navheader", "navfooter", "toc"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, bool]] = []  # (text, joins the next block without a blank line)
        self._inline: list[str] = []
        self._prefix = ""
        self._skip: list[str] = []  # open skipped elements (a stack of tag names)
        self._pre = 0
        self._pre_text: list[str] = []
        self._rows: list[str] = []  # the open table's rendered rows
        self._cells: list[str] | None = None  # the open row's cells
        self._header_row = False
        self._tables = 0

    # -- helpers --
    def _flush(self, *, sticky: bool = False) -> None:
        text = " ".join("".join(self._inline).split())
        self._inline = []
        if text:
            if self._cells is not None:  # text of a cell arrives through _end_cell
                self._inline = [text]
                return
            self.blocks.append((self._prefix + text, sticky))
        self._prefix = ""

    def _skipped(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        return tag in self.SKIP or a.get("role") == "navigation" or bool(classes & self.SKIP_CLASSES)

    # -- parser callbacks --
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip:
            if tag == self._skip[0]:
                self._skip.append(tag)
            return
        if self._skipped(tag, attrs):
            self._skip.append(tag)
            return
        if self._pre:
            if tag == "br":
                self._pre_text.append("\n")
            elif tag == "pre":
                self._pre += 1
            return
        if tag == "pre":
            self._flush()
            self._pre, self._pre_text = 1, []
        elif tag in self.HEADINGS:
            self._flush()
            self._prefix = "#" * self.HEADINGS[tag] + " "
        elif tag == "table":
            self._flush()
            self._tables += 1
            if self._tables == 1:
                self._rows = []
        elif tag == "tr" and self._tables == 1:
            self._cells, self._header_row = [], True
        elif tag in ("td", "th") and self._cells is not None:
            self._inline = []
            if tag == "td":
                self._header_row = False
        elif tag == "li":
            self._flush()
            self._prefix = "- "
        elif tag == "dt":
            self._flush()
        elif tag == "br" or tag in self.BLOCK:
            if self._cells is not None:
                self._inline.append(" ")
            else:
                self._flush()

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if self._pre:
            if tag == "pre":
                self._pre -= 1
                if not self._pre:
                    code = "".join(self._pre_text).strip("\n")
                    if code.strip():
                        self.blocks.append(("```\n" + code + "\n```", False))
            return
        if tag in ("td", "th") and self._cells is not None:
            self._cells.append(" ".join("".join(self._inline).split()).replace("|", "\\|"))
            self._inline = []
        elif tag == "tr" and self._cells is not None:
            if any(self._cells):
                self._rows.append("| " + " | ".join(self._cells) + " |")
                if self._header_row and len(self._rows) == 1:
                    self._rows.append("|" + "---|" * len(self._cells))
            self._cells = None
        elif tag == "table" and self._tables:
            self._tables -= 1
            if not self._tables and self._rows:
                self.blocks.append(("\n".join(self._rows), False))
                self._rows = []
        elif tag in self.HEADINGS:
            self._flush()
        elif tag == "dt":
            self._flush(sticky=True)
        elif tag == "li" or tag in self.BLOCK:
            if self._cells is None:
                self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self._pre_text.append(data)
        else:
            self._inline.append(data)

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for i, (block, sticky) in enumerate(self.blocks):
            out.append(block)
            if i + 1 < len(self.blocks):
                out.append("\n" if sticky else "\n\n")
        return "".join(out).strip()


def html_to_text(html: str) -> str:
    p = _TextExtractor()
    p.feed(html)
    p.close()
    return p.text()


def parse_document(
    doc_id: str, data: bytes, max_bytes: int, *, content_type: str | None = None, metadata: dict[str, Any] | None = None
) -> Document | Failure:
    """The document in ``data``, or why it is refused. Pure."""
    if len(data) > max_bytes:
        return Failure(doc_id, f"too large: more than {max_bytes} bytes")
    if not data:
        return Failure(doc_id, "empty document")
    reason = binary_reason(data[:SNIFF_BYTES])
    if reason:
        return Failure(doc_id, reason)
    try:
        text = decode_text(data)
    except UnicodeDecodeError as e:
        return Failure(doc_id, f"bad encoding: not UTF-8 (byte {e.start}: {e.reason})")
    is_html = ("html" in content_type.lower()) if content_type else doc_id.lower().endswith((".html", ".htm"))
    if is_html:
        text = html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        return Failure(doc_id, "empty document (whitespace only)")
    return Document(doc_id, text, dict(metadata or {}))


# --- Directory sources --------------------------------------------------------------------------


def _hidden(name: str) -> bool:
    # "..data", "..2024_01_01_..." are the ConfigMap volume's atomic-update machinery.
    return name.startswith(".")


def list_directory(root: Path) -> list[DocumentRef]:
    """Every document file under ``root``, sorted by id; ``*.meta.json`` sidecars are attached, not listed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"source directory {root} does not exist or is not a directory")
    refs: list[DocumentRef] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        names = set(filenames)
        for name in sorted(filenames):
            if _hidden(name) or name.endswith(META_SUFFIX):
                continue
            path = Path(dirpath) / name
            # ConfigMap keys are symlinks into ..data; follow links to files, never to directories.
            if not path.is_file():
                continue
            meta = name + META_SUFFIX
            refs.append(
                DocumentRef(
                    id=path.relative_to(root).as_posix(),
                    location=str(path),
                    size=path.stat().st_size,
                    meta_location=str(Path(dirpath) / meta) if meta in names else None,
                )
            )
    refs.sort(key=lambda r: r.id)
    return refs


def _read_metadata(ref: DocumentRef) -> dict[str, Any] | Failure:
    if not ref.meta_location:
        return {}
    try:
        meta = json.loads(Path(ref.meta_location).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return Failure(ref.id, f"bad metadata sidecar {Path(ref.meta_location).name}: {e}")
    if not isinstance(meta, dict):
        return Failure(ref.id, f"bad metadata sidecar {Path(ref.meta_location).name}: not a JSON object")
    return meta


def read_file(ref: DocumentRef, max_bytes: int) -> Document | Failure:
    if ref.size is not None and ref.size > max_bytes:
        return Failure(ref.id, f"too large: {ref.size} bytes, the limit is {max_bytes}")
    meta = _read_metadata(ref)
    if isinstance(meta, Failure):
        return meta
    try:
        with open(ref.location, "rb") as f:
            data = f.read(max_bytes + 1)  # never more than the limit, even if the file grew
    except OSError as e:
        return Failure(ref.id, f"unreadable: {e.strerror or e}")
    return parse_document(ref.id, data, max_bytes, metadata=meta)


# --- URL sources ---------------------------------------------------------------------------------


def list_urls(urls: list[str]) -> list[DocumentRef]:
    seen: set[str] = set()
    refs = []
    for u in urls:
        u = u.strip()
        if u and not u.startswith("#") and u not in seen:
            seen.add(u)
            refs.append(DocumentRef(id=u, location=u))
    return refs


def fetch_url(
    ref: DocumentRef,
    max_bytes: int,
    *,
    timeout: float = HTTP_TIMEOUT_SECONDS,
    retries: int = HTTP_RETRIES,
    sleep=time.sleep,
) -> Document | Failure:
    """GET the URL; 4xx and oversize bodies are document failures, 5xx/network errors are retried first."""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(min(2.0**attempt, 10.0))
        req = urllib.request.Request(
            ref.location, headers={"User-Agent": USER_AGENT, "Accept": "text/*, application/json;q=0.5"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked by the API (http/https)
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > max_bytes:
                    return Failure(ref.id, f"too large: {length} bytes, the limit is {max_bytes}")
                data = resp.read(max_bytes + 1)
                return parse_document(
                    ref.id,
                    data,
                    max_bytes,
                    content_type=resp.headers.get("Content-Type"),
                    metadata={"url": ref.location},
                )
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if e.code < 500 and e.code != 429:
                return Failure(ref.id, last)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            last = f"fetch failed: {getattr(e, 'reason', e)}"
    return Failure(ref.id, f"{last} (after {retries + 1} attempts)")


def load(ref: DocumentRef, max_bytes: int) -> Document | Failure:
    if ref.location.startswith(("http://", "https://")):
        return fetch_url(ref, max_bytes)
    return read_file(ref, max_bytes)


def iter_documents(refs: list[DocumentRef], max_bytes: int) -> Iterator[Document | Failure]:
    for ref in refs:
        yield load(ref, max_bytes)
