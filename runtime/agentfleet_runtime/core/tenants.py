"""Who is calling: bearer tokens mapped to tenants, read from the fleet's token Secret.

The Secret's key holds one entry per line::

    # tenant  token hash (sha256 of the token, hex)
    acme      sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    globex    sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752

Only hashes are stored, so whoever reads the Secret (or a backup of it) holds no working token:
``agentfleet_runtime.core.tenants.token_line("acme", token)`` or
``printf %s "$TOKEN" | sha256sum`` makes a line. A line of one field is a plain token of the
tenant ``default`` (the form of Secrets written before tenants): it keeps working, and its tenant
is still never taken from the request. The operator's generated token is kept in its Secret for
its users; the task API is given only its line (tenant ``default``), from the fleet's ConfigMap.

The tenant of a request is what its token maps to, never what its body says: every task route
answers only for that tenant's tasks, and idempotency keys, sessions and limits are per tenant.

A line may end in the scope ``approver``: that token is a reviewer of its tenant. It lists and
decides the tenant's waiting approvals and reads its tasks; it submits and cancels nothing, and a
submitting token decides nothing, so the caller whose task asks for approval cannot grant it.
Each token has an identity (``Caller.id``: the tenant and the first 12 hex digits of the SHA-256
of its hash), recorded on the tasks it submits and the decisions it makes; it names the line of
the Secret without being a working token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

# The line format is the contract's: the operator writes its generated token's line with it.
from agentfleet_contract.runtime_config import (
    APPROVER_SCOPE,
    DEFAULT_TENANT,
    HASH_PREFIX,
    RESERVED_TENANTS,
    TENANT_NAME,
    token_hash,
    token_line,
)

log = logging.getLogger("agentfleet_runtime.core.tenants")

__all__ = [
    "ANONYMOUS",
    "APPROVER_SCOPE",
    "Caller",
    "DEFAULT_TENANT",
    "HASH_PREFIX",
    "TENANT_NAME",
    "TokenFile",
    "owner",
    "parse_tokens",
    "token_hash",
    "token_line",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: the token's tenant, whether it is a reviewer (scope ``approver``), and
    its identity, which names the token without being one."""

    tenant: str
    approver: bool = False
    id: str = ""


ANONYMOUS = Caller(DEFAULT_TENANT, approver=False, id="anonymous")  # api.allowAnonymous (development)


def identity(tenant: str, digest: bytes) -> str:
    """A token's recorded identity: its tenant and a hash of its hash (safe in task records and logs)."""
    return f"{tenant}/{hashlib.sha256(digest).hexdigest()[:12]}"


def owner(tenant_field: str) -> str:
    """The tenant a task belongs to, from its record's ``tenant`` (empty on tasks from before tenants)."""
    return tenant_field or DEFAULT_TENANT


def parse_tokens(text: str, source: str = "tokens") -> list[tuple[bytes, str]]:
    """(sha256 of a token, its tenant) for each valid line (see ``parse_callers``)."""
    return [(digest, caller.tenant) for digest, caller in parse_callers(text, source)]


def parse_callers(text: str, source: str = "tokens") -> list[tuple[bytes, Caller]]:
    """(sha256 of a token, its caller) for each valid line; a bad line is logged and skipped (not
    fatal: one typo must not lock every tenant out), without echoing the line (it may be a token)."""
    out: list[tuple[bytes, Caller]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            digest_ = token_hash(fields[0])
            out.append((digest_, Caller(DEFAULT_TENANT, False, identity(DEFAULT_TENANT, digest_))))
            continue
        tenant, digest = fields[0], fields[1].lower()
        scope = fields[2] if len(fields) == 3 else ""
        if (
            len(fields) not in (2, 3)
            or scope not in ("", APPROVER_SCOPE)
            or not TENANT_NAME.match(tenant)
            or not digest.startswith(HASH_PREFIX)
            or not _HEX64.match(digest[7:])
        ):
            log.error(
                "token line skipped: write 'TENANT sha256:<64 hex digits> [approver]' (TENANT a lowercase name)",
                extra={"source": source, "line": n},
            )
            continue
        if tenant in RESERVED_TENANTS:
            # The gate's tasks are filed under it: a token of that tenant would read them.
            log.error(
                "token line skipped: its tenant is reserved for the evaluation gate; name the tenant otherwise",
                extra={"source": source, "line": n},
            )
            continue
        raw_digest = bytes.fromhex(digest[7:])
        out.append((raw_digest, Caller(tenant, scope == APPROVER_SCOPE, identity(tenant, raw_digest))))
    return out


class TokenFile:
    """The token Secret as mounted, re-read when the file changes (a rotated Secret)."""

    def __init__(self, path: str | None, check_every: float = 5.0) -> None:
        self.path = Path(path) if path else None
        self.check_every = check_every
        self._entries: list[tuple[bytes, Caller]] = []
        self._mtime = -1.0
        self._checked = 0.0

    def entries(self) -> list[tuple[bytes, Caller]]:
        now = time.monotonic()
        if self.path is not None and now - self._checked >= self.check_every:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                log.error("tokens file unreadable; refusing every request", extra={"path": str(self.path)})
                self._entries, self._mtime = [], -1.0
                return self._entries
            if mtime != self._mtime:
                self._entries = parse_callers(self.path.read_text(), str(self.path))
                self._mtime = mtime
        return self._entries

    def tenant_of(self, header: str | None) -> str | None:
        """The tenant of a request's ``Authorization: Bearer`` token, or None if it is not accepted."""
        caller = self.caller_of(header)
        return None if caller is None else caller.tenant

    def caller_of(self, header: str | None) -> Caller | None:
        """The caller of a request's ``Authorization: Bearer`` token, or None if it is not accepted."""
        if not header or not header.startswith("Bearer "):
            return None
        given = token_hash(header[7:].strip())
        # Compare against every entry, without stopping early, in constant time per entry.
        found: Caller | None = None
        for digest, caller in self.entries():
            if hmac.compare_digest(given, digest) and found is None:
                found = caller
        return found
