"""Paged KV-cache blocks with a prefix cache, modelled on vLLM V1's BlockPool.

- A block holds ``block_size`` tokens. A full prompt block gets a chained hash:
  ``hash((parent_hash, tuple(block_token_ids)))``; equal hashes mean equal prefixes.
- Blocks whose reference count drops to zero go to the tail of a free queue but keep their hash:
  they are still cache hits until reused. Allocation pops from the head, so the least recently
  freed block is evicted first (LRU). A request frees its blocks tail-first, so a prefix's last
  blocks are evicted before its first ones, as in vLLM.
- Usage (``vllm:kv_cache_usage_perc``) counts referenced blocks only; cached-but-free blocks are
  reclaimable and count as free, as in vLLM.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

ROOT_HASH = 0x5EED


def block_hashes(token_ids: Sequence[int], block_size: int, parent: int = ROOT_HASH) -> list[int]:
    """Chained hashes of the full blocks of ``token_ids`` (a trailing partial block has none).

    Tuples of ints hash identically in every Python process (only str/bytes hashing is salted),
    so the hashes are stable across runs."""
    out: list[int] = []
    append = out.append
    it = iter(token_ids)
    for block in zip(*([it] * block_size), strict=False):  # full blocks as tuples, built in C
        parent = hash((parent, block))
        append(parent)
    return out


class HashedPrompt:
    """A prompt as the engine needs it: its length, its full blocks' chained hashes and the
    tokens of its last, partial block. ``extend`` hashes only what it adds.

    An agent's next call is its last prompt plus a few hundred tokens. As a token list, each
    call copies and re-hashes the whole 20-30K-token history: most of a call's cost in a long
    simulation. The chain ``extend`` builds is the one ``block_hashes`` gives for the whole
    token list, so the engine treats both alike (``Engine.add_request``, ``Replica.generate``)."""

    __slots__ = ("length", "block_size", "hashes", "tail")

    def __init__(self, tokens: Sequence[int], block_size: int) -> None:
        self.block_size = block_size
        self.hashes = block_hashes(tokens, block_size)
        self.tail = list(tokens[len(self.hashes) * block_size :])
        self.length = len(tokens)

    def extend(self, more: Sequence[int]) -> HashedPrompt:
        """This prompt followed by ``more`` (a new object; this one is unchanged)."""
        bs = self.block_size
        tail = self.tail + list(more)
        new = block_hashes(tail, bs, self.hashes[-1] if self.hashes else ROOT_HASH)
        out = HashedPrompt.__new__(HashedPrompt)
        out.block_size = bs
        out.hashes = self.hashes + new
        out.tail = tail[len(new) * bs :]
        out.length = self.length + len(tail) - len(self.tail)
        return out

    def __len__(self) -> int:
        return self.length


class BlockPool:
    def __init__(self, num_blocks: int, enable_caching: bool = True) -> None:
        if num_blocks <= 0:
            raise ValueError("num_blocks must be positive")
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self._ref = [0] * num_blocks
        self._hash: list[int | None] = [None] * num_blocks
        self._free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self._cached: dict[int, int] = {}  # block hash -> block id
        self.evictions = 0

    # -- queries ---------------------------------------------------------------------------
    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def num_cached(self) -> int:
        return len(self._cached)

    def usage(self) -> float:
        return 1.0 - len(self._free) / self.num_blocks

    def lookup(self, hashes: Sequence[int], max_blocks: int) -> list[int]:
        """Longest run of cached blocks matching ``hashes`` from the start, at most max_blocks."""
        if not self.enable_caching:
            return []
        # map/index run in C: this walks up to ~2,000 blocks for a 30K-token agent prompt.
        found = list(map(self._cached.get, hashes[:max_blocks]))
        try:
            return found[: found.index(None)]  # type: ignore[return-value]
        except ValueError:
            return found  # type: ignore[return-value]

    def num_evictable(self, blocks: Sequence[int]) -> int:
        """How many of these (cache-hit) blocks sit in the free queue and would leave it on touch."""
        return list(map(self._ref.__getitem__, blocks)).count(0)

    # -- mutations -------------------------------------------------------------------------
    def touch(self, blocks: Sequence[int]) -> None:
        """Take a reference on cache-hit blocks, pulling unreferenced ones out of the free queue."""
        ref, free = self._ref, self._free
        for b in blocks:
            if not ref[b]:
                del free[b]
            ref[b] += 1

    def allocate(self, n: int) -> list[int] | None:
        """n fresh blocks, evicting the least recently freed cached blocks; None if too few."""
        if n > len(self._free):
            return None
        out: list[int] = []
        for _ in range(n):
            b, _ = self._free.popitem(last=False)
            h = self._hash[b]
            if h is not None:
                if self._cached.get(h) == b:
                    del self._cached[h]
                self._hash[b] = None
                self.evictions += 1
            self._ref[b] = 1
            out.append(b)
        return out

    def release(self, blocks: Sequence[int]) -> None:
        """Drop one reference per block, tail first (so a prefix's end is evicted before its start)."""
        ref, free, hashes = self._ref, self._free, self._hash
        for b in reversed(blocks):
            ref[b] -= 1
            if not ref[b]:
                free[b] = None
                if hashes[b] is None:
                    free.move_to_end(b, last=False)  # nothing cached here: reuse it first

    def cache(self, block: int, block_hash: int) -> None:
        """Register a block whose tokens are now computed, unless that prefix is cached already."""
        if self.enable_caching and block_hash not in self._cached and self._hash[block] is None:
            self._cached[block_hash] = block
            self._hash[block] = block_hash

    def reset_cache(self) -> None:
        """Forget all cached prefixes (like vLLM's /reset_prefix_cache)."""
        for b in list(self._free):
            self._hash[b] = None
        self._cached = {h: b for h, b in self._cached.items() if self._ref[b] > 0}
