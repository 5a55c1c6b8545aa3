"""Whose page a document is, read from its file name. Pure: no I/O, no model.

The grounding check (scoring.supports) reads a cited passage with it: a fact on the thing's own page is
the thing's wherever the page states it, and a passage on another command's page states that command's
facts, not the question's.
"""

from __future__ import annotations

import re

from agentfleet_eval.subjects import CAPS


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _parts(source: str) -> list[str]:
    return source.rsplit("/", 1)[-1].lower().removesuffix(".html").split("-")


def page_of(name: str, source: str) -> bool:
    """The document is the page of ``name``: its file name spells the name, separators aside, whole or
    after a prefix of its own ("pgsurgery.html" of pg_surgery, "app-pgamcheck.html" of pg_amcheck,
    "collections.abc.html" of collections.abc). Pure."""
    key, parts = _key(name), _parts(source)
    return bool(key) and any(_key("".join(parts[i:])) == key for i in range(len(parts)))


def siblings(question: str, source: str) -> list[str]:
    """The question's commands (runs of two or more words in capitals) whose sibling's page the document
    is: its name's last part spells other words before the command's last word ("sql-createsubscription.html"
    beside ALTER SUBSCRIPTION), and it is the page of no run of words in capitals the question names.
    Such a page states its own command's options and defaults ("copy_data ... The default is true." is
    CREATE SUBSCRIPTION's): a passage on it states a fact of the question's command only where it names
    that command (a PostgreSQL fresh-e answer about ALTER SUBSCRIPTION ... REFRESH PUBLICATION's copy_data
    cited CREATE SUBSCRIPTION's, and a blind reader read it ungrounded)."""
    runs = [m.group(0).split() for m in CAPS.finditer(question)]
    spans = {" ".join(r[i:j]) for r in runs for i in range(len(r)) for j in range(i + 1, len(r) + 1)}
    if any(page_of(s, source) for s in spans):
        return []
    last = _key(_parts(source)[-1])
    return [" ".join(r) for r in runs if len(r) >= 2 and last.endswith(_key(r[-1])) and len(last) > len(_key(r[-1]))]
