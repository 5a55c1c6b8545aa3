"""The GPU check (e2e/gpu/vllm_check.py) runs only where a GPU is lent; its pure parts run here, so a
renderer change that would break it shows up in CI."""

from e2e.gpu.vllm_check import READ_BY_THE_OPERATOR, conversation, manifest, rendered


def test_the_check_starts_vllm_with_the_operators_rendered_arguments_on_its_own_port() -> None:
    argv, env = rendered(manifest("/models/m", {"sql": "/models/lora-sql"}, 0.4), 18001)
    assert argv[:3] == ["vllm", "serve", "/models/m"]
    assert argv[argv.index("--port") + 1] == "18001"
    assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.4"
    assert "--enable-lora" in argv and "--enable-prefix-caching" in argv
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"  # runtime adapter loading needs it
    assert "--enable-lora" not in rendered(manifest("/models/m", {}, 0.4), 18001)[0]


def test_it_checks_every_metric_the_operator_reads_and_sends_growing_agent_histories() -> None:
    assert {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"} <= set(
        READ_BY_THE_OPERATOR
    )
    prompts = conversation(3, 4)
    assert [len(p) for p in prompts] == [2, 4, 6, 8]
    assert all(p[:2] == prompts[0] for p in prompts)  # one prefix per task, as an agent's history
