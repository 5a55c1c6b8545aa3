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
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from .config import EngineConfig
from .kv_cache import BlockPool, block_hashes
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
    prompt: list[int]
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

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt)


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
    num_tokens: int
    num_preempted: int
    # Tokens of streaming requests, and the last token of every request that finished.
    events: list[TokenEvent]

    @property
    def duration(self) -> float:
        return self.end - self.start


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
        # quirks.ttft_from_scheduling: start the TTFT clock when the request is first scheduled.
        self.ttft_from_scheduling = False

    # -- intake --------------------------------------------------------------------------------
    def add_request(
        self,
        request_id: str,
        prompt: list[int],
        *,
        now: float,
        max_tokens: int | None = None,
        stream: bool = False,
        ignore_eos: bool = False,
    ) -> SimRequest:
        cfg = self.config
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
        hashes = block_hashes(prompt, cfg.block_size) if cfg.enable_prefix_caching else []
        # The chained hash already covers the full blocks; add the partial tail.
        covered = len(hashes) * cfg.block_size
        content_seed = hash((cfg.seed, hashes[-1] if hashes else 0, tuple(prompt[covered:])))
        if ignore_eos or cfg.output_length_mode == "max_tokens":
            target = max_tokens
        else:
            rng = random.Random(content_seed)
            natural = rng.lognormvariate(math.log(cfg.output_tokens_median), cfg.output_tokens_sigma)
            target = max(1, min(max_tokens, round(natural)))
        req = SimRequest(
            request_id=request_id,
            prompt=prompt,
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
    def step(self, now: float) -> StepResult | None:
        """Run one iteration starting at ``now``; None when there is nothing to do."""
        if not (self._running or self._waiting):
            return None
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
        duration = cfg.decode_base_s + prefill / cfg.prefill_tokens_per_s + cfg.decode_per_seq_s * len(scheduled) + cfg.kv_read_s_per_token * context
        return self._execute(now, now + duration, scheduled, total, preempted)

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

    def _admit(self, req: SimRequest, budget: int, now: float) -> int | None:
        """Reserve blocks for a waiting request's cached prefix plus its first chunk; returns the
        number of tokens to compute this step, or None if the blocks are not there."""
        bs = self.config.block_size
        hits = self.pool.lookup(req.hashes, (req.num_tokens - 1) // bs)
        hit_tokens = len(hits) * bs
        n = min(req.num_tokens - hit_tokens, budget)
        need = -(-(hit_tokens + n) // bs) - len(hits)
        if need + self.pool.num_evictable(hits) > self.pool.num_free:
            return None
        self.pool.touch(hits)
        fresh = self.pool.allocate(need)
        assert fresh is not None  # checked above
        req.blocks = hits + fresh
        req.num_computed = hit_tokens
        req.phase = Phase.RUNNING
        if req.first_scheduled is None:
            req.first_scheduled = now
            req.cached_tokens = hit_tokens
            self.stats.prefix_queries += req.num_tokens
            self.stats.prefix_hits += hit_tokens
        return n

    def _execute(self, now: float, end: float, scheduled: list[tuple[SimRequest, int]], total: int, preempted: int) -> StepResult:
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
                stats.prompt_tokens += len(req.prompt)
                stats.h_ttft.observe(end - (req.first_scheduled if self.ttft_from_scheduling and req.first_scheduled is not None else req.arrival))
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
        s.request_success[reason] += 1
        s.h_e2e.observe(end - req.arrival)
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
