"""The KV-cache block allocator, with a prefix cache.

Blocks are fixed-size pages of the cache; a sequence's block table lists the
pages that hold its tokens in order. A block whose tokens are all computed is
keyed by a chained hash (the model's salt, the previous block's key, its own
token ids), so a later sequence whose prompt starts with the same tokens takes
those blocks instead of recomputing them. Blocks are reference-counted: a shared
block goes back to the pool only when its last sequence lets go, and a free
block keeps its key (least recently freed first out) until its memory is needed.
A partly filled block is never keyed, so it is never shared, and a sequence
always computes at least its last prompt token itself (its logits are needed),
so the block it writes into is its own.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict, deque

from neuron.engine.sequence import Sequence


def block_key(salt: bytes, previous: bytes | None, token_ids: list[int]) -> bytes:
    """The key of a full block: its tokens, everything before them, and the model."""
    digest = hashlib.blake2b(previous or salt, digest_size=16)
    digest.update(array("q", token_ids).tobytes())
    return digest.digest()


class BlockManager:
    def __init__(
        self, num_blocks: int, block_size: int, prefix_cache: bool = True, salt: str = ""
    ) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.prefix_cache = prefix_cache
        self._salt = salt.encode()
        self._refs = [0] * num_blocks
        self._key_of: dict[int, bytes] = {}  # block -> key, for keyed blocks only
        self._block_of: dict[bytes, int] = {}  # key -> block
        self._free: deque[int] = deque(range(num_blocks))  # unkeyed free blocks
        self._cached: OrderedDict[int, None] = OrderedDict()  # keyed free blocks, oldest first
        self.queried_tokens = 0  # prompt tokens looked up in the prefix cache
        self.hit_tokens = 0  # of those, found there

    @property
    def num_free(self) -> int:
        """Blocks that can be handed out now (keyed free ones are evicted on demand)."""
        return len(self._free) + len(self._cached)

    @property
    def num_cached(self) -> int:
        """Blocks holding a keyed prefix, in use or not."""
        return len(self._key_of)

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def can_reserve(self, seq: Sequence, num_tokens: int) -> bool:
        """Whether `seq` can be given room for `num_tokens` tokens in all."""
        return self.blocks_needed(num_tokens) - len(seq.block_table) <= self.num_free

    def reserve(self, seq: Sequence, num_tokens: int) -> None:
        """Grow `seq`'s block table to hold `num_tokens` tokens."""
        missing = self.blocks_needed(num_tokens) - len(seq.block_table)
        if missing > self.num_free:
            raise RuntimeError(f"{missing} blocks needed, {self.num_free} free")
        for _ in range(missing):
            seq.block_table.append(self._take_free())

    def admit(self, seq: Sequence) -> bool:
        """Give a sequence with no blocks its cached leading blocks and room for the rest.

        Returns False, changing nothing, when the blocks are not there; otherwise
        `seq.num_cached_tokens` counts the tokens it need not compute.
        """
        assert not seq.block_table, "admit a sequence that holds no blocks"
        hits = self._lookup(seq)
        reused_free = sum(1 for block in hits if self._refs[block] == 0)
        missing = self.blocks_needed(seq.num_tokens) - len(hits)
        if missing > self.num_free - reused_free:
            return False
        for block in hits:
            if self._refs[block] == 0:
                del self._cached[block]
            self._refs[block] += 1
        seq.block_table = list(hits)
        seq.block_keys = [self._key_of[block] for block in hits]
        seq.num_cached_tokens = len(hits) * self.block_size
        self.reserve(seq, seq.num_tokens)
        if self.prefix_cache:
            self.queried_tokens += seq.num_tokens
            self.hit_tokens += seq.num_cached_tokens
        return True

    def commit(self, seq: Sequence, computed: int) -> None:
        """A model pass wrote the keys and values of `computed` more of `seq`'s tokens:
        count them cached, and key every block now full and computed, so others can
        reuse it. The one place `seq`'s block fields move after admission."""
        seq.num_cached_tokens += computed
        if self.prefix_cache:
            self._key_computed(seq)

    def _key_computed(self, seq: Sequence) -> None:
        size = self.block_size
        for index in range(len(seq.block_keys), seq.num_cached_tokens // size):
            previous = seq.block_keys[-1] if seq.block_keys else None
            key = block_key(self._salt, previous, seq.token_ids[index * size : (index + 1) * size])
            seq.block_keys.append(key)
            block = seq.block_table[index]
            if key not in self._block_of and block not in self._key_of:
                self._block_of[key] = block
                self._key_of[block] = key

    def free(self, seq: Sequence) -> None:
        """Let go of `seq`'s blocks, last first, so a cached prefix loses its tail first."""
        for block in reversed(seq.block_table):
            assert self._refs[block] > 0, f"block {block} freed but not in use"
            self._refs[block] -= 1
            if self._refs[block] == 0:
                if block in self._key_of:
                    self._cached[block] = None
                else:
                    self._free.append(block)
        seq.block_table = []
        seq.block_keys = []
        seq.num_cached_tokens = 0

    def check(self, seqs: list[Sequence]) -> None:
        """Assert the allocator's invariants against the sequences that hold blocks."""
        holders = [0] * self.num_blocks
        for seq in seqs:
            assert len(set(seq.block_table)) == len(seq.block_table), "a block twice in one table"
            full = seq.num_cached_tokens // self.block_size
            for index, block in enumerate(seq.block_table):
                holders[block] += 1
                if block in self._key_of:
                    assert index < full, f"block {block} keyed before it was full and computed"
        assert holders == self._refs, "reference counts differ from the block tables"
        free = list(self._free) + list(self._cached)
        assert len(free) == len(set(free)), "a block is free twice"
        assert all(self._refs[block] == 0 for block in free), "a block in use is free"
        assert len(free) + sum(1 for r in self._refs if r) == self.num_blocks, "a block is lost"
        assert all(block in self._key_of for block in self._cached), "an unkeyed cached block"
        assert all(self._refs[b] <= 1 or b in self._key_of for b in range(self.num_blocks)), (
            "a block shared without a key"
        )
        assert {b: k for k, b in self._block_of.items()} == self._key_of, "key maps disagree"

    def _lookup(self, seq: Sequence) -> list[int]:
        """The cached blocks that hold `seq`'s leading tokens, short of its last token."""
        if not self.prefix_cache or not seq.reads_cached_prefix:
            return []
        size, hits, previous = self.block_size, [], None
        for index in range((seq.num_tokens - 1) // size):
            previous = block_key(
                self._salt, previous, seq.token_ids[index * size : (index + 1) * size]
            )
            block = self._block_of.get(previous)
            if block is None:
                break
            hits.append(block)
        return hits

    def _take_free(self) -> int:
        """An unkeyed free block, else the least recently freed cached one, unkeyed."""
        if self._free:
            block = self._free.popleft()
        else:
            block, _ = self._cached.popitem(last=False)
            del self._block_of[self._key_of.pop(block)]
        assert self._refs[block] == 0, f"block {block} handed out twice"
        self._refs[block] = 1
        return block
