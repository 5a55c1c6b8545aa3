"""The pure engine: a discrete-event model of one vLLM V1 replica.

No clock, no I/O: ``step(now)`` plans one engine iteration starting at ``now`` and returns when
it ends and which tokens it produced at that moment. Whoever drives it (the asyncio runner on a
real or a virtual clock, or a test) waits until ``end`` before delivering the tokens and calling
``step`` again. Requests added meanwhile join at the next step, as in vLLM.

Scheduling follows vLLM V1's ``Scheduler.schedule`` (FCFS policy):
1. Running requests first, in order: each gets its remaining prompt chunk or one decode token,
   within the per-step token budget (``max_num_batched_tokens``; chunked prefill). When the KV
   pool has no block for it, the most recently admitted running request is preempted (blocks
   freed, progress dropped, pushed back to the head of the queue; ``vllm:num_preemptions``).
2. Then, if nothing was preempted, waiting requests in arrival order while fewer than
   ``max_num_seqs`` run: the longest cached prefix is reused (at most prompt - 1 tokens, so at least
   one token is computed), the rest is prefilled in chunks. The first request that does not fit in
   the free blocks blocks the queue (head-of-line, like vLLM).

Step time = decode_base_s + prefill tokens / prefill_tokens_per_s + decode_per_seq_s x batch size
+ kv_read_s_per_token x context tokens attended (see config.py for the figures).

Deviations from vLLM, on purpose: only prompt blocks are hashed into the prefix cache (generated
tokens are not); prefix-cache queries and hits count once per request, when it is first
scheduled; freed blocks that hold no cached prefix are reused before cached ones.

Fused decode iterations (``step(now, max_iterations=N)``): when a step leaves every running
request decoding (none streams, the step finished none, the queue's head does not fit), the
next iterations are one pure-decode iteration repeated with one more context token per sequence,
up to the first that finishes a request (included: the run ends there) or would need a new KV
block (not included). ``step`` returns them as one result (``iterations`` > 1, ``end`` the last
one's end, ``events`` the last one's finishes), so a driver takes one timer instead of one per
token. Their end times are the same float sums the single steps would give, and each
iteration's effects (counters, histograms, finishes and the blocks they free) are committed when
it starts, as a single step's are, lazily: ``sync(now)`` commits the iterations started by
``now`` (do it before reading the engine mid-run, and before delivering a run's events), and
``add_request``/``abort``/``cut`` end the run at the iteration in flight, so a
request added meanwhile joins the next iteration exactly as it would have.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from .config import EngineConfig
from .kv_cache import BlockPool, HashedPrompt, block_hashes
from .stats import EngineStats


class Phase(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


class RequestTooLong(ValueError):
    """The prompt plus max_tokens exceeds max_model_len (vLLM answers 400)."""


@dataclass(eq=False, slots=True)
class SimRequest:
    request_id: str
    prompt_tokens: int
    max_tokens: int
    target_tokens: int  # how many tokens the "model" will emit (<= max_tokens)
    arrival: float
    stream: bool
    content_seed: int  # drives the generated text: same prompt, same answer
    hashes: list[int]
    hash_tokens: int  # prompt tokens covered by full, hashable blocks
    num_tokens: int  # prompt + generated so far
    num_computed: int = 0
    num_output: int = 0
    blocks: list[int] = field(default_factory=list)
    phase: Phase = Phase.WAITING
    first_scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    finished_at: float | None = None
    cached_tokens: int = 0
    preemptions: int = 0
    finish_reason: str | None = None
    tool_call: bool = False  # answered with a tool call (the replica decides; quirks.tool_calls_finish_reason)
    waited: bool = False  # passed over by at least one step before its first scheduling


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """Output token ``index`` (0-based) of a request became available at ``time``."""

    request: SimRequest
    index: int
    time: float
    finish_reason: str | None  # set on the request's last token


@dataclass(slots=True)
class StepResult:
    start: float
    end: float
    num_seqs: int
    num_tokens: int  # per iteration
    num_preempted: int
    # Tokens of streaming requests, and the last token of every request that finished.
    events: list[TokenEvent]
    # > 1: this many iterations back to back, the later ones fused pure decode of the same
    # num_seqs (step's max_iterations); ``end`` is the last one's end.
    iterations: int = 1

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(slots=True)
class _DecodeRun:
    """Fused pure-decode iterations after a step: planned ends, committed lazily by start."""

    result: StepResult  # the step that planned the run: end and iterations follow a cut
    batch: list[SimRequest]
    ends: list[float]  # ends[0]: the planning step's end (= the first fused iteration's start)
    finishes: bool  # the last iteration finishes a request
    committed: int = 0  # fused iterations committed so far (iteration i runs ends[i] -> ends[i + 1])


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        config.validate()
        self.config = config
        self.pool = BlockPool(config.num_blocks, enable_caching=config.enable_prefix_caching)
        self.stats = EngineStats(max_model_len=config.max_model_len)
        self._waiting: deque[SimRequest] = deque()
        self._running: list[SimRequest] = []
        self._requests: dict[str, SimRequest] = {}
        self._preempted_in_grow = 0
        self._run: _DecodeRun | None = None
        self._rng = random.Random()
        # quirks.ttft_from_scheduling: start the TTFT clock when the request is first scheduled.
        self.ttft_from_scheduling = False
        # quirks.tool_calls_finish_reason: count a tool-call answer under "tool_calls", not "stop".
        self.tool_calls_reason = False
        # quirks.queue_time_waiters_only: observe queue time only for requests that waited.
        self.queue_time_waiters_only = False
        self._step_start = self._prev_step_start = -math.inf

    # -- intake --------------------------------------------------------------------------------
    def add_request(
        self,
        request_id: str,
        prompt: list[int] | HashedPrompt,
        *,
        now: float,
        max_tokens: int | None = None,
        stream: bool = False,
        ignore_eos: bool = False,
    ) -> SimRequest:
        cfg = self.config
        self.cut(now)  # it joins the first iteration that starts after now
        if request_id in self._requests:
            raise ValueError(f"duplicate request id {request_id}")
        if not prompt:
            raise ValueError("the prompt is empty")
        room = cfg.max_model_len - len(prompt)
        if max_tokens is None:
            max_tokens = room
        if max_tokens < 1 or room < max_tokens:
            raise RequestTooLong(
                f"This model's maximum context length is {cfg.max_model_len} tokens. However, you requested "
                f"{len(prompt) + max_tokens} tokens ({len(prompt)} in the messages, {max_tokens} in the completion). "
                "Please reduce the length of the messages or completion."
            )
        # Full blocks' chained hashes (also without prefix caching: they seed the answer).
        if isinstance(prompt, HashedPrompt):  # hashed as it grew
            if prompt.block_size != cfg.block_size:
                raise ValueError(
                    f"the prompt was hashed in blocks of {prompt.block_size} tokens, the engine's are {cfg.block_size}"
                )
            hashes, tail = prompt.hashes, prompt.tail
        else:
            hashes = block_hashes(prompt, cfg.block_size)
            tail = prompt[len(hashes) * cfg.block_size :]
        covered = len(hashes) * cfg.block_size
        # Same prompt, same answer: the chained hash covers the full blocks; add the partial tail.
        content_seed = hash((cfg.seed, hashes[-1] if hashes else 0, tuple(tail)))
        if ignore_eos or cfg.output_length_mode == "max_tokens":
            target = max_tokens
        else:
            rng = self._rng
            rng.seed(content_seed)  # as random.Random(content_seed), without a new generator
            natural = rng.lognormvariate(math.log(cfg.output_tokens_median), cfg.output_tokens_sigma)
            target = max(1, min(max_tokens, round(natural)))
        req = SimRequest(
            request_id=request_id,
            prompt_tokens=len(prompt),
            max_tokens=max_tokens,
            target_tokens=target,
            arrival=now,
            stream=stream,
            content_seed=content_seed,
            hashes=hashes,
            hash_tokens=covered,
            num_tokens=len(prompt),
        )
        self._requests[request_id] = req
        self._waiting.append(req)
        self._refresh_gauges()
        return req

    def abort(self, request_id: str, now: float) -> bool:
        """Drop a request (client went away, hedge lost). Counted as finished_reason=abort."""
        self.cut(now)
        req = self._requests.pop(request_id, None)
        if req is None:
            return False
        if req.phase is Phase.WAITING:
            self._waiting.remove(req)
        elif req.phase is Phase.RUNNING:
            self._running.remove(req)
            self.pool.release(req.blocks)
            req.blocks = []
        req.phase = Phase.FINISHED
        req.finish_reason = "abort"
        req.finished_at = now
        self.stats.request_success["abort"] += 1
        self._refresh_gauges()
        return True

    # -- queries -------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    def has_work(self) -> bool:
        return bool(self._running or self._waiting)

    def get(self, request_id: str) -> SimRequest | None:
        return self._requests.get(request_id)

    # -- the step ------------------------------------------------------------------------------
    # The loops below are the simulator's hot path (one pass per sequence per step, millions of
    # times in a simulated hour), hence the local variables and inlined checks.
    def step(self, now: float, max_iterations: int = 1) -> StepResult | None:
        """Run one iteration starting at ``now`` (the previous result's end or later); None when
        there is nothing to do. ``max_iterations`` > 1 lets it fuse the pure-decode iterations
        that follow (module doc)."""
        if self._run is not None:
            self.sync(now)
            self._run = None
        if not (self._running or self._waiting):
            return None
        self._prev_step_start, self._step_start = self._step_start, now
        cfg = self.config
        bs = cfg.block_size
        budget = cfg.max_num_batched_tokens
        scheduled: list[tuple[SimRequest, int]] = []
        preempted = 0
        total = context = decode_seqs = 0
        running = self._running

        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            computed = req.num_computed
            n = req.num_tokens - computed
            if n > budget:
                n = budget
            upto = computed + n
            if upto > len(req.blocks) * bs:
                grown = self._grow_or_preempt(req, upto)
                preempted += self._preempted_in_grow
                if not grown:
                    preempted += 1
                    break  # the current request was itself preempted
            if computed < req.hash_tokens:
                self._cache_blocks(req, n)
            scheduled.append((req, n))
            budget -= n
            total += n
            context += upto
            if n == 1 and req.num_output and upto == req.num_tokens:
                decode_seqs += 1
            i += 1

        if not preempted:
            waiting = self._waiting
            while waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                req = waiting[0]
                admitted = self._admit(req, budget, now)
                if admitted is None:
                    break
                waiting.popleft()
                running.append(req)
                self._cache_blocks(req, admitted)
                scheduled.append((req, admitted))
                budget -= admitted
                total += admitted
                context += req.num_computed + admitted

        prefill = total - decode_seqs
        result = self._execute(now, now + self._seconds(prefill, len(scheduled), context), scheduled, total, preempted)
        if max_iterations > 1 and not result.events:  # its events are due at its own end
            self._plan_run(result, max_iterations - 1)
        return result

    def _seconds(self, prefill: int, seqs: int, context: int) -> float:
        """One iteration's duration (module doc); fused runs sum the same terms (_plan_run)."""
        cfg = self.config
        return (
            cfg.decode_base_s
            + prefill / cfg.prefill_tokens_per_s
            + cfg.decode_per_seq_s * seqs
            + cfg.kv_read_s_per_token * context
        )

    # -- fused decode iterations ----------------------------------------------------------------
    def _plan_run(self, result: StepResult, limit: int) -> None:
        """After a step: if every running request is now decoding, none streams (its callers want
        every token as it comes) and the queue's head cannot be admitted, the next iterations
        repeat one pure-decode iteration (same batch, one more context token per sequence) up to
        the first that finishes a request (included) or would need a KV block (not)."""
        batch = self._running
        cfg = self.config
        bs = cfg.block_size
        budget = cfg.max_num_batched_tokens - len(batch)
        if not batch or budget < 0:
            return
        n = limit
        context = 0
        for req in batch:
            if req.stream or req.num_tokens - req.num_computed != 1 or not req.num_output:
                return  # a stream, or a prompt still being prefilled
            # Iteration m (1-based) emits token num_output + m, which finishes the request at
            # target_tokens, and attends num_tokens + m - 1 tokens, which must fit its blocks.
            n = min(n, req.target_tokens - req.num_output, len(req.blocks) * bs - req.num_tokens + 1)
            context += req.num_tokens
        if n <= 0:
            return
        waiting = self._waiting
        if waiting and budget > 0 and len(batch) < cfg.max_num_seqs and self._admission(waiting[0], budget) is not None:
            return  # the next iteration admits it: no repeat
        seqs = len(batch)
        # _seconds(0, seqs, context), its terms summed in the same order: the same floats.
        fixed = cfg.decode_base_s + 0 / cfg.prefill_tokens_per_s + cfg.decode_per_seq_s * seqs
        kv = cfg.kv_read_s_per_token
        t = result.end  # each iteration starts at the previous end, as single steps do
        ends = [t]
        for _ in range(n):
            t = t + (fixed + kv * context)
            ends.append(t)
            context += seqs
        finishes = any(req.target_tokens - req.num_output == n for req in batch)
        self._run = _DecodeRun(result, list(batch), ends, finishes)
        result.end = t
        result.iterations = 1 + n

    def sync(self, now: float) -> None:
        """Commit the fused iterations that started by ``now`` (their counters, histograms and
        request progress; the finishing one's events go to the step's result), as single steps
        would have at their starts."""
        run = self._run
        if run is None:
            return
        ends = run.ends
        done = run.committed
        last = len(ends) - 1
        upto = done
        while upto < last and ends[upto] <= now:
            upto += 1
        if upto == done:
            return
        # Iterations before a finishing one only add counts; that one runs the step's own code.
        bulk = last - 1 if run.finishes and upto == last else upto
        n = bulk - done
        if n > 0:
            stats = self.stats
            seqs = len(run.batch)
            # Each iteration's observations, summed in the order single steps add them.
            itl = stats.h_itl
            bounds, counts = itl.bounds, itl.counts
            busy, itl_sum = stats.busy_time_s, itl.sum
            lo = hi = 0.0
            idx = -1
            start = ends[done]
            for end in ends[done + 1 : bulk + 1]:
                gap = end - start  # every sequence's previous token came at the previous end
                start = end
                busy += gap
                if idx < 0 or not lo < gap <= hi:  # the gaps drift slowly: bisect on a bucket change
                    idx = bisect_left(bounds, gap)
                    lo = bounds[idx - 1] if idx else -math.inf
                    hi = bounds[idx] if idx < len(bounds) else math.inf
                counts[idx] += seqs
                for _ in range(seqs):
                    itl_sum += gap
            stats.busy_time_s, itl.sum = busy, itl_sum
            itl.count += n * seqs
            it = stats.h_iteration_tokens  # n observations of seqs tokens (integers: exact sums)
            it.counts[bisect_left(it.bounds, seqs)] += n
            it.sum += seqs * n
            it.count += n
            stats.steps += n
            stats.generation_tokens += n * seqs
            last_token = ends[bulk]
            for req in run.batch:
                req.num_computed += n
                req.num_output += n
                req.num_tokens += n
                req.last_token = last_token
        if bulk < upto:
            batch = run.batch
            step = self._execute(ends[bulk], ends[upto], [(req, 1) for req in batch], len(batch), 0)
            run.result.events.extend(step.events)
        run.committed = upto

    def cut(self, now: float) -> float | None:
        """End the fused run at the iteration in flight at ``now`` (committing those started);
        returns its new end, when the engine is next free to step, or None without a run."""
        run = self._run
        if run is None:
            return None
        self.sync(now)
        self._run = None
        run.result.end = run.ends[run.committed]
        run.result.iterations = 1 + run.committed
        return run.result.end

    def _grow_or_preempt(self, req: SimRequest, upto: int) -> bool:
        """Give ``req`` blocks for ``upto`` tokens, preempting the newest running requests while
        the pool is short; False if ``req`` itself had to go. Sets ``_preempted_in_grow`` to the
        number of other requests preempted."""
        self._preempted_in_grow = 0
        while not self._grow(req, upto):
            victim = self._running.pop()
            self._preempt(victim)
            if victim is req:
                return False
            self._preempted_in_grow += 1
        return True

    def _grow(self, req: SimRequest, total_tokens: int) -> bool:
        need = -(-total_tokens // self.config.block_size) - len(req.blocks)
        if need <= 0:
            return True
        blocks = self.pool.allocate(need)
        if blocks is None:
            return False
        req.blocks.extend(blocks)
        return True

    def _cache_blocks(self, req: SimRequest, n: int) -> None:
        """Register the prompt blocks this step fills. Done at scheduling time, as vLLM's
        allocate_slots does, so a request admitted later in the same step already hits them."""
        bs = self.config.block_size
        last_full = min((req.num_computed + n) // bs, len(req.hashes))
        for j in range(req.num_computed // bs, last_full):
            self.pool.cache(req.blocks[j], req.hashes[j])

    def _preempt(self, req: SimRequest) -> None:
        self.pool.release(req.blocks)
        req.blocks = []
        req.num_computed = 0
        req.phase = Phase.WAITING
        req.preemptions += 1
        self._waiting.appendleft(req)
        self.stats.num_preemptions += 1

    def _admission(self, req: SimRequest, budget: int) -> tuple[list[int], int, int] | None:
        """Whether a waiting request fits now, without taking anything: its cache-hit blocks,
        the tokens to compute this step and the fresh blocks they need; None if they do not fit."""
        bs = self.config.block_size
        hits = self.pool.lookup(req.hashes, (req.num_tokens - 1) // bs)
        hit_tokens = len(hits) * bs
        n = min(req.num_tokens - hit_tokens, budget)
        need = -(-(hit_tokens + n) // bs) - len(hits)
        if need + self.pool.num_evictable(hits) > self.pool.num_free:
            return None
        return hits, n, need

    def _admit(self, req: SimRequest, budget: int, now: float) -> int | None:
        """Reserve blocks for a waiting request's cached prefix plus its first chunk; returns the
        number of tokens to compute this step, or None if the blocks are not there."""
        plan = self._admission(req, budget)
        if plan is None:
            return None
        hits, n, need = plan
        hit_tokens = len(hits) * self.config.block_size
        self.pool.touch(hits)
        fresh = self.pool.allocate(need)
        assert fresh is not None  # checked above
        req.blocks = hits + fresh
        req.num_computed = hit_tokens
        req.phase = Phase.RUNNING
        if req.first_scheduled is None:
            req.first_scheduled = now
            # Present when the previous step started, yet not admitted by it: it waited for a slot.
            req.waited = req.arrival < self._prev_step_start
            req.cached_tokens = hit_tokens
            self.stats.prefix_queries += req.num_tokens
            self.stats.prefix_hits += hit_tokens
        return n

    def _execute(
        self, now: float, end: float, scheduled: list[tuple[SimRequest, int]], total: int, preempted: int
    ) -> StepResult:
        stats = self.stats
        stats.steps += 1
        stats.busy_time_s += end - now
        if total:
            stats.h_iteration_tokens.observe(total)
        itl = stats.h_itl
        itl_bounds, itl_counts = itl.bounds, itl.counts
        events: list[TokenEvent] = []
        finished = False
        generated = 0
        for req, n in scheduled:
            computed = req.num_computed + n
            req.num_computed = computed
            if computed < req.num_tokens:
                continue  # mid-prefill chunk: no token yet
            index = req.num_output
            req.num_output = index + 1
            req.num_tokens += 1
            generated += 1
            last = req.last_token
            if last is None:
                req.first_token = end
                stats.prompt_tokens += req.prompt_tokens
                stats.h_ttft.observe(
                    end
                    - (
                        req.first_scheduled
                        if self.ttft_from_scheduling and req.first_scheduled is not None
                        else req.arrival
                    )
                )
            else:
                gap = end - last
                itl_counts[bisect_left(itl_bounds, gap)] += 1
                itl.sum += gap
                itl.count += 1
            req.last_token = end
            reason = None
            if index + 1 >= req.target_tokens:
                reason = "length" if index + 1 >= req.max_tokens else "stop"
                self._finish(req, reason, end)
                finished = True
            if reason is not None or req.stream:
                events.append(TokenEvent(req, index, end, reason))
        stats.generation_tokens += generated
        if finished:
            self._running = [r for r in self._running if r.phase is Phase.RUNNING]
        self._refresh_gauges()
        return StepResult(now, end, len(scheduled), total, preempted, events)

    def _finish(self, req: SimRequest, reason: str, end: float) -> None:
        req.phase = Phase.FINISHED
        req.finish_reason = reason
        req.finished_at = end
        self.pool.release(req.blocks)
        req.blocks = []
        self._requests.pop(req.request_id, None)
        s = self.stats
        assert req.first_scheduled is not None and req.first_token is not None
        counted = "tool_calls" if self.tool_calls_reason and req.tool_call and reason == "stop" else reason
        s.request_success[counted] = s.request_success.get(counted, 0) + 1
        s.h_e2e.observe(end - req.arrival)
        if req.waited or not self.queue_time_waiters_only:
            s.h_queue.observe(req.first_scheduled - req.arrival)
        s.h_inference.observe(end - req.first_scheduled)
        s.h_prefill.observe(req.first_token - req.first_scheduled)
        decode = end - req.first_token
        s.h_decode.observe(decode)
        if req.num_output > 1:
            s.h_tpot.observe(decode / (req.num_output - 1))
        s.h_prompt_tokens.observe(req.prompt_tokens)
        s.h_generation_tokens.observe(req.num_output)
        s.h_max_tokens.observe(req.max_tokens)

    def _refresh_gauges(self) -> None:
        self.stats.num_running = len(self._running)
        self.stats.num_waiting = len(self._waiting)
        self.stats.kv_usage = self.pool.usage()
