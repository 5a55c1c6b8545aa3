"""The autoscale benchmark's fleet simulator: replicas that load, serve and drain on the simulated
clock, the router in front of them, and the agents whose tasks call them."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import random
from dataclasses import dataclass, field

from agentfleet_sim import ApiError, EngineConfig, HashedPrompt, Quirks, Replica, ReplicaConfig
from e2e.bench.autoscale.workload import (
    _ZIPF_CDF,
    GPUS_PER_REPLICA,
    LOAD_RANGE_S,
    SYSTEM_PROMPT_HASHED,
    TPOT_SLO_S,
    TTFT_SLO_S,
)


@dataclass(eq=False)
class Slot:
    replica: Replica
    created: float
    load_s: float
    draining: bool = False
    removed: float | None = None
    tasks: int = 0  # tasks pinned here
    busy_mark: float = 0.0  # engine busy seconds at the last policy evaluation
    hist_marks: list[tuple[float, dict[str, list[tuple[float, float]]], float]] = field(default_factory=list)

    def ready(self, now: float) -> bool:
        return not self.draining and now >= self.created + self.load_s


class Fleet:
    def __init__(
        self,
        seed: int,
        engine: EngineConfig,
        quirks: Quirks | None = None,
        load_range: tuple[float, float] = LOAD_RANGE_S,
    ) -> None:
        self.slots: list[Slot] = []
        self.load_range = load_range  # a new replica's model load, drawn uniformly (--load-seconds)
        self.rng = random.Random(seed * 7919 + 1)
        self.engine = engine
        self.quirks = quirks or Quirks()  # how the replicas' engine differs from vLLM (--engines)
        self.ids = itertools.count()
        self.gpu_seconds_closed = 0.0
        self.scale_events = 0
        # The task layer (an AgentFleet's agentfleet_tasks_in_flight): tasks started and not ended.
        self.tasks_in_flight = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def live(self) -> list[Slot]:
        return [s for s in self.slots if s.removed is None]

    def active(self) -> list[Slot]:
        return [s for s in self.slots if s.removed is None and not s.draining]

    async def add(self, now: float, warm: bool = False) -> None:
        # By default 2.5-4 min (LOAD_RANGE_S); a filled model cache's load is --load-seconds.
        load = 0.0 if warm else self.rng.uniform(*self.load_range)
        cfg = ReplicaConfig(engine=self.engine, startup_seconds=load, quirks=self.quirks)
        replica = Replica(cfg, name=f"replica-{next(self.ids)}")
        await replica.start()
        self.slots.append(Slot(replica, now, load))

    async def set_desired(self, n: int) -> None:
        now = self.now()
        active = self.active()
        if n == len(active):
            return
        self.scale_events += 1
        if n > len(active):
            for _ in range(n - len(active)):
                await self.add(now)
            return
        # Remove loading replicas first (no work on them), then the ones holding fewest tasks.
        victims = sorted(active, key=lambda s: (s.ready(now), s.tasks, s.replica.inflight))[: len(active) - n]
        for s in victims:
            s.draining = True
            s.replica.drain()
        await self.reap()

    async def reap(self) -> None:
        now = self.now()
        for s in self.slots:
            if s.removed is None and s.draining and s.replica.inflight == 0:
                s.removed = now
                self.gpu_seconds_closed += (now - s.created) * GPUS_PER_REPLICA
                await s.replica.stop()
        # Removed replicas are closed (their GPU-seconds counted): drop them from every scan.
        self.slots = [s for s in self.slots if s.removed is None]

    def gpu_seconds(self, now: float) -> float:
        return self.gpu_seconds_closed + sum((now - s.created) * GPUS_PER_REPLICA for s in self.live())

    def ready(self, now: float) -> list[Slot]:
        return [s for s in self.slots if s.removed is None and s.ready(now)]

    @staticmethod
    def overloaded(slot: Slot, ready: list[Slot]) -> bool:
        """Routing's load bound (spec.routing.loadBoundPercent 125): a task leaves its replica
        when that holds more than 125 % of the mean pinned tasks and a lighter one exists."""
        if len(ready) < 2:
            return False
        mean = sum(s.tasks for s in ready) / len(ready)
        return slot.tasks > 1.25 * mean + 1 and min(s.tasks for s in ready) < slot.tasks - 1

    @staticmethod
    def pick(ready: list[Slot]) -> Slot | None:
        if not ready:
            return None
        return min(ready, key=lambda s: (s.tasks, s.replica.inflight))


@dataclass
class Results:
    task_latencies: list[tuple[float, float]] = field(default_factory=list)  # (start, latency)
    calls: list[tuple[float, float, float, int]] = field(default_factory=list)  # (end, ttft, tpot, ok)
    retries: int = 0


class Draws:
    """One task's own random draws and token ids. Every configuration on a seed then runs the
    same tasks (steps, sub-agents, tool output, think times, and content, which sets the
    simulator's output lengths), so configurations are compared on paired tasks: with one
    generator shared by all tasks, its draws went to whichever task asked first, and that order
    moves with the fleet, so two fleet sizes on one seed ran different tasks."""

    SPAN = 10_000_000  # token ids reserved per task (a 30-step task with sub-agents uses < 100k)

    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(seed * 1_000_003 + index)
        self.next = 100_000 + index * self.SPAN

    def fresh(self, n: int) -> range:
        start = self.next
        self.next += n  # disjoint ranges: unique content, no false prefix hits
        return range(start, start + n)


class Agents:
    def __init__(self, fleet: Fleet, results: Results, seed: int, zipf_tools: bool = False) -> None:
        self.fleet = fleet
        self.results = results
        self.seed = seed
        self.started = itertools.count()
        self.zipf_tools = zipf_tools

    def tool_tokens(self, rng: random.Random) -> int:
        if self.zipf_tools:  # the trace workload: Zipf(1.1) over 1-2048 tokens (BurstGPT's length model)
            return bisect.bisect_left(_ZIPF_CDF, rng.random()) + 1
        return rng.randint(200, 800)

    async def call(
        self,
        holder: list[Slot | None],
        prompt: HashedPrompt,
        draws: Draws,
        max_tokens: int = 256,
        tool_call: bool = False,
    ) -> range:
        # The reply's token ids are reserved before the call: sub-agents finish in an order that
        # depends on the fleet, and their content must not.
        reply = draws.fresh(max_tokens)
        loop = asyncio.get_running_loop()
        while True:
            slot = holder[0]
            now = loop.time()
            ready = self.fleet.ready(now)
            if slot is not None and slot.ready(now) and self.fleet.overloaded(slot, ready):
                slot.tasks -= 1  # bounded-load prefix affinity: spill to a lighter replica (re-prefill once)
                slot = None
            if slot is None or not slot.ready(now):
                if slot is not None:
                    slot.tasks -= 1
                slot = self.fleet.pick(ready)
                holder[0] = slot
                if slot is None:
                    await asyncio.sleep(1.0)  # nothing ready (the fleet is loading): wait like a client retry
                    self.results.retries += 1
                    continue
                slot.tasks += 1
            try:
                c = await slot.replica.generate(prompt, max_tokens, tool_call=tool_call)
            except ApiError:
                self.results.retries += 1
                await asyncio.sleep(0.2)
                continue
            tpot = (c.latency - c.ttft) / (c.completion_tokens - 1) if c.completion_tokens > 1 else 0.0
            self.results.calls.append((c.finished, c.ttft, tpot, int(c.ttft <= TTFT_SLO_S and tpot <= TPOT_SLO_S)))
            return reply[: c.completion_tokens]

    async def task(self) -> None:
        loop = asyncio.get_running_loop()
        draws = Draws(self.seed, next(self.started))
        rng = draws.rng
        start = loop.time()
        self.fleet.tasks_in_flight += 1
        steps = rng.randint(10, 30)
        prompt = SYSTEM_PROMPT_HASHED.extend(draws.fresh(rng.randint(100, 400)))
        holder: list[Slot | None] = [None]
        try:
            for step in range(steps):
                prompt = prompt.extend(await self.call(holder, prompt, draws, tool_call=step < steps - 1))
                if step < steps - 1 and rng.random() < 0.3:
                    subs = [
                        self.call(holder, prompt.extend(draws.fresh(rng.randint(80, 200))), draws, 256)
                        for _ in range(3)
                    ]
                    outs = await asyncio.gather(*subs)
                    prompt = prompt.extend(list(itertools.chain.from_iterable(outs)))
                await asyncio.sleep(min(5.0, rng.lognormvariate(math.log(0.4), 0.8)))
                prompt = prompt.extend(draws.fresh(self.tool_tokens(rng)))
        finally:
            if holder[0] is not None:
                holder[0].tasks -= 1
            self.fleet.tasks_in_flight -= 1
        self.results.task_latencies.append((start, loop.time() - start))
