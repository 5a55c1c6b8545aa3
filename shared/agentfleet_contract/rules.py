"""Validation rules declared once and enforced twice.

Each rule belongs to an object type and carries a CEL expression, rendered into that type's
schema as an ``x-kubernetes-validations`` entry so the API server refuses bad objects, and a
Python predicate with the same message, run by the pydantic models so the operator, the CLI and
unit tests refuse the same objects in the same words. Rules that need the stored object
(immutability) exist only in the schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.alias_generators import to_camel

Reason = Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    check: Callable[[Any], bool] | None = None
    field_path: str | None = None
    reason: Reason | None = None
    # False: the CEL belongs to another node of the schema (a list's items: item_validations), where
    # the API server estimates its cost per item; the object keeps only the Python check.
    in_schema: bool = True

    def schema(self) -> dict[str, str]:
        out = {"rule": self.cel, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def _cel_str(pattern: str) -> str:
    return "'" + pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"


def immutable(attr: str, path: str, why: str, *, optional: bool = False, alias: str | None = None) -> Rule:
    """Transition rule: the field keeps its stored value (and, if optional, its presence)."""
    f = alias or to_camel(attr)
    cel = f"self.{f} == oldSelf.{f}"
    if optional:
        cel = f"has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})"
    return Rule(cel=cel, message=f"{path} is immutable: {why}", field_path=f".{f}")


def matches(attr: str, pattern: str, message: str, *, alias: str | None = None) -> Rule:
    """An optional string field, when set, matches a regular expression (RE2 and Python agree on ours)."""
    f = alias or to_camel(attr)
    rx = re.compile(pattern)
    return Rule(
        cel=f"!has(self.{f}) || self.{f}.matches({_cel_str(pattern)})",
        message=message,
        check=lambda o: getattr(o, attr) is None or rx.search(getattr(o, attr)) is not None,
        field_path=f".{f}",
    )


# Credentials anywhere in a URL: scheme://user:password@host, or a query or fragment parameter
# whose name says it holds one (?password=, ?api_key=, ?access_token=, #access_token=, ?sig=, AWS's
# X-Amz-Credential/Signature, ...), in any case. A URL ends up in status, Events, logs, spans and the
# runtime ConfigMap, which anyone who may read the object can read; a Secret is read only with
# consent. One pattern, RE2 and Python alike, used by the CEL rule and the pydantic check.
# A parameter name is read after percent-decoding (redis-py logs in with ?pass%77ord=), and CEL has
# no decoder: so a parameter name holding a % is refused whatever it decodes to (no client
# needs one), which both checks can say with the one pattern.
CREDENTIALS_IN_URL = (
    r"(?i)^[a-z][a-z0-9+.-]*://[^/?#]*@"
    r"|[?#&;]([^=&#]*(passw|pwd|secret|token|apikey|api[-_]key|accesskey|access[-_]key|credential|signature)"
    r"[^=&#]*|auth|key|sig|pass)="
    r"|[?#&;][^=&#]*%[^=&#]*="
)
_CREDENTIALS_RX = re.compile(CREDENTIALS_IN_URL)
CREDENTIALS_WHAT = (
    "must not carry credentials (user:password@, or a query or fragment parameter such as password=, token=, "
    "access_token=, api_key= or secret=, or a percent-encoded parameter name such as pass%77ord=)"
)


def has_credentials(url: str) -> bool:
    """True when the URL carries a credential (CREDENTIALS_IN_URL)."""
    return _CREDENTIALS_RX.search(url) is not None


def credentials_message(path: str, ref: str) -> str:
    return f"{path} {CREDENTIALS_WHAT}: put the credential in a Secret and reference it with {ref}"


def no_credentials(attr: str, path: str, ref: str, *, alias: str | None = None, each: bool = False) -> Rule:
    """An optional URL field (or, with ``each``, every URL of an optional list) carries no
    credential anywhere (CREDENTIALS_IN_URL). ``ref`` names where the credential goes instead."""
    f = alias or to_camel(attr)
    rx = _cel_str(CREDENTIALS_IN_URL)
    if each:
        # On the list's items (item_validations): as one rule over a 1,000-item list of 2 KiB
        # strings the API server estimated 3.4x its per-rule cost budget and refused the CRD.
        return Rule(
            cel=f"!self.matches({rx})",
            message=credentials_message(path, ref),
            check=lambda o: not any(has_credentials(u) for u in (getattr(o, attr) or [])),
            field_path=f".{f}",
            in_schema=False,
        )
    return Rule(
        cel=f"!has(self.{f}) || !self.{f}.matches({rx})",
        message=credentials_message(path, ref),
        check=lambda o: getattr(o, attr) is None or not has_credentials(getattr(o, attr)),
        field_path=f".{f}",
    )


def item_validations(rule: Rule) -> dict[str, list[dict[str, str]]]:
    """json_schema_extra of a list's item type carrying ``rule`` (an ``each`` rule's CEL)."""
    return {"x-kubernetes-validations": [{"rule": rule.cel, "message": rule.message}]}


def each_matches(attr: str, pattern: str, message: str, *, negate: bool = False) -> Rule:
    """Every string of an optional list field matches (or, negated, none matches) a regex."""
    f = to_camel(attr)
    rx = re.compile(pattern)
    cond = f"!a.matches({_cel_str(pattern)})" if negate else f"a.matches({_cel_str(pattern)})"
    return Rule(
        cel=f"!has(self.{f}) || self.{f}.all(a, {cond})",
        message=message,
        check=lambda o: all((rx.search(a) is None) == negate for a in (getattr(o, attr) or [])),
        field_path=f".{f}",
    )


def violations(obj: Any, rules: tuple[Rule, ...]) -> list[str]:
    return [r.message for r in rules if r.check is not None and not r.check(obj)]
