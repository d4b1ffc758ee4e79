"""Triton sampler: same order, cut-offs and random stream as ``sampling_ref``.

One program per row streams the vocabulary in blocks; nothing is sorted.  Top-k
and top-p find their cut-off by bisection over the order-preserving integer
image of fp32 values (exact: the cut-off lands on a real value, ties kept), and
the draw is an exponential race, argmax of p / Exp(1), whose Exp(1) draws hash
(row key, token id) exactly as the reference does."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from neuron_kernels.dispatch import interpreting, launch_guard
from neuron_kernels.sampling import SamplingBatch, row_keys
from neuron_kernels.triton_util import Launch


@triton.jit
def _penalty_kernel(X, IDS, COUNTS, REP, PRES, FREQ, width, s_x, s_i, s_c, BLOCK_L: tl.constexpr):
    row = tl.program_id(0)
    rep = tl.load(REP + row)
    pres = tl.load(PRES + row)
    freq = tl.load(FREQ + row)
    for l0 in range(0, width, BLOCK_L):
        offs = l0 + tl.arange(0, BLOCK_L)
        ids = tl.load(IDS + row * s_i + offs, mask=offs < width, other=-1)
        ok = ids >= 0
        count = tl.load(COUNTS + row * s_c + offs, mask=ok, other=0).to(tl.float32)
        x = tl.load(X + row * s_x + ids, mask=ok, other=0.0)
        x = tl.where(x > 0, x / rep, x * rep)
        x = x - freq * count
        x = x - pres * (count > 0).to(tl.float32)
        tl.store(X + row * s_x + ids, x, mask=ok)


@triton.jit
def _mix32(x):
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@triton.jit
def _order_key(x):
    """int32 whose order is the order of the fp32 values (-0.0 folded into +0.0)."""
    bits = (x + 0.0).to(tl.int32, bitcast=True)
    return tl.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)


@triton.jit
def _count_at_least(X, row_off, scale, vocab, threshold, BLOCK_V: tl.constexpr):
    total = tl.zeros([BLOCK_V], tl.int32)
    for v0 in range(0, vocab, BLOCK_V):
        offs = v0 + tl.arange(0, BLOCK_V)
        x = tl.load(X + row_off + offs, mask=offs < vocab, other=float("-inf")) / scale
        total += ((_order_key(x) >= threshold) & (offs < vocab)).to(tl.int32)
    return tl.sum(total, axis=0)


@triton.jit
def _survivors(X, row_off, offs, vocab, scale, peak, k_key, p_key):
    """e = p / p_max for one block, and which tokens pass the top-k and top-p cut-offs."""
    x = tl.load(X + row_off + offs, mask=offs < vocab, other=float("-inf")) / scale
    e = tl.exp(x - peak)
    keep = (_order_key(x) >= k_key) & (e.to(tl.int32, bitcast=True) >= p_key) & (offs < vocab)
    return e, keep


@triton.jit
def _mass_at_least(X, row_off, scale, vocab, peak, k_key, threshold, BLOCK_V: tl.constexpr):
    total = tl.zeros([BLOCK_V], tl.float32)
    for v0 in range(0, vocab, BLOCK_V):
        offs = v0 + tl.arange(0, BLOCK_V)
        e, keep = _survivors(X, row_off, offs, vocab, scale, peak, k_key, threshold)
        total += tl.where(keep, e, 0.0)
    return tl.sum(total, axis=0)


@triton.jit
def _sample_kernel(X, OUT, TEMP, TOP_K, TOP_P, MIN_P, KEYS, vocab, s_x, BLOCK_V: tl.constexpr):
    row = tl.program_id(0)
    row_off = row.to(tl.int64) * s_x
    temp = tl.load(TEMP + row)
    scale = tl.where(temp > 0, temp, 1.0)
    # Pass 1: first argmax (greedy), and the range of the scaled logits.
    best = tl.full([BLOCK_V], float("-inf"), tl.float32)
    best_at = tl.zeros([BLOCK_V], tl.int32)
    low = tl.full([BLOCK_V], float("inf"), tl.float32)
    for v0 in range(0, vocab, BLOCK_V):
        offs = v0 + tl.arange(0, BLOCK_V)
        x = tl.load(X + row_off + offs, mask=offs < vocab, other=float("-inf"))
        best_at = tl.where(x > best, offs, best_at)
        best = tl.maximum(best, x)
        low = tl.minimum(low, tl.where(offs < vocab, x, float("inf")))
    top = tl.max(best, axis=0)
    winner = tl.min(tl.where(best == top, best_at, vocab), axis=0)
    if temp > 0:
        peak = top / scale
        # Top-k: largest threshold t with #(key >= t) >= k; stop once exactly k.
        top_k = tl.load(TOP_K + row)
        k_key = _order_key(tl.min(low, axis=0) / scale).to(tl.int64)
        if (top_k > 0) & (top_k < vocab):
            hi = _order_key(peak).to(tl.int64) + 1
            while hi - k_key > 1:
                mid = k_key + (hi - k_key) // 2
                count = _count_at_least(X, row_off, scale, vocab, mid, BLOCK_V)
                if count >= top_k:
                    k_key = mid
                    if count == top_k:
                        hi = mid + 1
                else:
                    hi = mid
        # Top-p over the top-k survivors: largest e-threshold keeping >= top_p of the mass.
        top_p = tl.load(TOP_P + row)
        p_key = tl.zeros([], tl.int64)
        if top_p < 1.0:
            target = top_p * _mass_at_least(X, row_off, scale, vocab, peak, k_key, 0, BLOCK_V)
            hi = tl.full([], 0x3F800001, tl.int64)  # just above the bits of 1.0
            while hi - p_key > 1:
                mid = p_key + (hi - p_key) // 2
                mass = _mass_at_least(X, row_off, scale, vocab, peak, k_key, mid, BLOCK_V)
                if mass >= target:
                    p_key = mid
                else:
                    hi = mid
        min_p = tl.load(MIN_P + row)
        key = tl.load(KEYS + row).to(tl.uint32)
        # Exponential race over the survivors: argmax e / Exp(1).
        race = tl.full([BLOCK_V], -1.0, tl.float32)
        race_at = tl.zeros([BLOCK_V], tl.int32)
        for v0 in range(0, vocab, BLOCK_V):
            offs = v0 + tl.arange(0, BLOCK_V)
            e, keep = _survivors(X, row_off, offs, vocab, scale, peak, k_key, p_key)
            keep = keep & (e >= min_p)
            h = _mix32(_mix32(offs.to(tl.uint32) + key) ^ key)
            u = ((h >> 9).to(tl.float32) + 0.5) * (1.0 / 8388608.0)
            score = tl.where(keep, e / -tl.log(u), -1.0)
            race_at = tl.where(score > race, offs, race_at)
            race = tl.maximum(race, score)
        top_score = tl.max(race, axis=0)
        winner = tl.min(tl.where(race == top_score, race_at, vocab), axis=0)
    tl.store(OUT + row, winner.to(tl.int64))


def penalty_launch(logits: torch.Tensor, batch: SamplingBatch) -> Launch | None:
    """The in-place penalty launch over contiguous fp32 [B, V]; none when no row has ids."""
    width = batch.penalty_ids.shape[1]
    if width == 0 or logits.shape[0] == 0:
        return None
    ids, counts, c = batch.penalty_ids, batch.output_counts, batch.columns
    return Launch(
        _penalty_kernel, (logits.shape[0],),
        (logits, ids, counts,
         c["repetition_penalty"], c["presence_penalty"], c["frequency_penalty"],
         width, logits.stride(0), ids.stride(0), counts.stride(0)),
        dict(BLOCK_L=min(triton.next_power_of_2(width), 1024)),
    )  # fmt: skip


def sample_launch(x: torch.Tensor, out: torch.Tensor, batch: SamplingBatch) -> Launch:
    """The draw over fp32 [B, V] ``x`` (penalised already) into int64 [B] ``out``."""
    rows, vocab = x.shape
    c = batch.columns
    keys = row_keys(c["seed"], c["offset"])
    block = 64 if interpreting() else min(triton.next_power_of_2(vocab), 4096)
    # 8 warps: a 4096-wide block is 16 values a thread per running array (4 warps
    # spilled on sm_80), and a row's many passes over the vocabulary get more threads.
    return Launch(
        _sample_kernel, (rows,),
        (x, out, c["temperature"], c["top_k"], c["top_p"], c["min_p"], keys,
         vocab, x.stride(0)),
        dict(BLOCK_V=block), num_warps=8,
    )  # fmt: skip


def apply_penalties_triton(logits: torch.Tensor, batch: SamplingBatch) -> None:
    """In place on contiguous fp32 [B, V]; same arithmetic as the reference."""
    launch = penalty_launch(logits, batch)
    if launch is not None:
        with launch_guard(logits):
            launch.run()


def sample_triton(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """Same contract as ``kernels.sample``."""
    rows, vocab = logits.shape
    x = torch.empty(rows, vocab, dtype=torch.float32, device=logits.device).copy_(logits)
    apply_penalties_triton(x, batch)
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows == 0:
        return out
    with launch_guard(x):
        sample_launch(x, out, batch).run()
    return out
