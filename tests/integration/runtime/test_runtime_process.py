"""The entry points as real processes: `python -m agentfleet_runtime worker|api`, SIGTERM drain,
health endpoints and Prometheus metrics."""

from __future__ import annotations

import signal
import sys
import time
import urllib.request

import pytest
import yaml
from agentfleet_contract.runtime_config import RuntimeConfig
from runtime_helpers import arun, start_effects, start_scripted_model, start_worker, store_for, submit, wait_ended

from e2e.harness.ports import free_port, wait_http
from e2e.harness.procs import Proc

pytestmark = pytest.mark.integration


def get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_sigterm_drains_and_metrics_are_exported(redis_server, fleet, tmp_path, procs):
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    mport = free_port()
    doc = {
        "fleet": fleet,
        "redisUrl": redis_server.url,
        "model": {"baseUrl": model_url},
        "worker": {"concurrency": 20, "metricsPort": mport, "shutdownGraceSeconds": 3},
        "retry": {"visibilityTimeoutSeconds": 30},
        "pricing": {"inputPerMillionTokens": "2", "outputPerMillionTokens": "4"},
        "tools": [{"name": "effect", "type": "HTTP", "http": {"url": effects_url + "/effect", "sideEffects": True}}],
    }
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = RuntimeConfig.model_validate(doc)
    w1 = start_worker(procs, path, tmp_path, "w1")
    wait_http(f"http://127.0.0.1:{mport}/readyz", 30, w1, interval=0.1)
    assert get(f"http://127.0.0.1:{mport}/healthz")[0] == 200

    async def submit_all():
        store = store_for(config)
        ids = [await submit(store, config, f"drain {i} #steps=8 #tool=effect #latency=0.3") for i in range(10)]
        done_one = await submit(store, config, "quick one")
        await wait_ended(store, [done_one], 20)
        await store.r.aclose()
        return ids

    ids = arun(submit_all())
    time.sleep(1.0)
    status, text = get(f"http://127.0.0.1:{mport}/metrics")
    assert status == 200
    for name in (
        'agentfleet_tasks_total{outcome="final_answer"} 1.0',
        "agentfleet_tasks_in_flight 10.0",
        "agentfleet_model_call_duration_seconds_bucket",
        'agentfleet_tokens_total{direction="input"}',
        'agentfleet_cost_total{currency="USD"}',
        'agentfleet_tool_calls_total{outcome="ok",tool="effect"}',
        "agentfleet_step_overhead_seconds_bucket",
        "agentfleet_queue_depth",
        "agentfleet_task_steps_bucket",
        'agentfleet_tool_breaker_state{tool="effect"} 0.0',
    ):
        assert name in text, name
    t0 = time.monotonic()
    w1.proc.send_signal(signal.SIGTERM)
    w1.proc.wait(15)
    took = time.monotonic() - t0
    assert w1.proc.returncode == 0 and took < 6, (w1.proc.returncode, took)
    w2 = start_worker(procs, path, tmp_path, "w2")

    async def finish():
        store = store_for(config)
        states = await wait_ended(store, ids, 60)
        recs = [(await store.get(i))[0] for i in ids]
        steps = [[s.n for s in await store.steps(i)] for i in ids]
        await store.r.aclose()
        return states, recs, steps

    states, recs, steps = arun(finish())
    assert {s["reason"] for s in states.values()} == {"final_answer"}
    # Released, not failed: picked up at once by w2 (no visibility timeout wait), no failure counted.
    assert all(r.failures == 0 and r.attempts == 2 for r in recs), [(r.failures, r.attempts) for r in recs]
    assert all(s == list(range(8)) for s in steps)
    assert w2.alive()
    logs = (tmp_path / "w1.log").read_text()
    assert '"msg": "draining: no new tasks; running steps get the grace period"' in logs
    assert '"task_id"' in logs and '"step"' in logs


def test_api_process_serves_health_and_refuses_without_token(redis_server, fleet, tmp_path, procs):
    port = free_port()
    (tmp_path / "tokens").write_text("tok\n")
    path = tmp_path / "runtime.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "fleet": fleet,
                "redisUrl": redis_server.url,
                "api": {"port": port, "tokensFile": str(tmp_path / "tokens")},
            }
        )
    )
    api = Proc([sys.executable, "-m", "agentfleet_runtime", "api", "--config", str(path)], log=tmp_path / "api.log")
    procs.append(api)
    wait_http(f"http://127.0.0.1:{port}/readyz", 30, api, interval=0.1)
    assert get(f"http://127.0.0.1:{port}/v1/deadletters")[0] == 401
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/deadletters", headers={"Authorization": "Bearer tok"})
    with urllib.request.urlopen(req, timeout=2) as r:
        assert r.status == 200
    api.proc.send_signal(signal.SIGTERM)
    assert api.proc.wait(15) == 0
