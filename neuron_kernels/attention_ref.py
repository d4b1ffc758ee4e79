"""Torch reference attention: the numerical truth for the Triton kernels and the
CPU serving path, so it is written for small-batch speed (no per-head loops) with
scores and softmax in fp32 whatever the input dtype."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prefill_attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
) -> torch.Tensor:
    """Causal varlen GQA attention; each sequence's queries are its LAST keys.

    One SDPA call per sequence (prefill batches are few and long); the mask is
    aligned bottom-right so a chunk attends to the cached prefix before it.
    """
    del max_seqlen_q, max_seqlen_k  # shapes come from cu_seqlens on this path
    out = torch.empty_like(q)
    starts_q = cu_seqlens_q.tolist()
    starts_k = cu_seqlens_k.tolist()
    gqa = q.shape[1] != k.shape[1]
    for i in range(len(starts_q) - 1):
        q0, q1, k0, k1 = starts_q[i], starts_q[i + 1], starts_k[i], starts_k[i + 1]
        lq, lk = q1 - q0, k1 - k0
        if lq == 0:
            continue
        if lk < lq:
            raise ValueError(f"sequence {i}: {lk} keys cannot cover {lq} queries")
        qs = q[q0:q1].transpose(0, 1).float().unsqueeze(0)
        ks = k[k0:k1].transpose(0, 1).float().unsqueeze(0)
        vs = v[k0:k1].transpose(0, 1).float().unsqueeze(0)
        if lq == lk:
            o = F.scaled_dot_product_attention(
                qs, ks, vs, is_causal=True, scale=scale, enable_gqa=gqa
            )
        else:
            rows = torch.arange(lq, device=q.device).unsqueeze(1) + (lk - lq)
            mask = torch.arange(lk, device=q.device).unsqueeze(0) <= rows
            o = F.scaled_dot_product_attention(
                qs, ks, vs, attn_mask=mask, scale=scale, enable_gqa=gqa
            )
        out[q0:q1] = o.squeeze(0).transpose(0, 1).to(q.dtype)
    return out


def decode_attention_ref(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """One query token per sequence over the paged cache.

    Per sequence: gather just its blocks (no padding to the longest context, which
    measured faster on CPU than one padded batch), then two matmuls in which the
    query heads of each GQA group share their kv head."""
    hq, d = q.shape[1], q.shape[2]
    block_size, hkv = k_cache.shape[1], k_cache.shape[2]
    out = torch.empty_like(q)
    tables = block_tables.long()
    for i, n in enumerate(context_lens.tolist()):
        blocks = tables[i, : -(-n // block_size)]
        keys = k_cache[blocks].view(-1, hkv, d)[:n].float()  # [n, Hkv, D]
        values = v_cache[blocks].view(-1, hkv, d)[:n].float()
        qg = q[i].float().view(hkv, hq // hkv, d)
        scores = torch.matmul(qg, keys.permute(1, 2, 0)) * scale  # [Hkv, G, n]
        probs = torch.softmax(scores, dim=-1)
        out[i] = torch.matmul(probs, values.transpose(0, 1)).view(hq, d).to(q.dtype)
    return out
