"""A distributed token bucket in Redis, per model and per tenant, in tokens per minute.

Algorithm: GCRA (the generic cell rate algorithm), i.e. a token bucket stored as one number per
bucket, its "theoretical arrival time" (TAT). A call of ``cost`` tokens reserves the slot
TAT + cost/rate; it may start once that slot is within one bucket (``burst``) of now. Why this shape:

- Atomic and shared: one Lua script checks the model's and the tenant's bucket and commits both or
  neither, on Redis' own clock (``TIME``), so every worker pod sees one bucket and clock skew between
  pods does not matter.
- Fair, FIFO-ish waiting without a queue structure: each reservation is placed after every earlier
  one, so callers are served in the order their reservation reached Redis; a caller sleeps locally
  until its slot, with no polling and no thundering herd when tokens return.
- A clear error at the deadline: when the slot lies beyond the caller's wait limit the script
  reserves nothing and says how long the wait would be and which bucket binds; the caller fails at
  once with that message instead of sleeping until a deadline it is known to miss.

Costs are estimated before the call (prompt characters / 4 + max output tokens) and settled with
the usage the server reports afterwards; a cancelled or failed call gives its tokens back.
Keys carry one hash tag per model so both keys of a script live in one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from agentfleet_runtime.model.client import ModelError
from agentfleet_runtime.routing.settings import RateLimitSettings
from agentfleet_runtime.store import lua

log = logging.getLogger(__name__)

RESERVE = (
    lua.GCRA
    + r"""
local now = redis_now_ms()
local cost = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local worst, worst_i = 0, 0
local new = {}
for i, key in ipairs(KEYS) do
  local wait
  new[i], wait = gcra(key, now, cost, tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]))
  if wait > worst then worst, worst_i = wait, i end
end
if worst > max_wait then return {0, tostring(worst), worst_i} end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  redis.call('SET', key, tostring(new[i]), 'PX', math.ceil(new[i] - now + burst / rate) + 1000)
end
return {1, tostring(worst), worst_i}
"""
)

# Move each bucket's TAT by delta tokens (negative gives tokens back); never below now, which
# would bank tokens beyond a full bucket.
SETTLE = (
    lua.GCRA
    + r"""
local now = redis_now_ms()
local delta = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[1 + 2 * i])
  local cur = redis.call('GET', key)
  if cur then
    local tat = tonumber(cur) + delta / rate
    if tat > now then
      redis.call('SET', key, tostring(tat), 'PX', math.ceil(tat - now + burst / rate) + 1000)
    else
      redis.call('DEL', key)
    end
  elseif delta > 0 then
    redis.call('SET', key, tostring(now + delta / rate), 'PX', math.ceil(delta / rate + burst / rate) + 1000)
  end
end
return 1
"""
)


def fleet_prefix(fleet: str, namespace: str = "") -> str:
    """The prefix of a fleet's bucket keys (fleet_keys.Keys.prefix without its last colon)."""
    return f"af:{namespace}/{fleet}" if namespace else f"af:{fleet}"


def bucket_key(prefix: str, model: str, tenant: str = "") -> str:
    """A bucket's Redis key: the model's, or with ``tenant`` that tenant's for the model. The task
    API's admission (api.py) reads the tenant's buckets by this same name."""
    tag = "{" + f"{prefix}:rl:{model}" + "}"
    return f"{tag}:t:{tenant}" if tenant else tag


def rate_args(tokens_per_minute: int) -> list[str]:
    """A bucket's (rate, burst) script arguments: tokens per millisecond, and one minute of tokens
    (the bucket's size)."""
    return [repr(tokens_per_minute / 60_000.0), str(tokens_per_minute)]


class RateLimited(ModelError):
    """The call's tokens would not be available before its wait deadline."""

    def __init__(self, message: str, *, scope: str, wait_seconds: float) -> None:
        super().__init__(message, status=429, retryable=True)
        self.scope = scope
        self.wait_seconds = wait_seconds


@dataclass(frozen=True, slots=True)
class Reservation:
    keys: tuple[str, ...]
    rates: tuple[str, ...]  # ARGV tail: rate, burst per key
    tokens: int
    wait_seconds: float


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_output_tokens: int) -> int:
    """Pre-call cost: ~4 characters per token of everything sent, plus the output allowance.
    Settled against the server's usage afterwards, so the estimate only has to be roughly right."""
    chars = sum(len(json.dumps(m, separators=(",", ":"))) for m in messages)
    if tools:
        chars += len(json.dumps(tools, separators=(",", ":")))
    return max(1, chars // 4) + max_output_tokens


class RedisRateLimiter:
    def __init__(self, redis: Any, settings: RateLimitSettings, prefix: str = "af:default") -> None:
        self.r = redis
        self.settings = settings
        self.prefix = prefix
        self._reserve = redis.register_script(RESERVE)
        self._settle = redis.register_script(SETTLE)

    def _buckets(self, model: str, tenant: str) -> list[tuple[str, str, int]]:
        out: list[tuple[str, str, int]] = []
        if self.settings.tokens_per_minute:
            out.append(("model", bucket_key(self.prefix, model), self.settings.tokens_per_minute))
        if tenant and self.settings.per_tenant_tokens_per_minute:
            tpm = self.settings.per_tenant_tokens_per_minute
            out.append((f"tenant:{tenant}", bucket_key(self.prefix, model, tenant), tpm))
        return out

    async def reserve(self, model: str, tenant: str, tokens: int, max_wait: float | None = None) -> Reservation:
        """Reserve ``tokens``; returns how long to wait before sending, or raises ``RateLimited``."""
        buckets = self._buckets(model, tenant)
        if not buckets:
            return Reservation((), (), tokens, 0.0)
        limit = self.settings.max_wait_seconds if max_wait is None else min(max_wait, self.settings.max_wait_seconds)
        rates: list[str] = []
        for _, _, tpm in buckets:
            rates += rate_args(tpm)
        keys = tuple(k for _, k, _ in buckets)
        try:
            ok, wait_ms, which = await self._reserve(keys=list(keys), args=[tokens, max(0.0, limit) * 1000.0, *rates])
        except RedisError as e:
            # Fail open: an unreachable Redis (after the client's own retries) must not stop every
            # agent; the model servers' own queues still protect them. Logged, so it is seen.
            log.warning("rate limiter unavailable, call not limited: %s", e)
            return Reservation((), (), tokens, 0.0)
        wait = max(0.0, float(wait_ms) / 1000.0)
        if int(ok) != 1:
            scope, _, tpm = buckets[int(which) - 1]
            raise RateLimited(
                f"rate limit of {model} ({scope}, {tpm} tokens/min): {tokens} tokens would be available in {wait:.1f} "
                "s, "
                f"beyond the wait limit of {limit:g} s (spec.rateLimit.maxWaitSeconds)",
                scope=scope.split(":", 1)[0],
                wait_seconds=wait,
            )
        return Reservation(keys, tuple(rates), tokens, wait)

    async def settle(self, reservation: Reservation, used_tokens: int) -> None:
        """Charge the difference between the estimate and what the call used (0 = give all back)."""
        delta = used_tokens - reservation.tokens
        if not reservation.keys or delta == 0:
            return
        try:
            await self._settle(keys=list(reservation.keys), args=[delta, *reservation.rates])
        except RedisError as e:  # a lost settlement only mis-charges one call; never fail the call for it
            log.warning("rate limiter settlement lost: %s", e)

    async def wait(self, reservation: Reservation) -> None:
        """Sleep until the reserved slot; a cancelled waiter gives its tokens back."""
        if reservation.wait_seconds <= 0:
            return
        try:
            await asyncio.sleep(reservation.wait_seconds)
        except asyncio.CancelledError:
            await asyncio.shield(self.settle(reservation, 0))
            raise
