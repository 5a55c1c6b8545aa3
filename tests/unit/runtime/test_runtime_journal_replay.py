"""The guard of issue 77's answering refactor: every stored evaluation journal (docs/results/data) replays
through the answer policies and scores exactly as it did at 54b65e7, for every policy and shipped variant
(tests/unit/runtime/journal_replay.py says how; journal_replay.json holds the figures that code computed
then). A changed ending names the journal, the variant and the records."""

from __future__ import annotations

import json

import pytest

from tests.unit.runtime import journal_replay

EXPECTED = json.loads(journal_replay.EXPECTED.read_text())


def test_every_stored_journal_is_guarded():
    assert sorted(EXPECTED) == sorted(name for name, _, _ in journal_replay.journals())
    records = sum(len(j["records"]) for j in EXPECTED.values())
    assert records == 2_718  # the task records of the 19 journals
    replayed = sum(1 for j in EXPECTED.values() for e in j["replayed"]["Cascade"] if e)
    assert replayed >= 900  # every agent pass's task with passages


@pytest.mark.parametrize("journal", sorted(EXPECTED))
def test_a_stored_journal_replays_and_scores_as_before(journal):
    expected = EXPECTED[journal]
    got = journal_replay.compute(only=journal)[journal]
    assert got["records"] == expected["records"]
    moved = [r for r, a, b in zip(got["records"], got["stored"], expected["stored"], strict=True) if a != b]
    assert not moved, f"{journal}: the stored outcomes score differently: {moved[:10]}"
    for variant in sorted(set(expected["replayed"]) | set(got["replayed"])):
        assert variant in got["replayed"], f"{variant}: no longer replayed (a deleted variant leaves the figures too)"
        assert variant in expected["replayed"], f"{variant}: no figures (write them at the base commit)"
        pairs = zip(got["records"], got["replayed"][variant], expected["replayed"][variant], strict=True)
        changed = [f"{r}: {b} -> {a}" for r, a, b in pairs if a != b]
        assert not changed, f"{journal} {variant}: {len(changed)} endings changed: {changed[:10]}"
