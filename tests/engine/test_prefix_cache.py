"""The prefix cache: shared leading blocks change no output, and the allocator stays sound.

Every engine run here checks the allocator's invariants after every step (reference
counts match the block tables, no block free twice or lost, no partly filled or
uncomputed block keyed, no unkeyed block shared).
"""

from __future__ import annotations

import pytest

from neuron.engine import Engine, EngineRequest
from neuron.engine.block_manager import BlockManager
from tests.engine.drive import Result, collect, greedy, prompt

BLOCK = 4


def run_checked(engine: Engine, waves: list[list[EngineRequest]]) -> dict[str, Result]:
    """Add each wave once the previous one is done; check the allocator after every step."""
    results: dict[str, Result] = {}
    for wave in waves:
        for request in wave:
            engine.add(request)
        for _ in range(10_000):
            if not engine.has_work():
                break
            collect(engine.step(), results)
            scheduler = engine.scheduler
            engine.block_manager.check([*scheduler.running, *scheduler.waiting])
        assert not engine.has_work()
    engine.block_manager.check([])
    assert engine.block_manager.num_free == engine.block_manager.num_blocks
    return results


def shared_prefix_waves(prefix_len: int) -> list[list[EngineRequest]]:
    """One request alone, then a batch of six whose prompts start with the same tokens."""
    head = prompt(prefix_len, start=300)

    def request(i: int, tail: int) -> EngineRequest:
        ids = head + prompt(tail, start=500 + 31 * i)
        return EngineRequest(f"p{prefix_len}-{i}", ids, greedy(10, ignore_eos=True))

    tails = [3, 5, 1, 9, 4, 13, 7]
    return [[request(0, tails[0])], [request(i, t) for i, t in enumerate(tails[1:], 1)]]


@pytest.mark.parametrize("prefix_len", [0, BLOCK, 3 * BLOCK + 2])
def test_outputs_are_the_same_with_the_cache_on_and_off(loaded, prefix_len) -> None:
    waves = shared_prefix_waves(prefix_len)
    off = run_checked(Engine(loaded, 128, BLOCK, prefix_cache=False), waves)
    on_engine = Engine(loaded, 128, BLOCK)
    on = run_checked(on_engine, waves)
    # 14 blocks hold about two sequences at once: the batch of six is preempted over and over.
    small_engine = Engine(loaded, 14, BLOCK, max_batch_size=8)
    small = run_checked(small_engine, waves)
    assert small_engine.scheduler.num_preemptions > 0
    for request_id, want in off.items():
        assert len(want.token_ids) == 10
        assert on[request_id].token_ids == want.token_ids, request_id
        assert small[request_id].token_ids == want.token_ids, request_id
        assert want.last.cached_tokens == 0
    reused = [on[r.request_id].last.cached_tokens for r in waves[1]]
    assert reused == [prefix_len // BLOCK * BLOCK] * len(waves[1])
    blocks = on_engine.block_manager
    assert blocks.hit_tokens == sum(reused) and blocks.queried_tokens > blocks.hit_tokens


def test_a_conversation_turn_reuses_the_previous_turn_and_its_answer(loaded) -> None:
    engine = Engine(loaded, 64, BLOCK)
    first = prompt(21, start=700)
    turn1 = run_checked(engine, [[EngineRequest("t1", first, greedy(6, ignore_eos=True))]])
    second = first + turn1["t1"].token_ids + prompt(5, start=900)
    turn2 = run_checked(engine, [[EngineRequest("t2", second, greedy(6, ignore_eos=True))]])
    # Every full block of prompt and answer was kept, short of the answer's last token
    # (sampled, never run through the model).
    computed = len(first) + len(turn1["t1"].token_ids) - 1
    assert turn2["t2"].last.cached_tokens == computed // BLOCK * BLOCK
    cold = run_checked(
        Engine(loaded, 64, BLOCK, prefix_cache=False),
        [[EngineRequest("t2", second, greedy(6, ignore_eos=True))]],
    )
    assert turn2["t2"].token_ids == cold["t2"].token_ids


def test_a_fully_cached_prompt_still_computes_its_last_token(loaded) -> None:
    engine = Engine(loaded, 64, BLOCK)
    ids = prompt(4 * BLOCK, start=111)
    a = run_checked(engine, [[EngineRequest("a", ids, greedy(4, ignore_eos=True))]])
    b = run_checked(engine, [[EngineRequest("b", ids, greedy(4, ignore_eos=True))]])
    assert b["b"].last.cached_tokens == 3 * BLOCK
    assert b["b"].token_ids == a["a"].token_ids


def test_abort_releases_shared_blocks_once(loaded) -> None:
    engine = Engine(loaded, 64, BLOCK)
    ids = prompt(3 * BLOCK + 1, start=222)
    run_checked(engine, [[EngineRequest("warm", ids, greedy(2, ignore_eos=True))]])
    for name in ("x", "y"):
        engine.add(EngineRequest(name, ids, greedy(50, ignore_eos=True)))
    engine.step()
    shared = engine.scheduler.running[0].block_table[:3]
    assert engine.scheduler.running[1].block_table[:3] == shared
    engine.abort("x")
    engine.block_manager.check(list(engine.scheduler.running))
    engine.abort("y")
    engine.block_manager.check([])
    assert engine.block_manager.num_free == 64 and engine.block_manager.num_cached >= 3


def computed(manager: BlockManager, make_seq, ids: list[int]):
    """A sequence of `ids`, admitted and run through the model (as far as the manager sees)."""
    seq = with_ids(make_seq, ids)
    assert manager.admit(seq)
    manager.commit(seq, seq.num_tokens - seq.num_cached_tokens)
    return seq


def with_ids(make_seq, ids: list[int]):
    seq = make_seq(len(ids))
    seq.token_ids = list(ids)
    return seq


def test_cached_blocks_are_evicted_least_recently_freed_first(make_seq) -> None:
    manager = BlockManager(7, BLOCK)
    a, b = prompt(2 * BLOCK + 1, start=10), prompt(2 * BLOCK + 1, start=60)
    old, new = computed(manager, make_seq, a), computed(manager, make_seq, b)
    assert manager.num_cached == 4  # two full blocks each; the partial last ones are unkeyed
    manager.free(old)
    manager.free(new)
    manager.check([])
    assert manager.num_free == 7
    # Unkeyed blocks go first (three), then the oldest cached one: the tail of `a`.
    taker = with_ids(make_seq, prompt(3 * BLOCK + 1, start=400))
    assert manager.admit(taker) and taker.num_cached_tokens == 0
    assert manager.num_cached == 3
    probe = with_ids(make_seq, a)
    assert manager.admit(probe) and probe.num_cached_tokens == BLOCK  # a's head survived
    manager.check([taker, probe])
    assert manager.num_free == 0


def test_admission_counts_free_cached_blocks_it_reuses(make_seq) -> None:
    manager = BlockManager(3, BLOCK)
    first = computed(manager, make_seq, prompt(2 * BLOCK + 1, start=10))
    manager.free(first)
    # Three free blocks, two of them holding the prefix: the longer prompt needs two more.
    longer = with_ids(make_seq, first.token_ids[: 2 * BLOCK] + [9] * (BLOCK + 1))
    assert not manager.admit(longer) and longer.block_table == []
    manager.check([])
    same = with_ids(make_seq, first.token_ids)
    assert manager.admit(same) and same.num_cached_tokens == 2 * BLOCK
    manager.check([same])


def test_the_switch_and_the_salt_keep_prefixes_apart(make_seq) -> None:
    ids = prompt(2 * BLOCK + 1)
    off = BlockManager(8, BLOCK, prefix_cache=False)
    computed(off, make_seq, ids)
    assert off.num_cached == 0 and off.queried_tokens == 0
    again = with_ids(make_seq, ids)
    assert off.admit(again) and again.num_cached_tokens == 0 and off.hit_tokens == 0
    one, other = BlockManager(8, BLOCK, salt="m1"), BlockManager(8, BLOCK, salt="m2")
    keys = [computed(m, make_seq, ids).block_keys for m in (one, other)]
    assert len(keys[0]) == 2 and keys[0][0] != keys[1][0]
