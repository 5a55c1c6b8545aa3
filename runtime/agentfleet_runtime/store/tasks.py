"""Task state in Redis: submit, lease, checkpoint, finish, retry, release, cancel, read.

One class wraps the Lua scripts of ``lua.py``; the agent loop and the task API both use it.
Redis holds the truth; a worker's memory holds only what it can rebuild from here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys
from agentfleet_contract.fleet_stats import FleetStats, group_counts, summarize
from redis.exceptions import NoScriptError, ResponseError

from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.budget import TreeUsage
from agentfleet_runtime.core.errors import CheckpointConflict, LeaseLost
from agentfleet_runtime.core.tenants import owner
from agentfleet_runtime.core.types import Limits, Observation, Status, Step, TaskRecord
from agentfleet_runtime.store import lua
from agentfleet_runtime.store.batch import ScriptBatcher


@dataclass(frozen=True, slots=True)
class Admission:
    """A tenant's limits that SUBMIT enforces atomically (None: no limit)."""

    max_in_flight: int | None = None
    max_spend_nanos: int | None = None
    # The tenant's token buckets (routing/ratelimit.py: key, then its rate and burst arguments),
    # and the tokens one of them must have room for now: the submission's first call (admission.py).
    buckets: tuple[tuple[str, str, str], ...] = ()
    need_tokens: int = 0
    # What the task may spend at most (its maxCost, else its token budget at the dearer price), in
    # 1e-9 units: reserved at admission against max_spend_nanos and released when it ends.
    reserve_nanos: int = 0


@dataclass(slots=True)
class Acquired:
    """A task this worker now holds, with everything needed to resume it."""

    record: TaskRecord
    steps: list[Step]
    root_limits: Limits
    root_deadline: float
    tree: TreeUsage


def event(kind: str, **data: Any) -> bytes:
    """A progress event, as stored on the task's events stream (compact JSON)."""
    return fastjson.dumpb({"type": kind, "at": round(time.time(), 3), **data})


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


_OPEN_OBSERVATIONS = b'"observations":null}'
_NULL_CLOSE = b"null}"


def _observations_json(step: Step) -> bytes:
    assert step.observations is not None
    return fastjson.dumpb([o.to_json() for o in step.observations])


def _observations_event(step: Step) -> bytes:
    assert step.observations is not None
    return event(
        "observations",
        step=step.n,
        results=[{"tool": o.name, "ok": o.ok, "output": o.output[:500]} for o in step.observations],
    )


class NotReplicated(Exception):
    """A submission written to the primary but not yet to enough replicas to survive its loss."""

    def __init__(self, task_id: str, acked: int, wanted: int) -> None:
        super().__init__(f"task {task_id} reached {acked} of {wanted} replicas in time")
        self.task_id = task_id


class TaskStore:
    def __init__(self, r: aioredis.Redis, keys: Keys, ttl_seconds: int = 7 * 86400) -> None:
        self.r = r
        self.keys = keys
        self.ttl = ttl_seconds
        self._submit = r.register_script(lua.SUBMIT)
        self._acquire = r.register_script(lua.ACQUIRE)
        self._save_reply = r.register_script(lua.SAVE_REPLY)
        self._complete = r.register_script(lua.COMPLETE)
        self._finish = r.register_script(lua.FINISH)
        self._retry = r.register_script(lua.RETRY)
        self._release = r.register_script(lua.RELEASE)
        self._cancel = r.register_script(lua.CANCEL)
        self._promote = r.register_script(lua.PROMOTE)
        self._heartbeat = r.register_script(lua.HEARTBEAT)
        self.batcher = ScriptBatcher(r)

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script in the next batch (batch.py); an awaitable of its reply."""
        return self.batcher.call(script, keys, args)

    async def close(self) -> None:
        await self.batcher.close()
        await self.r.aclose()

    def _task_keys(self, task_id: str) -> list[str]:
        k = self.keys
        return [*k.task_keys(task_id), k.stream, k.dead]

    async def load_scripts(self) -> None:
        """Load every script once up front: otherwise the first batch of a worker that starts
        with hundreds of tasks gets a NOSCRIPT error per call and is sent twice."""
        pipe = self.r.pipeline(transaction=False)
        for script in (
            self._submit,
            self._acquire,
            self._save_reply,
            self._complete,
            self._finish,
            self._retry,
            self._release,
            self._cancel,
            self._promote,
            self._heartbeat,
        ):
            pipe.script_load(script.script)
        await pipe.execute()

    async def ensure_group(self) -> None:
        try:
            await self.r.xgroup_create(self.keys.stream, CONSUMER_GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- submission ------------------------------------------------------------------------------
    def spend_key(self, rec: TaskRecord, now: float | None = None) -> list[str]:
        """The tenant's spend key of today as an optional script key ([] for a task of no tenant)."""
        if not rec.tenant:
            return []
        return [self.keys.tenant_spend(rec.tenant, int((time.time() if now is None else now) // 86400))]

    async def tenant_spent(self, tenant: str, now: float | None = None) -> int:
        """What a tenant's model calls cost today (UTC), in 1e-9 currency units."""
        day = int((time.time() if now is None else now) // 86400)
        return int(await self.r.get(self.keys.tenant_spend(tenant, day)) or 0)

    async def submit(
        self,
        record: TaskRecord,
        *,
        idempotency_key: str | None = None,
        request_hash: str = "",
        parent_children_key: str = "",
        admission: Admission | None = None,
        replicas: int = 0,
        wait_ms: int = 1000,
    ) -> tuple[int, str]:
        """Create and enqueue a task. Returns (1, task id) when created, (0, id) for the task an
        existing key or id names, and with ``admission`` (a tenant's root task) (-1, tasks in
        flight), (-2, "spent reserved wanted" today in 1e-9 units) or (-3, "wait_ms used_tokens bucket") when the
        tenant's limit refuses it.

        ``replicas``: a created task must reach that many replicas within ``wait_ms`` (WAIT on the
        connection that wrote it), else NotReplicated: the primary may die before it has them."""
        fields = record.to_hash()
        fields["request_hash"] = request_hash
        if record.root == record.id:
            fields.update(tree_tokens="0", tree_cost_nanos="0")
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, v]
        keys = [
            self.keys.task(record.id),
            self.keys.stream,
            self.keys.events(record.id),
            self.keys.submission(idempotency_key, record.tenant) if idempotency_key else "",
            self.keys.session(record.session, record.tenant) if record.session else "",
            parent_children_key,
        ]
        limits: list[Any] = [0, 0]
        tokens: list[Any] = [0, 0, 0]
        if admission is not None and record.tenant:
            keys += [self.keys.tenant_live(record.tenant), *self.spend_key(record, record.created_at)]
            keys.append(self.keys.tenant_reserved(record.tenant))
            limits = [admission.max_in_flight or 0, admission.max_spend_nanos or 0]
            tokens = [0, 0, admission.reserve_nanos]
            if admission.need_tokens > 0 and admission.buckets:
                keys += [key for key, _, _ in admission.buckets]
                tokens = [admission.need_tokens, len(admission.buckets), admission.reserve_nanos]
                tokens += [arg for _, rate, burst in admission.buckets for arg in (rate, burst)]
            keys.append(self.keys.tenant_tasks(record.tenant))  # the tenant's listing (A2A ListTasks)
        else:
            keys += ["", "", ""]
        ev = event("queued", task=record.id, parent=record.parent or None, depth=record.depth)
        args = [record.id, self.ttl, ev, *limits, self.keys.prefix, *tokens, *flat]
        if not replicas:
            created, task_id = await self._submit(keys=keys, args=args)
            return int(created), task_id
        # One pipeline, so WAIT runs on the connection whose write it waits for.
        for attempt in (1, 2):
            pipe = self.r.pipeline(transaction=False)
            await self._submit(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", replicas, wait_ms)
            try:
                (created, task_id), acked = await pipe.execute()
                break
            except NoScriptError:
                # A primary promoted by a failover starts with an empty script cache, and a
                # pipeline's retry does not load it again (seen); the script did not run.
                if attempt == 2:
                    raise
                await self.r.script_load(lua.SUBMIT)
        if int(created) == 1 and int(acked) < replicas:
            raise NotReplicated(task_id, int(acked), replicas)
        return int(created), task_id

    # -- leasing ---------------------------------------------------------------------------------
    async def acquire(
        self, task_id: str, *, lease: str, msg_id: str, reclaimed: bool, max_attempts: int, worker: str
    ) -> Acquired | str:
        """Take the lease of a delivered task. Returns the task, or why not: missing/terminal/dead."""
        res = await self._call(
            self._acquire,
            self._task_keys(task_id),
            [
                lease,
                repr(time.time()),
                "1" if reclaimed else "0",
                max_attempts,
                msg_id,
                CONSUMER_GROUP,
                self.keys.done_channel,
                self.ttl,
                worker,
                event("started", worker=worker, reclaimed=reclaimed),
                event(
                    "finished",
                    status="dead",
                    reason="failed",
                    error="worker lost: no heartbeat within the visibility timeout",
                ),
                self.keys.prefix,
            ],
        )
        if res[0] != "ok":
            return res[0]
        fields = _pairs(res[1])
        record = TaskRecord.from_hash(fields)
        steps = [Step.from_json(fastjson.loads(s)) for s in res[2]]
        limits_json, deadline, tree_tokens, tree_cost = res[3]
        # A root task is its own root: its limits are already parsed.
        root_limits = (
            Limits.from_json(fastjson.loads(limits_json))
            if limits_json and limits_json != fields.get("limits")
            else record.limits
        )
        tree = TreeUsage(int(tree_tokens or 0), int(tree_cost or 0))
        return Acquired(record, steps, root_limits, float(deadline or record.deadline), tree)

    async def heartbeat(self, consumer: str, msg_ids: Sequence[str]) -> list[str]:
        """Renew the entries this consumer holds; returns those it lost to another worker."""
        lost: list[str] = []
        for i in range(0, len(msg_ids), 500):  # bound one script's run time
            chunk = list(msg_ids[i : i + 500])
            lost += await self._heartbeat(keys=[self.keys.stream], args=[CONSUMER_GROUP, consumer, *chunk])
        return lost

    # -- checkpoints -------------------------------------------------------------------------------
    async def save_reply(self, rec: TaskRecord, lease: str, step: Step, cost_nanos: int) -> tuple[TreeUsage, bool]:
        """Store a step's model reply (before its tools run). Returns tree usage and cancel flag."""
        return self.reply_saved(rec, step.n, await self.send_reply(rec, lease, step, cost_nanos))

    def send_reply(self, rec: TaskRecord, lease: str, step: Step, cost_nanos: int) -> Any:
        """``save_reply`` in two halves, for a caller that goes on while it is stored: this one queues
        the write now and returns an awaitable of the raw reply, which ``reply_saved`` reads."""
        ev = event(
            "step",
            step=step.n,
            content=step.content[:2000],
            tool_calls=[c.name for c in step.tool_calls],
            tokens=step.usage.total,
        )
        task, steps, events, _ = self.keys.task_keys(rec.id)
        return self._call(
            self._save_reply,
            # No tenant spend key: the spend guard charged each call's cost when it ended (model/spend.py).
            [task, steps, events, task if rec.root == rec.id else self.keys.task(rec.root)],
            [
                lease,
                step.n,
                fastjson.dumpb(step.to_json()),
                step.usage.prompt_tokens,
                step.usage.completion_tokens,
                cost_nanos,
                ev,
            ],
        )

    def fold_observations(self, saving_reply: Any, step: Step) -> bool:
        """Send a step's observations with its reply, if that reply (``send_reply``'s reply) has not
        left yet: one script call instead of two, for tools that answer before the batch is sent
        (fast tools, a busy batcher). Then the reply's reply is also the completion's. False when
        the reply is already on its way; ``complete`` stores the observations."""
        args = self.batcher.unsent_args(saving_reply)
        # Seven arguments: a reply as send_reply queued it (a folded one has the eighth, its event).
        if args is None or len(args) != 7 or not args[2].endswith(_OPEN_OBSERVATIONS):
            return False
        # The reply's encoded step ends with '"observations":null}' (Step.to_json puts it last):
        # splice the observations in rather than encode the whole step a second time.
        args[2] = b"".join((args[2][: -len(_NULL_CLOSE)], _observations_json(step), b"}"))
        args.append(_observations_event(step))
        return True

    @staticmethod
    def reply_saved(rec: TaskRecord, n: int, res: Any) -> tuple[TreeUsage, bool]:
        """Tree usage and cancel flag from a reply's reply; raises if the reply was refused."""
        if res[0] == -1:
            raise LeaseLost(rec.id)
        if res[0] == -2:
            raise CheckpointConflict(f"task {rec.id}: step {n} does not follow the {res[1]} stored steps")
        return TreeUsage(int(res[1]), int(res[2])), res[3] == "1"

    async def complete(self, rec: TaskRecord, lease: str, step: Step) -> bool:
        """Store a step's observations. Returns the cancel flag.

        Only the observations go to Redis: the script splices them into the step stored by
        ``save_reply`` (lua.COMPLETE). Should the stored step not be that reply, the whole step is sent."""
        ev = _observations_event(step)
        keys = list(self.keys.task_keys(rec.id)[:3])
        res = await self._call(self._complete, keys, [lease, step.n, _observations_json(step), ev, "obs"])
        if res[0] == -3:
            res = await self._call(self._complete, keys, [lease, step.n, fastjson.dumpb(step.to_json()), ev, "full"])
        if res[0] == -1:
            raise LeaseLost(rec.id)
        if res[0] == -2:
            raise CheckpointConflict(f"task {rec.id}: step {step.n} was never saved")
        return res[1] == "1"

    async def finish(
        self,
        rec: TaskRecord,
        lease: str,
        msg_id: str,
        *,
        status: Status,
        reason: str,
        answer: str,
        error: str = "",
        final_step: Step | None = None,
        cost_nanos: int = 0,
    ) -> bool:
        """End a task and acknowledge its stream entry in one step. False if it had already ended."""
        ev = event("finished", status=status.value, reason=reason, answer=answer, error=error or None)
        step_json = fastjson.dumpb(final_step.to_json()) if final_step else ""
        n = final_step.n if final_step else 0
        usage = final_step.usage if final_step else None
        res = await self._call(
            self._finish,
            [*self._task_keys(rec.id), self.keys.task(rec.root)],  # charged at the call (model/spend.py)
            [
                lease,
                status.value,
                reason,
                answer,
                error,
                repr(time.time()),
                msg_id,
                CONSUMER_GROUP,
                self.keys.done_channel,
                self.ttl,
                ev,
                n,
                step_json,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                cost_nanos,
            ],
        )
        if res[0] == -1:
            raise LeaseLost(rec.id)
        if res[0] == -2:
            raise CheckpointConflict(f"task {rec.id}: final step {n} does not follow the stored steps")
        return res[0] == 1

    async def retry_later(
        self, rec: TaskRecord, lease: str, msg_id: str, error: str, delay: float, max_attempts: int
    ) -> tuple[str, int]:
        """Count a failed attempt; requeue after ``delay`` or dead-letter. Returns (outcome, failures)."""
        now = time.time()
        res = await self._call(
            self._retry,
            [*self._task_keys(rec.id), self.keys.delayed],
            [
                lease,
                msg_id,
                CONSUMER_GROUP,
                error[:4000],
                repr(now),
                repr(now + delay),
                max_attempts,
                self.keys.done_channel,
                self.ttl,
                event("retry", error=error[:1000], delay=round(delay, 3)),
                event("finished", status="dead", reason="failed", error=error[:1000]),
            ],
        )
        if res[0] == -1:
            raise LeaseLost(rec.id)
        return res[0], int(res[1])

    async def release(self, rec: TaskRecord, lease: str, msg_id: str) -> str | None:
        """Give a task back (graceful shutdown): requeued at once, no failure counted."""
        res = await self._call(
            self._release,
            [self.keys.task(rec.id), self.keys.events(rec.id), self.keys.stream],
            [lease, msg_id, CONSUMER_GROUP, event("released")],
        )
        return None if res[0] == -1 else res[1]

    async def requeue(self, msg_id: str, task_id: str) -> None:
        """Put a delivered entry back as a new one (a draining worker read it but will not run it)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.xack(self.keys.stream, CONSUMER_GROUP, msg_id)
        pipe.xdel(self.keys.stream, msg_id)
        if task_id:
            pipe.xadd(self.keys.stream, {"task": task_id})
        await pipe.execute()

    async def promote_due(self, limit: int = 100) -> int:
        """Move tasks whose retry backoff has passed from the delayed set onto the stream."""
        return int(await self._promote(keys=[self.keys.delayed, self.keys.stream], args=[repr(time.time()), limit]))

    async def cancel_tree(self, task_id: str) -> int:
        """Cancel a task and all its descendants. Returns 1, 0 (already ended) or -1 (unknown)."""
        first: int | None = None
        frontier = [task_id]
        seen: set[str] = set()
        while frontier:
            tid = frontier.pop()
            if tid in seen:
                continue
            seen.add(tid)
            res = await self._cancel(
                keys=[*self._task_keys(tid), self.keys.delayed],
                args=[
                    repr(time.time()),
                    self.keys.cancel_channel,
                    self.keys.done_channel,
                    self.ttl,
                    event("cancel_requested"),
                    event("finished", status="cancelled", reason="cancelled", answer=""),
                    CONSUMER_GROUP,
                ],
            )
            if first is None:
                first = int(res)
                if first == -1:
                    return -1
            frontier += await self.r.lrange(self.keys.children(tid), 0, -1)
        return min(first or 0, 1)

    # -- tool results (idempotency) --------------------------------------------------------------
    async def recorded_results(self, task_id: str, step: int, calls: int) -> list[Observation | None]:
        if calls == 0:
            return []
        raw = await self.r.mget([self.keys.tool_result(task_id, step, i) for i in range(calls)])
        return [None if v is None else Observation.from_json(json.loads(v)) for v in raw]

    async def record_result(self, task_id: str, step: int, call: int, obs: Observation) -> None:
        await self.r.set(self.keys.tool_result(task_id, step, call), json.dumps(obs.to_json()), ex=self.ttl)

    # -- reads -----------------------------------------------------------------------------------
    async def get(self, task_id: str) -> tuple[TaskRecord, dict[str, str]] | None:
        h = await self.r.hgetall(self.keys.task(task_id))
        if not h:
            return None
        return TaskRecord.from_hash(h), h

    async def steps(self, task_id: str) -> list[Step]:
        return [Step.from_json(fastjson.loads(s)) for s in await self.r.lrange(self.keys.steps(task_id), 0, -1)]

    async def children(self, task_id: str) -> list[str]:
        return await self.r.lrange(self.keys.children(task_id), 0, -1)

    async def statuses(self, task_ids: Sequence[str]) -> list[dict[str, str] | None]:
        """status, reason, answer of several tasks in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for tid in task_ids:
            pipe.hmget(self.keys.task(tid), "status", "reason", "answer", "error")
        out = []
        for vals in await pipe.execute():
            out.append(
                None if vals[0] is None else dict(zip(("status", "reason", "answer", "error"), vals, strict=True))
            )
        return out

    async def session_context(self, session: str, before: str, limit: int, tenant: str = "") -> list[tuple[str, str]]:
        """(goal, answer) of the tenant's session's earlier finished tasks, oldest first, up to ``limit``."""
        if not session or limit <= 0:
            return []
        ids = await self.r.lrange(self.keys.session(session, tenant), -(limit + 20), -1)
        ids = [i for i in ids if i != before][-(limit + 5) :]
        pipe = self.r.pipeline(transaction=False)
        for tid in ids:
            pipe.hmget(self.keys.task(tid), "goal", "answer", "status", "tenant")
        out = []
        for goal, answer, status, filed_by in await pipe.execute():
            # The key is per tenant already; the owner check also keeps out a task filed under
            # it by anything else (history goes into the system prompt: it must be the tenant's).
            if status == Status.DONE.value and answer and (filed_by or "") == tenant:
                out.append((goal, answer))
        return out[-limit:]

    async def events(
        self, task_id: str, after: str = "0-0", block_ms: int | None = None, count: int = 100
    ) -> list[tuple[str, dict[str, Any]]]:
        res = await self.r.xread({self.keys.events(task_id): after}, count=count, block=block_ms)
        out = []
        for _stream, entries in res or []:
            for eid, fields in entries:
                out.append((eid, json.loads(fields["e"])))
        return out

    async def owners(self, task_ids: Sequence[str]) -> list[str | None]:
        """The tenant of each task (a task of no tenant is the default tenant's; None: no such task)."""
        pipe = self.r.pipeline(transaction=False)
        for tid in task_ids:
            pipe.hmget(self.keys.task(tid), "id", "tenant")
        return [None if tid is None else owner(tenant or "") for tid, tenant in await pipe.execute()]

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        entries = await self.r.xrevrange(self.keys.dead, count=count)
        return [{"entry": eid, **fields} for eid, fields in entries]

    async def queue_stats(self) -> dict[str, float]:
        """Depth (undelivered), pending (delivered, unacked) and age of the oldest waiting entry."""
        try:
            groups = await self.r.xinfo_groups(self.keys.stream)
        except ResponseError:
            return {"depth": 0, "pending": 0, "oldest_age_seconds": 0.0, "delayed": 0}
        g = next((g for g in groups if g["name"] == CONSUMER_GROUP), None)
        if g is None:
            return {"depth": 0, "pending": 0, "oldest_age_seconds": 0.0, "delayed": 0}
        pending = int(g.get("pending") or 0)
        lag = g.get("lag")
        if lag is None:
            lag = max(0, int(await self.r.xlen(self.keys.stream)) - pending)
        age = 0.0
        last = g.get("last-delivered-id") or "0-0"
        if lag:
            nxt = await self.r.xrange(self.keys.stream, min="(" + last, count=1)
            if nxt:
                age = max(0.0, time.time() - int(nxt[0][0].split("-")[0]) / 1000)
        delayed = int(await self.r.zcard(self.keys.delayed))
        return {"depth": int(lag), "pending": pending, "oldest_age_seconds": age, "delayed": delayed}

    async def fleet_stats(self, now: float | None = None) -> FleetStats:
        """Queue depth, in-flight tasks and the last hour's finished tasks (see stats.py)."""
        now = time.time() if now is None else now
        pipe = self.r.pipeline(transaction=False)
        pipe.exists(self.keys.stream)
        pipe.xlen(self.keys.stream)
        pipe.zrangebyscore(self.keys.finished, now - lua.FINISHED_WINDOW_SECONDS, "+inf")
        exists, length, members = await pipe.execute()
        groups = await self.r.xinfo_groups(self.keys.stream) if exists else []
        depth, pending = group_counts(groups, int(length or 0))
        return summarize(members, depth=depth, in_flight=pending)
