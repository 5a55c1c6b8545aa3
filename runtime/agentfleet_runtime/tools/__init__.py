"""Tools the agents call, and the ToolBox that runs one step's calls concurrently."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from agentfleet_contract.gate import SIDE_EFFECTS_METADATA, SideEffects
from agentfleet_contract.runtime_config import GATE_TENANT

from agentfleet_runtime.core import timeouts
from agentfleet_runtime.core.breaker import BreakerState, CircuitBreaker
from agentfleet_runtime.core.errors import LeaseLost, Released
from agentfleet_runtime.core.types import Observation, TaskRecord, ToolCall
from agentfleet_runtime.tools.base import Tool, ToolContext, ToolError
from agentfleet_runtime.tools.fanout import goals_of

__all__ = ["Tool", "ToolBox", "ToolContext", "ToolError"]

# A spawn call waits for its children itself and turns its own fan-in timeout into partial
# results; the outer timeout only guards against a bug there.
SPAWN_GRACE_SECONDS = 5.0


def judged(task: TaskRecord) -> SideEffects | None:
    """How a task under evaluation treats side effects (None: the task is no gate task). Only the
    gate's runner files tasks under GATE_TENANT (no token maps to it), so the mode in its metadata
    is the gate's; a gate task without one (a sub-agent) skips."""
    if task.tenant != GATE_TENANT:
        return None
    mode = (task.metadata or {}).get(SIDE_EFFECTS_METADATA)
    return "DryRunHeader" if mode == "DryRunHeader" else "Skip"


def not_run(call: ToolCall, why: str) -> Observation:
    """The observation of a call an evaluation gate does not make: what it would have called."""
    args = json.dumps(call.arguments, sort_keys=True, default=str)[:2000]
    return Observation(
        call.id,
        call.name,
        False,
        f"{call.name} was not called: this task is an evaluation of the agent, and {why}. The intended call "
        f"({call.name} with {args}) is recorded; answer from what you have.",
    )


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters cut]"


class ToolBox:
    def __init__(
        self,
        tools: Sequence[Any],
        *,
        results: Any = None,  # TaskStore-like: recorded_results / record_result (idempotency)
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        max_observation_chars: int = 16_000,
        on_call: Callable[[str, str, float], None] | None = None,
        on_breaker: Callable[[str, BreakerState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        gate: Any = None,  # approvals.Gate: calls a person approves first (toolPolicies[].requireApproval)
    ) -> None:
        # A source of tools (an MCP server) lists its tools itself, and lists them again when they change.
        self._sources = [t for t in tools if getattr(t, "provides_tools", False)]
        self._static = [t for t in tools if not getattr(t, "provides_tools", False)]
        self.gate = gate
        self._gated = gate.tools if gate is not None else frozenset()
        self.results = results
        self.breakers: dict[str, CircuitBreaker] = {}
        self._new_breaker = lambda: CircuitBreaker(failure_threshold, cooldown, clock)
        self.max_chars = max_observation_chars
        self.on_call = on_call
        self.on_breaker = on_breaker
        for source in self._sources:
            source.on_change = self._index
            source.taken = lambda source=source: self._names_besides(source)
        self._index()

    def _index(self) -> None:
        """The name tables, built at construction and again whenever a source's tools change; a task
        reads the schemas once when it starts, so a change reaches the tasks started after it."""
        tools = [*self._static, *(t for source in self._sources for t in source.tools)]
        self.tools: dict[str, Any] = {t.name: t for t in tools}
        # Looked up on every call: kept as sets rather than getattr on each tool each time.
        self._side_effects = {t.name for t in tools if getattr(t, "side_effects", False)}
        self._spawners = {t.name for t in tools if getattr(t, "spawns", False)}
        self._read_only = {t.name for t in tools if getattr(t, "read_only", False)}
        self._cite_sources = {t.name for t in tools if getattr(t, "cites_artifacts", False)}
        for name in self.tools:
            if name not in self.breakers:
                self.breakers[name] = self._new_breaker()

    def _names_besides(self, source: Any) -> list[str]:
        """The names a source's tools must not take: every other tool's."""
        return [n for n, t in self.tools.items() if getattr(t, "server", None) is not source]

    async def start(self) -> None:
        """Connect the sources of tools; each waits for its first listing only up to its connect timeout."""
        if self._sources:
            await asyncio.gather(*(source.start() for source in self._sources))

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema() for t in self.tools.values()]

    @property
    def names(self) -> list[str]:
        return list(self.tools)

    @property
    def spawners(self) -> frozenset[str]:
        """Tools that start sub-agents (a task at the depth limit cannot use them)."""
        return frozenset(self._spawners)

    @property
    def read_only(self) -> frozenset[str]:
        """Tools whose identical calls return what they returned before (searches)."""
        return frozenset(self._read_only)

    @property
    def cite_sources(self) -> frozenset[str]:
        """Tools whose observations name, on their first line, a source the answer cites (A2A agents)."""
        return frozenset(self._cite_sources)

    def acts(self, calls: Sequence[ToolCall]) -> bool:
        """Whether a call changes something outside the task (a side effect, a sub-agent): such
        a step's model reply must be stored before its tools run, so a resumed task replays that
        reply instead of asking the model for a different one."""
        return any(c.name in self._side_effects or c.name in self._spawners or c.name in self._gated for c in calls)

    async def run_step(
        self, task: TaskRecord, step: int, calls: Sequence[ToolCall], deadline: float
    ) -> list[Observation]:
        """Run one step's tool calls concurrently; every outcome, failures included, is an observation."""
        recorded: list[Observation | None] = [None] * len(calls)
        mode = judged(task)
        if mode is not None:
            return await self._run_judged(task, step, calls, deadline, mode)
        # Calls a person approved: run once, their results recorded as a side effect's are.
        gated = self.gate.gated(calls) if self._gated and any(c.name in self._gated for c in calls) else []
        denied = await self.gate.verdicts(task, step, calls, gated) if gated else {}  # raises AwaitingApproval
        keep = frozenset(gated)
        effects = self._side_effects and any(c.name in self._side_effects for c in calls)
        if self.results is not None and (gated or effects):
            recorded = await self.results.recorded_results(task.id, step, len(calls))
        for i, denial in denied.items():
            recorded[i] = denial
        quotas = self._spawn_quotas(task, calls) if self._spawners else {}
        if len(calls) == 1:
            return [await self._run_one(task, step, 0, calls[0], deadline, recorded[0], quotas.get(0), 0 in keep)]
        return await _all_or_none(
            self._run_one(task, step, i, c, deadline, recorded[i], quotas.get(i), i in keep)
            for i, c in enumerate(calls)
        )

    async def _run_judged(
        self, task: TaskRecord, step: int, calls: Sequence[ToolCall], deadline: float, mode: SideEffects
    ) -> list[Observation]:
        """An evaluation gate's task (issue 76): no call a person must approve reaches a reviewer,
        and no side effect happens, for either version; the model reads that, the task's steps
        keep the intended call. With DryRunHeader a tool that can mark a call as a dry run (HTTP)
        is called so marked."""
        quotas = self._spawn_quotas(task, calls) if self._spawners else {}

        async def one(i: int, call: ToolCall) -> Observation:
            tool = self.tools.get(call.name)
            if call.name in self._gated:
                return not_run(call, "calls that need a person's approval are not asked for in an evaluation")
            if call.name in self._side_effects:
                if mode == "DryRunHeader" and getattr(tool, "dry_run_header", False):
                    return await self._run_one(task, step, i, call, deadline, None, quotas.get(i), dry_run=True)
                return not_run(call, "tools with side effects are not called in an evaluation")
            return await self._run_one(task, step, i, call, deadline, None, quotas.get(i))

        return await _all_or_none(one(i, c) for i, c in enumerate(calls))

    def _spawn_quotas(self, task: TaskRecord, calls: Sequence[ToolCall]) -> dict[int, int]:
        """Split the step's fan-out among its spawn calls, first come first served."""
        left = task.limits.max_fan_out
        quotas = {}
        for i, c in enumerate(calls):
            if c.name in self._spawners:
                quotas[i] = left
                left = max(0, left - len(goals_of(c.arguments)))
        return quotas

    async def _run_one(
        self,
        task: TaskRecord,
        step: int,
        index: int,
        call: ToolCall,
        deadline: float,
        recorded: Observation | None,
        quota: int | None,
        keep: bool = False,
        *,
        dry_run: bool = False,
    ) -> Observation:
        if recorded is not None:
            return recorded
        tool = self.tools.get(call.name)
        if tool is None:
            return Observation(
                call.id,
                call.name,
                False,
                f"unknown tool {call.name!r}; available tools: {', '.join(self.tools) or 'none'}",
            )
        breaker = self.breakers[call.name]
        if not breaker.allow():
            self._called(call.name, "breaker_open", 0.0)
            return Observation(
                call.id,
                call.name,
                False,
                (
                    f"{call.name} is temporarily unavailable after repeated failures; retry in "
                    f"{breaker.retry_after():.0f}s or do without it"
                ),
            )
        self._breaker(call.name, breaker)
        ctx = ToolContext(task=task, step=step, call_index=index, deadline=deadline, dry_run=dry_run)
        spawn = call.name in self._spawners
        limit = min(tool.timeout + (SPAWN_GRACE_SECONDS if spawn else 0.0), deadline - time.time())
        started = time.monotonic()
        if limit <= 0:
            return Observation(
                call.id, call.name, False, f"{call.name} was not called: the task's time budget is spent"
            )
        try:
            with timeouts.timeout(limit):
                output = await (tool.run(call.arguments, ctx, quota) if spawn else tool.run(call.arguments, ctx))
            obs = Observation(
                call.id, call.name, True, truncate(str(output), self.max_chars), time.monotonic() - started
            )
            breaker.record(True)
            outcome = "ok"
        except ToolError as e:
            breaker.record(not e.unhealthy)
            obs = Observation(call.id, call.name, False, truncate(str(e), self.max_chars), time.monotonic() - started)
            outcome = "error"
        except TimeoutError:
            breaker.record(False)
            obs = Observation(
                call.id, call.name, False, f"{call.name} timed out after {limit:.1f}s", time.monotonic() - started
            )
            outcome = "timeout"
        except (asyncio.CancelledError, Released, LeaseLost):
            breaker.release_probe()
            raise
        except Exception as e:  # a tool's bug must not become the task's failure
            breaker.record(False)
            obs = Observation(
                call.id,
                call.name,
                False,
                f"{call.name} failed: {type(e).__name__}: {e}"[: self.max_chars],
                time.monotonic() - started,
            )
            outcome = "error"
        self._called(call.name, outcome, obs.seconds)
        self._breaker(call.name, breaker)
        if (keep or call.name in self._side_effects) and self.results is not None:
            await self.results.record_result(task.id, step, index, obs)
        return obs

    def _called(self, name: str, outcome: str, seconds: float) -> None:
        if self.on_call:
            self.on_call(name, outcome, seconds)

    def _breaker(self, name: str, breaker: CircuitBreaker) -> None:
        if self.on_breaker:
            self.on_breaker(name, breaker.state)

    async def close(self) -> None:
        for t in [*self._static, *self._sources]:
            close = getattr(t, "close", None)
            if close is not None:
                await close()


async def _all_or_none(calls: Iterable[Awaitable[Observation]]) -> list[Observation]:
    """The step's calls run together. Draining, lease lost or cancelled: no sibling call may outlive
    the step."""
    runs = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*runs))
    except BaseException:
        for r in runs:
            r.cancel()
        raise
