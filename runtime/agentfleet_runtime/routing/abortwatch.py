"""Does the engine abort a request whose client went away? Watched, not assumed.

vLLM aborts such a request at once (frees its slot, counts ``finished_reason="abort"``). Some
vLLM-compatible engines let it run to the end and count it as ``length``: there, cancelling a
hedge loser saves nothing, its tokens keep counting. The client counts the attempts it cancels
per replica and, at most every ``every_s`` and only while it cancels, reads that replica's abort
counter (``vllm:request_success_total`` with reason ``abort``, under either label spelling).
Aborts that rise by at least half the cancels made before the last ``settle_s`` mean the engine
aborts; none at all after ``min_cancels`` cancels mean it does not. Until known, it is assumed to
abort (vLLM). Losers on an engine that does not abort are not cancelled early (they keep racing
to the end: their answer is as good as any and already paid for). The hedge budget (hedging.py)
charges a loser less than a whole call's tokens only on a replica seen to abort (``known``), so
the extra load stays within maxExtraPercent while the watch is still learning.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

_ABORT_SAMPLE = re.compile(rb'^vllm:request_success_total\{[^}]*finish(?:ed)?_reason="abort"[^}]*\}\s+([0-9.eE+-]+)', re.M)


def abort_count(metrics_text: bytes) -> float | None:
    """Sum of the abort series in a /metrics page; None when the engine shows none (yet)."""
    values = [float(m.group(1)) for m in _ABORT_SAMPLE.finditer(metrics_text)]
    return sum(values) if values else None


@dataclass
class _Replica:
    cancels: list[float] = field(default_factory=list)  # times of cancels not yet counted
    aborts: float | None = None  # the counter at the first read (the baseline)
    since: float | None = None  # time of the baseline read: cancels before it are not judged
    read_at: float | None = None  # time of the last read
    judged: int = 0  # cancels made since the baseline and settled before the last read
    verdict: bool | None = None
    pending: bool = False


class AbortWatch:
    def __init__(self, read_aborts: Callable[[str], Awaitable[float | None]], *, every_s: float = 10.0, settle_s: float = 2.0, min_cancels: int = 3) -> None:
        self._read = read_aborts
        self.every_s = every_s
        self.settle_s = settle_s
        self.min_cancels = min_cancels
        self._replicas: dict[str, _Replica] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def aborts(self, key: str) -> bool:
        """Best knowledge: True (vLLM's behaviour) until shown otherwise."""
        r = self._replicas.get(key)
        return True if r is None or r.verdict is None else r.verdict

    def known(self, key: str) -> bool | None:
        r = self._replicas.get(key)
        return None if r is None else r.verdict

    def cancelled(self, key: str, now: float) -> None:
        r = self._replicas.setdefault(key, _Replica())
        r.cancels.append(now)
        if not r.pending and r.verdict is None:
            self._schedule(key, r)

    async def _check(self, key: str, r: _Replica) -> None:
        loop = asyncio.get_running_loop()
        try:
            if r.read_at is None:
                ok, r.aborts = await self._safe_read(key)
                r.read_at = r.since = loop.time()
                if not ok:
                    return  # no /metrics to read: keep assuming vLLM's behaviour
                await asyncio.sleep(self.settle_s)
            else:
                await asyncio.sleep(max(self.settle_s, r.read_at + self.every_s - loop.time()))
            # Every cancel since the baseline counts once settled, those kept from the last check
            # too (made in its last settle_s): the counter's rise since the baseline includes them.
            start = r.since
            ok, count = await self._safe_read(key)
            now = loop.time()
            if not ok:
                r.read_at = now  # try again no sooner than every_s
                return
            settled = [t for t in r.cancels if start is not None and start <= t <= now - self.settle_s]
            r.judged += len(settled)
            r.cancels = [t for t in r.cancels if t > now - self.settle_s]
            r.read_at = now
            # No abort series at all is a count of zero (some engines create it lazily).
            rose = (count or 0.0) - (r.aborts or 0.0)
            if r.judged and rose >= max(1.0, 0.5 * r.judged):
                r.verdict = True
            elif r.judged >= self.min_cancels and rose <= 0:
                r.verdict = False
        finally:
            r.pending = False
        if r.cancels and r.verdict is None:
            self._schedule(key, r)

    def _schedule(self, key: str, r: _Replica) -> None:
        r.pending = True
        task = asyncio.ensure_future(self._check(key, r))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _safe_read(self, key: str) -> tuple[bool, float | None]:
        try:
            return True, await self._read(key)
        except Exception:  # noqa: BLE001 - an unreadable /metrics says nothing either way
            return False, None

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
