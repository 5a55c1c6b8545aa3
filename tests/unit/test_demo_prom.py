"""The demo's Prometheus config (e2e/demo/prom.py): the labels the operator's queries select on."""

from __future__ import annotations

import json

from agentfleet.controllers.autoscaler import AutoscalerSettings
from e2e.demo import prom


def test_scrape_config_reads_both_file_sd_lists(tmp_path):
    config = prom.scrape_config(tmp_path)
    files = {job["job_name"]: job["file_sd_configs"][0]["files"] for job in config["scrape_configs"]}
    assert files == {"replicas": [str(tmp_path / "replicas.json")], "workers": [str(tmp_path / "workers.json")]}
    json.dumps(config)  # written as JSON, which Prometheus reads as YAML


def test_targets_carry_the_labels_of_the_operators_default_matchers():
    s = AutoscalerSettings()
    replicas = prom.replica_targets("demo", "llama-8b", {"llama-8b-abc-0": "10.244.0.2:8000"})
    assert replicas == [
        {
            "targets": ["10.244.0.2:8000"],
            "labels": {"namespace": "demo", "pod": "llama-8b-abc-0", "modelreplicaset": "llama-8b"},
        }
    ]
    # The vLLM series add model_name themselves; the target gives the namespace and the replica label.
    assert 'namespace="{namespace}"' in s.matchers and s.replica_label in replicas[0]["labels"]
    workers = prom.worker_targets("demo", "support", {"support-worker-0": "127.0.0.1:9100"})
    labels = workers[0]["labels"]
    assert (
        s.worker_matchers.format(namespace="demo", name="support")
        == f'namespace="{labels["namespace"]}",agentfleet="{labels["agentfleet"]}"'
    )


def test_write_sd_replaces_the_file_whole(tmp_path):
    path = tmp_path / "replicas.json"
    prom.write_sd(path, [{"targets": ["a:1"], "labels": {}}])
    prom.write_sd(path, [])
    assert json.loads(path.read_text()) == []
    assert not list(tmp_path.glob("*.tmp"))
