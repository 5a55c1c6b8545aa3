"""Citations in an answer: the sources it names, in the forms agents write them. Pure.

An answer cites with ``[source: a.html]``, ``(source: a.html, b.html)``, ``Sources: a.html; b.html``,
a document name in square brackets (``[a.html]``, ``[a.html#3]``), or names a document file in its text
(``see sql-vacuum.html``: a name with a document extension, html, md, txt, rst, pdf). The task API lists what it finds,
so a client (``agentfleet eval``) can check each citation against the passages the task retrieved.
"""

from __future__ import annotations

import re

# "source:" / "sources:" / "cite:" then a list up to the closing bracket or the end of the line.
_LABELLED = re.compile(r"(?i)\b(?:sources?|cited?|citations?|references?)\s*[:=]\s*([^\]\)\n]+)")
# A document name with an extension in square brackets: [explicit-locking.html], [serving.md#2].
# Parentheses are prose's ("looks for pythonXY.zip (python311.zip)", a Python fresh set's right
# answer, which then cited its own value): a name in them cites only as a document file (_NAMED).
_BRACKETED = re.compile(r"\[\s*([\w./-]+\.[A-Za-z0-9]{1,6}(?:#[\w.-]+)?)\s*\]")
# A document file named in running text.
_NAMED = re.compile(r"(?<![\w/.-])([\w/-][\w./-]*\.(?:html?|md|markdown|txt|rst|pdf|adoc)(?:#[\w.-]+)?)(?![\w-])", re.I)
# "a.html and b.html" lists two; plpgsql-errors-and-messages.html is one document ("and" inside a name).
_SPLIT = re.compile(r"\s*(?:,|;|(?<![\w-])and(?![\w-])|\s\|\s)\s*")


def _clean(ref: str) -> str:
    return ref.strip().strip("`'\"*<>").strip().rstrip(".")


def parse_citations(answer: str) -> list[str]:
    """Names the answer cites, in order of appearance, each once."""
    found: list[tuple[int, str]] = []
    for m in _LABELLED.finditer(answer or ""):
        for part in _SPLIT.split(m.group(1)):
            ref = _clean(part)
            if ref and len(ref) <= 512 and " " not in ref:
                found.append((m.start(1), ref))
    for m in _BRACKETED.finditer(answer or ""):
        found.append((m.start(1), _clean(m.group(1))))
    for m in _NAMED.finditer(answer or ""):
        found.append((m.start(1), _clean(m.group(1))))
    out: list[str] = []
    for _, ref in sorted(found, key=lambda x: x[0]):
        if ref not in out:
            out.append(ref)
    return out


def cited_document(ref: str) -> str:
    """The document a citation names: ``a.html#3`` names ``a.html``."""
    return ref.split("#", 1)[0]
