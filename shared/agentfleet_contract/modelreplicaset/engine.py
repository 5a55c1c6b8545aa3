"""ModelReplicaSet spec: the model, where its weights come from, the cache, and the vLLM engine's settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agentfleet_contract.common import QUANTITY, Model, SecretKeyRef, default_obj
from agentfleet_contract.rules import Rule, each_matches, immutable, no_credentials

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


def gpus_per_replica(tensor_parallel_size: int, pipeline_parallel_size: int) -> int:
    """The GPUs one replica's engine is split over: tensor x pipeline parallel size. The one place the
    product is taken: ``Engine.gpus_per_replica`` for a spec, the capacity model for a layout it weighs."""
    return tensor_parallel_size * pipeline_parallel_size


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
            check=lambda e: e.gpus_per_replica <= MAX_GPUS_PER_REPLICA,
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

    @property
    def gpus_per_replica(self) -> int:
        """The GPUs one replica's engine is split over: tensor x pipeline parallel size (on a CPU device
        the same shards run on cores; the status then says 0 GPUs). Every GPU count of a replica is this."""
        return gpus_per_replica(self.tensor_parallel_size, self.pipeline_parallel_size)
