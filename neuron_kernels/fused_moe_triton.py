"""Triton fused mixture-of-experts: every expert's SwiGLU in two grouped matmul launches.

The token-expert pairs are sorted by expert and each expert's run padded to a multiple of
BLOCK_M (`align_by_expert`), so each program's rows belong to one expert: it loads that
expert's weight tile once for all of them. Launch one multiplies the tokens by the stacked
gate/up weights [E, 2I, H]; launch two the activations by the down weights [E, H, I],
scaling each pair by its router weight; the k pairs of a token are then summed.

Everything is sized from the batch alone (the padding is bounded, not counted), and no
step reads a count back to the host, so a decode step with this block is captured in a
CUDA graph like any other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from neuron_kernels.dispatch import interpreting, launch_guard
from neuron_kernels.triton_util import Launch, dot_precision, pow2, upcast


def fused_moe_config(pairs: int, num_experts: int, n: int, k: int) -> dict[str, int]:
    """Block sizes and warps of one grouped matmul launch ([pairs, k] @ [E, n, k]): the
    one place they are chosen, so an ahead-of-time compile test can ask for them too.
    Few rows per expert (decode) want short row blocks, since each expert's run is
    padded to one; long ones (a prompt) longer blocks."""
    block_m = 16 if pairs <= 4 * num_experts else 64
    return {
        "BLOCK_M": block_m,
        "BLOCK_N": min(64, pow2(n)),
        "BLOCK_K": min(64, pow2(k)),
        "num_warps": 4,
        "num_stages": 1 if interpreting() else 3,
    }


def align_by_expert(
    ids: torch.Tensor, num_experts: int, block_m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sorted pair ids [capacity] int32, padded with the pair count; each row block's
    expert [capacity / block_m] int32; the padded total [1] int32).

    Pair p = token * k + slot. Each expert's pairs, in pair order, start at a multiple of
    block_m; capacity bounds the padding (at most block_m - 1 per expert that has pairs)."""
    flat = ids.flatten().long()
    pairs = flat.numel()
    counts = torch.zeros(num_experts, dtype=torch.long, device=ids.device)
    counts.scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    ends = padded.cumsum(0)
    order = flat.argsort(stable=True)
    expert = flat[order]
    rank = torch.arange(pairs, device=ids.device) - (counts.cumsum(0) - counts)[expert]
    capacity = triton.cdiv(pairs + min(num_experts, pairs) * (block_m - 1), block_m) * block_m
    sorted_ids = torch.full((capacity,), pairs, dtype=torch.int32, device=ids.device)
    sorted_ids[(ends - padded)[expert] + rank] = order.int()
    starts = torch.arange(0, capacity, block_m, device=ids.device)
    block_expert = torch.searchsorted(ends, starts, right=True).clamp_(max=num_experts - 1)
    return sorted_ids, block_expert.int(), ends[-1:].int()


@triton.jit
def _grouped_matmul_kernel(
    A, W, C, SORTED, BLOCK_EXPERT, TOTAL, ROUTE_W,
    num_pairs, n, k, rows_per_a,
    s_am, s_we, s_wn, s_cm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    WEIGHTED: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """C[p] = A[p // rows_per_a] @ W[expert(p)].T (times the pair's router weight)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if pid_m * BLOCK_M >= tl.load(TOTAL):
        return
    expert = tl.load(BLOCK_EXPERT + pid_m).to(tl.int64)
    pairs = tl.load(SORTED + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
    valid = pairs < num_pairs
    a_rows = (pairs // rows_per_a).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    n_ok = offs_n < n
    w_base = W + expert * s_we + offs_n[None, :].to(tl.int64) * s_wn
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k0 in range(0, k, BLOCK_K):
        kk = k0 + offs_k
        k_ok = kk < k
        a = tl.load(
            A + a_rows[:, None] * s_am + kk[None, :], mask=valid[:, None] & k_ok[None, :], other=0.0
        )
        w = tl.load(w_base + kk[:, None], mask=k_ok[:, None] & n_ok[None, :], other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(a, w, acc, input_precision=PRECISION)
    if WEIGHTED:
        acc = acc * tl.load(ROUTE_W + pairs, mask=valid, other=0.0)[:, None]
    out = C + pairs[:, None].to(tl.int64) * s_cm + offs_n[None, :]
    tl.store(out, acc.to(C.dtype.element_ty), mask=valid[:, None] & n_ok[None, :])


def grouped_matmul_launch(
    a: torch.Tensor,
    w: torch.Tensor,
    out: torch.Tensor,
    aligned: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rows_per_a: int,
    route_weights: torch.Tensor | None = None,
) -> Launch:
    """The one launch of `grouped_matmul` (also built from meta tensors by the
    ahead-of-time compile test, so what is compiled is what runs)."""
    sorted_ids, block_expert, total = aligned
    pairs = a.shape[0] * rows_per_a
    num_experts, n, k = w.shape
    cfg = fused_moe_config(pairs, num_experts, n, k)
    weights = route_weights if route_weights is not None else total  # unread when None
    return Launch(
        _grouped_matmul_kernel,
        (block_expert.numel(), triton.cdiv(n, cfg["BLOCK_N"])),
        (
            a, w, out, sorted_ids, block_expert, total, weights,
            pairs, n, k, rows_per_a,
            a.stride(0), w.stride(0), w.stride(1), out.stride(0),
        ),
        {
            "BLOCK_M": cfg["BLOCK_M"], "BLOCK_N": cfg["BLOCK_N"], "BLOCK_K": cfg["BLOCK_K"],
            "WEIGHTED": route_weights is not None, "UPCAST": upcast(a),
            "PRECISION": dot_precision(a),
        },
        num_warps=cfg["num_warps"],
        num_stages=cfg["num_stages"],
    )  # fmt: skip


def grouped_matmul(
    a: torch.Tensor,
    w: torch.Tensor,
    aligned: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    rows_per_a: int,
    out_dtype: torch.dtype,
    route_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """[pairs, n]: row p is a[p // rows_per_a] @ w[expert of p].T, in one launch over the
    pairs as `align_by_expert` sorted them (`aligned`)."""
    a, w = a.contiguous(), w.contiguous()
    out = torch.empty(a.shape[0] * rows_per_a, w.shape[1], dtype=out_dtype, device=a.device)
    with launch_guard(a):
        grouped_matmul_launch(a, w, out, aligned, rows_per_a, route_weights).run()
    return out


def fused_moe_triton(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    ids: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """What `fused_moe_ref` computes: x [T, H] → [T, H] through the routed experts."""
    top_k, num_experts = ids.shape[1], gate_up.shape[0]
    # Both launches share the sort: their row blocks depend on the pairs alone.
    block_m = fused_moe_config(ids.numel(), num_experts, *gate_up.shape[1:])["BLOCK_M"]
    aligned = align_by_expert(ids, num_experts, block_m)
    hidden = grouped_matmul(x, gate_up, aligned, top_k, x.dtype)
    gate, up = hidden.chunk(2, dim=-1)
    act = (F.silu(gate.float()) * up.float()).to(x.dtype)
    route = weights.reshape(-1).float().contiguous()
    out = grouped_matmul(act, down, aligned, 1, torch.float32, route)
    return out.view(-1, top_k, x.shape[1]).sum(dim=1).to(x.dtype)
