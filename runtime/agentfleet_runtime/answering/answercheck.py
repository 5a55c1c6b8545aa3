"""The answer check (spec.decisions.answerCheck): is every value an answer states in a passage the
task retrieved? Pure.

Small models read the right page and still answer with a value it does not hold, or invent one
for a question the documents do not answer ("max_cluster_ram is 4GB"). What such an answer states
that can be checked without a model: its quantities and its quoted values. A quantity is a number
with an optional unit ("5min", "300 seconds", "five minutes", "128MB"); it is supported when a
passage states the same quantity (compared in base units: 5min = 300 s), or the same number where
either side has no unit; a number with a unit of another dimension never supports it. A
quoted value ("`replica`", "\"ACCESS EXCLUSIVE\"") is supported when a passage contains it.
Numbers in the question itself, in citations ("[2]") and inside names (``postgresql-doc-15``,
``sql-vacuum.html``, ``int8``) are not values the answer states. What is not checked: a value
read from the right passage for the wrong thing; the check is against invention, not misreading.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agentfleet_contract.passage_refs import PASSAGE_ECHO, SOURCES_RX, TAG_RX
from agentfleet_contract.passage_refs import citation_in_place as citation_in_place  # the check reads it here

from agentfleet_runtime.tools.retrieval import parse_passages

# Units by the words that name them: (dimension, factor to the base unit: seconds, bytes).
_UNITS: dict[str, tuple[str, float]] = {}
for _names, _dim, _factor in (
    (("us", "microsecond", "microseconds"), "time", 1e-6),
    (("ms", "millisecond", "milliseconds"), "time", 1e-3),
    (("s", "sec", "secs", "second", "seconds"), "time", 1.0),
    (("min", "mins", "minute", "minutes"), "time", 60.0),
    (("h", "hr", "hour", "hours"), "time", 3600.0),
    (("d", "day", "days"), "time", 86400.0),
    (("b", "byte", "bytes"), "size", 1.0),
    (("kb", "kib", "kilobyte", "kilobytes"), "size", 1024.0),
    (("mb", "mib", "megabyte", "megabytes"), "size", 1024.0**2),
    (("gb", "gib", "gigabyte", "gigabytes"), "size", 1024.0**3),
    (("tb", "tib", "terabyte", "terabytes"), "size", 1024.0**4),
    (("%", "percent"), "percent", 1.0),
):
    for _n in _names:
        _UNITS[_n] = (_dim, _factor)

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "sixty": 60, "hundred": 100,
}  # fmt: skip
_UNIT_RX = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
# A number not glued to a name (no letter, digit, "_", "-" or "." word part before it), then an
# optional unit that ends at a word boundary.
QUANTITY_RX = re.compile(
    rf"(?<![\w.\-/])(?P<num>\d+(?:[.,]\d+)*|(?:{'|'.join(NUMBER_WORDS)}))(?:\s?(?P<unit>{_UNIT_RX})(?![\w]))?(?![\w\-]|\.\w)",
    re.I,
)
CITATION_RX = re.compile(r"\[\d+\]")
_QUOTED = re.compile(r"`([^`\n]{1,80})`|\"([^\"\n]{1,80})\"|\u201c([^\u201d\n]{1,80})\u201d")


@dataclass(frozen=True, slots=True)
class Quantity:
    text: str
    number: float
    dimension: str | None = None  # None: a bare number
    base: float | None = None  # the value in the dimension's base unit

    def same(self, other: Quantity) -> bool:
        """Equal quantities of one dimension, or equal numbers when either is bare (a table cell, a
        unit in another column); never across two dimensions (4GB is no 4 s)."""
        if self.dimension is not None and other.dimension is not None:
            return self.dimension == other.dimension and _close(self.base, other.base)
        return _close(self.number, other.number)


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def quantities(text: str) -> list[Quantity]:
    """The quantities a text states, in order. A number word counts only with a unit ("five
    minutes"): a bare "one" is rarely a value."""
    out = []
    for m in QUANTITY_RX.finditer(CITATION_RX.sub(" ", text)):
        raw, unit = m.group("num"), m.group("unit")
        word = raw.lower() in NUMBER_WORDS
        if word and unit is None:
            continue
        number = float(NUMBER_WORDS[raw.lower()]) if word else _parse_number(raw)
        if number is None:
            continue
        dim, factor = _UNITS[unit.lower()] if unit else (None, 1.0)
        out.append(Quantity(m.group(0), number, dim, number * factor if dim else None))
    return out


def _parse_number(raw: str) -> float | None:
    # "1,000" is a thousands separator, "0,5" a decimal comma; "8.2.1" (a section) is no number.
    s = raw.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", raw) else raw.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return None


def quoted(text: str) -> list[str]:
    return [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(text)]


NUMBER_WORD_RX = re.compile(rf"(?<![\w-])({'|'.join(NUMBER_WORDS)})(?![\w-])", re.I)


def number_words(text: str) -> list[Quantity]:
    """The bare number words a text writes ("the default is three"), as numbers."""
    return [Quantity(m.group(0), float(NUMBER_WORDS[m.group(1).lower()])) for m in NUMBER_WORD_RX.finditer(text)]


def unsupported(answer: str, passages: Iterable[str], question: str = "") -> list[str]:
    """What the answer states that no passage (and not the question) holds, in the answer's order.
    A passage's bare number word supports the answer's digit ("The default is three." holds an
    answer's 3), except "one", which passages use for everything else ("one of the ...")."""
    body = SOURCES_RX.sub("", answer)
    texts = list(passages)
    known = [q for t in [*texts, question] for q in quantities(t)]
    known += [q for t in [*texts, question] for q in number_words(t) if q.number != 1]
    haystack = "\n".join([*texts, question]).casefold()
    out: list[str] = []
    for q in quantities(body):
        if not any(q.same(k) for k in known) and q.text not in out:
            out.append(q.text)
    named: list[str] | None = None
    for v in quoted(body):
        if not v or v.casefold() in haystack or v in out:
            continue
        # A code name in backticks is a name, resolved as documentation writes it: `itertools.tee()`
        # is on the page that shows "itertools.tee(iterable, n=2)" (a right first answer sent to the
        # loop, which then lost it: Python held-out, docs/results/2026-11-27-eval-python-heldout.md).
        name = _CODE_NAME.fullmatch(v.strip())
        if name is not None:
            named = with_pages([*texts, question]) if named is None else named
            if mentioned(name.group(1), named):
                continue
        out.append(v)
    return out


def check_problem(values: list[str]) -> str:
    """The repair turn's reason: what was not found, and the two ways on."""
    shown = ", ".join(repr(v) for v in values[:5])
    return (
        f"your answer states {shown}, which no passage you retrieved contains. Search again with other "
        "words for the passage that states the value, or answer that the documents do not say."
    )


DECLINE = "The documents I searched do not state this, so I cannot give a reliable answer."


# -- a passage in the answer's place ----------------------------------------------------------------
# agentfleet_contract.passage_refs reads it (citation_in_place), the same reading as the eval's
# passageAsAnswer: the check sends such an answer back with this reason.
CITATION_PROBLEM = (
    "your answer gives a passage (its number, head line or score) in place of the answer. State the value or name "
    "itself, as the passage writes it, and cite the passage as [source: NAME]."
)


# A passage cited by its number alone, "[3]" or "[2, 4]", as the request numbered it. "[3] (x.html,
# score ...)" is the head line PASSAGE_ECHO reads; "a[3]" and "x][3]" index something.
_PASSAGE_NUMBERS = re.compile(r"(?<![\w\])])\[\s*(\d{1,2}(?:\s*,\s*\d{1,2})*)\s*\](?!\s*\()")


def tidy_citations(answer: str, numbered: Mapping[int, str] | None = None) -> str:
    """An answer that copied passages' head lines after what it states, or (with ``numbered``: a
    passage's number -> its source, as the request that wrote the answer numbered them) cited a
    passage by its number alone, cites them as [source: NAME]: "The source of this information is
    [3]." was a Python fresh set's right answer citing no document. A number the request did not
    give stays as written. Pure."""
    answer = PASSAGE_ECHO.sub(lambda m: f"[source: {m.group(1).strip()}]", answer)
    if not numbered:
        return answer

    def named(m: re.Match[str]) -> str:
        ranks = [int(n) for n in m.group(1).split(",")]
        if not all(r in numbered for r in ranks):
            return m.group(0)
        return f"[source: {', '.join(dict.fromkeys(numbered[r] for r in ranks))}]"

    return _PASSAGE_NUMBERS.sub(named, answer)


def passage_numbers(seen: Sequence[str], form: str) -> dict[int, str]:
    """A passage's number -> its source, as an opening request of ``form`` numbered the passages of
    ``seen`` (search outputs): one-shot RAG's request (OneShot) numbers them all from 1 in
    order; the Fleet form shows each output as the search wrote it, numbered from 1, so a number
    two outputs give to different documents names neither. Pure."""
    if form != "Fleet":
        return {i: p["source"] for i, p in enumerate((p for out in seen for p in parse_passages(out)), 1)}
    ranks: dict[int, set[str]] = {}
    for out in seen:
        for p in parse_passages(out):
            ranks.setdefault(p["rank"], set()).add(p["source"])
    return {r: next(iter(sources)) for r, sources in ranks.items() if len(sources) == 1}


# -- names the question uses (answerPolicy Cascade: stages.DeclineUnknownNames) -----------------------------
# A question on a false premise names what the documents never mention ("autovacuum_gpu_workers",
# "MongoDB", "REST"), and a small model answers it anyway with a value from a nearby passage. What
# names a thing rather than asking about it: identifiers (an underscore, a dot, a call's "()", letters
# glued to digits, inner capitals), acronyms and SQL keywords in capitals, and capitalised words that
# do not start a sentence. Common words are left out: the documents may say them otherwise.
_NAME = re.compile(
    r"(?<![\w.])("
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?"  # a dotted name: functools.lru_cache, http.server
    r"|[A-Za-z_]\w*\(\)"  # a function: pg_autoshard_rebalance()
    r"|[A-Za-z]*_\w*"  # an identifier: max_wal_size
    r"|[A-Za-z]+\d\w*"  # letters and digits: S3, IMAP4
    r"|[a-z]+[A-Z]\w*|[A-Z][a-z]+[A-Z]\w*"  # inner capitals: MongoDB, PrettyPrinter
    r"|[A-Z]{2,}"  # an acronym or an SQL keyword: GPU, REST, VACUUM
    r"|[A-Z][a-z]{2,}"  # a capitalised word: a proper noun unless it starts a sentence
    r")(?!\w)"
)
_CAPITALISED = re.compile(r"[A-Z][a-z]{2,}")
_ACRONYM = re.compile(r"[A-Z]{2,}")
# An acronym is short (GPU, REST, HTTP, LDAP) and keeps its case ("rest" is no REST). A longer word in
# capitals is an SQL keyword (ALIGNMENT, STORAGE), which the manual also writes in lower case as the
# option's parameter ("alignment", "storage"): matched in any case, like other names.
KEYWORD_LETTERS = 6
_SENTENCE_START = re.compile(r"(?:^|[.?!:]\s+|\n)[\s\"'`(*]*$")


def question_names(question: str, subject: str = "") -> list[str]:
    """The names a question uses, in order, without those of ``subject`` (the fleet's system prompt:
    "PostgreSQL" is what every passage is about, not a premise to check)."""
    known = {w.casefold() for w in re.findall(r"[\w.]+", subject)}
    out: list[str] = []
    for m in _NAME.finditer(question):
        name = m.group(1)
        if _CAPITALISED.fullmatch(name) and _SENTENCE_START.search(question[: m.start()]):
            continue
        if name.removesuffix("()").casefold() not in known and name not in out:
            out.append(name)
    return out


def mentioned(name: str, texts: Iterable[str]) -> bool:
    """Whether a text names it: acronyms with their case (REST is not "rest"), other names in any
    case; a dotted name also when every part is in one text (``functools.lru_cache`` in the page
    of ``functools`` that says ``@lru_cache``), or when its last part is defined in its owner's
    section of one text (``in_owner_section``: documentation writes a member under its short name)."""
    bare = name.removesuffix("()")
    if _ACRONYM.fullmatch(bare) and len(bare) < KEYWORD_LETTERS:
        rx = re.compile(rf"(?<![A-Za-z]){re.escape(bare)}(?![a-z])")
        return any(rx.search(t) for t in texts)
    low, parts = bare.casefold(), [p for p in bare.casefold().split(".") if p]
    return any(
        low in t.casefold() or (len(parts) > 1 and (all(p in t.casefold() for p in parts) or in_owner_section(bare, t)))
        for t in texts
    )


# -- names as documentation writes them -------------------------------------------------------------
# An API reference writes a member under its short name inside its owner's section: the Python
# library reference's "protocol_version¶" (an attribute heading) under "class
# http.server.BaseHTTPRequestHandler(...)¶", "coroutine loop.create_server(...)¶" with its parameter
# list below. A question (or an answer) writes the qualified name (module.Class.attribute,
# asyncio.loop.create_server()), which is then in no passage as written.
_SIG_KEYWORDS = (
    r"(?:(?:class|coroutine|async|awaitable|abstractmethod|classmethod|staticmethod|property|method|attribute"
    r"|exception|function|data|decorator)\s+)*"
)
# A definition: a signature ([keywords] [qualifier.]name[(parameters)], "¶" or a type in parentheses
# after it, as Sphinx and DocBook render them) or a heading ("### 20.5.1. name"), one line each.
_DEFINITION = re.compile(
    rf"^[ \t]*(?:(?P<heading>#+)[ \t]+(?:[\d.]+[ \t]+)?)?{_SIG_KEYWORDS}"
    r"(?P<name>[A-Za-z_][\w.]*?)[ \t]*(?P<params>\(.*\))?[ \t]*\u00b6?[ \t]*$",
    re.M,
)
_OWNER_LEVEL = re.compile(r"^[ \t]*(?:#|class\s|exception\s)")  # a line that opens another owner's section


def _definitions(text: str) -> list[tuple[int, str, str]]:
    """The definition lines of a text: (offset, the line, the name it defines)."""
    return [(m.start(), m.group(0), m.group("name")) for m in _DEFINITION.finditer(text)]


def _names_word(line: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?!\w)", line, re.I) is not None


def in_owner_section(name: str, text: str) -> bool:
    """Whether ``text`` defines the qualified name's last part inside its owner's section: a
    definition of it qualified by the owner ("Dialect.delimiter¶", "coroutine loop.create_server(...)"
    for ``asyncio.loop.create_server``), or an unqualified one ("protocol_version¶") under the owner's
    own definition or heading, with only sibling members between (another class or heading ends the
    section). The parts before the owner (the module) are the page's, not the passage's. Pure."""
    parts = [p for p in name.removesuffix("()").split(".") if p]
    if len(parts) < 2:
        return False
    # A search result's passages are of several pages: one page's section never runs into the next.
    return any(_in_section(parts[-2].casefold(), parts[-1].casefold(), t) for t in _RESULT_HEAD.split(text))


_RESULT_HEAD = re.compile(r"^\[\d+\] \(.*\)$", re.M)  # a passage's head line (tools.retrieval.format_passages)


def _in_section(owner: str, last: str, text: str) -> bool:
    defs = _definitions(text)
    for i, (_, _line, defined) in enumerate(defs):
        qual = defined.casefold().split(".")
        if qual[-1] != last:
            continue
        if len(qual) > 1:
            if qual[-2] == owner:
                return True
            continue  # another owner's member of the same name
        for _, above, above_name in reversed(defs[:i]):
            if above_name.casefold().split(".")[-1] == owner or _names_word(above, owner):
                return True
            if _OWNER_LEVEL.match(above):
                break
    return False


def unknown_names(question: str, passages: Iterable[str], subject: str = "") -> list[str]:
    """The question's names that no passage mentions (each page's passages also read as one text)."""
    texts = with_pages(passages)
    return [n for n in question_names(question, subject) if not mentioned(n, texts)]


def with_pages(outputs: Iterable[str]) -> list[str]:
    """Search results as the name checks read them: each as written, then each page's passages
    (over all results) as one text, so a signature in one chunk and its member in the next are one
    section, and a member is never read under another page's class. Pure."""
    texts = list(outputs)
    passages = [(p["source"], p["text"]) for t in texts for p in parse_passages(t)]
    return [*texts, *pages_of(passages).values()]


def decline_unknown(names: list[str]) -> str:
    """The decline a task ends with when the documents never mention what its question names. It
    states no value, only the question's own names."""
    shown = ", ".join(names[:3])
    return f"The documents I searched do not mention {shown}, so they do not answer this question."


# -- answer first (answerPolicy OneShot, Cascade: stages.AnswerFirst) -------------------------------------
# The one-shot turn after searchFirst: the words of one-shot RAG's prompt (tools.retrieval.RAG_PROMPT), which
# the 1.5B answered better from than from a loop that went on searching and lost the first passages.
ANSWER_FIRST = (
    "Answer the question from the numbered passages below. Cite the source of every passage you use as "
    "[source: NAME], with NAME as the passage's head line shows it. If the passages do not answer the question, "
    "say that they do not say, and give no value."
)
ANSWER_FIRST_UNANSWERED = (
    "the passages above do not answer the question. Search with other words (the name of the setting, command or "
    "function, or a section title) for the passage that does, then answer from it"
)
# An answer saying the passages do not hold what was asked: the cascade's signal to go on with tools.
_UNANSWERED = re.compile(
    r"\b(?:do(?:es)?\s+not|do(?:es)?n['\u2019]t|never)\s+(?:explicitly\s+|directly\s+)?"
    r"(?:say|state|mention|answer|specify|provide|contain|include|describe|cover|list|give|address)\b"
    r"|\bnot\s+(?:explicitly\s+)?(?:mentioned|specified|stated|provided|given|documented|described|listed|found)\b"
    r"|\bno\s+(?:information|mention|details?)\b|\b(?:cannot|can['\u2019]t|unable\s+to)\s+(?:answer|determine|find)\b",
    re.I,
)


# The documentation's own conditions are no decline: "VOLATILE is the default if the command does not
# specify a category", "When fmt is not specified, ... XML". Read as declines, these right answers were
# read again and cited nothing (3 of 211 right answers in the 2026-11-27 journals).
_CONDITION = re.compile(r"\b(?:if|when|whenever|unless)\b[^,;:.!?\n]*$", re.I)


def says_unanswered(answer: str) -> bool:
    """Whether an answer says its passages do not hold the answer (or is empty): a "not stated" that
    no "if" or "when" of its own clause makes a condition."""
    body = SOURCES_RX.sub("", answer)
    return not answer.strip() or any(not _CONDITION.search(body[: m.start()]) for m in _UNANSWERED.finditer(body))


def first_answer_problem(answer: str, passages: Iterable[str], question: str = "") -> str | None:
    """Why the answer-first reply does not end the task (the loop goes on with tools), else None:
    it says the passages do not answer, or it states a value no passage holds."""
    if says_unanswered(answer):
        return ANSWER_FIRST_UNANSWERED
    values = unsupported(answer, passages, question)
    return check_problem(values) if values else None


_WORD = re.compile(r"[a-z_][\w.]{3,}")


def supporting_sources(answer: str, passages: Iterable[tuple[str, str]], question: str = "") -> list[str]:
    """The sources (best first, at most 3) of the passages that state what the answer states: each
    quantity and quoted value it gives that the question does not; for an answer without such values,
    the passage sharing the most of its words. What an uncited answer-first answer cites: a small
    model asked to cite often does not, and the check has just found where its values are."""
    body, shown = SOURCES_RX.sub("", answer), list(passages)
    asked = quantities(question)
    values = [q for q in quantities(body) if not any(q.same(k) for k in asked)]
    words = [v.casefold() for v in quoted(body) if v.casefold() not in question.casefold()]
    out = [
        source
        for source, text in shown
        if any(q.same(k) for q in values for k in quantities(text)) or any(w in text.casefold() for w in words)
    ]
    if not out and shown:
        mine = set(_WORD.findall(body.casefold())) - set(_WORD.findall(question.casefold()))
        overlap = [len(mine & set(_WORD.findall(text.casefold()))) for _, text in shown]
        if max(overlap) > 0:
            out = [shown[overlap.index(max(overlap))][0]]
    return list(dict.fromkeys(out))[:3]


# -- a value of another thing (answerPolicy Cascade) -------------------------
# A question on a false premise about a real name ("the default key of deque.sort()": deque has no
# sort) gets a value from the passage about a neighbour (list.sort()'s key=None). The value is in a
# passage, so the check against invention passes it; what gives it away is that no passage holding
# it names what was asked.
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)|[A-Za-z]*_\w*")
_LITERAL = re.compile(r"(?<![\w.])(None|True|False)(?![\w(])")


def other_subject(answer: str, passages: Iterable[tuple[str, str]], question: str, subject: str = "") -> list[str]:
    """The question's identifiers (dotted names, calls, names with "_") when no passage that holds a
    value the answer states (a quantity, a quoted value, None/True/False), nor another retrieved passage
    of its page, nor the page's name, names any of them; else []. An answer without such values is not
    judged."""
    names = [n for n in question_names(question, subject) if _IDENTIFIER.fullmatch(n)]
    if not names:
        return []
    body, asked = SOURCES_RX.sub("", TAG_RX.sub("", answer)), quantities(question)
    values = [q for q in quantities(body) if not any(q.same(k) for k in asked)]
    words = [v for v in [*quoted(body), *_LITERAL.findall(body)] if v.casefold() not in question.casefold()]
    if not values and not words:
        return []
    shown = list(passages)
    sources = {
        source
        for source, text in shown
        if any(q.same(k) for q in values for k in quantities(text)) or any(w in text for w in words)
    }
    # A page's passages together, in the order retrieved: the chunk stating a default is often cut
    # from the heading or signature naming it, and a qualified name's parts are spread over the page.
    holding = list(pages_of([(s, t) for s, t in shown if s in sources]).values())
    if not holding or any(mentioned(n, holding) for n in names):
        return []
    return names


def pages_of(passages: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Each page's retrieved passages as one text, headed by the page's name (the module a
    reference page documents is often named only there). Pure."""
    pages: dict[str, str] = {}
    for source, text in passages:
        pages[source] = f"{pages[source]}\n\n{text}" if source in pages else f"{source}\n{text}"
    return pages


def decline_other(names: list[str]) -> str:
    """The decline of an answer whose value belongs to another thing: no value, only the question's names."""
    shown = ", ".join(names[:3])
    return f"The documents I searched do not state this for {shown}, so they do not answer this question."


# -- names the answer states (the hold after a declined first answer, citing) ----------
# Asked "which function of the yaml module parses YAML safely?" over documents with no yaml module,
# the 1.5B answered "yaml.safe_load()": a name, not a quantity or a quoted value, so the value check
# passed it. In API documentation a name is the value: a dotted name, a call or a name with "_" the
# answer gives must be one the retrieved passages (or the question) mention. Code blocks are left
# out (their names are an example's own variables), and so are file names.
# A name, then a call's argument list if any ("yaml.safe_load(stream)" names yaml.safe_load()).
_CODE_NAME = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z_]\w*(?=\()|[A-Za-z]*_\w*)(\([^()\n]{0,60}\))?(?![\w(])"
)
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_FILE_NAME = re.compile(r"\.(?:html?|md|txt|rst|py)$", re.I)


def answer_names(answer: str, question: str = "") -> list[str]:
    """The code names an answer states, in order, without the question's own and without file names
    and abbreviations ("e.g")."""
    body = _FENCE.sub(" ", SOURCES_RX.sub("", TAG_RX.sub(" ", answer)))
    asked = {n.casefold() for n, _ in _CODE_NAME.findall(question)}
    out: list[str] = []
    for bare, call in _CODE_NAME.findall(body):
        name = bare + ("()" if call else "")
        if len(bare.strip("_")) < 2 or _FILE_NAME.search(bare) or all(len(p) <= 1 for p in bare.split(".")):
            continue
        if bare.casefold() not in asked and name not in out:
            out.append(name)
    return out


def unknown_answer_names(answer: str, passages: Iterable[str], question: str = "") -> list[str]:
    """The code names the answer states that no passage mentions (a dotted name also counts as
    mentioned when every part is in one passage: ``functools.lru_cache`` on the page that says
    ``@lru_cache``), or defines its last part in its owner's section (``in_owner_section``)."""
    texts = with_pages(passages)
    return [n for n in answer_names(answer, question) if not mentioned(n, texts)]


def unsupported_claims(answer: str, passages: Iterable[str], question: str = "", *, names: bool = True) -> list[str]:
    """What an answer states that no passage holds: its values (``unsupported``) and, with
    ``names``, the code names none mentions (``unknown_answer_names``); a name in backticks is a
    quoted value too, listed once."""
    texts = list(passages)
    values = unsupported(answer, texts, question)
    return values + [n for n in (unknown_answer_names(answer, texts, question) if names else []) if n not in values]
