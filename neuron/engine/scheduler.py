"""Continuous batching: which sequences run in the next forward pass.

A step is all prefill or all decode. Prefill goes first (unfinished prompt
chunks, then newcomers) within `max_prefill_tokens`; a newcomer is admitted only
when blocks for its whole prompt are free, so a prompt in progress never waits
on memory. A newcomer takes the leading blocks the prefix cache holds for it and
its prefill starts after them. Otherwise every running sequence decodes one token; when blocks run
out the youngest sequence is preempted: its blocks are freed and it goes back to
the front of the queue, to be recomputed later.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from neuron.engine.block_manager import BlockManager
from neuron.engine.sequence import Sequence, SequenceStatus


@dataclass
class ScheduledBatch:
    is_prefill: bool
    seqs: list[Sequence]
    chunk_sizes: list[int]  # tokens each sequence runs through the model (1 when decoding)


class Scheduler:
    def __init__(
        self, block_manager: BlockManager, max_batch_size: int, max_prefill_tokens: int
    ) -> None:
        self.block_manager = block_manager
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> ScheduledBatch | None:
        return self._schedule_prefill() or self._schedule_decode()

    def finish(self, seq: Sequence) -> None:
        """Drop a finished or aborted sequence and free its blocks at once."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self.block_manager.free(seq)

    def _schedule_prefill(self) -> ScheduledBatch | None:
        seqs: list[Sequence] = []
        chunks: list[int] = []
        budget = self.max_prefill_tokens
        for seq in self.running:
            if budget == 0:
                break
            # A pooled sequence prefills to its last token; a generating one decodes it.
            if seq.num_uncomputed > (0 if seq.pool is not None else 1):
                chunks.append(min(seq.num_uncomputed, budget))
                seqs.append(seq)
                budget -= chunks[-1]
        while self.waiting and budget > 0 and len(self.running) < self.max_batch_size:
            seq = self.waiting[0]
            if not self.block_manager.admit(seq):
                break
            self.waiting.popleft()
            if seq.prompt_cache_hit is None:
                seq.prompt_cache_hit = seq.num_cached_tokens
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            chunks.append(min(seq.num_uncomputed, budget))
            seqs.append(seq)
            budget -= chunks[-1]
        return ScheduledBatch(True, seqs, chunks) if seqs else None

    def _schedule_decode(self) -> ScheduledBatch | None:
        queue = sorted((s for s in self.running if s.pool is None), key=lambda s: s.seq_id)
        scheduled: list[Sequence] = []
        while queue:
            seq = queue.pop(0)
            while not self.block_manager.can_reserve(seq, seq.num_tokens):
                victim = queue.pop() if queue else seq
                self._preempt(victim)
                if victim is seq:
                    break
            else:
                self.block_manager.reserve(seq, seq.num_tokens)
                scheduled.append(seq)
        return ScheduledBatch(False, scheduled, [1] * len(scheduled)) if scheduled else None

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.block_manager.free(seq)
        seq.status = SequenceStatus.WAITING
        self.waiting.appendleft(seq)
        self.num_preemptions += 1
