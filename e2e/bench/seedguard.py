"""Seeds a benchmark tunes on and seeds it scores, apart by construction.

A figure is honest only if nothing was chosen by looking at the runs it is computed from. Each
benchmark that tunes names its tuning seeds and its retired seeds (seeds that were scored and then
used for a design decision, so they can no longer be scored): a scored run refuses both, and a
tuning run refuses any seed outside the tuning set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class SeedError(ValueError):
    """A run asked for seeds its purpose may not use; the message names them and what to do."""


def parse_seeds(text: str) -> list[int]:
    """'1-10' or '1,2,5' or '1-3,7' -> the seeds, in order."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def _spans(seeds: Iterable[int]) -> str:
    """{1, 2, 3, 7} -> '1-3,7'."""
    spans: list[list[int]] = []
    for x in sorted(set(seeds)):
        if spans and spans[-1][1] == x - 1:
            spans[-1][1] = x
        else:
            spans.append([x, x])
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in spans)


@dataclass(frozen=True)
class SeedBook:
    """tuning: the only seeds a tuning run may use; retired: scored once, then looked at to decide."""

    tuning: frozenset[int]
    retired: frozenset[int] = frozenset()

    def scored(self, seeds: Iterable[int]) -> list[int]:
        seeds = list(seeds)
        if bad := set(seeds) & self.tuning:
            raise SeedError(f"seeds {_spans(bad)} are tuning seeds: score on others (tuning runs take --tune)")
        if bad := set(seeds) & self.retired:
            raise SeedError(
                f"seeds {_spans(bad)} are retired (a design decision looked at their scores): score on fresh seeds"
            )
        return seeds

    def tuned(self, seeds: Iterable[int]) -> list[int]:
        seeds = list(seeds)
        if bad := set(seeds) - self.tuning:
            raise SeedError(
                f"seeds {_spans(bad)} are not tuning seeds ({_spans(self.tuning)}): a seed tuned on can no longer "
                "be scored"
            )
        return seeds
