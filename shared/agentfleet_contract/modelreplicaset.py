"""ModelReplicaSet: a fleet of vLLM replicas serving one model."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from agentfleet_contract.common import (
    QUANTITY,
    Condition,
    Model,
    SecretKeyRef,
    SleepStatus,
    Toleration,
    conditions_field,
    default_obj,
)
from agentfleet_contract.pod_template import POD_TEMPLATE_DESCRIPTION, ModelReplicaSetPodTemplate
from agentfleet_contract.rules import Rule, each_matches, immutable, matches, no_credentials

# Flags the operator renders from typed fields; setting them again in extraArgs would fight them.
MANAGED_FLAGS = (
    "model",
    "served-model-name",
    "tensor-parallel-size",
    "pipeline-parallel-size",
    "max-model-len",
    "max-num-seqs",
    "gpu-memory-utilization",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "kv-cache-dtype",
    "dtype",
    "distributed-executor-backend",
    "host",
    "port",
)
_MANAGED_RE = "^(--(" + "|".join(MANAGED_FLAGS) + ")|-tp|-pp)(=.*)?$"
MAX_GPUS_PER_REPLICA = 128


class ModelGeometry(Model):
    parameters: str = Field(
        max_length=16,
        pattern=r"^[0-9]+(\.[0-9]+)?[KMBT]?$",
        description="Parameter count, e.g. 8B, 70B or 135M; sizes the weights.",
    )
    layers: int = Field(ge=1, le=1024, description="Number of transformer layers.")
    kv_heads: int = Field(ge=1, le=1024, description="Key/value heads per layer (after grouped-query attention).")
    head_dim: int = Field(ge=1, le=4096, description="Dimension of one attention head.")
    weight_bits: Literal[4, 8, 16, 32] = Field(
        default=16, description="Bits per weight as loaded: 16 for fp16/bf16, 8 for fp8/int8, 4 for int4."
    )


class ModelSource(Model):
    rules = (
        no_credentials(
            "name",
            "spec.model.name",
            "spec.model.hfTokenSecretRef (a Hugging Face token, the Secret labelled agentfleet.io/consent=true)",
        ),
        immutable(
            "served_name",
            "spec.model.servedName",
            "clients address the model by it; create a new ModelReplicaSet to serve another name",
            optional=True,
        ),
    )

    name: str = Field(
        min_length=1,
        max_length=512,
        description=(
            "Model to load: a Hugging Face repo id (org/name) or a URI (s3://, gs://, pvc://claim/path, /abs/path)."
        ),
    )
    served_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Name clients put in the OpenAI API's model field; defaults to spec.model.name.",
    )
    revision: str | None = Field(
        default=None, max_length=128, description="Branch, tag or commit of the model repository to load."
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token for gated models; exposed to vLLM as HF_TOKEN.",
    )
    geometry: ModelGeometry | None = Field(
        default=None,
        description="Model shape for capacity sizing; omit for known families, which are looked up by name.",
    )


class EnvVar(Model):
    name: str = Field(max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")
    value: str = Field(default="", max_length=4096, description="Environment variable value.")


class ModelCache(Model):
    claim_name: str | None = Field(
        default=None,
        max_length=253,
        description=(
            "PersistentVolumeClaim holding downloaded weights, mounted read-write into the replicas and the fill Job; "
            "it must carry the label agentfleet.io/consent=true. Unset uses an emptyDir per pod."
        ),
    )
    size_limit: str = Field(
        default="200Gi", max_length=32, pattern=QUANTITY, description="Size limit of the emptyDir model cache."
    )
    fill: bool = Field(
        default=True,
        description=(
            "With claimName and a Hugging Face model: a Job fills the claim once per model revision and new replicas "
            "start after it, "
            "loading from the claim; false lets each replica download into it."
        ),
    )


class Engine(Model):
    rules = (
        Rule(
            cel=f"self.tensorParallelSize * self.pipelineParallelSize <= {MAX_GPUS_PER_REPLICA}",
            message=(
                "spec.engine.tensorParallelSize x spec.engine.pipelineParallelSize must be at most "
                f"{MAX_GPUS_PER_REPLICA} GPUs per replica: lower one of them"
            ),
            check=lambda e: e.tensor_parallel_size * e.pipeline_parallel_size <= MAX_GPUS_PER_REPLICA,
        ),
        each_matches(
            "extra_args",
            _MANAGED_RE,
            "spec.engine.extraArgs must not repeat a flag rendered from a typed field (model, tensor/pipeline "
            "parallel size, "
            "max model len, max num seqs, GPU memory utilization, prefix caching, KV-cache dtype, dtype, distributed "
            "executor backend, host, port): set that field instead",
            negate=True,
        ),
        Rule(
            cel="self.device != 'CPU' || (self.tensorParallelSize == 1 && self.pipelineParallelSize == 1)",
            message=(
                "spec.engine.device CPU runs each replica as one vLLM process on one node: set "
                "spec.engine.tensorParallelSize and spec.engine.pipelineParallelSize to 1"
            ),
            check=lambda e: e.device != "CPU" or (e.tensor_parallel_size == 1 and e.pipeline_parallel_size == 1),
            field_path=".device",
        ),
        Rule(
            cel="self.device != 'CPU' || !has(self.env) || !self.env.exists(v, v.name == 'VLLM_CPU_KVCACHE_SPACE')",
            message=(
                "spec.engine.env must not set VLLM_CPU_KVCACHE_SPACE with spec.engine.device CPU: the operator sizes "
                "the KV cache from spec.engine.memory; change spec.engine.memory instead"
            ),
            check=lambda e: e.device != "CPU" or all(v.name != "VLLM_CPU_KVCACHE_SPACE" for v in e.env),
            field_path=".env",
        ),
    )

    device: Literal["GPU", "CPU"] = Field(
        default="GPU",
        description=(
            "What replicas compute on: GPU, or CPU (vLLM's CPU build; KV cache sized from spec.engine.memory, "
            "no GPU requested)."
        ),
    )
    image: str = Field(
        default="vllm/vllm-openai:v0.26.0",
        max_length=512,
        description=(
            "vLLM OpenAI-server container image. Verified: vLLM v0.26.0 (its parser accepts the rendered arguments; "
            "every metric the "
            "operator reads exists with the expected type, labels and buckets). Other versions and vLLM-compatible "
            "engines work if they "
            "accept the same arguments and export the vllm:* metrics."
        ),
    )
    tensor_parallel_size: int = Field(
        default=1,
        ge=1,
        le=128,
        description="GPUs that split each layer (vLLM --tensor-parallel-size); kept inside one NVLink domain.",
    )
    pipeline_parallel_size: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Pipeline stages (vLLM --pipeline-parallel-size); stages may span nodes of one topology block.",
    )
    max_model_len: int | None = Field(
        default=None,
        ge=128,
        le=10_000_000,
        description="Context length in tokens (vLLM --max-model-len); unset uses the model's maximum.",
    )
    max_num_seqs: int = Field(
        default=256, ge=1, le=65536, description="Most sequences batched at once (vLLM --max-num-seqs)."
    )
    max_loras: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "With spec.adapters: LoRA adapters held in GPU memory at once per replica (vLLM --max-loras); others are "
            "swapped in."
        ),
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description=(
            "Fraction of each GPU's memory vLLM may use, in (0, 1] (vLLM --gpu-memory-utilization); not rendered "
            "with device CPU."
        ),
    )
    enable_prefix_caching: bool = Field(
        default=True,
        description="Reuse KV cache across requests sharing a prefix; agents re-send their history, so keep it on.",
    )
    kv_cache_dtype: Literal["auto", "fp8", "fp8_e4m3", "fp8_e5m2"] = Field(
        default="auto", description="KV-cache element type (vLLM --kv-cache-dtype); fp8 halves KV memory."
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        default="auto", description="Weight and activation type (vLLM --dtype)."
    )
    multi_node_backend: Literal["Ray", "Multiprocessing"] = Field(
        default="Ray",
        description=(
            "How a replica spanning nodes launches: a Ray cluster per replica, or vLLM's native multi-node "
            "(--nnodes/--node-rank)."
        ),
    )
    extra_args: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=64,
        description="More vLLM serve flags; flags rendered from typed fields above are refused here.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=64,
        description="Extra environment variables for the vLLM container, e.g. VLLM_* settings.",
    )
    port: int = Field(
        default=8000, ge=1024, le=65535, description="Port of vLLM's OpenAI-compatible server and /metrics."
    )
    cpu: str = Field(default="8", max_length=32, pattern=QUANTITY, description="CPU request of each vLLM pod.")
    memory: str = Field(
        default="64Gi",
        max_length=32,
        pattern=QUANTITY,
        description="Memory request of each vLLM pod; with device CPU it holds the weights and the KV cache too.",
    )
    shm_size: str = Field(
        default="16Gi",
        max_length=32,
        pattern=QUANTITY,
        description="Size of the memory-backed /dev/shm volume (NCCL and workers need it).",
    )
    model_cache: ModelCache = default_obj("Where downloaded weights are kept.", ModelCache)
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key holding the API key vLLM requires (VLLM_API_KEY) and the fleet's workers send; "
            "the Secret must carry the label "
            "agentfleet.io/consent=true. Default: a Secret <name>-vllm-api-key the operator generates once."
        ),
    )
    run_as_user: int = Field(
        default=1000,
        ge=1,
        le=2147483647,
        description=(
            "Numeric non-root uid (and gid) of the vLLM container; "
            "it writes only to /tmp (HOME), the model cache and /dev/shm, "
            "and the root filesystem is read-only."
        ),
    )


class GPU(Model):
    product: str | None = Field(
        default=None,
        max_length=128,
        description="Required nvidia.com/gpu.product node label, e.g. NVIDIA-H100-80GB-HBM3; unset accepts any.",
    )
    memory: str | None = Field(
        default=None,
        max_length=32,
        pattern=QUANTITY,
        description="Memory of one GPU, e.g. 80Gi; unset reads the nodes' nvidia.com/gpu.memory label.",
    )
    resource_name: str = Field(
        default="nvidia.com/gpu", max_length=253, description="Extended resource that counts GPUs on nodes."
    )


class Placement(Model):
    rules = (
        Rule(
            cel="self.spreadAcross != 'None' || self.spreadMode == 'Preferred'",
            message=(
                "spec.placement.spreadMode Required needs spec.placement.spreadAcross Node or Zone: set spreadAcross "
                "or use spreadMode Preferred"
            ),
            check=lambda p: p.spread_across != "None" or p.spread_mode == "Preferred",
            field_path=".spreadMode",
        ),
    )

    node_key: str = Field(
        default="kubernetes.io/hostname", max_length=316, description="Node label that identifies one node."
    )
    nvlink_domain_key: str = Field(
        default="agentfleet.io/nvlink-domain",
        max_length=316,
        description="Node label naming the NVLink domain; a tensor-parallel group never crosses it.",
    )
    block_key: str = Field(
        default="agentfleet.io/topology-block",
        max_length=316,
        description="Node label naming the topology block (rack); all pods of a multi-node replica share one.",
    )
    zone_key: str = Field(
        default="topology.kubernetes.io/zone", max_length=316, description="Node label naming the availability zone."
    )
    spread_across: Literal["Zone", "Node", "None"] = Field(
        default="Zone", description="Spread replicas across zones or nodes for availability, or not at all."
    )
    spread_mode: Literal["Preferred", "Required"] = Field(
        default="Preferred",
        description="Preferred spreads when it can; Required leaves a replica unplaced rather than co-locate.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Labels a node must carry to host a replica."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints to tolerate beyond the GPU taint, which is tolerated always.",
    )
    priority_class_name: str | None = Field(default=None, max_length=253, description="PriorityClass of the vLLM pods.")


class GoodputSLO(Model):
    rules = (
        Rule(
            cel=(
                "self.ttftMilliseconds > 0 || self.timePerOutputTokenMilliseconds > 0 || self.e2eLatencyMilliseconds "
                "> 0"
            ),
            message=(
                "spec.autoscaling.goodput needs at least one latency target above 0: set ttftMilliseconds, "
                "timePerOutputTokenMilliseconds or e2eLatencyMilliseconds"
            ),
            check=lambda g: (
                g.ttft_milliseconds > 0 or g.time_per_output_token_milliseconds > 0 or g.e2e_latency_milliseconds > 0
            ),
        ),
    )

    ttft_milliseconds: int = Field(
        default=2000, ge=0, le=600_000, description="Time-to-first-token target per request; 0 disables it."
    )
    time_per_output_token_milliseconds: int = Field(
        default=100, ge=0, le=60_000, description="Time-per-output-token target per request; 0 disables it."
    )
    e2e_latency_milliseconds: int = Field(
        default=0,
        ge=0,
        le=3_600_000,
        alias="e2eLatencyMilliseconds",
        description="End-to-end latency target per request; 0 disables it.",
    )
    target_fraction: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Share of requests that must meet every target, in (0, 1]; below it by more than chance over the window's "
            "requests, the fleet grows."
        ),
    )


_CRON_RE = r"^[0-9*,/-]+( [0-9*,/-]+){4}$"


class ScheduledCapacity(Model):
    rules = (
        Rule(
            cel=f"self.start.matches('{_CRON_RE}')",
            message=(
                "spec.autoscaling.schedules[].start must be a five-field cron expression (minute hour day-of-month "
                "month day-of-week), such as '0 9 * * 1-5'"
            ),
            check=lambda w: re.search(_CRON_RE, w.start) is not None,
            field_path=".start",
        ),
    )

    name: str = Field(min_length=1, max_length=63, description="Name of this window, shown in decisions and Events.")
    start: str = Field(
        max_length=128,
        description="When each window begins: a five-field cron expression in timeZone, such as '0 9 * * 1-5'.",
    )
    duration_seconds: int = Field(
        ge=60, le=604_800, description="How long each window holds its replicas, from each start."
    )
    replicas: int = Field(
        ge=0,
        le=1000,
        description=(
            "Replicas held during the window (ordered a model load time ahead), merged with the other terms by max."
        ),
    )
    time_zone: str = Field(default="UTC", max_length=64, description="IANA time zone of start, such as Europe/Berlin.")


class Autoscaling(Model):
    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message=(
                "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas: raise maxReplicas or "
                "lower minReplicas"
            ),
            check=lambda a: a.min_replicas <= a.max_replicas,
            field_path=".minReplicas",
        ),
        Rule(
            cel="self.scaleDownStabilizationSeconds >= self.evaluationPeriodSeconds",
            message=(
                "spec.autoscaling.scaleDownStabilizationSeconds must be at least evaluationPeriodSeconds: one "
                "evaluation cannot make a stable decision"
            ),
            check=lambda a: a.scale_down_stabilization_seconds >= a.evaluation_period_seconds,
            field_path=".scaleDownStabilizationSeconds",
        ),
        matches(
            "prometheus_url",
            "^https?://[^/]+",
            "spec.autoscaling.prometheusURL must be an http(s) URL such as http://prometheus.monitoring:9090",
            alias="prometheusURL",
        ),
        no_credentials(
            "prometheus_url",
            "spec.autoscaling.prometheusURL",
            "nothing: give the URL of a Prometheus the operator may read without credentials",
            alias="prometheusURL",
        ),
    )

    enabled: bool = Field(
        default=False,
        description=(
            "Let agentfleet size the fleet from queue depth and goodput; false obeys spec.replicas (kubectl scale, "
            "HPA, KEDA)."
        ),
    )
    min_replicas: int = Field(
        default=1, ge=0, le=1000, description="Fewest replicas the autoscaler keeps, also at zero traffic."
    )
    max_replicas: int = Field(default=4, ge=1, le=1000, description="Most replicas the autoscaler asks for.")
    sleep_after_idle_seconds: int = Field(
        default=900,
        ge=0,
        le=604_800,
        description=(
            "With minReplicas 0: seconds without a request at the replicas or a task at the AgentFleets using this set"
            " before it sleeps at zero replicas; a task queued at such a fleet wakes it."
        ),
    )
    target_queue_depth_per_replica: int = Field(
        default=8, ge=1, le=100_000, description="Waiting requests per replica the autoscaler aims for."
    )
    kv_cache_usage_threshold_percent: int = Field(
        default=90, ge=1, le=100, description="KV-cache usage above which a replica counts as full."
    )
    goodput: GoodputSLO = default_obj(
        "Latency SLO whose attainment (goodput) corrects the replica count upward.", GoodputSLO
    )
    window_seconds: int = Field(
        default=60, ge=10, le=3600, description="Window over which rates and goodput are computed."
    )
    evaluation_period_seconds: int = Field(default=15, ge=5, le=600, description="How often the autoscaler evaluates.")
    scale_up_stabilization_seconds: int = Field(
        default=30, ge=0, le=3600, description="A scale-up must be wanted this long before it happens."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=86400, description="A scale-down must be wanted this long before it happens."
    )
    max_scale_up_step: int = Field(default=4, ge=1, le=1000, description="Most replicas added in one decision.")
    max_scale_down_step: int = Field(
        default=1,
        ge=1,
        le=1000,
        description=(
            "Most replicas removed in one decision; a burst's replicas, released once its agent tasks fit half the "
            "fleet, go in one decision."
        ),
    )
    prometheus_url: str | None = Field(
        default=None,
        max_length=2048,
        alias="prometheusURL",
        description="Prometheus base URL holding the replicas' vLLM metrics; unset uses the operator's default.",
    )
    burst_coverage_percent: int = Field(
        default=0,
        ge=0,
        le=200,
        description=(
            "Share of a typical burst's first minutes to serve from replicas held ready in advance, at the times of "
            "day bursts were seen"
            " until that day's bursts there have come and gone (100 serves a typical one in full, up to 200 for "
            "larger ones); each step costs the standby GPU-hours shown in"
            " status.forecast.standbyGPUHoursPerDay (0 holds none)."
        ),
    )
    predictive: bool = Field(
        default=False,
        description=(
            "Order replicas a model load time before the rise the learned daily demand curve predicts; never below "
            "the load-driven count"
            " (off by default until its GPU-hour cost is benchmarked)."
        ),
    )
    schedules: list[ScheduledCapacity] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Replicas to hold at known times (a batch, a launch), like KEDA's cron scaler; merged with the other "
            "terms by max."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class Hedging(Model):
    enabled: bool = Field(
        default=False,
        description="Send a duplicate to the next replica when a call outlasts the observed percentile; with streamed "
        "calls also when "
        "its replica stops writing tokens (stalled), and route new calls around a stalled replica.",
    )
    after_percentile: int = Field(
        default=95, ge=50, le=99, description="Latency percentile of the call's kind after which it is hedged."
    )
    max_extra_percent: int = Field(
        default=5,
        ge=1,
        le=50,
        description=(
            "Cap on hedged calls, in percent of all calls, and on the tokens their losers cost, in percent of all "
            "calls' tokens."
        ),
    )


class Routing(Model):
    policy: Literal["PrefixAffinity", "LeastLoaded", "RoundRobin"] = Field(
        default="PrefixAffinity",
        description=(
            "How calls pick a replica; PrefixAffinity pins each task to one replica so its KV cache stays warm."
        ),
    )
    load_bound_percent: int = Field(
        default=125,
        ge=100,
        le=1000,
        description="Most in-flight calls a replica takes, in percent of its fair share, before tasks spill over.",
    )
    sub_agent_affinity: bool = Field(
        default=True, description="Route sub-agents to their parent's replica to reuse its prefix cache."
    )
    hedging: Hedging = default_obj("Duplicate slow calls to cut the latency tail.", Hedging)
    ejection_consecutive_errors: int = Field(
        default=5, ge=1, le=1000, description="Consecutive errors after which a replica is ejected from routing."
    )
    ejection_seconds: int = Field(
        default=30, ge=1, le=3600, description="How long an ejected replica waits before it is probed back."
    )
    adapter_calls_per_replica: int = Field(
        default=8,
        ge=1,
        le=1024,
        description=(
            "For fleets that call a LoRA adapter (AgentFleet spec.modelAdapter): calls of it one replica takes from a "
            "worker "
            "before the load bound spreads the adapter to its next replica."
        ),
    )


class Lifecycle(Model):
    rules = (
        Rule(
            cel="self.maxRestartBackoffSeconds >= self.restartBackoffSeconds",
            message="spec.lifecycle.maxRestartBackoffSeconds must be at least restartBackoffSeconds: raise the maximum",
            check=lambda lc: lc.max_restart_backoff_seconds >= lc.restart_backoff_seconds,
            field_path=".maxRestartBackoffSeconds",
        ),
    )

    drain_timeout_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="Longest a removed replica waits for its running requests before deletion.",
    )
    startup_timeout_seconds: int = Field(
        default=1800, ge=60, le=86400, description="How long a replica may load its model before it counts as failed."
    )
    restart_backoff_seconds: int = Field(
        default=30, ge=1, le=3600, description="Delay before a failed multi-node group restarts; doubles per restart."
    )
    max_restart_backoff_seconds: int = Field(
        default=900, ge=1, le=86400, description="Upper bound of the group-restart delay."
    )


class EndpointPicker(Model):
    service_name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "Service of the endpoint picker (the Gateway API Inference Extension's EPP, or llm-d's router) in this "
            "namespace."
        ),
    )
    port: int = Field(default=9002, ge=1, le=65535, description="The picker Service's gRPC port (ext-proc).")
    failure_mode: Literal["FailOpen", "FailClose"] = Field(
        default="FailClose",
        description=(
            "What the gateway does when the picker does not answer: FailOpen picks any replica, FailClose refuses."
        ),
    )


LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted --max-lora-rank values


class Adapter(Model):
    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description=(
            "Name clients (and AgentFleets' spec.modelAdapter) put in the OpenAI API's model field to use this adapter."
        ),
    )
    source: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "Where the replica reads the adapter: a path inside the replica (the model cache claim is mounted at "
            "/models-cache) "
            "or a Hugging Face repository id."
        ),
    )
    max_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = Field(
        default=16,
        description="The adapter's LoRA rank, rounded up to one vLLM accepts; the largest sets --max-lora-rank.",
    )


class InferencePoolSpec(Model):
    endpoint_picker: EndpointPicker | None = Field(
        default=None,
        description=(
            "The endpoint picker the gateway asks which replica takes a request; unset leaves the pool's picker unset."
        ),
    )


def _served(spec: Any) -> str:
    return spec.model.served_name or spec.model.name


class ModelReplicaSetSpec(Model):
    rules = (
        Rule(
            cel=(
                "!has(self.adapters) || self.adapters.all(a, "
                "a.name != (has(self.model.servedName) ? self.model.servedName : self.model.name))"
            ),
            message=(
                "spec.adapters[].name must differ from the model's served name: clients would not tell them apart; "
                "rename the adapter"
            ),
            check=lambda s: all(a.name != _served(s) for a in s.adapters),
            field_path=".adapters",
        ),
        Rule(
            cel="self.engine.device != 'CPU' || (!has(self.gpu.product) && !has(self.gpu.memory))",
            message=(
                "spec.gpu.product and spec.gpu.memory choose GPUs, and with spec.engine.device CPU a replica takes "
                "none: unset them"
            ),
            check=lambda s: s.engine.device != "CPU" or (s.gpu.product is None and s.gpu.memory is None),
            field_path=".gpu",
        ),
    )

    model: ModelSource = Field(description="The model to serve and how it is named.")
    engine: Engine = default_obj("vLLM engine settings for every replica.", Engine)
    gpu: GPU = default_obj(
        "Which GPUs a replica runs on; each replica takes tensorParallelSize x pipelineParallelSize of them.", GPU
    )
    placement: Placement = default_obj("Topology-aware placement of replicas.", Placement)
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Replica count while autoscaling is disabled; kubectl scale, HPA and KEDA write it.",
    )
    autoscaling: Autoscaling = default_obj("Scaling on queue depth and goodput read from Prometheus.", Autoscaling)
    routing: Routing = default_obj("How agent calls are spread over replicas.", Routing)
    lifecycle: Lifecycle = default_obj("Draining, startup and restart timing.", Lifecycle)
    adapters: list[Adapter] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "LoRA adapters served on top of the model: loaded into every ready replica at run time (vLLM's adapter "
            "API) "
            "and unloaded when removed here, without restarting replicas."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    inference_pool: InferencePoolSpec | None = Field(
        default=None,
        description=(
            "Publish a Gateway API Inference Extension InferencePool (inference.networking.k8s.io/v1) named after "
            "this set, "
            "selecting its serving replicas, so a cluster's gateway can front them; unset publishes none."
        ),
    )
    pod_template: ModelReplicaSetPodTemplate | None = Field(
        default=None, description=POD_TEMPLATE_DESCRIPTION + " Changing it rolls the replicas."
    )


class ReplicaPlacement(Model):
    name: str = Field(max_length=253, description="Replica name; the group's pods carry it as a label.")
    nodes: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=64, description="Nodes hosting the replica's pods, leader first."
    )
    gpus: int = Field(default=0, ge=0, description="GPUs the replica holds.")
    gpus_per_node: int | None = Field(default=None, ge=0, description="GPUs on each of the replica's nodes.")
    block: str | None = Field(
        default=None, max_length=253, description="Topology block (rack) of a multi-node replica."
    )
    zone: str | None = Field(default=None, max_length=253, description="Zone of the replica.")
    phase: Literal["Pending", "Loading", "Ready", "Draining", "Failed"] = Field(
        default="Pending", description="Lifecycle phase of the replica."
    )
    endpoint: str | None = Field(
        default=None, max_length=512, description="host:port of the replica's OpenAI server, for sticky routing."
    )
    restarts: int = Field(default=0, ge=0, description="Group restarts so far.")
    adapters: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list, max_length=256, description="spec.adapters loaded on this replica, as it last answered."
    )
    failed_at: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "When the replica last failed (RFC 3339); its restart waits out the backoff from then, across operator "
            "restarts."
        ),
    )


class ObservedMetrics(Model):
    queue_depth: int | None = Field(
        default=None, description="Waiting requests summed over replicas (vllm:num_requests_waiting)."
    )
    running: int | None = Field(
        default=None, description="Running requests summed over replicas (vllm:num_requests_running)."
    )
    goodput: float | None = Field(default=None, description="Share of requests within the SLO over the window.")
    kv_cache_usage: float | None = Field(
        default=None, description="Mean KV-cache usage over replicas (vllm:kv_cache_usage_perc), 0-1."
    )
    observed_at: datetime | None = Field(default=None, description="When these figures were read.")


class CapacityStatus(Model):
    weights_bytes: int | None = Field(default=None, description="Weight memory of one replica.")
    kv_bytes_per_token: int | None = Field(default=None, description="KV-cache bytes one token takes.")
    kv_tokens_per_replica: int | None = Field(default=None, description="Tokens of KV cache one replica holds.")
    concurrent_sequences: int | None = Field(
        default=None, description="Sequences one replica holds at the configured context length."
    )
    context_tokens: int | None = Field(default=None, description="Context length the sequence count assumes.")
    gpu_memory_bytes: int | None = Field(default=None, description="Memory of one GPU the figures assume.")


class ForecastStatus(Model):
    profile_config_map: str | None = Field(
        default=None,
        max_length=253,
        description="ConfigMap (same namespace) keeping the learned demand profile across operator restarts.",
    )
    days_observed: float | None = Field(default=None, ge=0, description="Days of demand history in the profile.")
    tasks_per_replica: float | None = Field(
        default=None, ge=0, description="Agent tasks one replica carries within the SLO, as learned."
    )
    onsets_seen: int | None = Field(default=None, ge=0, description="Burst onsets remembered (the last 14 days).")
    typical_onset_tasks: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Agent tasks a typical burst adds in its first load time (the size half of all burst demand came in)."
        ),
    )
    predicted_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the learned daily curve needs over the next model load time."
    )
    standing_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas held now for burst onsets (only at the times of day bursts were seen).",
    )
    scheduled_replicas: int | None = Field(default=None, ge=0, description="Replicas a schedule window holds now.")
    standby_released_at: datetime | None = Field(
        default=None,
        description=(
            "When the standby of the burst season now on was released: today's bursts in it had come and ended, as "
            "many as any remembered day brought."
        ),
    )
    standby_gpu_hours_per_day: float | None = Field(
        default=None,
        ge=0,
        alias="standbyGPUHoursPerDay",
        description=(
            "GPU-hours a day the burst coverage holds beyond the learned curve: the price of burstCoveragePercent."
        ),
    )


class ModelCacheStatus(Model):
    model: str = Field(
        max_length=700, description="The model and revision the cache holds or is filled with (name@revision)."
    )
    phase: Literal["Filling", "Filled", "Failed"] = Field(
        description="Filling: the Job runs; Filled: replicas load from the claim; Failed: they download themselves."
    )
    job: str | None = Field(default=None, max_length=253, description="The Job that fills the cache.")
    filled_at: str | None = Field(default=None, max_length=64, description="When the Job finished filling (RFC 3339).")
    fill_seconds: int | None = Field(
        default=None, ge=0, description="How long the fill took, from the Job's start to its completion."
    )
    message: str | None = Field(
        default=None, max_length=1024, description="Why the fill failed, from the Job's conditions."
    )


class ModelReplicaSetStatus(Model):
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted upon.")
    replicas: int = Field(default=0, description="Replicas that exist, ready or not.")
    ready_replicas: int = Field(default=0, description="Replicas serving requests.")
    desired_replicas: int | None = Field(
        default=None, description="Replicas the operator aims for, from spec.replicas or the autoscaler."
    )
    selector: str | None = Field(
        default=None, max_length=4096, description="Label selector of the replica pods, for the scale subresource."
    )
    gpus_per_replica: int | None = Field(
        default=None, description="GPUs each replica takes (tensorParallelSize x pipelineParallelSize)."
    )
    served_model_name: str | None = Field(default=None, description="Name under which the model is served.")
    placements: list[ReplicaPlacement] = Field(
        default_factory=list,
        max_length=1000,
        description="Where each replica runs.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    observed: ObservedMetrics | None = Field(default=None, description="Last metrics the autoscaler read.")
    capacity: CapacityStatus | None = Field(default=None, description="Capacity model figures for one replica.")
    last_scale_time: datetime | None = Field(default=None, description="When the replica count last changed.")
    last_scale_reason: str | None = Field(
        default=None, max_length=1024, description="Why the replica count last changed, with the figures."
    )
    learned_model_load_seconds: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Model load time (pod created -> Ready) the autoscaler learned from this set's replicas; replicas loading "
            "within it are credited so a burst does not order twice."
        ),
    )
    last_scale_term: Literal["reactive", "predictive", "standing", "scheduled", "minReplicas"] | None = Field(
        default=None,
        description=(
            "Which term asked for the last change: reactive (queue, goodput, tasks), predictive (learned curve), "
            "standing (burst coverage), scheduled, minReplicas."
        ),
    )
    forecast: ForecastStatus | None = Field(
        default=None, description="What the autoscaler learned of this set's demand, and what it holds for it."
    )
    model_cache: ModelCacheStatus | None = Field(
        default=None, description="Whether spec.engine.modelCache holds the model's weights yet."
    )
    sleep: SleepStatus | None = Field(
        default=None,
        description="Scale to zero (autoscaling.minReplicas 0): awake, sleeping at zero replicas, or waking.",
    )
    conditions: list[Condition] = conditions_field()


class ModelReplicaSet(Model):
    api_version: str = Field(default="agentfleet.io/v1alpha1", description="APIVersion of this object.")
    kind: str = Field(default="ModelReplicaSet", description="Kind of this object.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelReplicaSetSpec = Field(description="Desired state of the model fleet.")
    status: ModelReplicaSetStatus | None = Field(default=None, description="Observed state of the model fleet.")
