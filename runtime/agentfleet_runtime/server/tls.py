"""The task API's TLS (AgentFleet.spec.api.tls): a server context from the mounted certificate,
reloaded when the kubelet swaps in a renewed one (cert-manager renews before expiry; the config
hash does not change, so the pods are not restarted for it)."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl

from agentfleet_contract.runtime_config import ApiTLSSettings

log = logging.getLogger("agentfleet_runtime.task_api")


def server_context(tls: ApiTLSSettings) -> ssl.SSLContext:
    """A server-side context for ``tls``'s certificate and key, refusing TLS below 1.2 (the A2A
    spec's floor). A missing or mismatched file raises here, at start, not on the first handshake."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class Certificate:
    """The live context and what its files looked like when loaded."""

    def __init__(self, tls: ApiTLSSettings) -> None:
        self.tls = tls
        self.context = server_context(tls)
        self._loaded = self._stamp()

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        # stat follows the kubelet's ..data symlink: a swapped Secret is a new inode.
        out = []
        for path in (self.tls.cert_file, self.tls.key_file):
            st = os.stat(path)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> bool:
        """Load the files again if they changed; True when the live context took them. A pair that
        does not load (half written, mismatched) leaves the old certificate served and is tried again
        at the next check."""
        try:
            stamp = self._stamp()
            if stamp == self._loaded:
                return False
            server_context(self.tls)  # first on a scratch context: the live one must never hold half a pair
            self.context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        except (OSError, ssl.SSLError) as e:
            log.warning("TLS certificate not reloaded, still serving the previous one", extra={"error": str(e)})
            return False
        self._loaded = stamp
        log.info("TLS certificate reloaded", extra={"certFile": self.tls.cert_file})
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.tls.reload_seconds)
            self.reload()
