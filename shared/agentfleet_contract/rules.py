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


# scheme://user:password@host: credentials in a URL end up in status, Events, logs and the runtime
# ConfigMap, which anyone who may read the object can read.
USERINFO = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@"


def no_credentials(attr: str, message: str, *, alias: str | None = None) -> Rule:
    """An optional URL field, when set, carries no user:password@ part."""
    f = alias or to_camel(attr)
    rx = re.compile(USERINFO)
    return Rule(
        cel=f"!has(self.{f}) || !self.{f}.matches({_cel_str(USERINFO)})",
        message=message,
        check=lambda o: getattr(o, attr) is None or rx.search(getattr(o, attr)) is None,
        field_path=f".{f}",
    )


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
