"""A minimal driver that feeds a decoder through the paged KV cache by hand.

It builds `AttentionMetadata` the way the engine does (prefill chunks of several
sequences in one pass, then one decode token per sequence), handing out cache
blocks in a scrambled order so that block tables are never trivially contiguous.
"""

from __future__ import annotations

import itertools

import torch

from neuron.models.attention import AttentionMetadata, KVCache, kv_cache_dtype
from neuron.models.llama import LlamaForCausalLM


def _i32(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)


class PagedRunner:
    def __init__(
        self,
        model: LlamaForCausalLM,
        num_blocks: int = 64,
        block_size: int = 16,
        kv_dtype: torch.dtype | None = None,
    ):
        """`kv_dtype`: the cache's element type; None: what serving picks (`kv_cache_dtype`)."""
        c = model.config
        self.model = model
        self.block_size = block_size
        self.kv = KVCache(
            c.num_hidden_layers,
            num_blocks,
            block_size,
            c.num_key_value_heads,
            c.head_dim,
            kv_dtype or kv_cache_dtype(model.act_dtype, model.device, c.head_dim),
            model.device,
        )
        # Odd blocks first, then even ones, each descending: neighbours in a sequence
        # land far apart in the cache.
        self.free = sorted(range(num_blocks), key=lambda b: (b % 2 == 0, -b))
        self.blocks: dict[str, list[int]] = {}
        self.lengths: dict[str, int] = {}

    def _slot(self, seq: str, position: int) -> int:
        table = self.blocks.setdefault(seq, [])
        while len(table) * self.block_size <= position:
            table.append(self.free.pop(0))
        return table[position // self.block_size] * self.block_size + position % self.block_size

    def prefill(self, chunks: dict[str, list[int]]) -> torch.Tensor:
        """Append each sequence's chunk in one pass; logits [sum of chunk lengths, V]."""
        ids, positions, slots, key_slots = [], [], [], []
        cu_q, cu_k = [0], [0]
        for seq, chunk in chunks.items():
            start = self.lengths.get(seq, 0)
            new_positions = list(range(start, start + len(chunk)))
            ids += chunk
            positions += new_positions
            slots += [self._slot(seq, p) for p in new_positions]
            key_slots += [self._slot(seq, p) for p in range(start + len(chunk))]
            cu_q.append(cu_q[-1] + len(chunk))
            cu_k.append(cu_k[-1] + start + len(chunk))
            self.lengths[seq] = start + len(chunk)
        has_prefix = cu_k[-1] > cu_q[-1]
        meta = AttentionMetadata(
            is_prefill=True,
            slot_mapping=torch.tensor(slots),
            cu_seqlens_q=_i32(cu_q),
            cu_seqlens_k=_i32(cu_k),
            max_seqlen_q=max(b - a for a, b in itertools.pairwise(cu_q)),
            max_seqlen_k=max(b - a for a, b in itertools.pairwise(cu_k)),
            key_slots=torch.tensor(key_slots) if has_prefix else None,
        )
        return self._run(ids, positions, meta)

    def decode(self, tokens: dict[str, int]) -> torch.Tensor:
        """One new token per sequence; logits [B, V] in the order of `tokens`."""
        seqs = list(tokens)
        positions = [self.lengths[s] for s in seqs]
        slots = [self._slot(s, p) for s, p in zip(seqs, positions, strict=True)]
        for s in seqs:
            self.lengths[s] += 1
        width = max(len(self.blocks[s]) for s in seqs)
        tables = [self.blocks[s] + [0] * (width - len(self.blocks[s])) for s in seqs]
        meta = AttentionMetadata(
            is_prefill=False,
            slot_mapping=torch.tensor(slots),
            block_tables=torch.tensor(tables, dtype=torch.int32),
            context_lens=_i32([self.lengths[s] for s in seqs]),
        )
        return self._run([tokens[s] for s in seqs], positions, meta)

    def _run(self, ids: list[int], positions: list[int], meta: AttentionMetadata) -> torch.Tensor:
        device = self.model.device
        meta.slot_mapping = meta.slot_mapping.to(device)
        hidden = self.model(
            torch.tensor(ids, device=device), torch.tensor(positions, device=device), meta, self.kv
        )
        return self.model.compute_logits(hidden)


def greedy(
    model: LlamaForCausalLM,
    prompts: list[list[int]],
    max_new: int,
    kv_dtype: torch.dtype | None = None,
    runner: PagedRunner | None = None,
) -> list[list[int]]:
    """Greedy continuation of several prompts decoded together as one batch (through
    `runner` where given)."""
    runner = runner or PagedRunner(model, kv_dtype=kv_dtype)
    names = [f"s{i}" for i in range(len(prompts))]
    logits = runner.prefill(dict(zip(names, prompts, strict=True)))
    ends = torch.tensor([len(p) for p in prompts]).cumsum(0) - 1
    out = [[t] for t in logits[ends].argmax(-1).tolist()]
    for _ in range(max_new - 1):
        logits = runner.decode({n: o[-1] for n, o in zip(names, out, strict=True)})
        for o, t in zip(out, logits.argmax(-1).tolist(), strict=True):
            o.append(t)
    return out
