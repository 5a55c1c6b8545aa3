"""The task API's TLS (AgentFleet.spec.api.tls): a server context from the mounted certificate."""

from __future__ import annotations

import ssl

from agentfleet_contract.runtime_config import ApiTLSSettings


def server_context(tls: ApiTLSSettings) -> ssl.SSLContext:
    """A server-side context for ``tls``'s certificate and key, refusing TLS below 1.2 (the A2A
    spec's floor). A missing or mismatched file raises here, at start, not on the first handshake."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx
