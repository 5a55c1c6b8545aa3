"""Approval of tool calls by a person (spec.decisions.toolPolicies[].requireApproval).

A step whose calls need approval is stored (its plan) before anything runs; the worker then parks
the task: in one script it becomes ``awaiting_approval`` with the proposed calls in its hash, its
stream entry is acknowledged (no worker holds it, no slot, no heartbeat) and it joins the fleet's
approvals set, scored by when its approval times out. ``POST /v1/tasks/{id}/approvals`` (or the
worker's sweep, at the timeout) records the decision, moves the task's deadline on by the time it
waited (waiting spends no time budget) and puts it back on the stream. Whichever worker takes it
resumes the unfinished step: approved calls run once, under the idempotency key side-effect tools
already use, and their results are recorded so a crash after the call never repeats it; denied
or timed-out calls become observations the model reads.

Conditions are tests on the call's JSON arguments (a JSON pointer and ``above`` or ``equals``);
nothing is evaluated. A condition whose argument is missing, or not a number for ``above``, asks
for approval: an unreadable call is not waved through.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.tenants import owner
from agentfleet_runtime.core.types import Observation, Status, TaskRecord, ToolCall
from agentfleet_runtime.store import lua

AWAITING = Status.AWAITING_APPROVAL.value  # the task's status while it waits (PARK and DECIDE spell it too)
DECISIONS = {"approve": "approved", "deny": "denied"}  # request word -> recorded decision
MAX_LISTED = 1000  # GET /v1/approvals reads at most this many waiting tasks of the caller's tenant

WAITING = Gauge(
    "agentfleet_approvals_waiting", "Tasks of the fleet waiting for an approval (read by each worker's sweep)."
)
REQUESTED = Counter("agentfleet_approvals_requested_total", "Steps that paused for an approval, by tool.", ["tool"])
DECIDED = Counter("agentfleet_approvals_decided_total", "Approval decisions: approved, denied, timeout.", ["decision"])
WAIT_SECONDS = Histogram(
    "agentfleet_approval_wait_seconds",
    "From a task's pause to its decision.",
    ["decision"],
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400),
)


# -- rules (pure) ----------------------------------------------------------------------------------
def resolve(arguments: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) of a JSON pointer (RFC 6901) into a call's arguments."""
    value = arguments
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


@dataclass(frozen=True, slots=True)
class Condition:
    pointer: str
    above: float | None = None
    equals: str | None = None

    def holds(self, arguments: Any) -> bool:
        found, value = resolve(arguments, self.pointer)
        if not found:
            return True  # fail closed: a call that does not say the amount is asked about
        if self.above is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return True
            return value > self.above
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return text == self.equals


@dataclass(frozen=True, slots=True)
class Rule:
    tool: str
    when: tuple[Condition, ...] = ()
    timeout_seconds: float = 3600.0

    def needs(self, call: ToolCall) -> bool:
        return not self.when or any(c.holds(call.arguments) for c in self.when)


class Gate:
    """Which calls need approval, and reading the decisions recorded for a step."""

    def __init__(self, rules: Sequence[Rule], redis: Any = None, keys: Any = None) -> None:
        self.rules = {r.tool: r for r in rules}
        self.r = redis
        self.keys = keys

    @classmethod
    def from_spec(cls, decisions: Mapping[str, Any] | None, redis: Any = None, keys: Any = None) -> Gate | None:
        """From spec.decisions (wire form); None when no tool policy asks for approval."""
        rules = []
        for p in (decisions or {}).get("toolPolicies") or ():
            spec = p.get("requireApproval")
            if spec is None:
                continue
            when = tuple(Condition(c["argument"], c.get("above"), c.get("equals")) for c in spec.get("when") or ())
            rules.append(Rule(p["tool"], when, float(spec.get("timeoutSeconds", 3600))))
        return cls(rules, redis, keys) if rules else None

    @property
    def tools(self) -> frozenset[str]:
        return frozenset(self.rules)

    def gated(self, calls: Sequence[ToolCall]) -> list[int]:
        """Indexes of the calls that need approval."""
        return [i for i, c in enumerate(calls) if c.name in self.rules and self.rules[c.name].needs(c)]

    def timeout(self, calls: Sequence[ToolCall]) -> float:
        return min(self.rules[c.name].timeout_seconds for c in calls)

    async def verdicts(
        self, task: TaskRecord, step: int, calls: Sequence[ToolCall], gated: list[int]
    ) -> dict[int, Observation]:
        """The observations of the gated calls a person denied (or let time out); an empty dict
        when they were approved. Raises AwaitingApproval when the step has no decision yet."""
        raw = await self.r.hget(self.keys.task(task.id), decision_field(step))
        if raw is None:
            raise AwaitingApproval(step, [(i, calls[i]) for i in gated], self.timeout([calls[i] for i in gated]))
        decided = json.loads(raw)
        if decided["decision"] == "approved":
            return {}
        return {i: Observation(calls[i].id, calls[i].name, False, denial_text(calls[i].name, decided)) for i in gated}


def decision_field(step: int) -> str:
    return f"approval:{step}"


def denial_text(tool: str, decided: Mapping[str, Any]) -> str:
    """What the model reads in place of a call that did not run."""
    if decided["decision"] == "timeout":
        return (
            f"{tool} was not run: nobody approved the call in time. Go on without it, or answer that it needs approval."
        )
    reason = str(decided.get("reason") or "").strip()
    why = f" Reason: {reason[:1000]}" if reason else ""
    return f"{tool} was not run: a reviewer denied this call.{why} Go on without it or do something else."


class AwaitingApproval(Exception):  # noqa: N818 - a state the task enters, as Released and Cancelled
    """A step's calls wait for a person: the worker parks the task and frees its slot."""

    def __init__(self, step: int, calls: list[tuple[int, ToolCall]], timeout: float) -> None:
        super().__init__(f"step {step} waits for approval of {', '.join(c.name for _, c in calls)}")
        self.step, self.calls, self.timeout = step, calls, timeout

    def pending(self, now: float) -> dict[str, Any]:
        return {
            "step": self.step,
            "calls": [{"index": i, "id": c.id, "tool": c.name, "arguments": c.arguments} for i, c in self.calls],
            "since": round(now, 3),
            "expiresAt": round(now + self.timeout, 3),
        }


MAX_REASON_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed ``POST /v1/tasks/{id}/approvals`` body."""

    decision: str  # approved | denied
    reason: str = ""
    step: int | None = None  # the step the caller decides: a retry then never decides a later pause


def parse_request(body: Any) -> Request | str:
    """The request, or what is wrong with it (the API's 400 message, naming the field and the fix)."""
    if not isinstance(body, dict):
        return 'body must be a JSON object, e.g. {"decision": "approve", "reason": "checked the amount"}'
    extra = sorted(set(body) - {"decision", "reason", "step"})
    if extra:
        return f"unknown field {extra[0]!r}: the body takes decision, reason and step"
    decision = body.get("decision")
    if decision not in DECISIONS:
        return 'decision must be "approve" or "deny"'
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        return f"reason must be a string of at most {MAX_REASON_CHARS} characters"
    step = body.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 1_000_000):
        return "step must be the waiting step's number (an integer from GET /v1/approvals), or left out"
    return Request(DECISIONS[decision], reason, step)


# -- durable state (Redis) -------------------------------------------------------------------------
# KEYS: hash events stream approvals tenant_approvals
# ARGV: lease msg_id group pending_json expires_at now event
PARK = (
    lua.PRELUDE
    + r"""
local h = redis.call('HMGET', KEYS[1], 'lease', 'cancel', 'id')
if h[1] ~= ARGV[1] then return {-1} end
if h[2] == '1' then return {-2} end
redis.call('HSET', KEYS[1], 'status', 'awaiting_approval', 'lease', '', 'approval', ARGV[4], 'approval_since', ARGV[6])
ack(KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], tonumber(ARGV[5]), h[3])
redis.call('ZADD', KEYS[5], tonumber(ARGV[5]), h[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'e', ARGV[7])
return {1}
"""
)

# KEYS: hash events stream approvals tenant_approvals
# ARGV: decision reason now expected_step by
# {1, record}: decided now. {0, status, record-or-''}: nothing to decide (not waiting, or a
# timeout that is not due, or expected_step names a step other than the waiting one); record is
# the decision of expected_step (else the last one), for an idempotent repeat. {-1}: no task.
# The wait is taken off the task's time budget: its deadline moves on by the time it waited.
DECIDE = r"""
local h = redis.call('HMGET', KEYS[1], 'id', 'status', 'approval', 'approval_since', 'approval_last', 'deadline')
if not h[1] then return {-1} end
local now = tonumber(ARGV[3])
local prior = h[5] or ''
if ARGV[4] ~= '' then prior = redis.call('HGET', KEYS[1], 'approval:' .. ARGV[4]) or '' end
if h[2] ~= 'awaiting_approval' or not h[3] then return {0, h[2], prior} end
local pending = cjson.decode(h[3])
if ARGV[4] ~= '' and tostring(pending.step) ~= ARGV[4] then return {0, h[2], prior} end
if ARGV[1] == 'timeout' then
  local due = redis.call('ZSCORE', KEYS[4], h[1])
  if due and tonumber(due) > now then return {0, h[2], ''} end
end
local waited = math.max(0, now - (tonumber(h[4] or '') or now))
local record = cjson.encode({step=pending.step, decision=ARGV[1], reason=ARGV[2], at=ARGV[3], waitedSeconds=waited,
                             by=ARGV[5]})
redis.call('HSET', KEYS[1], 'approval:' .. pending.step, record, 'approval_last', record, 'status', 'queued',
           'deadline', string.format('%.6f', (tonumber(h[6] or '') or now) + waited))
redis.call('HDEL', KEYS[1], 'approval', 'approval_since')
redis.call('ZREM', KEYS[4], h[1])
redis.call('ZREM', KEYS[5], h[1])
redis.call('XADD', KEYS[3], '*', 'task', h[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'e', cjson.encode({type='approval', at=now, step=pending.step,
           decision=ARGV[1], reason=ARGV[2], waitedSeconds=waited, by=ARGV[5]}))
return {1, record}
"""


def approvals_key(keys: Any) -> str:
    """Sorted set of the fleet's waiting tasks, scored by when their approval times out."""
    return keys.approvals


@dataclass(frozen=True, slots=True)
class Outcome:
    """What DECIDE did: ``decided`` now, or not (``status`` then says why) with ``record`` the
    decision already stored for the step, if any."""

    decided: bool
    status: str
    record: dict[str, Any] | None


class Approvals:
    """The scripts that park a task and decide its approval, and the reads of the API."""

    def __init__(self, redis: Any, keys: Any) -> None:
        self.r = redis
        self.keys = keys
        self._park = redis.register_script(PARK)
        self._decide = redis.register_script(DECIDE)

    def _keys(self, task_id: str, tenant: str) -> list[str]:
        return [
            self.keys.task(task_id),
            self.keys.events(task_id),
            self.keys.stream,
            approvals_key(self.keys),
            self.keys.tenant_approvals(owner(tenant)),
        ]

    async def park(self, rec: TaskRecord, lease: str, msg_id: str, waiting: AwaitingApproval, group: str) -> int:
        """1 parked, -1 lease lost, -2 the task was cancelled (end it instead)."""
        now = time.time()
        pending = waiting.pending(now)
        ev = fastjson.dumpb({"type": "approval_requested", "at": round(now, 3), **pending})
        res = await self._park(
            keys=self._keys(rec.id, rec.tenant),
            args=[lease, msg_id, group, fastjson.dumpb(pending), repr(pending["expiresAt"]), repr(now), ev],
        )
        if res[0] == 1:
            for _, call in waiting.calls:
                REQUESTED.labels(call.name).inc()
        return int(res[0])

    async def decide(
        self,
        task_id: str,
        decision: str,
        reason: str = "",
        step: int | None = None,
        now: float | None = None,
        by: str = "",
        tenant: str | None = None,
    ) -> Outcome | None:
        """Record a decision (approved, denied, timeout) and who made it (a token's identity, or
        ``timeout``); None when there is no such task."""
        now = time.time() if now is None else now
        if tenant is None:
            tenant = await self.r.hget(self.keys.task(task_id), "tenant") or ""
        res = await self._decide(
            keys=self._keys(task_id, tenant),
            args=[decision, reason, repr(now), "" if step is None else str(step), by],
        )
        if res[0] == -1:
            return None
        if res[0] == 1:
            record = json.loads(res[1])
            DECIDED.labels(decision).inc()
            WAIT_SECONDS.labels(decision).observe(float(record.get("waitedSeconds") or 0))
            return Outcome(True, "queued", record)
        return Outcome(False, res[1], json.loads(res[2]) if res[2] else None)

    async def expire_due(self, limit: int = 100) -> int:
        """Deny (as ``timeout``) the waiting tasks whose approval timed out; sets the gauge."""
        key = approvals_key(self.keys)
        now = time.time()
        due = await self.r.zrangebyscore(key, "-inf", repr(now), start=0, num=limit)
        n = 0
        for task_id in due:
            got = await self.decide(task_id, "timeout", now=now, by="timeout")
            if got is None:  # the task's record expired: nothing waits any more
                await self.r.zrem(key, task_id)
            elif got.decided:
                n += 1
        WAITING.set(await self.r.zcard(key))
        return n

    async def waiting(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's waiting approvals, soonest timeout first (at most MAX_LISTED are read).

        Read from the tenant's own set, so another tenant's waiting tasks, however many, never
        push these out of the listing. Entries whose task has ended (cancelled) or expired are
        dropped from the set here, and the window read again."""
        key = self.keys.tenant_approvals(tenant)
        for _ in range(3):
            out, stale = await self._read_waiting(key, tenant)
            if not stale:
                break
            await self.r.zrem(key, *stale)
        return out

    async def _read_waiting(self, key: str, tenant: str) -> tuple[list[dict[str, Any]], list[str]]:
        ids = await self.r.zrange(key, 0, MAX_LISTED - 1)
        pipe = self.r.pipeline(transaction=False)
        for tid in ids:
            pipe.hmget(self.keys.task(tid), "tenant", "status", "approval", "goal", "submitter", "approval_last")
        out, stale = [], []
        for tid, (who, status, pending, goal, submitter, last) in zip(ids, await pipe.execute(), strict=True):
            if status is None or owner(who or "") != tenant or Status(status).terminal:
                stale.append(tid)  # gone or ended (cancelled): a queued one is DECIDE's to remove
                continue
            if status != AWAITING or not pending:
                continue
            item = {"task": tid, "tenant": tenant, "goal": (goal or "")[:200], **json.loads(pending)}
            item["submittedBy"] = submitter or None
            item["lastDecision"] = json.loads(last) if last else None
            out.append(item)
        return out, stale


async def sweep_loop(approvals: Approvals, interval: float, draining: Any) -> None:
    """A worker's loop: time out due approvals (every worker sweeps; DECIDE settles races)."""
    while not draining():
        await approvals.expire_due()
        await asyncio.sleep(interval)


def approval_view(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """The task view's ``approval``: the calls waiting (while it waits), else the last decision."""
    if raw.get("status") == AWAITING and raw.get("approval"):
        return {"waiting": True, **json.loads(raw["approval"])}
    if raw.get("approval_last"):
        return {"waiting": False, **json.loads(raw["approval_last"])}
    return None
