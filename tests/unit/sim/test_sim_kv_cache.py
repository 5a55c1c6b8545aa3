"""Block pool and chained block hashes."""

from __future__ import annotations

from agentfleet_sim.kv_cache import BlockPool, block_hashes
from agentfleet_sim.tokenizer import ChatTokenizer, tokenize_text


def test_block_hashes_chain_over_full_blocks_only() -> None:
    tokens = list(range(40))
    hashes = block_hashes(tokens, 16)
    assert len(hashes) == 2  # the last 8 tokens are a partial block
    assert block_hashes(tokens[:32] + [99] * 8, 16) == hashes
    # A change in block 0 changes every later hash (the chain), not only block 0's.
    changed = block_hashes([7] + tokens[1:], 16)
    assert changed[0] != hashes[0] and changed[1] != hashes[1]
    # Same block content after a different prefix hashes differently.
    assert block_hashes(tokens[16:32], 16)[0] != hashes[1]


def test_allocate_release_and_cache_hits() -> None:
    pool = BlockPool(8)
    blocks = pool.allocate(3)
    assert blocks == [0, 1, 2] and pool.num_free == 5 and pool.usage() == 3 / 8
    hashes = block_hashes(list(range(48)), 16)
    for b, h in zip(blocks, hashes, strict=True):
        pool.cache(b, h)
    pool.release(blocks)
    assert pool.num_free == 8 and pool.usage() == 0.0  # cached but unreferenced counts as free
    hits = pool.lookup(hashes, max_blocks=10)
    assert hits == [0, 1, 2]
    assert pool.num_evictable(hits) == 3
    pool.touch(hits)
    assert pool.num_free == 5
    assert pool.allocate(6) is None  # not enough
    assert pool.lookup(hashes, max_blocks=2) == [0, 1]


def test_eviction_takes_least_recently_freed_and_tail_first() -> None:
    pool = BlockPool(4)
    a = pool.allocate(2)
    b = pool.allocate(2)
    ha, hb = block_hashes(list(range(32)), 16), block_hashes(list(range(100, 132)), 16)
    for blocks, hashes in ((a, ha), (b, hb)):
        for blk, h in zip(blocks, hashes, strict=True):
            pool.cache(blk, h)
    pool.release(a)
    pool.release(b)
    (victim,) = pool.allocate(1)
    assert victim == a[1]  # a was freed first, and its tail goes before its head
    assert pool.lookup(ha, 2) == [a[0]] and pool.lookup(hb, 2) == b
    assert pool.evictions == 1


def test_unhashed_blocks_are_reused_before_cached_ones() -> None:
    pool = BlockPool(3)
    cached = pool.allocate(1)
    pool.cache(cached[0], 42)
    pool.release(cached)
    scratch = pool.allocate(2)
    pool.release(scratch)
    assert pool.allocate(2) == scratch
    assert pool.lookup([42], 1) == cached and pool.evictions == 0


def test_tokenizer_is_stable_and_roughly_four_chars_per_token() -> None:
    text = "Kubernetes operators reconcile desired state, 12345 times a day!"
    ids = tokenize_text(text)
    assert ids == tokenize_text(text)
    assert len(text) / 6 < len(ids) < len(text) / 2
    tok = ChatTokenizer(cache_size=2)
    msgs = [{"role": "system", "content": "a b c"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert tok.chat_prompt(msgs) == ChatTokenizer().chat_prompt(msgs)
    assert tok.chat_prompt(msgs, add_generation_prompt=False) == tok.chat_prompt(msgs)[:-2]


def test_bulk_touch_and_release_keep_the_per_block_order() -> None:
    """touch/release walk a request's blocks in C; the free queue must come out as the
    block-by-block rule makes it (release tail first, freed blocks that cache nothing to the
    front; touch pulls free hits out), which decides every later eviction."""
    import random
    from collections import OrderedDict

    def ref_release(ref: list[int], free: OrderedDict[int, None], hashes: list[int | None], blocks: list[int]) -> None:
        for b in reversed(blocks):
            ref[b] -= 1
            if not ref[b]:
                free[b] = None
                if hashes[b] is None:
                    free.move_to_end(b, last=False)

    def ref_touch(ref: list[int], free: OrderedDict[int, None], blocks: list[int]) -> None:
        for b in blocks:
            if not ref[b]:
                del free[b]
            ref[b] += 1

    rng = random.Random(3)
    pool = BlockPool(64)
    held: list[list[int]] = []
    for _ in range(2000):
        ref, free, hashes = list(pool._ref), OrderedDict(pool._free), list(pool._hash)
        op = rng.random()
        if op < 0.35 and pool.num_free >= 6:
            blocks = pool.allocate(rng.randint(1, 6))
            assert blocks is not None
            for b in blocks:
                if rng.random() < 0.6:
                    pool.cache(b, rng.getrandbits(40))
            held.append(blocks)
            continue
        if op < 0.7 and held:
            blocks = held.pop(rng.randrange(len(held)))
            pool.release(blocks)
            ref_release(ref, free, hashes, blocks)
        else:
            cached = [b for b in range(64) if pool._hash[b] is not None]
            hits = rng.sample(cached, min(len(cached), rng.randint(1, 8)))
            pool.touch(hits)
            ref_touch(ref, free, hits)
            held.append(hits)
        assert pool._ref == ref and list(pool._free) == list(free)
