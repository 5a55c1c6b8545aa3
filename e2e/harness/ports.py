"""Free ports and port probes on this machine."""

from __future__ import annotations

import socket
import urllib.request
from typing import Protocol

from e2e.harness.poll import PollAbort, poll


def free_port(host: str = "127.0.0.1") -> int:
    """A port no one listens on now (the kernel's pick; another process may take it later)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free ports: the sockets are held together, so no two picks coincide."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 2) -> bool:
    """Whether ``url`` (a health or readiness endpoint on this machine) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status == 200
    except OSError:
        return False


class Watched(Protocol):
    """A server's process as ``wait_http`` watches it (``procs.Proc``, ``image.Container``)."""

    def running(self) -> bool: ...

    def logs(self) -> str: ...


def wait_http(
    url: str, timeout: float, server: Watched | None = None, status: int = 200, interval: float = 0.5
) -> bytes:
    """Polls ``url`` until it answers ``status`` and returns the body; fails (AssertionError, with
    the server's log) after ``timeout`` seconds, or at once when the server's process has ended."""

    def answered() -> bytes | None:
        if server is not None and not server.running():
            raise PollAbort(f"the server of {url} exited:\n{server.logs()[-4000:]}")
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - 127.0.0.1 only
            # An empty body that answered is still an answer: a 1-tuple is truthy.
            return (resp.read(),) if resp.status == status else None

    def fail(message: str) -> None:
        raise AssertionError(message)

    try:
        return poll(
            answered,
            timeout,
            f"{url} to answer {status}",
            interval,
            fail,
            last=lambda: server.logs()[-4000:] if server else "",
        )[0]
    except PollAbort as e:
        raise AssertionError(str(e)) from None
