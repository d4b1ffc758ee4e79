"""Attention and sampling kernels: Triton on CUDA, torch references elsewhere.

Every entry point asks ``neuron_kernels.dispatch.use_triton`` which implementation to
run; the Triton modules are imported lazily so a host without Triton (or without
a GPU) only ever touches the references.

The package is named apart from the Hub's `kernels`, which transformers (from 5.25) installs
beside it: one import name for two packages would break one or the other."""

from __future__ import annotations

import torch

from neuron_kernels.attention_ref import decode_attention_ref, prefill_attention_ref
from neuron_kernels.dispatch import interpreting, triton_available, use_triton
from neuron_kernels.kv_store import store_kv
from neuron_kernels.quant_matmul_ref import PackedWeight, quant_matmul_ref
from neuron_kernels.sampling import SamplingBatch, SamplingRow
from neuron_kernels.sampling_ref import sample_ref

__all__ = [
    "PackedWeight",
    "SamplingBatch",
    "SamplingRow",
    "decode_attention",
    "prefill_attention",
    "quant_matmul",
    "sample",
    "store_kv",
]


def prefill_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
) -> torch.Tensor:
    """Causal varlen GQA attention; queries are the last keys of each sequence."""
    if use_triton(q):
        from neuron_kernels.attention_prefill import prefill_attention_triton as impl
    else:
        impl = prefill_attention_ref
    return impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale)


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One query per sequence over the paged KV cache."""
    if use_triton(q):
        from neuron_kernels.attention_decode import decode_attention_triton as impl
    else:
        impl = decode_attention_ref
    return impl(q, k_cache, v_cache, block_tables, context_lens, scale)


def sample(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Token ids int64 [B] from logits [B, V]."""
    if use_triton(logits):
        from neuron_kernels.sampling_triton import sample_triton

        return sample_triton(logits, batch)
    return sample_ref(logits, batch)


def quant_matmul(x: torch.Tensor, weight: PackedWeight) -> torch.Tensor:
    """x [M, K] @ dequant(W).T → [M, N] in x's dtype. Triton on CUDA, and on CPU tensors
    too under TRITON_INTERPRET=1, so that a packed model's tests run the kernel itself."""
    if use_triton(x) or (interpreting() and triton_available()):
        from neuron_kernels.quant_matmul_triton import quant_matmul_triton

        return quant_matmul_triton(x, weight)
    return quant_matmul_ref(x, weight)
