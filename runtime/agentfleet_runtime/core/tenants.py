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
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from pathlib import Path

# The line format is the contract's: the operator writes its generated token's line with it.
from agentfleet_contract.runtime_config import DEFAULT_TENANT, HASH_PREFIX, TENANT_NAME, token_hash, token_line

log = logging.getLogger("agentfleet_runtime.core.tenants")

__all__ = [
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


def owner(tenant_field: str) -> str:
    """The tenant a task belongs to, from its record's ``tenant`` (empty on tasks from before tenants)."""
    return tenant_field or DEFAULT_TENANT


def parse_tokens(text: str, source: str = "tokens") -> list[tuple[bytes, str]]:
    """(sha256 of a token, its tenant) for each valid line; a bad line is logged and skipped (not
    fatal: one typo must not lock every tenant out), without echoing the line (it may be a token)."""
    out: list[tuple[bytes, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) == 1:
            out.append((token_hash(fields[0]), DEFAULT_TENANT))
            continue
        tenant, digest = fields[0], fields[1].lower()
        if (
            len(fields) != 2
            or not TENANT_NAME.match(tenant)
            or not digest.startswith(HASH_PREFIX)
            or not _HEX64.match(digest[7:])
        ):
            log.error(
                "token line skipped: write 'TENANT sha256:<64 hex digits>' (TENANT a lowercase name)",
                extra={"source": source, "line": n},
            )
            continue
        out.append((bytes.fromhex(digest[7:]), tenant))
    return out


class TokenFile:
    """The token Secret as mounted, re-read when the file changes (a rotated Secret)."""

    def __init__(self, path: str | None, check_every: float = 5.0) -> None:
        self.path = Path(path) if path else None
        self.check_every = check_every
        self._entries: list[tuple[bytes, str]] = []
        self._mtime = -1.0
        self._checked = 0.0

    def entries(self) -> list[tuple[bytes, str]]:
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
                self._entries = parse_tokens(self.path.read_text(), str(self.path))
                self._mtime = mtime
        return self._entries

    def tenant_of(self, header: str | None) -> str | None:
        """The tenant of a request's ``Authorization: Bearer`` token, or None if it is not accepted."""
        if not header or not header.startswith("Bearer "):
            return None
        given = token_hash(header[7:].strip())
        # Compare against every entry, without stopping early, in constant time per entry.
        found: str | None = None
        for digest, tenant in self.entries():
            if hmac.compare_digest(given, digest) and found is None:
                found = tenant
        return found
