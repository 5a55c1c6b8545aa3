"""The demo's kubelet part for the ingestion Job's pods (e2e/demo/kubelet.py, Demo.run_job_pods).

Issue 22: the demo ran the ingestion locally but never told the cluster, so the Job stayed
unfinished, the VectorIndex stayed Ingesting and the operator kept re-observing Milvus. What the
job controller does with the reported pods was checked on the e2e cluster (a pod patched
Succeeded is counted and the Job gets Complete; exit code 3 matches the podFailurePolicy and
fails it); here a small stand-in for the job controller drives the loop."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from e2e.demo import kubelet
from e2e.demo.driver import Demo

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
RECORD = '{"agentfleetIngest":{"worker":0,"workers":1,"state":"Succeeded","documentsDone":4,"chunks":9}}'


def pod(index: int, uid: str, phase: str = "Pending", message: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "metadata": {
            "name": f"docs-ingest-{index}-{uid}",
            "uid": uid,
            "labels": {kubelet.COMPLETION_INDEX: str(index), "job-name": "docs-ingest"},
        },
        "spec": {"containers": [{"name": "ingest", "image": "agentfleet:1"}]},
        "status": {"phase": phase},
    }
    if phase in kubelet.TERMINAL:  # as kwok's pod-complete stage leaves it
        terminated = {"exitCode": 0, "reason": "Completed", "startedAt": T0, "finishedAt": T0} | (
            {"message": message} if message else {}
        )
        p["status"]["containerStatuses"] = [
            {"name": "ingest", "image": "agentfleet:1", "state": {"terminated": terminated}}
        ]
    return p


def test_the_termination_message_is_the_file_or_for_a_failure_without_one_the_log_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(200))
    assert kubelet.termination_message(RECORD, log, 0, "FallbackToLogsOnError") == RECORD
    assert kubelet.termination_message("", log, 0, "FallbackToLogsOnError") == ""
    tail = kubelet.termination_message("", log, 1, "FallbackToLogsOnError")
    assert tail.splitlines()[0] == "line 120" and tail.endswith("line 199")
    assert kubelet.termination_message("", log, 1, "File") == ""
    assert len(kubelet.termination_message("x" * 5000, "", 0, None)) == kubelet.MESSAGE_LIMIT


def test_which_pods_the_demo_runs() -> None:
    assert kubelet.to_run(pod(0, "a"), set())
    assert not kubelet.to_run(pod(0, "a"), {"a"})
    assert kubelet.to_run(pod(0, "a", "Succeeded"), set())  # kwok finished it; nothing ran
    assert not kubelet.to_run(pod(0, "a", "Succeeded", RECORD), set())
    deleting = pod(0, "a")
    deleting["metadata"]["deletionTimestamp"] = T0
    assert not kubelet.to_run(deleting, set())


def test_a_pending_pod_gets_the_status_a_kubelet_writes_when_its_container_ends() -> None:
    ok = kubelet.terminated_status(pod(0, "a"), "ingest", kubelet.Outcome(0, RECORD, T0, T1))
    assert ok is not None
    st = ok["status"]
    assert st["phase"] == "Succeeded"
    assert st["containerStatuses"][0]["state"]["terminated"] == {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": T0,
        "finishedAt": T1,
        "message": RECORD,
    }
    assert {c["type"]: c["status"] for c in st["conditions"]} == {"Ready": "False", "ContainersReady": "False"}
    bad = kubelet.terminated_status(pod(0, "a"), "ingest", kubelet.Outcome(3, "milvus: no collection", T0, T1))
    assert bad is not None and bad["status"]["phase"] == "Failed"
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_a_pod_kwok_already_finished_only_gets_the_message() -> None:
    patch = kubelet.terminated_status(pod(0, "a", "Succeeded"), "ingest", kubelet.Outcome(0, RECORD, T0, T1))
    assert patch == {
        "status": {
            "containerStatuses": [
                {
                    "name": "ingest",
                    "image": "agentfleet:1",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": T0,
                            "finishedAt": T0,
                            "message": RECORD,
                        }
                    },
                }
            ]
        }
    }
    assert kubelet.terminated_status(pod(0, "a", "Succeeded"), "ingest", kubelet.Outcome(1, "boom", T0, T1)) is None


# --- the loop, with a stand-in job controller --------------------------------------------------------


class Cluster:
    """kubectl for one Indexed Job: a Failed pod is replaced until backoffLimit, exit code 3 fails
    the Job (its podFailurePolicy), all indexes Succeeded complete it."""

    def __init__(self, completions: int, backoff_limit: int = 3) -> None:
        self.completions, self.backoff_limit = completions, backoff_limit
        self.pods = {f"u{i}": pod(i, f"u{i}") for i in range(completions)}
        self.job: dict[str, Any] = {"metadata": {"name": "docs-ingest"}, "status": {}}
        self.uids = completions

    def _sync(self) -> None:
        if kubelet.finished(self.job):
            return
        phases = [(kubelet.completion_index(p), p["status"].get("phase"), p) for p in self.pods.values()]
        failed = [p for _, ph, p in phases if ph == "Failed"]
        exit3 = any(
            cs["state"]["terminated"]["exitCode"] == 3 for p in failed for cs in p["status"]["containerStatuses"]
        )
        done = {i for i, ph, _ in phases if ph == "Succeeded"}
        if exit3 or len(failed) > self.backoff_limit:
            self.job["status"] = {
                "failed": len(failed),
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "PodFailurePolicy" if exit3 else "BackoffLimitExceeded",
                    }
                ],
            }
        elif len(done) == self.completions:
            self.job["status"] = {"succeeded": len(done), "conditions": [{"type": "Complete", "status": "True"}]}
        else:
            live = {i for i, ph, _ in phases if ph not in ("Failed",)}
            for i in set(range(self.completions)) - live:
                self.uids += 1
                self.pods[f"u{self.uids}"] = pod(i, f"u{self.uids}")

    def json(self, *args: str) -> Any:
        self._sync()
        if args[2:4] == ("get", "pods"):
            return {"items": copy.deepcopy(list(self.pods.values()))}
        return copy.deepcopy(self.job)

    def get(self, *args: str) -> Any:
        return copy.deepcopy(next((p for p in self.pods.values() if p["metadata"]["name"] == args[-1]), None))

    def run(self, *args: str, **_: Any) -> None:
        assert args[:2] == ("patch", "-n") and "--subresource=status" in args
        target = next(p for p in self.pods.values() if p["metadata"]["name"] == args[4])
        target["status"].update(json.loads(args[-1])["status"])


def demo(cluster: Cluster) -> Demo:
    d = Demo.__new__(Demo)
    d.kc, d.ns = cluster, "ns"  # type: ignore[assignment]
    return d


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("e2e.demo.driver.time.sleep", lambda _: None)


def test_every_pod_is_run_once_and_reported_and_the_job_completes() -> None:
    cluster, ran = Cluster(2), []
    job = demo(cluster).run_job_pods(
        cluster.job, "ingest", lambda i: ran.append(i) or kubelet.Outcome(0, RECORD, T0, T1)
    )
    assert kubelet.finished(job) == "Complete" and sorted(ran) == [0, 1]
    assert all(
        p["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == RECORD for p in cluster.pods.values()
    )


def test_a_retryable_failure_is_run_again_in_the_replacement_pod() -> None:
    cluster, ran = Cluster(1), []

    def run(i: int) -> kubelet.Outcome:
        ran.append(i)
        return kubelet.Outcome(1 if len(ran) == 1 else 0, "", T0, T1)

    assert kubelet.finished(demo(cluster).run_job_pods(cluster.job, "ingest", run)) == "Complete"
    assert ran == [0, 0] and sorted(p["status"]["phase"] for p in cluster.pods.values()) == ["Failed", "Succeeded"]


def test_a_permanent_failure_ends_the_job_failed() -> None:
    cluster = Cluster(2)
    job = demo(cluster).run_job_pods(
        cluster.job, "ingest", lambda i: kubelet.Outcome(3 if i == 0 else 0, "no collection", T0, T1)
    )
    assert kubelet.finished(job) == "Failed" and job["status"]["conditions"][0]["reason"] == "PodFailurePolicy"
