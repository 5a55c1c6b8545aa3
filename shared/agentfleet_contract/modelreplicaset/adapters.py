"""ModelReplicaSet spec: LoRA adapters served beside the base model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.common import Model

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
