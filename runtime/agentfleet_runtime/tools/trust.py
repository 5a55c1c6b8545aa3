"""The TLS trust of a tool's HTTPS connections: the system's CA certificates, plus the private CA a
tool's caSecretRef names (cert-manager's ca.crt), mounted by the operator as <tool name>.pem.

One function builds the ``ssl.SSLContext`` of every kind of tool (HTTP, MCP url servers, A2A), so
the three verify the same way: certificate and host name always checked, TLS 1.2 at least. The file
is read once, when the worker builds its tools: a bad or missing file is found before the first call
and told in each call's observation (and the worker's log) with the field and the fix, rather than
failing the worker. A renewed CA Secret reaches a running worker only at its next restart; CA
certificates change seldom and a cert-manager CA Issuer's CA outlives the leaves it signs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


class TrustError(ValueError):
    """A tool's CA file cannot be used; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class Trust:
    """The TLS settings of one tool: ``context`` None means the system's trust store alone (aiohttp's
    and httpx's default); ``problem`` set means the CA file was unusable and the tool refuses to call."""

    context: ssl.SSLContext | None = None
    problem: str = ""


SYSTEM = Trust()


def ca_context(path: str, field: str) -> ssl.SSLContext:
    """A client context that trusts the system's CAs and the PEM certificates in ``path``.
    ``field`` is the spec field that named the Secret (spec.tools[].http.caSecretRef), for the error."""
    fix = (
        f"{field} must name a Secret key holding PEM CA certificates (-----BEGIN CERTIFICATE-----, "
        "e.g. cert-manager's ca.crt): fix the Secret or the key"
    )
    try:
        data = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise TrustError(f"{field}: the CA file {path} is not mounted; {fix}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrustError(f"{field}: the CA file {path} cannot be read ({e}); {fix}") from None
    if "-----BEGIN CERTIFICATE-----" not in data:
        raise TrustError(f"{field}: {path} holds no PEM certificate; {fix}")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # CERT_REQUIRED, check_hostname on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cadata=data)
    except ssl.SSLError as e:
        raise TrustError(f"{field}: {path} is not a valid PEM certificate ({e.reason or e}); {fix}") from None
    return ctx


def tool_trust(path: str | None, field: str) -> Trust:
    """The trust of one tool: the system's when it names no CA file, else its CA file's (or why not)."""
    if path is None:
        return SYSTEM
    try:
        return Trust(ca_context(path, field))
    except TrustError as e:
        return Trust(problem=str(e))


def certificate_hint(error: BaseException | str, field: str) -> str:
    """A sentence for an observation whose connection failed certificate verification; '' otherwise."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" not in text and not isinstance(error, ssl.SSLCertVerificationError):
        return ""
    return (
        f" The server's certificate is not trusted: if a private CA signed it, set {field} to a Secret key "
        "holding that CA's PEM certificate (labelled agentfleet.io/consent=true)."
    )
