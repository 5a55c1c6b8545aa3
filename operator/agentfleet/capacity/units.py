"""Units of the capacity model: Kubernetes quantities, parameter counts ("8B"), GiB for messages.

Bytes for memory, tokens for KV, seconds for time. GiB = 2**30; GPU memory labels are MiB."""

from __future__ import annotations

import re

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_PARAMS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMBT]?)$")
_PARAM_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


class CapacityError(ValueError):
    """A capacity input that cannot be interpreted."""


# --- Units -----------------------------------------------------------------------------------


def parse_quantity(q: str | int | float) -> float:
    """A Kubernetes quantity ("80Gi", "512Mi", "1.5", "500m") as a plain number."""
    if isinstance(q, int | float):
        return float(q)
    m = _QUANTITY.match(q.strip())
    if not m:
        raise CapacityError(f"not a Kubernetes quantity: {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def format_quantity(n_bytes: int) -> str:
    """Bytes as the shortest exact binary quantity (80Gi, 1536Mi, 1000)."""
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n_bytes and n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return str(n_bytes)


def parse_parameters(s: str | int) -> int:
    """A parameter count as written in spec.model.geometry.parameters: "8B", "70.6B", "135M"."""
    if isinstance(s, int):
        return s
    m = _PARAMS.match(s.strip())
    if not m:
        raise CapacityError(f"not a parameter count: {s!r} (write e.g. 8B, 70.6B or 135M)")
    return round(float(m.group(1)) * _PARAM_SUFFIX[m.group(2)])


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GiB:.1f} GiB"
