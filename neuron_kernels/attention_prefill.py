"""Triton prefill attention: causal, varlen (cu_seqlens), GQA, chunk-aware.

One program per (query block, sequence, query head).  Each sequence's queries are
the last ``q_len`` of its ``k_len`` keys, so query row i sees keys
``j <= i + k_len - q_len``; softmax runs online in fp32 (exp2 domain)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from neuron_kernels.attention_tile import attend_tile
from neuron_kernels.dispatch import interpreting
from neuron_kernels.triton_util import Launch, dot_precision, launched, pow2, upcast

LOG2E = 1.4426950408889634


@triton.jit
def _prefill_kernel(
    Q, K, V, OUT, CU_Q, CU_K, qk_scale, group,
    s_qt, s_qh, s_kt, s_kh, s_vt, s_vh, s_ot, s_oh,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    seq = tl.program_id(1)
    head = tl.program_id(2)
    q0 = tl.load(CU_Q + seq)
    k0 = tl.load(CU_K + seq)
    q_len = tl.load(CU_Q + seq + 1) - q0
    k_len = tl.load(CU_K + seq + 1) - k0
    start_m = pid_m * BLOCK_M
    if start_m < q_len:
        kv_head = head // group
        shift = k_len - q_len
        offs_m = start_m + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        d_ok = offs_d < HEAD_DIM
        m_ok = offs_m < q_len
        q = tl.load(
            Q + (q0 + offs_m)[:, None] * s_qt + head * s_qh + offs_d[None, :],
            mask=m_ok[:, None] & d_ok[None, :],
            other=0.0,
        )
        if UPCAST:
            q = q.to(tl.float32)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        end = tl.minimum(k_len, start_m + BLOCK_M + shift)
        for start_n in range(0, end, BLOCK_N):
            cols = start_n + offs_n
            kv_mask = (cols < k_len)[:, None] & d_ok[None, :]
            k = tl.load(
                K + (k0 + cols)[:, None] * s_kt + kv_head * s_kh + offs_d[None, :],
                mask=kv_mask,
                other=0.0,
            )
            v = tl.load(
                V + (k0 + cols)[:, None] * s_vt + kv_head * s_vh + offs_d[None, :],
                mask=kv_mask,
                other=0.0,
            )
            visible = (cols[None, :] <= offs_m[:, None] + shift) & (cols < k_len)[None, :]
            m_i, l_i, acc = attend_tile(
                q, k, v, visible, m_i, l_i, acc, qk_scale, UPCAST, PRECISION
            )
        out = acc / l_i[:, None]
        tl.store(
            OUT + (q0 + offs_m)[:, None] * s_ot + head * s_oh + offs_d[None, :],
            out.to(OUT.dtype.element_ty),
            mask=m_ok[:, None] & d_ok[None, :],
        )


@dataclass(frozen=True)
class PrefillTiles:
    """Query rows and keys per step, warps and pipeline stages."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def prefill_tiles(head_dim: int, dtype: torch.dtype) -> PrefillTiles:
    """The settings the kernel runs with (the ahead-of-time compile test checks these).

    Half precision: 64x64 tiles on 4 warps up to head_dim 64; above, 128 query rows
    on 8 warps (16 rows a warp, so row max and sum stay inside a warp, as in Triton's
    fused-attention tutorial), which 64 rows on 4 warps could not hold in registers
    on sm_80; at 256, 64 rows by 32 keys on 8 warps (shared memory fits the 99 KB
    of sm_86/89/120). fp32 dots run as FMAs on CUDA cores: small tiles, more warps
    past head_dim 64. Every choice compiles without stack for sm_80 and sm_90."""
    if interpreting():
        return PrefillTiles(32, 16, 4, 1)  # unequal, as on a GPU past head_dim 64
    if dtype == torch.float32:
        if head_dim <= 64:
            return PrefillTiles(32, 32, 4, 3)
        return PrefillTiles(32, 32 if head_dim <= 128 else 16, 8, 2)
    if head_dim <= 64:
        return PrefillTiles(64, 64, 4, 3)
    if head_dim <= 128:
        return PrefillTiles(128, 64, 8, 3)
    return PrefillTiles(64, 32, 8, 2)


def prefill_launches(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
) -> tuple[torch.Tensor, list[Launch]]:
    """Same contract as ``kernels.prefill_attention``; q, k, v [T, H, D] with unit
    stride on D (head-strided views of a fused QKV buffer are fine). Plans the output
    buffer and the launch that fills it (none when there is nothing to do);
    ``prefill_attention_triton`` runs it."""
    del max_seqlen_k  # the kernel bounds each sequence by its own cu_seqlens
    tq, hq, d = q.shape
    hkv = k.shape[1]
    if hq % hkv:
        raise ValueError(f"{hq} query heads are not a multiple of {hkv} kv heads")
    out = torch.empty_like(q)
    batch = cu_seqlens_q.shape[0] - 1
    if tq == 0 or batch == 0:
        return out, []
    tiles = prefill_tiles(d, q.dtype)
    launch = Launch(
        _prefill_kernel, (triton.cdiv(max_seqlen_q, tiles.block_m), batch, hq),
        (q, k, v, out, cu_seqlens_q, cu_seqlens_k, scale * LOG2E, hq // hkv,
         q.stride(0), q.stride(1), k.stride(0), k.stride(1),
         v.stride(0), v.stride(1), out.stride(0), out.stride(1)),
        dict(HEAD_DIM=d, BLOCK_D=pow2(d), BLOCK_M=tiles.block_m, BLOCK_N=tiles.block_n,
             UPCAST=upcast(q), PRECISION=dot_precision(q)),
        tiles.num_warps, tiles.num_stages,
    )  # fmt: skip
    return out, [launch]


prefill_attention_triton = launched(prefill_launches)
