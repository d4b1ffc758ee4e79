"""The KV-cache block allocator.

Blocks are fixed-size pages of the cache; a sequence's block table lists the
pages that hold its tokens in order. No prefix sharing: every block has at most
one owner, which the allocator checks on every hand-out and return.
"""

from __future__ import annotations

from collections import deque

from neuron.engine.sequence import Sequence


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._free: deque[int] = deque(range(num_blocks))
        self._used: set[int] = set()

    @property
    def num_free(self) -> int:
        return len(self._free)

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
            block = self._free.popleft()
            assert block not in self._used, f"block {block} handed out twice"
            self._used.add(block)
            seq.block_table.append(block)

    def free(self, seq: Sequence) -> None:
        """Return all of `seq`'s blocks; its cached tokens are gone with them."""
        for block in seq.block_table:
            assert block in self._used, f"block {block} freed but not in use"
            self._used.remove(block)
            self._free.append(block)
        seq.block_table = []
        seq.num_cached_tokens = 0
