"""What a text claims: quantities with their units, values from known vocabularies, negations, and
which of a question's subjects each value is said of. Pure: no I/O, no model.

scoring.py judges answers and cited passages with it; taskset.py checks task sets with it. The
rules are general (any quantity, any lock mode, any "not"), so a task needs no annotation beyond
its facts; ``about`` and ``wrong`` in a task set are the exceptions.

- A quantity is a number with an optional unit, in digits or words ("5min", "300 seconds",
  "five minutes", "128MB", "1 gigabyte", "90%"). Units convert to one base per dimension:
  seconds for time, bytes for memory (1 kB = 1024 B, as PostgreSQL counts), a fraction for a
  percentage. Two quantities are the same when their dimensions and values are; a bare number
  has no dimension, so ``{number: 4}`` is never "4GB". Zero is zero in any unit.
- A vocabulary is a closed set of values of one kind (lock modes, isolation levels, wal_level
  values): a fact that is one of them makes every other one a competing value.
- A value is negated when "not", "never", "cannot", ... stands among the five words before it
  in the same clause and no "but" or "and" ends its scope ("the statement is not executed", "it is
  not guaranteed to be stable"), when a longer alternative holding it is negated, when the rest of
  its clause denies it ("X is not the case", "... is false"), or when the next sentence retracts it
  ("That is not the case."); but never by a negator that repeats the question's own condition
  ("the value when run_name is not passed is X", asked "... when run_name is not passed?").
- A value is said of the nearest subject named before it in its sentence (else the nearest
  after it): "seq_page_cost is 4.0 and random_page_cost is 1.0" says 4.0 of seq_page_cost.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class FactLike(Protocol):
    texts: tuple[str, ...]
    numbers: tuple[float, ...]
    about: str


_TRANSLATE = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-"}
    | {"\u00a0": " "}
)
# Markdown code and emphasis. An asterisk run between two word characters is an operator ("2**16",
# "a*b") and stays; so do the underscores of a name ("gist__ltree_ops", "__init__", "_private",
# "class_"): only a name wrapped in single underscores ("_word_") or an underscore run standing alone
# is emphasis.
_BACKTICKS = re.compile(r"`+")
_ASTERISKS = re.compile(r"(?<!\*)\*+(?!\*)")
_UNDERSCORED = re.compile(r"(?<![^\W_])\w*_\w*|(?<!\w)_+(?!\w)")
_EMPHASIS = re.compile(r"_([^\W_](?:\w*[^\W_])?)_")


def _unstar(m: re.Match[str]) -> str:
    before, after = m.string[max(0, m.start() - 2) : m.start()], m.string[m.end() : m.end() + 2]
    operator = before[-1:].isalnum() and after[:1].isalnum()
    spaced = re.fullmatch(r"\d ", before) is not None and re.fullmatch(r" \d", after) is not None  # "2 ** 16"
    return m.group() if operator or spaced else ""


def _unscore(m: re.Match[str]) -> str:
    token = m.group()
    if not token.strip("_"):
        return ""
    e = _EMPHASIS.fullmatch(token)
    return e.group(1) if e else token


def strip_markup(text: str) -> str:
    """``text`` without markdown code and emphasis marks; operators and names kept whole."""
    return _UNDERSCORED.sub(_unscore, _ASTERISKS.sub(_unstar, _BACKTICKS.sub("", text)))


# Citations name documents ("[source: runtime-config-wal.html#3]") or number the passages shown
# ("[1]", "[2, 3]", "[1-2]": the runtime reads these as citations too): their digits are no claim. A
# bracket glued to a name ("args[1]") is an index, not a citation. Nor is the score of a passage head
# as the retrieval tool shows it ("[3] (functions-textsearch.html, score 0.030)"), copied into an answer.
_CITATION = re.compile(
    r"\(\s*[^()\s]+\.(?:html?|md|txt)(?:#\S*)?\s*,\s*score\s+\d*\.?\d+\s*\)"
    r"|\[[^\]\n]*(?:source|\.html?|\.md|\.txt)[^\]\n]*\]|\S+\.html?(?:#\S*)?"
    r"|(?<![\w.])\[\d{1,2}(?:\s*[,\u2013-]\s*\d{1,2})*\]",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"(?m)^[ \t]*(?:\d{1,2}[.)]|[-*\u2022])[ \t]+")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def clean(text: str) -> str:
    """One kind of quote and dash, no markdown emphasis, citations or list markers; single spaces,
    line breaks kept (they end a sentence). Case kept."""
    t = unicodedata.normalize("NFKC", text or "").translate(_TRANSLATE)
    t = _CITATION.sub(" ", t)
    t = _LIST_MARKER.sub("", t)
    t = strip_markup(t)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in t.split("\n") if line.strip())


def lower(text: str) -> str:
    """Lower case, one character for one (so spans found in it hold in the original)."""
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


# Any hyphen but the one of a one-letter command-line option ("-f", "-n"): read as a space, that
# option would be the letter alone, which any text holds ("it's" has an "s").
_LOOSE_HYPHEN = re.compile(r"((?<![\w-])-(?=[a-z0-9](?![\w-])))|-")


def loose(low: str) -> str:
    """A hyphen reads as a space ("blank-padded" = "blank padded"), but a one-letter option's
    ("-f"); same length as ``low``."""
    return _LOOSE_HYPHEN.sub(lambda m: m.group(1) or " ", low)


def words(*phrases: str) -> re.Pattern[str]:
    """Any of ``phrases`` as whole words of loose text, longest first, any spaces between words."""
    alts = sorted({" ".join(loose(lower(p)).split()) for p in phrases}, key=len, reverse=True)
    return re.compile("|".join(_whole(a) for a in alts if a))


def _whole(phrase: str) -> str:
    """A phrase as whole words: no letter or digit glued on at either end, except before a file name
    suffix, which is written glued to its base name (".syn" in "my_synonyms.syn"; "\\n" is still
    not in "\\r\\n", nor "w+" in "w+b")."""
    body = re.escape(phrase).replace(r"\ ", r"\s+")
    head = "" if re.match(r"\.[a-z]", phrase) else r"(?<![a-z0-9_])"
    return f"(?:{head}{body}(?![a-z0-9_]))"


# --- quantities ------------------------------------------------------------------------------------

_SPELLED = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "hundred": 100,
}  # fmt: skip
_KB = 1024.0
_UNITS: dict[str, tuple[str, float]] = {}
for _names, _dim, _factor in (
    (("us", "microsecond", "microseconds"), "time", 1e-6),
    (("ms", "msec", "millisecond", "milliseconds"), "time", 1e-3),
    (("s", "sec", "secs", "second", "seconds"), "time", 1.0),
    (("min", "mins", "minute", "minutes"), "time", 60.0),
    (("h", "hr", "hrs", "hour", "hours"), "time", 3600.0),
    (("d", "day", "days"), "time", 86400.0),
    (("byte", "bytes"), "memory", 1.0),
    (("kb", "kib", "kilobyte", "kilobytes"), "memory", _KB),
    (("mb", "mib", "megabyte", "megabytes"), "memory", _KB**2),
    (("gb", "gib", "gigabyte", "gigabytes"), "memory", _KB**3),
    (("tb", "tib", "terabyte", "terabytes"), "memory", _KB**4),
    (("%", "percent"), "", 0.01),
):
    for _n in _names:
        _UNITS[_n] = (_dim, _factor)
_DIGITS = r"(?<![\w.])(?<!\w-)(?:-(?=\.?\d))?(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|(?<![\w.])\.\d+"
# A scale word multiplies the number before it: "150 million" is one quantity, 150000000.
_SCALES = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
# A power ("2**16 bytes", "2^16") is one quantity. The quantity ends at a word's end: "22P02" (an
# SQLSTATE code) or "3rd" holds no number.
_QUANTITY = re.compile(
    rf"(?:(?<![\w.])(?P<base>\d{{1,4}})\s?(?:\*\*|\^)\s?(?P<exponent>\d{{1,2}})(?![\d.])|(?P<digits>{_DIGITS})|\b(?P<word>{'|'.join(_SPELLED)})\b)"
    rf"(?:[ -](?P<scale>{'|'.join(_SCALES)})\b)?"
    rf"(?:[ -]?(?P<unit>{'|'.join(sorted(map(re.escape, _UNITS), key=len, reverse=True))})(?![a-z0-9]))?"
    r"(?![a-z0-9_])"
)
# A number right after these names a version, not a value ("PostgreSQL 15").
_VERSION_BEFORE = re.compile(r"(?:postgresql|postgres|python|version|release|pg)\s?$")


@dataclass(frozen=True)
class Quantity:
    value: float  # in the dimension's base unit: seconds, bytes; the number itself when bare
    dim: str  # "time", "memory", or "" for a bare number (a percentage is a bare fraction)
    start: int = 0
    end: int = 0
    spelled: bool = False  # "three" rather than "3": a bare spelled number is rarely a claim ("one of")

    def same(self, other: Quantity) -> bool:
        if self.value == 0 and other.value == 0:
            return True
        return self.dim == other.dim and math.isclose(self.value, other.value, rel_tol=1e-9, abs_tol=1e-12)

    def key(self) -> str:
        return f"{self.dim}:{self.value:.12g}"


def quantities_in(low: str) -> list[Quantity]:
    """Every quantity in lower-cased text, with its span."""
    out = []
    for m in _QUANTITY.finditer(low):
        if m["base"]:
            value, spelled = float(int(m["base"]) ** int(m["exponent"])), False  # "2**16", "2^16"
        elif m["digits"]:
            value, spelled = float(m["digits"].replace(",", "")), False
        else:
            value, spelled = float(_SPELLED[m["word"]]), True
        dim, factor = _UNITS[m["unit"]] if m["unit"] else ("", 1.0)
        if m["scale"]:
            # "one million" is a claim, not the "one" of "one of"
            value, spelled = value * _SCALES[m["scale"]], False
        out.append(Quantity(value * factor, dim, m.start(), m.end(), spelled))
    return out


def is_version(low: str, q: Quantity) -> bool:
    return not q.dim and _VERSION_BEFORE.search(low[max(0, q.start - 12) : q.start]) is not None


# A number that is part of a name is no value beside a fact: a standard's or proposal's ("RFC 5322", "PEP
# 8", "ISO 8601", "IEEE 754", "SQL:2016"), a version's, or a year's ("since 2011.", "in March 2019,").
_STANDARD_BEFORE = re.compile(r"\b(?:rfc|pep|iso|iec|ieee|ansi|bcp|fips|ecma|sql)[ :#]?$")
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_YEAR_BEFORE = re.compile(
    rf"\b(?:in|since|from|until|till|by|before|after|year|circa|copyright|released|(?:{_MONTHS})[a-z]*\.?)\s+$"
)
_YEAR_AFTER = re.compile(r"\s*(?:[.,;:!?)]|\s(?:and|or)\b|$)")


def names_number(low: str, q: Quantity) -> bool:
    """Whether a bare number is part of a name (a standard's, a version's, a year's), not a value."""
    if q.dim or q.spelled:
        return False
    before = low[max(0, q.start - 12) : q.start]
    if is_version(low, q) or _STANDARD_BEFORE.search(before):
        return True
    if re.fullmatch(r"\d{1,2}\.\d{1,2}", low[q.start : q.end]) and re.search(r"\b(?:since|as of)\s$", before):
        return True  # "since 3.3"
    year = re.fullmatch(r"(?:19|20)\d\d", low[q.start : q.end]) is not None
    return year and _YEAR_BEFORE.search(before) is not None and _YEAR_AFTER.match(low, q.end) is not None


# --- vocabularies ------------------------------------------------------------------------------------

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "lock mode": (
        "access share", "row share", "row exclusive", "share update exclusive", "share row exclusive",
        "share", "exclusive", "access exclusive",
    ),
    "isolation level": ("read uncommitted", "read committed", "repeatable read", "serializable"),
    "wal_level": ("minimal", "replica", "logical"),
    "password encryption": ("md5", "scram sha 256"),
    # PostgreSQL 15's predefined roles (predefined-roles.html): "pg_read_all_data, then pg_monitor"
    # names two roles where one is asked for.
    "predefined role": (
        "pg_checkpoint", "pg_database_owner", "pg_execute_server_program", "pg_monitor", "pg_read_all_data",
        "pg_read_all_settings", "pg_read_all_stats", "pg_read_server_files", "pg_signal_backend",
        "pg_stat_scan_tables", "pg_write_all_data", "pg_write_server_files",
    ),
}  # fmt: skip
_ENTRY_VOCAB = {e: v for v, es in VOCABULARIES.items() for e in es}
_VOCAB = words(*_ENTRY_VOCAB)
# "share" and "exclusive" are English words too: a lock mode only in capitals or before "lock"/"mode".
_COMMON_WORDS = {"share", "exclusive"}


@dataclass(frozen=True)
class Mention:
    entry: str
    vocab: str
    start: int
    end: int


def vocabulary_mentions(raw: str) -> list[Mention]:
    """Values of the known vocabularies in cleaned text, longest first at each place."""
    low = loose(lower(raw))
    out = []
    for m in _VOCAB.finditer(low):
        e = " ".join(m.group(0).split())
        capitals = raw[m.start() : m.end()].isupper()
        if e in _COMMON_WORDS and not (capitals or re.match(r" (?:lock|mode)\b", low[m.end() :])):
            continue
        out.append(Mention(e, _ENTRY_VOCAB[e], m.start(), m.end()))
    return out


_IDENTIFIER = re.compile(r"(?<![\w.])(?:pg_[a-z0-9_]+|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w])")


def identifiers_in(low: str, skip: Sequence[tuple[int, int]] = ()) -> list[str]:
    """snake_case names (settings, catalogs, functions) in order, each once; none inside ``skip``'s spans."""
    found = (m for m in _IDENTIFIER.finditer(low) if not any(s <= m.start() < e for s, e in skip))
    return list(dict.fromkeys(m.group(0) for m in found))


# --- negation and sentences --------------------------------------------------------------------------

_NEGATORS = frozenset(
    "not never no cannot without neither nor isn't aren't doesn't don't didn't won't wasn't weren't "
    "can't couldn't shouldn't hasn't haven't".split()
)
_CLAUSE_END = re.compile(r"[.;:,!?\n()]")


# A negation reaches this many words forward, so that it covers a multi-word fact's last word ("is not
# guaranteed to be stable" negates "stable"), up to a word that starts another predicate ("not planned but
# then executed").
NEGATION_REACH = 5
_WEAK_NEGATORS = frozenset("no without neither nor".split())
_SHORT_REACH = 3
# "not only stable but also fast" says stable.
_NOT_ONLY = frozenset("only just merely simply".split())
# "no more than 16,383", "not later than 5 s": a bound, which states its value (the PostgreSQL manual's
# tsvector limits: "Position values in tsvector must be greater than 0 and no more than 16,383").
_COMPARATIVES = frozenset("more less fewer greater later earlier longer shorter larger smaller higher lower".split())
_SCOPE_END = frozenset("but yet although though whereas while however instead rather and".split())
# A fact denied after it: "X is not the case", "that it is stable is not true", "X is false".
_DENIED_AFTER = re.compile(
    r"[^.;!?\n]{0,40}?\b(?:is|are|was|were|be|'s)\s+(?:(?:not|never)\s+(?:the case|true|correct|accurate|so|right)"
    r"|(?:false|untrue|incorrect|wrong))\b(?!\s+(?:for|of|with|in|about)\b)"
)
# A retraction in the next sentence: "It is stable. That is not the case."
_RETRACTED = re.compile(
    r"[.;!?\n]\s*(?:but\s+)?(?:that|this)(?:'s|\s+is|\s+was)\s+(?:not\s+(?:the case|true|correct|so)|false|untrue"
    r"|incorrect|wrong)\b"
)


def _bound(words: list[str], i: int) -> bool:
    """The negator at ``i`` opens a bound: "no more than", "not less than"."""
    return len(words) > i + 2 and words[i + 1] in _COMPARATIVES and words[i + 2] == "than"


Echoes = frozenset[tuple[str, str]]
NO_ECHOES: Echoes = frozenset()


def echoes(question: str) -> Echoes:
    """The question's own negated conditions, each a negator and the word after it ("is not passed",
    "are not null", "cannot be found"). A text that repeats one restates what was asked ("the value
    when run_name is not passed is '<run_path>'"): the repeated negator negates nothing of its own."""
    ws = re.findall(r"[a-z']+", lower(clean(question)))
    return frozenset((w, ws[i + 1]) for i, w in enumerate(ws[:-1]) if w in _NEGATORS)


def negated(low: str, start: int, end: int | None = None, echoed: Echoes = NO_ECHOES) -> bool:
    """Whether a negation stands among the NEGATION_REACH words before ``start`` in its clause (and
    in the scope of that negation), or, given the value's ``end``, the value is denied after it in
    its sentence or retracted by the next one. A negator followed by the word it is followed by in
    the question (``echoed``, from ``echoes``) repeats the question's condition, not a negation."""
    before = _CLAUSE_END.split(low[max(0, start - 80) : start])[-1]
    scope: list[str] = []
    for w in re.findall(r"[a-z']+", before)[-NEGATION_REACH:]:
        scope = [] if w in _SCOPE_END else [*scope, w]
    for i, w in enumerate(scope):
        if w not in _NEGATORS or (i + 1 < len(scope) and scope[i + 1] in _NOT_ONLY) or _bound(scope, i):
            continue
        if i + 1 < len(scope) and (w, scope[i + 1]) in echoed:
            continue
        # "no" and "without" bind the words right after them ("VACUUM without FULL takes a SHARE lock")
        if len(scope) - i <= (_SHORT_REACH if w in _WEAK_NEGATORS else NEGATION_REACH):
            return True
    if end is None:
        return False
    if _DENIED_AFTER.match(low, end):
        return True
    stop = re.compile(r"[.;!?\n]").search(low, end)
    return stop is not None and _RETRACTED.match(low, stop.start()) is not None


_COMPARED_WITH = re.compile(r"\b(?:than|unlike|versus|vs\.?|compared (?:to|with))\s+(?:the |a |plain )?$")
# A value that opens its clause and is then predicated ("4.0 is the default of random_page_cost", "bytes
# is what a bytea argument arrives as") is said of the subject its own clause names after it, not of one an
# earlier clause of the sentence named ("seq_page_cost defaults to 1.0, and 4.0 is the default of ...").
_CLAUSE_OPEN = re.compile(r"(?:^|[,:(]|\b(?:and|but|while|whereas)\b)\s*['\"(]*\s*$")
_PREDICATED = re.compile(r"['\")]*\s*(?:is|are|was|were)\b")
_CLAUSE_STOP = re.compile(r"[,;:]|\b(?:and|but|while|whereas)\b")
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?;](?=\s|$)|$)", re.MULTILINE)


def sentences(low: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(low)]


def sentence_at(low: str, at: int) -> tuple[int, int]:
    """The (start, end) of the sentence holding position ``at``; the whole text when none does."""
    return next(((s, e) for s, e in sentences(low) if s <= at < e), (0, len(low)))


# --- facts -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    """One alternative of a fact: a quantity, or a phrase (which may be a vocabulary's value)."""

    quantity: Quantity | None = None
    phrase: str = ""  # lower case, hyphens as spaces
    vocab: str = ""

    def key(self) -> str:
        return "q:" + self.quantity.key() if self.quantity else "p:" + self.phrase


def as_form(text: str) -> Form:
    low = lower(clean(text))
    qs = quantities_in(low)
    if len(qs) == 1 and qs[0].start == 0 and qs[0].end == len(low):
        return Form(quantity=qs[0])
    phrase = " ".join(loose(low).split())
    return Form(phrase=phrase, vocab=_ENTRY_VOCAB.get(phrase, ""))


def forms(fact: FactLike) -> tuple[Form, ...]:
    return (*(as_form(t) for t in fact.texts), *(Form(quantity=Quantity(float(n), "")) for n in fact.numbers))


def fact_keys(fact: FactLike) -> set[str]:
    """What makes two facts one: any alternative in common (quantities by dimension and value)."""
    return {f.key() for f in forms(fact)}


@dataclass(frozen=True)
class Claim:
    """A fact's occurrence in a text."""

    start: int
    end: int
    negated: bool


class Reading:
    """A text read once: its cleaned forms, quantities and vocabulary values."""

    def __init__(self, text: str, echoed: Echoes = NO_ECHOES) -> None:
        self.echoed = echoed  # the question's negated conditions, which the text may repeat (``echoes``)
        self.raw = clean(text)
        self.low = lower(self.raw)
        self.loose = loose(self.low)
        self.quantities = quantities_in(self.low)
        self.mentions = vocabulary_mentions(self.raw)

    def occurrences(self, form: Form) -> list[Claim]:
        if form.quantity is not None:
            spans = [(q.start, q.end) for q in self.quantities if q.same(form.quantity)]
        elif form.phrase:
            spans = [(m.start(), m.end()) for m in words(form.phrase).finditer(self.loose)]
        else:
            spans = []
        return [Claim(s, e, negated(self.low, s, e, self.echoed)) for s, e in spans]

    def claims(self, fact: FactLike) -> list[Claim]:
        found = [c for f in forms(fact) for c in self.occurrences(f)]
        # A word of a longer alternative shares its negation: "not guaranteed to be stable" negates "stable".
        return [
            Claim(c.start, c.end, True)
            if any(o.negated and o.start <= c.start and c.end <= o.end and o != c for o in found)
            else c
            for c in found
        ]

    def said_of(self, claim: Claim, subjects: Sequence[str], qualifiers: Qualifiers = frozenset()) -> str:
        """The subject (one of ``subjects``, lower case) the claim is said of, or "" when none is
        named in its sentence or the sentence pairs values up "respectively". A subject written
        before the word it qualifies in the question (``qualifiers``, from ``qualifiers``: "the SQL
        command") names the kind of thing asked for, not what the value is said of."""
        if not subjects:
            return ""
        sentence = sentence_at(self.low, claim.start)
        text = self.loose[sentence[0] : sentence[1]]
        if "respectively" in text:
            return ""
        at = sentence[0]
        spans = [(at + m.start(), at + m.end(), " ".join(m.group(0).split())) for m in words(*subjects).finditer(text)]
        # "faster than DELETE", "unlike VACUUM FULL": the thing compared with is not what the value is said of
        spans = [(s, e, n) for s, e, n in spans if not _COMPARED_WITH.search(self.loose[max(0, s - 12) : s])]
        spans = [(s, e, n) for s, e, n in spans if (n, _next_word(self.loose, e)) not in qualifiers]
        if _CLAUSE_OPEN.search(self.low[at : claim.start]) and _PREDICATED.match(self.low, claim.end):
            stop = _CLAUSE_STOP.search(self.low, claim.end, sentence[1])
            own = [n for s, e, n in spans if s >= claim.end and (stop is None or s < stop.start())]
            if own:
                return own[0]
        before = [n for s, e, n in spans if e <= claim.start]
        after = [n for s, e, n in spans if s >= claim.end]
        return before[-1] if before else after[0] if after else ""

    def names_before(self, claim: Claim) -> bool:
        """Whether the text names an identifier before the claim: the value is that thing's. The whole
        text, not the claim's sentence: a chunk of settings entries states each one's default alone
        ("create_slot (boolean) Specifies whether ... The default is true." is create_slot's)."""
        return bool(identifiers_in(self.low[: claim.start]))

    def near(self, claim: Claim, names: Iterable[str], window: int) -> bool:
        """Whether one of ``names`` is mentioned within ``window`` characters of the claim."""
        names = [n for n in names if n.strip()]
        lo, hi = max(0, claim.start - window), claim.end + window
        return bool(names) and words(*names).search(self.loose[lo:hi]) is not None


Qualifiers = frozenset[tuple[str, str]]
_WORD = re.compile(r"\s*([a-z]+)\b")  # the next word of lowered text
# Words that follow a name without being a kind of thing it qualifies ("DELETE and TRUNCATE").
_FUNCTION_WORDS = frozenset(
    "a an and are as at be but by can do does for from has have if in into is it its may must nor not of on "
    "or than that the then to vs was when where whether which while who will with without would".split()
)


def _next_word(low: str, end: int) -> str:
    m = _WORD.match(low, end)
    return m.group(1) if m else ""


def qualifiers(question: str, names: Iterable[str], keep: Iterable[str] = ()) -> Qualifiers:
    """Each of ``names`` (but those in ``keep``: what facts are said of) that the question writes
    right before a noun in lower case, with the word after it: "Which SQL command is dropuser a
    wrapper around" gives ("sql", "command"); "an XML-RPC int value" gives ("rpc", "int") and ("xml",
    "rpc"). An answer that repeats "the SQL command DROP ROLE" says DROP ROLE is an SQL command, not
    that it is SQL's (a PostgreSQL fresh set's right answer, read as said of SQL)."""
    raw, kept = clean(question), {k.lower() for k in keep}
    low = loose(lower(raw))
    names = [n for n in names if n.lower() not in kept]
    tokens = [(m.start(), m.group(0)) for m in re.finditer(r"[A-Za-z_][\w]*", raw)]
    out: set[tuple[str, str]] = set()
    for n in names:
        for m in words(n).finditer(low):
            after = [t for at, t in tokens if at >= m.end()]
            # a run of names qualifies the noun after it: "XML-RPC int"
            k = 0
            while k < len(after) and after[k].lower() in names:
                k += 1
            if k < len(after) and after[k].islower() and after[k] not in _FUNCTION_WORDS:
                out.add((" ".join(m.group(0).split()), after[0].lower()))
    return frozenset(out)


# What an answer says its value is made of or means, right after it: "`KEY_WRITE`, which is equivalent
# to `KEY_SET_VALUE` and `KEY_CREATE_SUB_KEY`" (both passes' right answers to a Python fresh set's
# question, read as a list of 4 values). The names in it describe the value; they are not candidates.
_ELABORATES = re.compile(r"[`'\"*]*\s*,?\s*\(?\s*(?:which (?:is|are|means?)|i\.e\.|that is|equivalent to|meaning)\b")


def elaborations(a: Reading, fact_forms: list[Form]) -> list[tuple[int, int]]:
    """The spans of ``a`` that elaborate a fact's value it states: from "which is equivalent to" (and
    the like) right after the value, to the end of that sentence."""
    spans = []
    for g in fact_forms:
        for c in a.occurrences(g):
            m = _ELABORATES.match(a.low, c.end)
            if m and not c.negated:
                end = sentence_at(a.low, c.start)[1]
                spans.append((m.end(), end))
    return spans


def fact_stated(fact: FactLike, text: str, echoed: Echoes = NO_ECHOES) -> bool:
    """Whether ``text`` states the fact (any alternative, not negated), whatever it is said of."""
    return any(not c.negated for c in Reading(text, echoed).claims(fact))


# Words that prose uses everywhere ("when none is specified", "all statements are tracked"): as a wrong
# value, one is stated only where it stands as a value: quoted or in code ('all', `None`), in capitals
# where prose has none ("ALL", or "None" mid-sentence for the wrong value None), or ending its clause
# after the verb that gives it or beside another value ("the default is all.", "it returns None", "set to
# none by default", "top or all.").
COMMON_WORDS = frozenset("all any both each either every everything neither none nothing nobody some several".split())
_GIVEN_BEFORE = re.compile(r"(?:\b(?:is|are|was|were|be|to|returns?|gives?|yields?|uses?|or|and)|[=:,])\s*$")
_VALUE_END = re.compile(r"\s*(?:[.,;:!?()]|$|by default\b|(?:or|and)\b)")


def value_stated(fact: FactLike, text: str, echoed: Echoes = NO_ECHOES) -> bool:
    """Whether ``text`` states the fact as ``fact_stated`` reads it, but a form that is one of
    COMMON_WORDS only where it stands as a value."""
    r = Reading(text.replace("`", "'"), echoed)  # code marks read as quotes, which clean() keeps
    for g in forms(fact):
        for c in r.occurrences(g):
            if c.negated:
                continue
            if g.phrase not in COMMON_WORDS:
                return True
            at = sentence_at(r.low, c.start)[0]
            word, at = r.raw[c.start : c.end], at + len(r.low[at:]) - len(r.low[at:].lstrip())
            marked = r.raw[c.start - 1 : c.start] in ("'", '"') and r.raw[c.end : c.end + 1] in ("'", '"')
            capitals = (len(word) > 1 and word.isupper()) or (
                word != word.lower() and c.start > at and word in fact.texts
            )
            given = _GIVEN_BEFORE.search(r.low[at : c.start]) and _VALUE_END.match(r.low, c.end)
            if marked or capitals or given:
                return True
    return False


def numbers_in(text: str) -> list[float]:
    """The numbers written in digits (units ignored; a number inside a word is none)."""
    low = lower(unicodedata.normalize("NFKC", text or "").translate(_TRANSLATE))
    return [float(m.group(0).replace(",", "")) for m in re.finditer(_DIGITS, low)]


def normalise(text: str) -> str:
    """Lower case, one kind of quote and dash, no markdown emphasis, single spaces."""
    return " ".join(lower(clean(text)).split())
