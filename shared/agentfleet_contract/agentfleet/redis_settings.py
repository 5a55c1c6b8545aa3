"""AgentFleet spec: the Redis holding the task queue, managed by the operator, external, or behind Sentinels."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentfleet_contract.common import QUANTITY, Model, SecretKeyRef
from agentfleet_contract.rules import Rule, each_matches, matches, no_credentials


class ManagedRedis(Model):
    image: str = Field(default="redis:7.4-alpine", max_length=512, description="Redis image of the StatefulSet.")
    storage_size: str = Field(
        default="8Gi", max_length=32, pattern=QUANTITY, description="Volume size for the append-only file."
    )
    memory: str = Field(
        default="1Gi", max_length=32, pattern=QUANTITY, description="Memory request and limit of the Redis pod."
    )


class RedisSentinel(Model):
    rules = (
        each_matches(
            "addresses",
            r"^[A-Za-z0-9.-]+:[0-9]{1,5}$",
            "spec.redis.sentinel.addresses[] must be host:port, e.g. sentinel.data:26379",
        ),
    )

    addresses: list[Annotated[str, Field(max_length=261)]] = Field(
        min_length=1,
        max_length=9,
        description=(
            "Sentinels as host:port, e.g. redis-sentinel.data:26379; the runtime asks them for the current primary."
        ),
    )
    master_name: str = Field(
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Name the Sentinels monitor the primary under (sentinel monitor <name> ...).",
    )
    durable_submit: bool = Field(
        default=True,
        description="Acknowledge a submission only once a replica has it (WAIT 1); without a replica in time the "
        "answer is 503 and a retry with the same Idempotency-Key returns the task.",
    )
    wait_timeout_milliseconds: int = Field(
        default=1000, ge=10, le=60_000, description="How long a submission waits for a replica before answering 503."
    )


class Redis(Model):
    rules = (
        Rule(
            cel="(has(self.url) ? 1 : 0) + (has(self.deploy) ? 1 : 0) + (has(self.sentinel) ? 1 : 0) == 1",
            message="spec.redis needs exactly one of url (an existing Redis), deploy (the operator runs one) or "
            "sentinel "
            "(a Sentinel-managed Redis)",
            check=lambda r: [r.url is not None, r.deploy is not None, r.sentinel is not None].count(True) == 1,
        ),
        matches("url", "^rediss?://", "spec.redis.url must start with redis:// or rediss://"),
        no_credentials(
            "url",
            "spec.redis.url",
            "spec.redis.passwordSecretRef (the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    url: str | None = Field(
        default=None,
        max_length=2048,
        description="Address of an existing Redis, e.g. redis://redis.data:6379/0.",
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the password of the Redis at url."
    )
    deploy: ManagedRedis | None = Field(
        default=None,
        description=(
            "Run a Redis for this fleet (StatefulSet, generated password, AOF with appendfsync everysec: a crash of "
            "its node, not of Redis alone, loses about the last second of acknowledged writes, such as tasks just "
            "submitted)."
        ),
    )
    sentinel: RedisSentinel | None = Field(
        default=None,
        description="A Redis whose primary Sentinels elect (failover); passwordSecretRef is its data nodes' password.",
    )
