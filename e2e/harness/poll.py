"""The harness's one way to wait: ``poll`` a predicate until it holds, or fail with what it last saw.

Every wait of the tests, benches and demo goes through here (a server's readiness, an object's
status, a metric's value), so a timeout always reads the same way and says what was awaited.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

# What counts as "not yet" by default: a kubectl that failed or hung, a connection refused.
TRANSIENT: tuple[type[BaseException], ...] = (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError)


class PollAbort(RuntimeError):
    """Raised by a predicate to stop the wait at once, whatever ``errors`` says: the awaited thing
    can no longer come (its process ended)."""


def poll(
    predicate: Callable[[], Any],
    timeout: float,
    desc: str,
    interval: float = 0.5,
    fail: Callable[[str], Any] | None = None,
    *,
    errors: tuple[type[BaseException], ...] = TRANSIENT,
    last: Callable[[], Any] | None = None,
) -> Any:
    """Poll predicate until it returns a truthy value (returned). An exception of ``errors`` counts as
    not yet; any other propagates at once (a server whose process ended). After ``timeout`` seconds,
    ``fail`` (pytest.fail in a test; RuntimeError by default, outside one) gets the message, with the
    last error and what ``last()`` says (the last value seen, a log tail)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except PollAbort:
            raise
        except errors as e:
            last_exc = e
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g}s waiting for {desc}" + (
                f" (last error: {last_exc})" if last_exc else ""
            )
            if last is not None:
                message += f"\n{last()}"
            if fail is not None:
                fail(message)
            raise RuntimeError(message)
        time.sleep(interval)
