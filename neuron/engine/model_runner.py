"""One forward pass: a scheduled batch becomes flat model inputs, logits and tokens.

The decoder sees a single run of tokens (no padding); `AttentionMetadata` tells
the attention layers where each sequence's tokens and cached keys live. Logits
are computed only for rows that will sample: the last token of a sequence whose
prompt completes in this pass, or every row of a decode pass. A pooled sequence's
rows feed its `PoolState` instead and sample nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from neuron.engine.cpu_compile import CompiledDecoder
from neuron.engine.cuda_graphs import GraphedDecoder
from neuron.engine.decode_inputs import cache_slot, decode_inputs, decode_metadata
from neuron.engine.sampler import SampledLogprobs, sample
from neuron.engine.scheduler import ScheduledBatch
from neuron.engine.sequence import Sequence
from neuron.models.attention import AttentionMetadata, KVCache
from neuron.models.llama import LlamaForCausalLM


@dataclass
class PassInputs:
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    sample_rows: list[int]  # rows of the pass whose logits are sampled
    sample_seqs: list[Sequence]  # the sequence each of those rows belongs to
    pooled: list[tuple[Sequence, int, int]] = field(default_factory=list)  # (seq, rows a..b)


@dataclass
class Sampled:
    seq: Sequence
    token_id: int
    logprobs: SampledLogprobs | None


class ModelRunner:
    def __init__(
        self, model: LlamaForCausalLM, kv_cache: KVCache, compile_cpu_decode: bool = False
    ) -> None:
        self.model = model
        self.kv_cache = kv_cache
        self.block_size = kv_cache.block_size
        self.device = kv_cache.data.device
        # CUDA fast path (neuron/engine/cuda_graphs.py): None off CUDA, where nothing changes.
        self.graphs = GraphedDecoder.for_device(model, kv_cache)
        # CPU fast path (neuron/engine/cpu_compile.py): compiles in the background.
        self.compiled: CompiledDecoder | None = None
        if compile_cpu_decode and self.device.type == "cpu":
            self.compiled = CompiledDecoder(model, kv_cache)
            self.compiled.start()

    def run(self, batch: ScheduledBatch) -> list[Sampled]:
        """Run the batch through the model and sample where a next token is due."""
        if not batch.is_prefill and self.graphs is not None and self.graphs.supports(batch.seqs):
            # CUDA fast path: the decode step replays a captured graph.
            token_ids, logprobs = self.graphs.decode(batch.seqs)
            return [Sampled(*row) for row in zip(batch.seqs, token_ids, logprobs, strict=True)]
        inputs = self._prepare_prefill(batch) if batch.is_prefill else self._prepare_decode(batch)
        hidden = None
        if self.compiled is not None and not batch.is_prefill:
            hidden = self.compiled.forward(inputs.input_ids, inputs.positions, inputs.meta)
        with torch.inference_mode():
            if hidden is None:
                hidden = self.model(inputs.input_ids, inputs.positions, inputs.meta, self.kv_cache)
            for seq, start, end in inputs.pooled:
                seq.pool.feed(hidden[start:end])
            if not inputs.sample_rows:
                return []
            if len(inputs.sample_rows) < hidden.shape[0]:
                hidden = hidden.index_select(0, self._tensor(inputs.sample_rows))
            logits = self.model.compute_logits(hidden)
            token_ids, logprobs = sample(logits, inputs.sample_seqs)
        return [Sampled(*row) for row in zip(inputs.sample_seqs, token_ids, logprobs, strict=True)]

    def _prepare_prefill(self, batch: ScheduledBatch) -> PassInputs:
        # Keys are gathered from the cache only when some chunk continues a cached prefix.
        gather = any(seq.num_cached_tokens > 0 for seq in batch.seqs)
        ids: list[int] = []
        positions: list[int] = []
        slots: list[int] = []
        key_slots: list[int] = []
        cu_q, cu_k = [0], [0]
        max_k = 0
        rows: list[int] = []
        sampling: list[Sequence] = []
        pooled: list[tuple[Sequence, int, int]] = []
        for seq, chunk in zip(batch.seqs, batch.chunk_sizes, strict=True):
            start, end = seq.num_cached_tokens, seq.num_cached_tokens + chunk
            ids += seq.token_ids[start:end]
            positions += range(start, end)
            if gather:
                keys = self._slots(seq, 0, end)
                key_slots += keys
                slots += keys[start:]
            else:
                slots += self._slots(seq, start, end)
            cu_q.append(cu_q[-1] + chunk)
            cu_k.append(cu_k[-1] + end)
            max_k = max(max_k, end)
            if seq.pool is not None:
                pooled.append((seq, cu_q[-2], cu_q[-1]))
            elif end == seq.num_tokens:
                rows.append(cu_q[-1] - 1)
                sampling.append(seq)
        meta = AttentionMetadata(
            is_prefill=True,
            slot_mapping=self._tensor(slots),
            cu_seqlens_q=self._tensor(cu_q, torch.int32),
            cu_seqlens_k=self._tensor(cu_k, torch.int32),
            max_seqlen_q=max(batch.chunk_sizes),
            max_seqlen_k=max_k,
            key_slots=self._tensor(key_slots) if gather else None,
        )
        ids_t, positions_t = self._tensor(ids), self._tensor(positions)
        return PassInputs(ids_t, positions_t, meta, rows, sampling, pooled)

    def _prepare_decode(self, batch: ScheduledBatch) -> PassInputs:
        seqs = batch.seqs
        step = decode_inputs(seqs, self.block_size)
        columns, tables = step.to(self.device)
        meta = decode_metadata(columns, tables)
        rows = list(range(len(seqs)))
        return PassInputs(columns["input_ids"], columns["positions"], meta, rows, list(seqs))

    def _slots(self, seq: Sequence, start: int, end: int) -> list[int]:
        """Cache slots (block * block_size + offset) of positions start..end-1."""
        return [cache_slot(seq.block_table, p, self.block_size) for p in range(start, end)]

    def _tensor(self, values: list, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=self.device)
