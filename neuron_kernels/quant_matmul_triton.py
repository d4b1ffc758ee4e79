"""Triton weight-only int4 / int8 matmul: y = x @ dequant(W).T, fp32 accumulation.

One kernel serves both paths. Decode (M <= 16) is a matrix-vector read bound by the
weights' bytes: one 16-row tile of x, and K split across programs (split-K) so that a
small N still fills every SM, the partial sums added afterwards. Prefill tiles M and N
over the whole of K. Each tile of codes is widened in registers to x's dtype (fp32 in
the interpreter) with its group scales and fed to `tl.dot`. Launch settings come from
`quant_matmul_config` alone, so that a compile check can call it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from neuron_kernels.dispatch import launch_guard
from neuron_kernels.quant_matmul_ref import PackedWeight
from neuron_kernels.triton_util import Launch, dot_precision, pow2, upcast

DECODE_MAX_ROWS = 16


@triton.jit
def _quant_matmul_kernel(
    X, CODES, SCALE, OFFSET, SSCALE, SOFFSET, OUT,
    M, N, K, k_per_split,
    s_xm, s_cn, s_sn, s_on, s_ssn, s_son, s_os, s_om,
    BITS: tl.constexpr, ZERO: tl.constexpr, GROUP: tl.constexpr, SPAN: tl.constexpr,
    HAS_OFFSET: tl.constexpr, HAS_SUPER: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_k = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = offs_m < M
    n_ok = offs_n < N
    rows = offs_n.to(tl.int64)[:, None]
    k_start = pid_k * k_per_split
    k_end = tl.minimum(K, k_start + k_per_split)
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(k_start, k_end, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < k_end
        x = tl.load(
            X + offs_m[:, None] * s_xm + offs_k[None, :],
            mask=m_ok[:, None] & k_ok[None, :],
            other=0.0,
        )
        w_ok = n_ok[:, None] & k_ok[None, :]
        if BITS == 4:
            byte = tl.load(CODES + rows * s_cn + (offs_k // 2)[None, :], mask=w_ok, other=0)
            code = (byte >> ((offs_k % 2) * 4).to(tl.uint8)[None, :]) & 0x0F
        else:
            code = tl.load(CODES + rows * s_cn + offs_k[None, :], mask=w_ok, other=0)
        group = (offs_k // GROUP)[None, :]
        scale = tl.load(SCALE + rows * s_sn + group, mask=w_ok, other=0).to(tl.float32)
        if HAS_SUPER:
            span = (offs_k // SPAN)[None, :]
            scale *= tl.load(SSCALE + rows * s_ssn + span, mask=w_ok, other=0).to(tl.float32)
        w = (code.to(tl.float32) - ZERO) * scale
        if HAS_OFFSET:
            offset = tl.load(OFFSET + rows * s_on + group, mask=w_ok, other=0).to(tl.float32)
            if HAS_SUPER:
                offset *= tl.load(SOFFSET + rows * s_son + span, mask=w_ok, other=0).to(tl.float32)
            w += offset
        if UPCAST:
            # The weights rounded to x's dtype as on the GPU; the interpreter's bf16
            # arithmetic is wrong, its conversions are not.
            w = w.to(x.dtype).to(tl.float32)
            acc += tl.dot(x.to(tl.float32), tl.trans(w), input_precision=PRECISION)
        else:
            acc += tl.dot(x, tl.trans(w.to(x.dtype)))
    tl.store(
        OUT + pid_k * s_os + offs_m[:, None] * s_om + offs_n[None, :],
        acc.to(OUT.dtype.element_ty),
        mask=m_ok[:, None] & n_ok[None, :],
    )


@dataclass(frozen=True)
class QuantMatmulConfig:
    """Tile sizes and launch settings of one call (split_k > 1: the decode path)."""

    block_m: int
    block_n: int
    block_k: int
    split_k: int
    num_warps: int
    num_stages: int


@functools.cache
def _sm_count(device_index: int | None) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def quant_matmul_config(
    m: int, n: int, k: int, bits: int, dtype: torch.dtype, sm_count: int = 132
) -> QuantMatmulConfig:
    """Launch settings on a GPU for an [m, k] x [n, k] product; host-side only (CUDA-graph
    safe). `dtype` is x's (every choice below holds for bf16, fp16 and fp32).

    Decode: BLOCK_N 64 rows of weights per program, K split until there are ~4 programs
    per SM (never below one BLOCK_K per split). Prefill: 64 x 64 tiles (128 x 128 from
    256 rows by 2048 columns), 4 or 8 warps, 3 stages."""
    if m <= DECODE_MAX_ROWS:
        block_n, block_k = 64, 128 if bits == 4 else 64
        tiles = triton.cdiv(n, block_n)
        split = max(1, min(triton.cdiv(4 * sm_count, tiles), triton.cdiv(k, block_k), 32))
        return QuantMatmulConfig(16, block_n, block_k, split, 4, 4)
    if m >= 256 and n >= 2048:
        return QuantMatmulConfig(128, 128, 32, 1, 8, 3)
    return QuantMatmulConfig(64, 64, 32, 1, 4, 3)


def interpreter_config(m: int, n: int, k: int) -> QuantMatmulConfig:
    """On CPU under the interpreter, which pays per program and per loop step: a few wide
    tiles (the kernel tests pass the GPU's settings explicitly)."""
    return QuantMatmulConfig(16 if m <= 16 else 64, min(pow2(n), 512), min(pow2(k), 256), 1, 4, 1)


def quant_matmul_plan(
    x: torch.Tensor, weight: PackedWeight, config: QuantMatmulConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor, Launch]:
    """(out [M, N] in x's dtype, what the kernel writes: `out`, or fp32 partial sums
    [splits, M, N] to add into it, the launch). Works on meta tensors too: the
    ahead-of-time compile test builds its launches here."""
    m, k = x.shape
    n = weight.out_features
    if k != weight.in_features:
        raise ValueError(f"x has {k} columns but the weight takes {weight.in_features}")
    if config is None and x.device.type == "cpu":
        config = interpreter_config(m, n, k)
    elif config is None:
        sms = _sm_count(x.device.index) if x.is_cuda else 132  # meta: an H100's
        config = quant_matmul_config(m, n, k, weight.bits, x.dtype, sms)
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    split = config.split_k
    per_split = triton.cdiv(triton.cdiv(k, split), config.block_k) * config.block_k
    split = triton.cdiv(k, per_split)
    target = out if split == 1 else torch.empty(split, m, n, dtype=torch.float32, device=x.device)
    scale = weight.scale
    offset = weight.offset if weight.offset is not None else scale
    super_scale = weight.super_scale if weight.super_scale is not None else scale
    super_offset = weight.super_offset if weight.super_offset is not None else super_scale
    launch = Launch(
        _quant_matmul_kernel,
        (triton.cdiv(m, config.block_m), triton.cdiv(n, config.block_n), split),
        (x, weight.codes, scale, offset, super_scale, super_offset, target,
         m, n, k, per_split,
         x.stride(0), weight.codes.stride(0), scale.stride(0), offset.stride(0),
         super_scale.stride(0), super_offset.stride(0),
         target.stride(0) if split > 1 else 0, target.stride(-2)),
        dict(BITS=weight.bits, ZERO=weight.zero, GROUP=weight.group,
             SPAN=weight.group * weight.supergroup,
             HAS_OFFSET=weight.offset is not None, HAS_SUPER=weight.super_scale is not None,
             BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
             UPCAST=upcast(x), PRECISION=dot_precision(x)),
        num_warps=config.num_warps, num_stages=config.num_stages,
    )  # fmt: skip
    return out, target, launch


def quant_matmul_triton(
    x: torch.Tensor, weight: PackedWeight, config: QuantMatmulConfig | None = None
) -> torch.Tensor:
    """Same contract as `quant_matmul_ref`: x [M, K] → [M, N] in x's dtype."""
    out, target, launch = quant_matmul_plan(x.contiguous(), weight, config)
    if x.shape[0] == 0:
        return out
    with launch_guard(x):
        launch.run()
    if target is not out:
        out.copy_(target.sum(0))
    return out
