"""The block allocator: no block is ever owned twice, and every block comes back."""

from __future__ import annotations

import random

import pytest

from neuron.engine.block_manager import BlockManager


def owned_blocks(seqs) -> list[int]:
    return [block for seq in seqs for block in seq.block_table]


def test_random_reserve_and_free_never_double_allocates(make_seq) -> None:
    manager = BlockManager(num_blocks=40, block_size=4)
    rng = random.Random(7)
    live = []
    for _ in range(400):
        if live and rng.random() < 0.3:
            seq = live.pop(rng.randrange(len(live)))
            manager.free(seq)
            assert seq.block_table == [] and seq.num_cached_tokens == 0
        else:
            seq = live[rng.randrange(len(live))] if live and rng.random() < 0.5 else make_seq(1)
            want = len(seq.block_table) * 4 + rng.randrange(1, 13)
            if manager.can_reserve(seq, want):
                manager.reserve(seq, want)
                assert len(seq.block_table) == manager.blocks_needed(want)
                if seq not in live:
                    live.append(seq)
            else:
                with pytest.raises(RuntimeError, match="blocks needed"):
                    manager.reserve(seq, want)
        blocks = owned_blocks(live)
        assert len(blocks) == len(set(blocks)), "a block is owned by two sequences"
        assert all(0 <= b < 40 for b in blocks)
        assert manager.num_free + len(blocks) == 40
    for seq in live:
        manager.free(seq)
    assert manager.num_free == 40


def test_reserve_grows_only_by_missing_blocks(make_seq) -> None:
    manager = BlockManager(num_blocks=8, block_size=16)
    seq = make_seq(1)
    manager.reserve(seq, 16)
    assert len(seq.block_table) == 1
    manager.reserve(seq, 16)  # already enough room: nothing new
    assert len(seq.block_table) == 1
    manager.reserve(seq, 17)
    assert len(seq.block_table) == 2 and manager.num_free == 6
    assert not manager.can_reserve(seq, 16 * 9)
    assert manager.can_reserve(seq, 16 * 8)
