"""AgentFleet spec: the HTTP task API (authentication, tenant limits, metrics access) and tracing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.agentfleet.budgets import _decimal
from agentfleet_contract.common import DNS_SUBDOMAIN, Model, SecretKeyRef, default_obj
from agentfleet_contract.rules import matches, no_credentials


class Tracing(Model):
    rules = (
        matches("endpoint", "^https?://[^/]+", "spec.tracing.endpoint must be the http(s):// URL of a collector"),
        no_credentials(
            "endpoint",
            "spec.tracing.endpoint",
            "spec.tracing.headersSecretRef (the collector's headers, the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    endpoint: str = Field(
        max_length=2048,
        description="OTLP/HTTP collector the spans go to (<endpoint>/v1/traces), e.g. http://jaeger:4318.",
    )
    sampling_percent: int = Field(
        default=100,
        ge=0,
        le=100,
        description="Share of tasks traced, in percent; a task's sub-agents and resumed attempts follow its decision.",
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding headers for the collector as a JSON object, e.g. an Authorization header.",
    )


class TenantLimits(Model):
    """What one tenant (the owner of a bearer token) may use; a task API refuses more with 429."""

    rules = (_decimal("max_spend_per_day", "spec.api.tenantLimits.maxSpendPerDay", "20"),)

    max_tasks_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Root tasks one tenant may have queued or running at once; unset is unlimited.",
    )
    max_spend_per_day: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "Model spend one tenant may reach per UTC day in the pricing currency (sub-agents included),"
            ' e.g. "20"; unset is unlimited.'
        ),
    )
    max_streams: int = Field(
        default=8, ge=1, le=10_000, description="Progress streams (SSE) one tenant may hold open on one task API pod."
    )


# The keys of a Secret of type kubernetes.io/tls (what cert-manager writes): the certificate chain and its key.
TLS_CERT_KEY = "tls.crt"
TLS_KEY_KEY = "tls.key"


class APITLS(Model):
    """The task API serves HTTPS itself (TLS 1.2 or later) with a certificate from a Secret."""

    secret_name: str = Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Secret of type kubernetes.io/tls (keys tls.crt and tls.key, e.g. cert-manager's) in the same"
            " namespace; used only if it carries the label agentfleet.io/consent=true."
        ),
    )


class TaskAPI(Model):
    replicas: int = Field(default=1, ge=0, le=100, description="Task API pods.")
    auth_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key mapping bearer tokens to tenants, one 'TENANT sha256:HEX' line each (HEX: the token's sha256);"
            " a line of one plain token is tenant 'default'; a line ending in ' approver' is a reviewer's token"
            " (decides approvals, submits nothing). Unset makes the operator generate one token."
        ),
    )
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, le=67_108_864, description="Largest accepted request body."
    )
    max_streams: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Progress streams (SSE) one task API pod holds open; kept below its 128 Redis connections.",
    )
    tenant_limits: TenantLimits = default_obj("Per-tenant limits, enforced when a task is submitted.", TenantLimits)
    metrics_access: Literal["Hashed", "Token", "Open"] = Field(
        default="Hashed",
        description=(
            "Who reads /metrics of the task API and of every worker: Hashed (anyone; tenant labels are HMACs"
            " under a key of the fleet's, not names), Token (a bearer token of the API), Open (anyone, with"
            " tenant names)."
        ),
    )
    tls: APITLS | None = Field(
        default=None,
        description="Serve the task API (and A2A) over HTTPS with this certificate; unset serves plain HTTP.",
    )
