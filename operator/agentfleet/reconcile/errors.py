"""Validation errors as one line a user can act on: the field path, then what is wrong."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(e: ValidationError, *, prefix: str = "", skip: int = 0, limit: int = 2000) -> str:
    """``spec.engine.port: Input should be ...; ...``.

    ``prefix`` is put before each path and ``skip`` leading path parts are dropped, so errors of a
    whole object (``spec.x``) and of its spec alone (``x``) read the same."""
    parts = []
    for err in e.errors():
        path = ".".join(str(p) for p in err["loc"][skip:])
        parts.append(f"{prefix}{path}: {err['msg']}" if path else f"{prefix.rstrip('.')}: {err['msg']}")
    return "; ".join(parts)[:limit]
