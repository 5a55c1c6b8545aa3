"""The TLS trust of a tool's HTTPS connections: the system's CA certificates, plus the private CA a
tool's caSecretRef names (cert-manager's ca.crt), mounted by the operator as <tool name>.pem.

One function builds the ``ssl.SSLContext`` of every kind of tool (HTTP, MCP url servers, A2A), so
the three verify the same way: certificate and host name always checked, TLS 1.2 at least. A bad or
missing file is found before the first call and told in each call's observation (and the worker's
log) with the field and the fix, rather than failing the worker.

A renewed CA reaches a running worker without a restart: cert-manager's usual chain (a self-signed
issuer, a CA Certificate of 90 days renewed at two thirds, a CA Issuer) rotates the CA every two
months, and the kubelet swaps the mounted file, not the pod. Each call checks the file at most once a
minute (``Trust.refresh``) and adds a changed CA to the live context, which the tool's connection
pool holds: new handshakes trust it. The old CA stays trusted too, as it must while leaves it signed
are still served, until the worker restarts; a CA withdrawn for compromise wants a restart
(``kubectl rollout restart``).
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path

log = logging.getLogger("agentfleet_runtime.tools")


class TrustError(ValueError):
    """A tool's CA file cannot be used; the message names the field and the fix."""


RECHECK_SECONDS = 60.0  # the kubelet refreshes a mounted Secret about once a minute too


class Trust:
    """The TLS trust of one tool: ``context`` None means the system's trust store alone (aiohttp's
    and httpx's default); ``problem`` set means the CA file is unusable and the tool refuses to call.
    ``path`` None (no caSecretRef) never changes; otherwise ``refresh`` follows the file."""

    def __init__(self, path: str | None = None, field: str = "", *, recheck_seconds: float = RECHECK_SECONDS) -> None:
        self.path, self.field, self.recheck_seconds = path, field, recheck_seconds
        self.context: ssl.SSLContext | None = None
        self.problem = ""
        self._loaded = ""  # the PEM text the context holds (or last refused)
        self._checked = time.monotonic()
        if path is not None:
            self._load()

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What aiohttp (``ssl=``) and httpx (``verify=``) take: the CA's context, or True (the system's
        trust store, verified). Never False: no tool connects without checking the certificate."""
        return self.context if self.context is not None else True

    @classmethod
    def refusing(cls, problem: str) -> Trust:
        """A tool's trust that can never work (its CA file has no place): every call says PROBLEM."""
        out = cls()
        out.problem = problem
        return out

    def refresh(self, now: float | None = None) -> None:
        """Read the CA file again if the last look is RECHECK_SECONDS old; a changed CA is added to
        the live context (or, after a problem, makes it). A file that turned bad keeps the context
        that works, with a warning in the log."""
        if self.path is None:
            return
        now = time.monotonic() if now is None else now
        if now - self._checked < self.recheck_seconds:
            return
        self._checked = now
        self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = read_ca(self.path, self.field)
            if data == self._loaded:
                return
            if self.context is None:
                self.context = ca_context(data, self.path, self.field)
            else:
                ca_context(data, self.path, self.field)  # checked on a scratch context first
                self.context.load_verify_locations(cadata=data)
                log.info("a tool's CA file changed: its CA is now trusted too", extra={"file": self.path})
            self._loaded, self.problem = data, ""
        except TrustError as e:
            if self.context is None:
                self.problem = str(e)
            else:
                log.warning("a tool's CA file is unusable: the CA loaded before is still used", extra={"error": str(e)})


SYSTEM = Trust()


def _fix(field: str) -> str:
    return (
        f"{field} must name a Secret key holding PEM CA certificates (-----BEGIN CERTIFICATE-----, "
        "e.g. cert-manager's ca.crt): fix the Secret or the key"
    )


def read_ca(path: str, field: str) -> str:
    """The PEM text of a tool's CA file; TrustError, naming FIELD and the fix, when it cannot be read."""
    try:
        data = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise TrustError(f"{field}: the CA file {path} is not mounted; {_fix(field)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TrustError(f"{field}: the CA file {path} cannot be read ({e}); {_fix(field)}") from None
    if "-----BEGIN CERTIFICATE-----" not in data:
        raise TrustError(f"{field}: {path} holds no PEM certificate; {_fix(field)}")
    return data


def ca_context(data: str, path: str, field: str) -> ssl.SSLContext:
    """A client context that trusts the system's CAs and the PEM certificates DATA (read from PATH).
    ``field`` is the spec field that named the Secret (spec.tools[].http.caSecretRef), for the error."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # CERT_REQUIRED, check_hostname on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cadata=data)
    except ssl.SSLError as e:
        raise TrustError(f"{field}: {path} is not a valid PEM certificate ({e.reason or e}); {_fix(field)}") from None
    return ctx


def load_ca(path: str, field: str) -> ssl.SSLContext:
    """``ca_context`` of the file at PATH."""
    return ca_context(read_ca(path, field), path, field)


def tool_trust(path: str | None, field: str, *, recheck_seconds: float = RECHECK_SECONDS) -> Trust:
    """The trust of one tool: the system's when it names no CA file, else its CA file's (or why not)."""
    return SYSTEM if path is None else Trust(path, field, recheck_seconds=recheck_seconds)


def certificate_hint(error: BaseException | str, field: str) -> str:
    """A sentence for an observation whose connection failed certificate verification; '' otherwise."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" not in text and not isinstance(error, ssl.SSLCertVerificationError):
        return ""
    return (
        f" The server's certificate is not trusted: if a private CA signed it, set {field} to a Secret key "
        "holding that CA's PEM certificate (labelled agentfleet.io/consent=true)."
    )
