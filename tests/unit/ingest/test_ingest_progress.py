"""Worker partitioning and the progress record the operator reads back."""

from __future__ import annotations

import json

import pytest
from agentfleet_contract.ingest_progress import (
    MARKER,
    TERMINATION_LIMIT,
    FailureRecord,
    WorkerProgress,
    latest,
    merge,
    parse_line,
    termination_message,
    to_line,
)

from agentfleet_runtime.ingest.partition import owned, owner, shares


def test_every_document_has_exactly_one_owner_and_shares_are_balanced() -> None:
    ids = [f"docs/{i}.md" for i in range(5000)]
    for workers in (1, 2, 3, 8):
        parts = [owned(ids, i, workers, key=lambda x: x) for i in range(workers)]
        assert sorted(x for p in parts for x in p) == sorted(ids)
        counts = shares(ids, workers)
        assert max(counts) - min(counts) < 0.1 * len(ids) / workers + 30
    assert owner("a.md", 4) == owner("a.md", 4)  # stable across calls (and processes: sha256)
    assert owner("docs/0.md", 3) == 0  # pinned: a change would move documents between workers


def test_worker_index_is_checked() -> None:
    with pytest.raises(ValueError):
        owned(["a"], 2, 2, key=lambda x: x)
    with pytest.raises(ValueError):
        owner("a", 0)


def _p(**kw) -> WorkerProgress:  # type: ignore[no-untyped-def]
    base = {"worker": 0, "workers": 2, "revision": "r1", "updated_at": "2026-01-01T00:00:00Z"}
    return WorkerProgress(**{**base, **kw})


def test_a_record_round_trips_through_a_log_line() -> None:
    p = _p(
        documents_total=10,
        documents_done=7,
        documents_failed=1,
        chunks=30,
        failures=(FailureRecord("x.bin", "binary content"),),
    )
    line = to_line(p)
    wire = json.loads(line)[MARKER]
    assert wire["documentsTotal"] == 10 and wire["failures"] == [{"document": "x.bin", "reason": "binary content"}]
    assert "error" not in wire and "failuresTruncated" not in wire
    assert parse_line(line) == p
    log = "\n".join(
        ["INFO starting", to_line(_p(chunks=1)), "Traceback (most recent call last):", line, "{not json", ""]
    )
    assert latest(log) == p
    assert parse_line('{"other": 1}') is None and latest("nothing here") is None


def test_termination_message_fits_the_kubelet_limit() -> None:
    failures = tuple(
        FailureRecord(f"some/long/path/document-{i:05d}.pdf", "binary content (PDF) " * 20) for i in range(100)
    )
    p = _p(state="Failed", documents_failed=100, failures=failures, error="boom " * 500)
    msg = termination_message(p)
    assert len(msg.encode()) <= TERMINATION_LIMIT
    back = latest(msg)
    assert back is not None and back.failures_truncated and 0 < len(back.failures) < 100
    assert back.documents_failed == 100 and back.state == "Failed" and back.error


def test_merge_sums_workers_and_keeps_the_latest_record() -> None:
    r0a = _p(worker=0, chunks=5, updated_at="2026-01-01T00:00:01Z")
    r0b = _p(
        worker=0, state="Succeeded", documents_total=4, documents_done=4, chunks=9, updated_at="2026-01-01T00:00:05Z"
    )
    r1 = _p(
        worker=1,
        documents_total=6,
        documents_done=2,
        documents_failed=1,
        chunks=3,
        failures=(FailureRecord("b", "empty document"),),
    )
    s = merge([r0b, r0a, r1], workers=2)
    assert (s.state, s.reported, s.documents_total, s.documents_done, s.documents_failed, s.chunks) == (
        "Running",
        2,
        10,
        6,
        1,
        12,
    )
    assert s.status() == {
        "documentsTotal": 10,
        "documentsDone": 6,
        "documentsFailed": 1,
        "chunks": 12,
        "failures": [{"document": "b", "reason": "empty document"}],
    }
    done = merge([r0b, _p(worker=1, state="Succeeded")], workers=2)
    assert done.state == "Succeeded"
    assert merge([r0b], workers=2).state == "Running"  # a worker not heard from yet
    failed = merge([r0b, _p(worker=1, state="Failed", error="milvus: down")], workers=2)
    assert failed.state == "Failed" and failed.errors == ("worker 1: milvus: down",)
    assert merge([r0b, _p(worker=1, revision="r0", state="Succeeded")], workers=2, revision="r1").reported == 1


def test_status_failures_are_capped_at_the_api_limit() -> None:
    many = tuple(FailureRecord(f"d{i}", "empty document") for i in range(100))
    s = merge([_p(worker=0, failures=many), _p(worker=1, failures=many)], workers=2)
    assert len(s.status()["failures"]) == 100
