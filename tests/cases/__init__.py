"""The invalid-object table shared by the unit tier (pydantic) and the e2e tier (API server)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def contains(whole: Any, part: Any) -> bool:
    """Every value in part is present in whole (recursively; lists element by element)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and contains(whole[k], v) for k, v in part.items())
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(whole) == len(part)
            and all(contains(w, p) for w, p in zip(whole, part, strict=True))
        )
    return whole == part


@dataclass(frozen=True)
class InvalidCase:
    id: str
    kind: str
    obj: dict[str, Any]
    expect: str
    python: str
    update: dict[str, Any] | None = None


def invalid_cases() -> list[InvalidCase]:
    doc = yaml.safe_load((HERE / "invalid.yaml").read_text())
    out = []
    for c in doc["cases"]:
        base = {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": c["kind"],
            "metadata": {"name": c["id"]},
            **copy.deepcopy(doc["bases"][c["kind"]]),
        }
        out.append(
            InvalidCase(
                id=c["id"],
                kind=c["kind"],
                obj=merge_patch(base, c["patch"]),
                expect=c["expect"],
                python=c["python"],
                update=c.get("update"),
            )
        )
    return out
