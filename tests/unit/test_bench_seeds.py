"""The benchmarks' seed guard: tuning seeds and scored seeds apart by construction."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.bench.seedguard import SeedBook, SeedError, parse_seeds

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "e2e" / "bench"
BOOK = SeedBook(tuning=frozenset(range(1001, 1010)), retired=frozenset({1, 2, 3, 7}))


def test_seed_lists_parse() -> None:
    assert parse_seeds("1-3,7") == [1, 2, 3, 7]
    assert parse_seeds("41") == [41]


def test_a_scored_run_refuses_tuning_and_retired_seeds() -> None:
    assert BOOK.scored([41, 42]) == [41, 42]
    with pytest.raises(SeedError, match="1001 are tuning seeds"):
        BOOK.scored([41, 1001])
    with pytest.raises(SeedError, match="1-3,7 are retired"):
        BOOK.scored([1, 2, 3, 7, 41])


def test_a_tuning_run_refuses_any_other_seed() -> None:
    assert BOOK.tuned([1001, 1002]) == [1001, 1002]
    with pytest.raises(SeedError, match="41 are not tuning seeds"):
        BOOK.tuned([1001, 41])


def test_every_benchmark_that_tunes_guards_its_seeds() -> None:
    tuners = [p for p in BENCH.glob("*.py") if re.search(r'add_argument\("--tune\b', p.read_text())]
    assert tuners, "no benchmark tunes? the pattern no longer finds them"
    for path in tuners:
        text = path.read_text()
        assert "SeedBook(" in text or "TUNING_SEEDS" in text, f"{path.name} tunes but guards no seeds"


def test_the_hedging_bench_refuses_a_retired_seed_before_running() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "e2e.bench.hedging_bench", "--seeds", "21-40", "--out", "/nonexistent"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "21-40 are retired" in proc.stderr, proc.stderr[-2000:]
