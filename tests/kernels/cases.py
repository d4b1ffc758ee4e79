"""Random attention/sampling inputs shared by the reference, interpreter and GPU tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def cu_seqlens(lengths: list[int], device: str) -> torch.Tensor:
    out = [0]
    for n in lengths:
        out.append(out[-1] + n)
    return torch.tensor(out, dtype=torch.int32, device=device)


@dataclass
class PrefillCase:
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    q_lens: list[int]
    k_lens: list[int]
    scale: float

    def args(self) -> tuple:
        return (self.q, self.k, self.v, self.cu_q, self.cu_k)

    def call(self, fn) -> torch.Tensor:
        return fn(*self.args(), max(self.q_lens), max(self.k_lens), self.scale)


def prefill_case(
    q_lens: list[int],
    k_lens: list[int],
    heads: int,
    kv_heads: int,
    head_dim: int,
    dtype: str = "float32",
    device: str = "cpu",
    seed: int = 0,
) -> PrefillCase:
    """q is a head-strided view of a fused QKV buffer, as the decoder produces it."""
    g = torch.Generator().manual_seed(seed)
    tq, tk = sum(q_lens), sum(k_lens)
    qkv = torch.randn(tq, heads + 2 * kv_heads, head_dim, generator=g)
    q = qkv[:, :heads].to(device=device, dtype=DTYPES[dtype])
    k = torch.randn(tk, kv_heads, head_dim, generator=g).to(device=device, dtype=DTYPES[dtype])
    v = torch.randn(tk, kv_heads, head_dim, generator=g).to(device=device, dtype=DTYPES[dtype])
    return PrefillCase(
        q, k, v, cu_seqlens(q_lens, device), cu_seqlens(k_lens, device), q_lens, k_lens,
        head_dim**-0.5,
    )  # fmt: skip


@dataclass
class DecodeCase:
    q: torch.Tensor
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    block_tables: torch.Tensor
    context_lens: torch.Tensor
    scale: float

    def args(self) -> tuple:
        return (self.q, self.k_cache, self.v_cache, self.block_tables, self.context_lens)


def decode_case(
    context_lens: list[int],
    heads: int,
    kv_heads: int,
    head_dim: int,
    block_size: int = 8,
    dtype: str = "float32",
    device: str = "cpu",
    seed: int = 0,
) -> DecodeCase:
    """Each sequence owns shuffled (non-contiguous) blocks; tables are padded with
    a valid block id beyond each sequence's need, which must be ignored."""
    g = torch.Generator().manual_seed(seed)
    needs = [-(-n // block_size) for n in context_lens]
    width = max(needs) + 1
    total = sum(needs) + 1
    perm = torch.randperm(total, generator=g).tolist()
    tables = torch.full((len(context_lens), width), perm[-1], dtype=torch.int32)
    used = 0
    for row, n in enumerate(needs):
        tables[row, :n] = torch.tensor(perm[used : used + n], dtype=torch.int32)
        used += n
    shape = (total, block_size, kv_heads, head_dim)
    k_cache = torch.randn(shape, generator=g).to(device=device, dtype=DTYPES[dtype])
    v_cache = torch.randn(shape, generator=g).to(device=device, dtype=DTYPES[dtype])
    q = torch.randn(len(context_lens), heads, head_dim, generator=g)
    return DecodeCase(
        q.to(device=device, dtype=DTYPES[dtype]),
        k_cache,
        v_cache,
        tables.to(device),
        torch.tensor(context_lens, dtype=torch.int32, device=device),
        head_dim**-0.5,
    )


def logits(rows: int, vocab: int, spread: float = 3.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * spread
