"""Spend is a bound: every model call of a task holds its worst case before it is made.

The worst case of a call is its prompt's token bound plus its max_tokens at the dearer price
(core/budget.py). One Lua script (HOLD) reads, atomically, what the task tree has spent and holds
in flight against its root's maxCost, and what the tenant has spent today and holds in flight
against spec.api.tenantLimits.maxSpendPerDay; it lowers the call's max_tokens until the worst case
fits both, or refuses the call when not even one output token fits what has been spent (while
only other calls' holds stand in the way it waits for them to settle, up to the call's own
time), and otherwise records the hold. After the call SETTLE drops the hold and charges what the
reply's usage cost to the tree and to the tenant's day, in one step. So spent plus held never
passes a limit while calls run concurrently on any number of workers, and what a call really
costs is within its hold as long as the engine counts no more prompt tokens than the bound.

Admission (server/admission.py) still reserves each task's budget, at least one call's worst
case, so that a tenant over its limit gets a 429 at once instead of tasks that end refused; the
per-call hold is what makes the limit a bound whatever budgets the tenant chose.

Holds lapse on their own (scored by the call's deadline plus a margin), so a worker that dies
mid-call blocks nothing for longer than its call could have run. The tenant's day is charged
here, at the call, and no longer when a step is stored: a call whose step is never stored (a
timeout inside a repair turn, a crash) still cost what it cost.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from agentfleet_contract.fleet_keys import Keys

from agentfleet_runtime.core.budget import (
    NANOS,
    Prices,
    dearer_nanos_per_token,
    prompt_bound,
    task_cap_nanos,
    worst_call_nanos,
)
from agentfleet_runtime.core.errors import SpendRefused
from agentfleet_runtime.core.types import Limits, ModelReply, StopReason
from agentfleet_runtime.model.client import ModelClient, ModelRequest

# A hold outlives its call's deadline by this much before it lapses (a worker that died mid-call).
HOLD_MARGIN_SECONDS = 30.0
DAY_SECONDS = 86400
_CAPS_CACHED = 4096  # roots whose maxCost a worker keeps (its tasks in flight, with room)

LUA_HELD = r"""
-- What a sorted set of holds ('call|nanos', scored by when it lapses) holds now; lapsed ones go.
local function held(key, now)
  if key == '' then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local sum = 0
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    sum = sum + tonumber(string.match(m, '|(%d+)$') or '0')
  end
  return sum
end
"""

# KEYS: root_hash tree_calls tenant_spend tenant_calls ('' where no limit applies)
# ARGV: call_id now_ms lapse_ms per_token prompt max_tokens task_cap tenant_cap (-1: none)
# {1, max_tokens, hold}: the call may ask for max_tokens, and its worst case (hold) is now held; or
# {0, 'task'|'tenant', room, wait}: not even one token fits the limit named, and wait is 1 when it
# would without the other calls' holds (they settle at their real cost, so waiting may help).
HOLD = (
    LUA_HELD
    + r"""
local now, lapse = tonumber(ARGV[2]), tonumber(ARGV[3])
local per, prompt, want = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local task_cap, tenant_cap = tonumber(ARGV[7]), tonumber(ARGV[8])
local room, bare, which = nil, nil, ''
if task_cap >= 0 then
  local f = redis.call('HMGET', KEYS[1], 'calls_cost_nanos', 'tree_cost_nanos')
  bare = task_cap - math.max(tonumber(f[1] or '0'), tonumber(f[2] or '0'))
  room, which = bare - held(KEYS[2], now), 'task'
end
if tenant_cap >= 0 then
  local b = tenant_cap - tonumber(redis.call('GET', KEYS[3]) or '0')
  local r = b - held(KEYS[4], now)
  if room == nil or r < room then room, which = r, 'tenant' end
  if bare == nil or b < bare then bare = b end
end
-- The most output tokens that fit a room; doubles, so step down while the rounded-up worst case
-- would still pass it.
local function fits(space)
  local m = math.min(want, math.floor(space / per) - prompt)
  while m >= 1 and math.ceil((prompt + m) * per) > space do m = m - 1 end
  return m
end
local m = fits(room)
if m < 1 then
  return {0, which, string.format('%d', math.max(0, room)), fits(bare) >= 1 and 1 or 0}
end
local hold = math.ceil((prompt + m) * per)
local member = ARGV[1] .. '|' .. string.format('%d', hold)
for _, key in ipairs({KEYS[2], KEYS[4]}) do
  if key ~= '' then
    redis.call('ZADD', key, lapse, member)
    redis.call('PEXPIREAT', key, math.floor(lapse) + 1000)
  end
end
return {1, m, string.format('%d', hold)}
"""
)

# KEYS: root_hash tree_calls tenant_spend tenant_calls
# ARGV: member cost
# The hold goes; the call's real cost is charged to the tree (calls_cost_nanos: every call's,
# stored step or not) and to the tenant's day, in the same step.
SETTLE = r"""
local cost = tonumber(ARGV[2])
for _, key in ipairs({KEYS[2], KEYS[4]}) do
  if key ~= '' then redis.call('ZREM', key, ARGV[1]) end
end
if cost > 0 then
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'calls_cost_nanos', cost) end
  if KEYS[3] ~= '' then
    redis.call('INCRBY', KEYS[3], cost)
    redis.call('EXPIRE', KEYS[3], 172800)
  end
end
return 1
"""


class SpendGuard:
    """A model client that holds each task call's worst case against the tree's and the tenant's
    spend limits before the call, lowers its max_tokens to fit, and settles with its real cost.

    Calls of no task (a one-off call) and a fleet without prices pass straight through."""

    def __init__(
        self,
        inner: ModelClient,
        redis: Any,
        keys: Keys,
        prices: Prices,
        *,
        max_output_tokens: int,
        tenant_limit_nanos: int | None,
        default_timeout: float = 600.0,
    ) -> None:
        self.inner = inner
        self.r = redis
        self.keys = keys
        self.prices = prices
        self.per_token = dearer_nanos_per_token(prices)
        self.max_output_tokens = max_output_tokens
        self.tenant_limit = tenant_limit_nanos
        self.default_timeout = default_timeout
        self._hold = redis.register_script(HOLD)
        self._settle = redis.register_script(SETTLE)
        self._caps: OrderedDict[str, int | None] = OrderedDict()

    def __getattr__(self, name: str) -> Any:  # stream, and what else a wrapper's caller reads
        return getattr(self.inner, name)

    async def close(self) -> None:
        await self.inner.close()

    async def _cap(self, root: str) -> int | None:
        """The root's maxCost in 1e-9 units (None: none), read once per root."""
        if root in self._caps:
            self._caps.move_to_end(root)
            return self._caps[root]
        raw = await self.r.hget(self.keys.task(root), "limits")
        cap = task_cap_nanos(Limits.from_json(json.loads(raw))) if raw else None
        self._caps[root] = cap
        if len(self._caps) > _CAPS_CACHED:
            self._caps.popitem(last=False)
        return cap

    def _script_keys(self, request: ModelRequest, cap: int | None) -> list[str]:
        root = request.root_id or request.task_id
        tenanted = bool(request.tenant)
        day = int(time.time() // DAY_SECONDS)
        return [
            self.keys.task(root),
            f"{self.keys.task(root)}:calls" if cap is not None else "",
            self.keys.tenant_spend(request.tenant, day) if tenanted else "",
            self.keys.tenant_calls(request.tenant) if tenanted and self.tenant_limit is not None else "",
        ]

    async def complete(self, request: ModelRequest) -> ModelReply:
        if not request.task_id or self.per_token <= 0:
            return await self.inner.complete(request)
        cap = await self._cap(request.root_id or request.task_id)
        keys = self._script_keys(request, cap)
        want = min(self.max_output_tokens, request.max_tokens or self.max_output_tokens)
        member = ""
        if cap is not None or keys[3]:
            member, allowed = await self._held(request, keys, cap, want)
            if allowed < want:
                request = replace(request, max_tokens=allowed)
        cost = 0
        try:
            reply = await self.inner.complete(request)
            cost = self.prices.cost_nanos(reply.usage)
            return reply
        finally:
            if member or cost:
                await asyncio.shield(self._settle(keys=keys, args=[member, cost]))

    async def _held(self, request: ModelRequest, keys: list[str], cap: int | None, want: int) -> tuple[str, int]:
        """Hold the call's worst case: (the hold's member, the max_tokens it allows). While only
        other calls' holds leave no room, wait for them to settle, up to the call's own time."""
        prompt = prompt_bound(request.messages, request.tools, request.response_format)
        timeout = request.timeout if request.timeout is not None else self.default_timeout
        start = time.time()
        until, pause = start + max(0.0, timeout), 0.02
        call = uuid.uuid4().hex
        while True:
            now = time.time()
            res = await self._hold(
                keys=keys,
                args=[
                    call,
                    int(now * 1000),
                    int((until + HOLD_MARGIN_SECONDS) * 1000),
                    repr(float(self.per_token)),
                    prompt,
                    want,
                    -1 if cap is None else cap,
                    -1 if not keys[3] or self.tenant_limit is None else self.tenant_limit,
                ],
            )
            if int(res[0]) == 1:
                return f"{call}|{int(res[2])}", int(res[1])
            if int(res[3]) == 0 or now + pause >= until:
                raise self._refused(_text(res[1]), int(res[2]), prompt)
            await asyncio.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(1.0, pause * 2)

    def _refused(self, which: str, room: int, prompt: int) -> SpendRefused:
        worst = worst_call_nanos(self.per_token, prompt, 1)
        left = format(Decimal(room) / NANOS, "f")
        need = format(Decimal(worst) / NANOS, "f")
        if which == "tenant":
            return SpendRefused(
                f"the tenant's spend of today and its calls in flight leave {left} {self.prices.currency} of "
                f"spec.api.tenantLimits.maxSpendPerDay; the next call may cost {need} at the least",
                reason=StopReason.MAX_SPEND.value,
            )
        return SpendRefused(
            f"the task tree's budgets.maxCost leaves {left} {self.prices.currency}; "
            f"the next call may cost {need} at the least",
            reason=StopReason.MAX_COST.value,
        )


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def worst_first_call(prices: Prices, system_prompt: str, goal: str, max_output_tokens: int) -> int:
    """A task's first call at its worst, in 1e-9 units: what admission reserves at the least."""
    messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": goal}]
    return worst_call_nanos(dearer_nanos_per_token(prices), prompt_bound(messages), max_output_tokens)


# KEYS: once task_hash root_hash tenant_spend ('' where the task has no tenant)
# ARGV: tokens cost ttl
# A remote agent's reported usage (an A2A tool's sub-task), charged once per call (``once``, the
# call's idempotency key: a resumed step that reads the same remote task again charges nothing):
# its cost to the task, the tree's budget counters (stored steps' and calls' alike, so the next
# HOLD and the next budget check both see it) and the tenant's day; its tokens to the tree's.
CHARGE_REPORTED = r"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then return 0 end
local tokens, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
if cost > 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HINCRBY', KEYS[2], 'cost_nanos', cost) end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'tree_tokens', tokens)
  redis.call('HINCRBY', KEYS[3], 'tree_cost_nanos', cost)
  redis.call('HINCRBY', KEYS[3], 'calls_cost_nanos', cost)
end
if cost > 0 and KEYS[4] ~= '' then
  redis.call('INCRBY', KEYS[4], cost)
  redis.call('EXPIRE', KEYS[4], 172800)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Room:
    """What a task tree may still spend: tokens and cost in 1e-9 units (None: no limit)."""

    tokens: int | None = None
    cost_nanos: int | None = None


class ReportedSpend:
    """The spend of work done elsewhere on a task's behalf (an A2A tool's remote task), in the same
    counters the model calls' holds and settlements use: what the tree has left before the work is
    asked for (``room``), and what the remote reported after (``charge``)."""

    def __init__(self, redis: Any, keys: Keys, currency: str, ttl_seconds: int = 7 * DAY_SECONDS) -> None:
        self.r = redis
        self.keys = keys
        self.currency = currency
        self.ttl = ttl_seconds
        self._charge = redis.register_script(CHARGE_REPORTED)

    async def room(self, root: str) -> Room:
        limits_raw, tokens, tree_cost, calls_cost = await self.r.hmget(
            self.keys.task(root), ["limits", "tree_tokens", "tree_cost_nanos", "calls_cost_nanos"]
        )
        if not limits_raw:
            return Room()
        limits = Limits.from_json(json.loads(limits_raw))
        cap = task_cap_nanos(limits)
        spent = max(int(tree_cost or 0), int(calls_cost or 0))
        return Room(
            tokens=max(0, limits.max_tokens - int(tokens or 0)),
            cost_nanos=None if cap is None else max(0, cap - spent),
        )

    async def charge(self, task_id: str, root: str, tenant: str, tokens: int, cost_nanos: int, once: str) -> bool:
        """Charge a reported usage once per ``once``; whether this call charged it."""
        day = int(time.time() // DAY_SECONDS)
        keys = [
            f"{self.keys.task(task_id)}:reported:{once}",
            self.keys.task(task_id),
            self.keys.task(root),
            self.keys.tenant_spend(tenant, day) if tenant else "",
        ]
        return bool(await self._charge(keys=keys, args=[max(0, tokens), max(0, cost_nanos), self.ttl]))
