"""(a) Paged decode attention: achieved memory bandwidth against the peak, and torch SDPA.

Llama-3-8B heads (32 query, 8 KV, dim 128) over a paged cache with scattered
blocks, at 1k/8k/32k context and batch 1 and 32. SDPA gets the same keys as one
contiguous tensor per sequence (its best case; the paged layout is ours alone).
Bytes counted: every key and value read once (queries and outputs are negligible).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

import neuron_kernels as kernels
from bench.gpu_common import Setup, summary, time_call

BLOCK = 16


def shapes(s: Setup) -> tuple[list[int], list[int], tuple[int, int, int]]:
    """(contexts, batches, (query heads, kv heads, head dim))."""
    if s.dry_run:
        return [64, 256], [1, 4], (4, 2, 32)
    return [1024, 8192, 32768], [1, 32], (32, 8, 128)


def one_case(s: Setup, context: int, batch: int, heads: tuple[int, int, int], peak: float):
    hq, hkv, dim = heads
    blocks_per_seq = context // BLOCK
    num_blocks = batch * blocks_per_seq
    gen = torch.Generator(device=s.device).manual_seed(0)
    k_cache = torch.randn(num_blocks, BLOCK, hkv, dim, dtype=s.dtype, device=s.device)
    v_cache = torch.randn_like(k_cache)
    tables = torch.randperm(num_blocks, generator=gen, device=s.device).to(torch.int32)
    tables = tables.view(batch, blocks_per_seq)
    lens = torch.full((batch,), context, dtype=torch.int32, device=s.device)
    q = torch.randn(batch, hq, dim, dtype=s.dtype, device=s.device)
    scale = dim**-0.5
    iters = 3 if s.dry_run else 20
    ours = time_call(
        s, lambda: kernels.decode_attention(q, k_cache, v_cache, tables, lens, scale), iters
    )
    # The same keys, gathered once into [B, Hkv, S, D] for SDPA.
    flat = tables.long().flatten()
    k = k_cache[flat].view(batch, context, hkv, dim).transpose(1, 2).contiguous()
    v = v_cache[flat].view(batch, context, hkv, dim).transpose(1, 2).contiguous()
    qs = q.unsqueeze(2)
    sdpa = time_call(
        s, lambda: F.scaled_dot_product_attention(qs, k, v, scale=scale, enable_gqa=True), iters
    )
    kv_bytes = 2 * batch * context * hkv * dim * k_cache.element_size()
    ours_bw = kv_bytes / statistics.median(ours)
    return {
        "context": context,
        "batch": batch,
        "kv_bytes": kv_bytes,
        "ours_us": summary(ours, 1e6),
        "sdpa_us": summary(sdpa, 1e6),
        "ours_bandwidth_GBps": ours_bw / 1e9,
        "sdpa_bandwidth_GBps": kv_bytes / statistics.median(sdpa) / 1e9,
        "ours_fraction_of_peak": ours_bw / peak,
    }


def run(s: Setup, peak: float) -> list[dict]:
    contexts, batches, heads = shapes(s)
    rows = []
    for context in contexts:
        for batch in batches:
            row = one_case(s, context, batch, heads, peak)
            rows.append(row)
            print(
                f"attention ctx {context:>6} batch {batch:>3}: ours "
                f"{row['ours_us']['median']:9.1f} us {row['ours_bandwidth_GBps']:8.1f} GB/s "
                f"({100 * row['ours_fraction_of_peak']:5.1f}% of peak), sdpa "
                f"{row['sdpa_us']['median']:9.1f} us",
                flush=True,
            )
    return rows
