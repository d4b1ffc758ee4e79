"""The scheduler on its own: prefill budget, batch limit, decode, preemption (with the
prefix cache off: identical prompts would share blocks; tests/engine/test_prefix_cache.py
looks at that)."""

from __future__ import annotations

from neuron.engine.block_manager import BlockManager
from neuron.engine.scheduler import ScheduledBatch, Scheduler
from neuron.engine.sequence import SequenceStatus


def advance(scheduler: Scheduler, batch: ScheduledBatch, token: int = 5) -> None:
    """What the engine does after a pass: commit the chunks, append sampled tokens."""
    for seq, chunk in zip(batch.seqs, batch.chunk_sizes, strict=True):
        scheduler.block_manager.commit(seq, chunk)
        if seq.num_cached_tokens == seq.num_tokens:
            seq.append_token(token, None)


def test_prefill_is_chunked_within_the_token_budget(make_seq) -> None:
    scheduler = Scheduler(
        BlockManager(64, 4, prefix_cache=False), max_batch_size=8, max_prefill_tokens=16
    )
    a, b, c = make_seq(10), make_seq(10), make_seq(10)
    for seq in (a, b, c):
        scheduler.add(seq)
    first = scheduler.schedule()
    assert first.is_prefill and first.seqs == [a, b] and first.chunk_sizes == [10, 6]
    # Admission reserves the whole prompt, so a prompt in progress never waits on memory.
    assert len(b.block_table) == 3 and list(scheduler.waiting) == [c]
    advance(scheduler, first)
    second = scheduler.schedule()
    assert second.is_prefill and second.seqs == [b, c] and second.chunk_sizes == [4, 10]
    advance(scheduler, second)
    third = scheduler.schedule()
    assert not third.is_prefill and third.seqs == [a, b, c] and third.chunk_sizes == [1, 1, 1]


def test_new_requests_join_between_decode_steps(make_seq) -> None:
    scheduler = Scheduler(
        BlockManager(64, 4, prefix_cache=False), max_batch_size=2, max_prefill_tokens=64
    )
    a = make_seq(3)
    scheduler.add(a)
    advance(scheduler, scheduler.schedule())
    advance(scheduler, scheduler.schedule())  # a decodes alone
    b, c = make_seq(3), make_seq(3)
    scheduler.add(b)
    scheduler.add(c)
    joined = scheduler.schedule()
    assert joined.is_prefill and joined.seqs == [b]  # the batch limit keeps c waiting
    advance(scheduler, joined)
    decode = scheduler.schedule()
    assert not decode.is_prefill and decode.seqs == [a, b]
    scheduler.finish(a)
    advance(scheduler, decode)
    assert scheduler.schedule().seqs == [c]


def test_decode_preempts_the_youngest_when_blocks_run_out(make_seq) -> None:
    manager = BlockManager(4, 4, prefix_cache=False)
    scheduler = Scheduler(manager, max_batch_size=8, max_prefill_tokens=64)
    old, young = make_seq(4), make_seq(4)
    scheduler.add(old)
    scheduler.add(young)
    advance(scheduler, scheduler.schedule())  # both prompts fill one block each, then get a token
    assert manager.num_free == 2
    advance(scheduler, scheduler.schedule())  # each takes a second block for its 5th token
    assert manager.num_free == 0
    for _ in range(3):
        advance(scheduler, scheduler.schedule())  # tokens 6..8 fit in the second blocks
    batch = scheduler.schedule()  # token 9 needs a third block each: only one can have it
    assert batch.seqs == [old] and not batch.is_prefill
    assert scheduler.num_preemptions == 1
    assert young.status is SequenceStatus.WAITING and young.block_table == []
    assert young.num_cached_tokens == 0 and list(scheduler.waiting) == [young]
    assert len(old.block_table) == 3 and manager.num_free == 1
    advance(scheduler, batch)
    scheduler.finish(old)
    assert manager.num_free == 4
    # The preempted sequence is recomputed: prompt and generated tokens in one prefill.
    redo = scheduler.schedule()
    assert redo.is_prefill and redo.seqs == [young] and redo.chunk_sizes == [young.num_tokens]


def test_finish_frees_waiting_and_running(make_seq) -> None:
    manager = BlockManager(8, 4, prefix_cache=False)
    scheduler = Scheduler(manager, max_batch_size=8, max_prefill_tokens=4)
    a, b = make_seq(6), make_seq(6)
    scheduler.add(a)
    scheduler.add(b)
    scheduler.schedule()  # a is admitted (two blocks) and half prefilled
    assert manager.num_free == 6
    scheduler.finish(a)
    scheduler.finish(b)
    assert manager.num_free == 8 and not scheduler.has_work()
