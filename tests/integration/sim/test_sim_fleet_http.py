"""A fleet of 3 simulated replicas on real 127.0.0.1 ports, driven over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfleet_sim import FleetThread, ReplicaHandle, exposed_names, start_fleet
from e2e.harness.poll import poll

pytestmark = pytest.mark.integration


def client(handle: ReplicaHandle, timeout: float = 20.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=handle.base_url, api_key="sim", max_retries=0, timeout=timeout)


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def scrape(handle: ReplicaHandle) -> dict[str, float]:
    """Flattened samples: 'name{k=v,...}' -> value (le/finished_reason kept, model/engine dropped)."""
    status, body = http("GET", handle.url + "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            extra = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("model_name", "engine"))
            out[f"{s.name}{{{extra}}}" if extra else s.name] = s.value
    return out


@pytest.fixture
def fresh_faults(sim_fleet: FleetThread) -> Iterator[FleetThread]:
    yield sim_fleet
    for handle in sim_fleet.replicas:
        sim_fleet.configure(
            handle.index,
            error_rate=0.0,
            hang=False,
            slow_fraction=0.0,
            added_latency_s=0.0,
            draining=False,
            health_fail=False,
        )


def test_fleet_serves_three_replicas_on_distinct_ports(sim_fleet: FleetThread) -> None:
    ports = {h.port for h in sim_fleet.replicas}
    assert len(ports) == 3
    for handle in sim_fleet.replicas:
        assert handle.url.startswith("http://127.0.0.1:")
        assert http("GET", handle.url + "/health")[0] == 200
        models = client(handle).models.list()
        assert [m.id for m in models.data] == ["llama-8b"]


def test_chat_completion_usage_and_wrong_model(sim_fleet: FleetThread) -> None:
    handle = sim_fleet.replicas[0]
    c = client(handle)
    messages = [{"role": "system", "content": "You are terse. " * 30}, {"role": "user", "content": "List the pods."}]
    first = c.chat.completions.create(model="llama-8b", messages=messages, max_tokens=32)
    assert first.choices[0].message.role == "assistant" and first.choices[0].message.content
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage is not None and first.usage.prompt_tokens > 100 and 1 <= first.usage.completion_tokens <= 32
    again = c.chat.completions.create(model="llama-8b", messages=messages, max_tokens=32)
    assert again.choices[0].message.content == first.choices[0].message.content  # deterministic
    elsewhere = client(sim_fleet.replicas[1]).chat.completions.create(
        model="llama-8b", messages=messages, max_tokens=32
    )
    assert elsewhere.choices[0].message.content == first.choices[0].message.content  # same model, same answer
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens_details.cached_tokens > 100  # the repeat hit the prefix cache
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4", messages=messages)


def test_streaming_over_sse(sim_fleet: FleetThread) -> None:
    c = client(sim_fleet.replicas[1])
    messages = [{"role": "user", "content": "Stream twenty tokens please."}]
    stream = c.chat.completions.create(
        model="llama-8b",
        messages=messages,
        max_tokens=20,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    text = "".join((ch.choices[0].delta.content or "") for ch in chunks if ch.choices)
    finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finish == ["length"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 20
    full = c.chat.completions.create(
        model="llama-8b", messages=messages, max_tokens=20, extra_body={"ignore_eos": True}
    )
    assert text == full.choices[0].message.content


def test_completions_endpoint(sim_fleet: FleetThread) -> None:
    c = client(sim_fleet.replicas[2])
    done = c.completions.create(model="llama-8b", prompt="The operator reconciles", max_tokens=8)
    assert done.object == "text_completion" and done.choices[0].text
    assert done.usage is not None and done.usage.completion_tokens <= 8
    tokens = c.completions.create(
        model="llama-8b", prompt=[11, 12, 13, 14], max_tokens=3, extra_body={"ignore_eos": True}
    )
    assert tokens.usage is not None and tokens.usage.prompt_tokens == 4 and tokens.usage.completion_tokens == 3


def test_metrics_counters_move_with_traffic(sim_fleet: FleetThread) -> None:
    handle = sim_fleet.replicas[2]
    status, body = http("GET", handle.url + "/metrics")
    families = {
        f.name + ("_total" if f.type == "counter" else ""): f.type
        for f in text_string_to_metric_families(body.decode())
    }
    assert exposed_names() <= set(families)
    before = scrape(handle)
    c = client(handle)
    history: list[dict[str, Any]] = [{"role": "system", "content": "Agent rules. " * 100}]
    for step in range(4):
        history.append({"role": "user", "content": f"step {step}: run the tool"})
        reply = c.chat.completions.create(model="llama-8b", messages=history, max_tokens=10)  # type: ignore[arg-type]
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        history.append({"role": "tool", "content": f"tool output {step} " * 20})
    after = scrape(handle)

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    finished = delta("vllm:request_success_total{finished_reason=stop}") + delta(
        "vllm:request_success_total{finished_reason=length}"
    )
    assert finished == 4
    assert delta("vllm:prompt_tokens_total") > 4 * 100
    assert delta("vllm:generation_tokens_total") >= 4
    assert delta("vllm:prefix_cache_queries_total") == delta("vllm:prompt_tokens_total")
    assert delta("vllm:prefix_cache_hits_total") > 0.5 * delta("vllm:prefix_cache_queries_total")  # growing history
    assert delta("vllm:time_to_first_token_seconds_count") == 4
    assert delta("vllm:e2e_request_latency_seconds_count") == 4
    assert delta("vllm:e2e_request_latency_seconds_bucket{le=+Inf}") == 4
    assert after["vllm:num_requests_running"] == 0 and after["vllm:kv_cache_usage_perc"] == 0.0


def test_fault_injection_over_the_admin_endpoint(fresh_faults: FleetThread) -> None:
    handle = fresh_faults.replicas[0]
    c = client(handle, timeout=1.5)
    msgs = [{"role": "user", "content": "hello"}]
    status, body = http("POST", handle.url + "/admin/config", {"error_rate": 1.0})
    assert status == 200 and json.loads(body)["error_rate"] == 1.0
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="llama-8b", messages=msgs, max_tokens=4)  # type: ignore[arg-type]
    assert http("POST", handle.url + "/admin/config", {"error_rate": 5})[0] == 400
    assert http("POST", handle.url + "/admin/config", {"nonsense": 1})[0] == 400

    http("POST", handle.url + "/admin/config", {"error_rate": 0.0, "hang": True})
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="llama-8b", messages=msgs, max_tokens=4)  # type: ignore[arg-type]
    assert http("GET", handle.url + "/health")[0] == 200

    http("POST", handle.url + "/admin/config", {"hang": False, "added_latency_s": 0.4})
    t0 = time.monotonic()
    c.chat.completions.create(model="llama-8b", messages=msgs, max_tokens=4)  # type: ignore[arg-type]
    assert time.monotonic() - t0 >= 0.4

    http("POST", handle.url + "/admin/config", {"added_latency_s": 0.0, "slow_fraction": 1.0, "slow_factor": 6.0})
    slow_c = client(handle, timeout=20)
    t0 = time.monotonic()
    slow_c.chat.completions.create(model="llama-8b", messages=msgs, max_tokens=40, extra_body={"ignore_eos": True})  # type: ignore[arg-type]
    slow = time.monotonic() - t0
    http("POST", handle.url + "/admin/config", {"slow_fraction": 0.0})
    t0 = time.monotonic()
    slow_c.chat.completions.create(model="llama-8b", messages=msgs, max_tokens=40, extra_body={"ignore_eos": True})  # type: ignore[arg-type]
    normal = time.monotonic() - t0
    assert slow > 3 * normal


def test_drain_refuses_new_calls_and_finishes_running_ones(fresh_faults: FleetThread) -> None:
    import threading

    handle = fresh_faults.replicas[1]
    result: dict[str, Any] = {}

    def long_call() -> None:
        r = client(handle).chat.completions.create(
            model="llama-8b",
            messages=[{"role": "user", "content": "long"}],
            max_tokens=400,
            extra_body={"ignore_eos": True},
        )
        result["finish"] = r.choices[0].finish_reason

    worker = threading.Thread(target=long_call)
    worker.start()
    poll(lambda: fresh_faults.state(handle.index)["inflight"], 5, "the long call to be in flight", 0.01)
    status, body = http("POST", handle.url + "/admin/drain")
    assert status == 200 and json.loads(body)["inflight"] == 1
    assert http("GET", handle.url + "/health")[0] == 503
    with pytest.raises(openai.APIStatusError) as err:
        client(handle).chat.completions.create(
            model="llama-8b", messages=[{"role": "user", "content": "new"}], max_tokens=4
        )
    assert err.value.status_code == 503
    worker.join(20)
    assert result == {"finish": "length"}
    assert json.loads(http("GET", handle.url + "/admin/state")[1])["inflight"] == 0


def test_client_disconnect_aborts_the_engine_request(sim_fleet: FleetThread) -> None:
    handle = sim_fleet.replicas[1]
    before = scrape(handle).get("vllm:request_success_total{finished_reason=abort}", 0.0)
    stream = client(handle).chat.completions.create(
        model="llama-8b",
        messages=[{"role": "user", "content": "abandon me"}],
        max_tokens=2000,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    next(iter(stream))
    stream.close()
    poll(
        lambda: scrape(handle).get("vllm:request_success_total{finished_reason=abort}", 0.0) == before + 1,
        5,
        "the abandoned stream to be aborted",
        0.05,
        fail=pytest.fail,
    )
    assert scrape(handle)["vllm:num_requests_running"] == 0


def test_startup_delay_and_legacy_metric_names(fast_engine: dict[str, Any]) -> None:
    with start_fleet(1, engine=fast_engine, startup_seconds=1.0, metrics_flavor="legacy") as fleet:
        (handle,) = fleet.replicas
        assert http("GET", handle.url + "/health")[0] == 503
        deadline = time.monotonic() + 10
        while http("GET", handle.url + "/health")[0] != 200:
            assert time.monotonic() < deadline, "replica never became ready"
            time.sleep(0.1)
        names = {k.split("{")[0] for k in scrape(handle)}
        assert "vllm:gpu_cache_usage_perc" in names and "vllm:gpu_prefix_cache_hits_total" in names
        assert "vllm:kv_cache_usage_perc" not in names and "vllm:prefix_cache_hits_total" not in names


def test_cli_prints_endpoints_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentfleet_sim",
            "--replicas",
            "2",
            "--base-port",
            "0",
            "--model",
            "llama-8b",
            "--kv-tokens",
            "70000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        assert "2 replica(s) of llama-8b" in header, header
        urls = [proc.stdout.readline().split()[1] for _ in range(2)]
        assert all(u.startswith("http://127.0.0.1:") for u in urls) and len(set(urls)) == 2
        for url in urls:
            assert http("GET", url + "/health")[0] == 200
            status, body = http("GET", url + "/v1/models")
            assert status == 200 and json.loads(body)["data"][0]["id"] == "llama-8b"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
