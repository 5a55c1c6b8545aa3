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

A failed read (no answer, a 5xx) is retried on the watch's own schedule, not at the next cancel:
``settle_s`` after it, doubling up to ``every_s``, and no more after ``max_failures`` in a row
until another cancel. llm-d's simulator answers the first /metrics read after a client
disconnect with HTTP 500; a watch that read again only when it cancelled again always read right
after a disconnect and never judged one. A baseline that fails is read again the same way (a
rise measured from a missing baseline would mean nothing).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

_ABORT_SAMPLE = re.compile(
    rb'^vllm:request_success_total\{[^}]*finish(?:ed)?_reason="abort"[^}]*\}\s+([0-9.eE+-]+)', re.M
)


def abort_count(metrics_text: bytes) -> float | None:
    """Sum of the abort series in a /metrics page; None when the engine shows none (yet)."""
    values = [float(m.group(1)) for m in _ABORT_SAMPLE.finditer(metrics_text)]
    return sum(values) if values else None


@dataclass
class _Replica:
    cancels: list[float] = field(default_factory=list)  # times of cancels not yet counted
    aborts: float | None = None  # the counter at the baseline read
    since: float | None = None  # time of the baseline read (None: none yet); earlier cancels are not judged
    read_at: float | None = None  # time of the last read, failed or not
    failures: int = 0  # failed reads in a row
    judged: int = 0  # cancels made since the baseline and settled before the last read
    verdict: bool | None = None
    pending: bool = False


class AbortWatch:
    def __init__(
        self,
        read_aborts: Callable[[str], Awaitable[float | None]],
        *,
        every_s: float = 10.0,
        settle_s: float = 2.0,
        min_cancels: int = 3,
        max_failures: int = 5,
    ) -> None:
        self._read = read_aborts
        self.every_s = every_s
        self.settle_s = settle_s
        self.min_cancels = min_cancels
        self.max_failures = max_failures
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

    def _interval(self, r: _Replica) -> float:
        """From the last read to the next: every_s, or sooner while reads fail (module doc)."""
        if not r.failures:
            return self.every_s
        return min(self.every_s, self.settle_s * 2 ** (r.failures - 1))

    async def _check(self, key: str, r: _Replica) -> None:
        try:
            await self._read_and_judge(key, r)
        finally:
            r.pending = False
        if r.cancels and r.verdict is None and r.failures < self.max_failures:
            self._schedule(key, r)

    async def _read_and_judge(self, key: str, r: _Replica) -> None:
        loop = asyncio.get_running_loop()
        if r.read_at is not None:
            # Cancels made just before a judging read are left for the next (settle_s).
            floor = self.settle_s if r.since is not None else 0.0
            await asyncio.sleep(max(floor, r.read_at + self._interval(r) - loop.time()))
        if r.since is None:
            ok, count = await self._safe_read(key)
            r.read_at = loop.time()
            if not self._counted(r, ok):
                return  # retried on the schedule (_check)
            r.aborts, r.since = count, r.read_at
            await asyncio.sleep(self.settle_s)
        # Every cancel since the baseline counts once settled, those kept from the last check
        # too (made in its last settle_s): the counter's rise since the baseline includes them.
        start = r.since
        ok, count = await self._safe_read(key)
        now = r.read_at = loop.time()
        if not self._counted(r, ok):
            return
        settled = [t for t in r.cancels if start <= t <= now - self.settle_s]
        r.judged += len(settled)
        r.cancels = [t for t in r.cancels if t > now - self.settle_s]
        # No abort series at all is a count of zero (some engines create it lazily).
        rose = (count or 0.0) - (r.aborts or 0.0)
        if r.judged and rose >= max(1.0, 0.5 * r.judged):
            r.verdict = True
        elif r.judged >= self.min_cancels and rose <= 0:
            r.verdict = False

    @staticmethod
    def _counted(r: _Replica, ok: bool) -> bool:
        """Keep the run of failed reads; True when the read worked."""
        r.failures = 0 if ok else r.failures + 1
        return ok

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
