"""Triton paged decode attention: two-stage split-KV.

Stage 1 runs one program per (sequence, kv head, split): the query heads of that
GQA group are processed together against one pass over the split's keys, fp32
online softmax, writing a normalised partial output and its log-sum-exp (log2).
Stage 2 merges the splits per (sequence, query head).  Splitting long contexts
keeps every SM busy at small batch."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from neuron_kernels.attention_tile import attend_tile
from neuron_kernels.dispatch import interpreting
from neuron_kernels.triton_util import Launch, dot_precision, launched, pow2, upcast

LOG2E = 1.4426950408889634
MIN_KEYS_PER_SPLIT = 256


@triton.jit
def _decode_split_kernel(
    Q, KC, VC, TABLES, LENS, MID_O, MID_LSE, qk_scale, num_splits, group,
    s_qb, s_qh, s_kb, s_ks, s_kh, s_vb, s_vs, s_vh, s_tb,
    s_ob, s_oh, s_os, s_lb, s_lh,
    BLOCK_G: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, PAGE: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)
    ctx = tl.load(LENS + b)
    per_split = tl.cdiv(tl.cdiv(ctx, num_splits), BLOCK_N) * BLOCK_N
    start = split * per_split
    end = tl.minimum(ctx, start + per_split)

    offs_g = tl.arange(0, BLOCK_G)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    heads = kv_head * group + offs_g
    g_ok = offs_g < group
    d_ok = offs_d < HEAD_DIM
    q = tl.load(
        Q + b * s_qb + heads[:, None] * s_qh + offs_d[None, :],
        mask=g_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for n0 in range(start, end, BLOCK_N):
        pos = n0 + offs_n
        valid = pos < end
        page = tl.load(TABLES + b * s_tb + pos // PAGE, mask=valid, other=0).to(tl.int64)
        slot = pos % PAGE
        kv_mask = valid[:, None] & d_ok[None, :]
        k = tl.load(
            KC + page[:, None] * s_kb + slot[:, None] * s_ks + kv_head * s_kh + offs_d[None, :],
            mask=kv_mask,
            other=0.0,
        )
        v = tl.load(
            VC + page[:, None] * s_vb + slot[:, None] * s_vs + kv_head * s_vh + offs_d[None, :],
            mask=kv_mask,
            other=0.0,
        )
        m_i, l_i, acc = attend_tile(
            q, k, v, valid[None, :], m_i, l_i, acc, qk_scale, UPCAST, PRECISION
        )
    # An empty split (short context) reports lse = -inf and weighs nothing in the merge.
    filled = l_i > 0
    out = acc / tl.where(filled, l_i, 1.0)[:, None]
    lse = tl.where(filled, m_i + tl.log2(tl.where(filled, l_i, 1.0)), float("-inf"))
    tl.store(
        MID_O + b * s_ob + heads[:, None] * s_oh + split * s_os + offs_d[None, :],
        out,
        mask=g_ok[:, None] & d_ok[None, :],
    )
    tl.store(MID_LSE + b * s_lb + heads * s_lh + split, lse, mask=g_ok)


@triton.jit
def _decode_merge_kernel(
    MID_O, MID_LSE, OUT, num_splits,
    s_ob, s_oh, s_os, s_lb, s_lh, s_b, s_h,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    b = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    s_ok = offs_s < num_splits
    d_ok = offs_d < HEAD_DIM
    lse = tl.load(MID_LSE + b * s_lb + head * s_lh + offs_s, mask=s_ok, other=float("-inf"))
    weight = tl.exp2(lse - tl.max(lse, axis=0))
    part = tl.load(
        MID_O + b * s_ob + head * s_oh + offs_s[:, None] * s_os + offs_d[None, :],
        mask=s_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    out = tl.sum(part * weight[:, None], axis=0) / tl.sum(weight, axis=0)
    tl.store(OUT + b * s_b + head * s_h + offs_d, out.to(OUT.dtype.element_ty), mask=d_ok)


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4
    return torch.cuda.get_device_properties(device).multi_processor_count


def default_splits(batch: int, kv_heads: int, max_context: int, device: torch.device) -> int:
    """Enough programs to fill the GPU twice over, but never splits so short that
    the merge costs more than it saves.  Host-side only: CUDA-graph friendly."""
    fill = triton.cdiv(2 * _sm_count(device), max(1, batch * kv_heads))
    return max(1, min(fill, triton.cdiv(max_context, MIN_KEYS_PER_SPLIT), 64))


@dataclass(frozen=True)
class DecodeTiles:
    """How stage 1 is cut: query rows per program (the group, padded for tl.dot),
    keys per step, warps and pipeline stages."""

    block_g: int
    block_n: int
    num_warps: int
    num_stages: int


def decode_tiles(head_dim: int, group: int, dtype: torch.dtype) -> DecodeTiles:
    """The settings stage 1 runs with (the ahead-of-time compile test checks these).

    tl.dot needs 16 rows, so a group is padded to 16: free in this memory-bound loop
    (16 rows do 16 flop per byte of keys and values read, against the ~150-300 the
    tensor cores of an A100/H100 sustain per byte of bandwidth). Half precision reads
    16 KB of keys per step (64 keys up to head_dim 128, 32 above), 4 warps, 3 stages:
    no stack at any head size. fp32 dots run as FMAs with both operands in registers:
    32 keys over 8 warps, 2 stages, where 64 keys over 4 warps spilled on sm_80."""
    block_g = pow2(group)
    if interpreting():
        return DecodeTiles(block_g, 16, 4, 1)
    if dtype == torch.float32:
        return DecodeTiles(block_g, 32, 8, 2)
    return DecodeTiles(block_g, 64 if head_dim <= 128 else 32, 4, 3)


def decode_launches(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    num_splits: int | None = None,
) -> tuple[torch.Tensor, list[Launch]]:
    """Same contract as ``kernels.decode_attention``; ``num_splits`` overrides the
    heuristic (every context length must be >= 1). Plans the output buffer and the
    two launches that fill it (none for an empty batch); ``decode_attention_triton``
    runs them."""
    b, hq, d = q.shape
    page, hkv = k_cache.shape[1], k_cache.shape[2]
    if hq % hkv:
        raise ValueError(f"{hq} query heads are not a multiple of {hkv} kv heads")
    out = torch.empty_like(q)
    if b == 0:
        return out, []
    if num_splits is None:
        num_splits = default_splits(b, hkv, block_tables.shape[1] * page, q.device)
    block_d = pow2(d)
    mid_o = torch.empty(b, hq, num_splits, block_d, dtype=torch.float32, device=q.device)
    mid_lse = torch.empty(b, hq, num_splits, dtype=torch.float32, device=q.device)
    group = hq // hkv
    tiles = decode_tiles(d, group, q.dtype)
    split = Launch(
        _decode_split_kernel, (b, hkv, num_splits),
        (q, k_cache, v_cache, block_tables, context_lens, mid_o, mid_lse,
         scale * LOG2E, num_splits, group,
         q.stride(0), q.stride(1),
         k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
         v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
         block_tables.stride(0),
         mid_o.stride(0), mid_o.stride(1), mid_o.stride(2),
         mid_lse.stride(0), mid_lse.stride(1)),
        dict(BLOCK_G=tiles.block_g, HEAD_DIM=d, BLOCK_D=block_d, BLOCK_N=tiles.block_n,
             PAGE=page, UPCAST=upcast(q), PRECISION=dot_precision(q)),
        tiles.num_warps, tiles.num_stages,
    )  # fmt: skip
    merge = Launch(
        _decode_merge_kernel, (b, hq),
        (mid_o, mid_lse, out, num_splits,
         mid_o.stride(0), mid_o.stride(1), mid_o.stride(2),
         mid_lse.stride(0), mid_lse.stride(1), out.stride(0), out.stride(1)),
        dict(HEAD_DIM=d, BLOCK_D=block_d, BLOCK_S=pow2(num_splits, floor=2)),
    )  # fmt: skip
    return out, [split, merge]


decode_attention_triton = launched(decode_launches)
