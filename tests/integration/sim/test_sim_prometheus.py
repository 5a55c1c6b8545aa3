"""A real Prometheus (Debian's package) scrapes the simulated replicas; PromQL over vLLM's
histograms returns data. This is the setup the autoscaler's tests build on."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from agentfleet_sim import FleetThread

pytestmark = pytest.mark.integration


def _traffic(fleet: FleetThread, stop: threading.Event) -> None:
    clients = [openai.OpenAI(base_url=h.base_url, api_key="sim", max_retries=0, timeout=10) for h in fleet.replicas]
    i = 0
    while not stop.is_set():
        c = clients[i % len(clients)]
        messages = [
            {"role": "system", "content": "Shared agent instructions. " * 20},
            {"role": "user", "content": f"task {i % 5} step"},
        ]
        c.chat.completions.create(model="llama-8b", messages=messages, max_tokens=8)  # type: ignore[arg-type]
        i += 1
        time.sleep(0.05)


def test_prometheus_scrapes_replicas_and_histogram_queries_work(
    sim_fleet: FleetThread, prometheus_server: Callable[..., Any]
) -> None:
    targets = [f"127.0.0.1:{h.port}" for h in sim_fleet.replicas]
    prom = prometheus_server(targets)
    up = prom.wait_for('up{job="sim"}', lambda r: len(r) == 3 and all(x["value"][1] == "1" for x in r))
    assert {x["metric"]["instance"] for x in up} == set(targets)

    stop = threading.Event()
    worker = threading.Thread(target=_traffic, args=(sim_fleet, stop), daemon=True)
    worker.start()
    try:
        p90 = prom.wait_for(
            "histogram_quantile(0.9, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[5s])))",
            lambda r: len(r) == 1 and math.isfinite(float(r[0]["value"][1])),
            timeout=45,
        )
        assert 0 < float(p90[0]["value"][1]) < 1.0
        # Goodput-style share under an SLO that is a bucket edge, per replica.
        share = prom.wait_for(
            'sum by (instance) (rate(vllm:time_to_first_token_seconds_bucket{le="0.25"}[5s]))'
            " / sum by (instance) (rate(vllm:time_to_first_token_seconds_count[5s]))",
            lambda r: len(r) == 3 and all(math.isfinite(float(x["value"][1])) for x in r),
            timeout=30,
        )
        assert all(0.0 <= float(x["value"][1]) <= 1.0 for x in share)
        hits = prom.query("sum(vllm:prefix_cache_hits_total)")
        assert hits and float(hits[0]["value"][1]) > 0
        labels = prom.query("vllm:kv_cache_usage_perc")
        assert {x["metric"]["model_name"] for x in labels} == {"llama-8b"} and {
            x["metric"]["engine"] for x in labels
        } == {"0"}
    finally:
        stop.set()
        worker.join(10)
