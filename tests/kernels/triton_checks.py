"""Triton-vs-reference checks, run on CPU inside the interpreter worker process
(``interp_worker``) or in-process on a GPU.  Arguments are plain JSON values."""

from __future__ import annotations

import threading

import torch

from neuron_kernels.attention_ref import decode_attention_ref, prefill_attention_ref
from neuron_kernels.sampling import SamplingBatch, SamplingRow
from neuron_kernels.sampling_ref import apply_penalties_ref, sample_ref
from tests.kernels.cases import decode_case, logits, prefill_case
from tests.kernels.quant_checks import packed_model, quant_matmul  # noqa: F401 (run by name)

TOLERANCE = {"float32": 1e-3, "float16": 5e-3, "bfloat16": 3e-2}


def prefill(
    q_lens: list[int],
    k_lens: list[int],
    heads: int,
    kv_heads: int,
    head_dim: int,
    dtype: str = "float32",
    device: str = "cpu",
) -> None:
    from neuron_kernels.attention_prefill import prefill_attention_triton

    case = prefill_case(q_lens, k_lens, heads, kv_heads, head_dim, dtype, device)
    got = case.call(prefill_attention_triton)
    want = case.call(prefill_attention_ref)
    assert got.dtype == case.q.dtype and got.shape == case.q.shape
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def decode(
    context_lens: list[int],
    heads: int,
    kv_heads: int,
    head_dim: int,
    block_size: int = 8,
    num_splits: int | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> None:
    from neuron_kernels.attention_decode import decode_attention_triton

    case = decode_case(context_lens, heads, kv_heads, head_dim, block_size, dtype, device)
    got = decode_attention_triton(*case.args(), case.scale, num_splits=num_splits)
    want = decode_attention_ref(*case.args(), case.scale)
    assert got.dtype == case.q.dtype and got.shape == case.q.shape
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def concurrent_decode(threads: int = 3) -> None:
    """Device threads may launch interpreted kernels at once: the lock serialises them."""
    from neuron_kernels.attention_decode import decode_attention_triton

    case = decode_case([20, 9], heads=4, kv_heads=2, head_dim=16)
    want = decode_attention_ref(*case.args(), case.scale)
    results: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(decode_attention_triton(*case.args(), case.scale, num_splits=2))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert len(results) == threads
    for got in results:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def _batch(rows: list[dict], device: str) -> SamplingBatch:
    return SamplingBatch.from_rows([SamplingRow(**row) for row in rows], device)


def penalties(rows: list[dict], vocab: int, device: str = "cpu") -> None:
    from neuron_kernels.sampling_triton import apply_penalties_triton

    batch = _batch(rows, device)
    x = logits(len(rows), vocab).to(device)
    want = x.clone()
    apply_penalties_ref(want, batch)
    apply_penalties_triton(x, batch)
    # Bit-exact in the interpreter; a GPU may fuse multiply-subtract into one FMA.
    tol = 0.0 if device == "cpu" else 1e-6
    torch.testing.assert_close(x, want, atol=tol, rtol=tol)


def sampling(
    rows: list[dict], vocab: int, spread: float = 3.0, dtype: str = "float32", device: str = "cpu"
) -> None:
    """Same tokens as the reference: same cut-offs and the same random stream."""
    from neuron_kernels.sampling_triton import sample_triton

    batch = _batch(rows, device)
    x = logits(len(rows), vocab, spread).to(device=device, dtype=getattr(torch, dtype))
    got = sample_triton(x, batch)
    want = sample_ref(x, batch)
    assert got.dtype == torch.int64 and got.shape == (len(rows),)
    assert got.tolist() == want.tolist()


def decode_graph(device: str = "cuda") -> None:
    """Decode captured in a CUDA graph, replayed after the lengths and keys change."""
    from neuron_kernels.attention_decode import decode_attention_triton

    case = decode_case([100, 7, 300], 8, 2, 128, 16, "bfloat16", device)
    decode_attention_triton(*case.args(), case.scale)  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = decode_attention_triton(*case.args(), case.scale)
    case.context_lens.copy_(torch.tensor([50, 8, 299], device=device))
    case.k_cache.mul_(0.5)
    graph.replay()
    want = decode_attention_ref(*case.args(), case.scale)
    torch.testing.assert_close(out.float(), want.float(), atol=3e-2, rtol=3e-2)


def sampling_graph(device: str = "cuda") -> None:
    """The sampler captured in a CUDA graph follows new logits and offsets on replay."""
    from neuron_kernels.sampling_triton import sample_triton

    rows = [{"seed": 1}, {"top_k": 5, "seed": 2}, {"top_p": 0.8, "seed": 3}, {"temperature": 0}]
    batch = _batch(rows, device)
    x = logits(4, 1000).to(device)
    sample_triton(x, batch)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = sample_triton(x, batch)
    x.copy_(logits(4, 1000, seed=5).to(device))
    batch.columns["offset"].add_(1)
    graph.replay()
    assert out.tolist() == sample_ref(x, batch).tolist()


def fused_moe(
    tokens: int,
    experts: int,
    top_k: int,
    hidden: int,
    inter: int,
    routing: str = "random",
    dtype: str = "float32",
    device: str = "cpu",
) -> None:
    """The fused MoE kernel against its reference. `routing`: "random" (each token's
    experts drawn apart), "skewed" (every token to expert 0, the rest spread over the
    first few: most experts get no token).
    """
    from neuron_kernels.fused_moe_ref import fused_moe_ref
    from neuron_kernels.fused_moe_triton import align_by_expert, fused_moe_triton

    gen = torch.Generator().manual_seed(tokens * 131 + experts * 7 + top_k)
    kind = getattr(torch, dtype)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * scale).to(device=device, dtype=kind)

    x = rand(tokens, hidden)
    gate_up, down = (
        rand(experts, 2 * inter, hidden, scale=0.2),
        rand(experts, hidden, inter, scale=0.2),
    )
    if routing == "skewed":
        rest = [
            torch.randperm(min(experts, 3), generator=gen)[: top_k - 1] + 1 for _ in range(tokens)
        ]
        ids = torch.stack([torch.cat([torch.zeros(1, dtype=torch.long), r]) for r in rest])
    else:
        ids = torch.stack([torch.randperm(experts, generator=gen)[:top_k] for _ in range(tokens)])
    ids = ids.to(device=device, dtype=torch.int32)
    weights = torch.rand(tokens, top_k, generator=gen).to(device)
    # The sort: every pair once, each expert's run from a block boundary, padding unread.
    block = 16
    sorted_ids, block_expert, total = align_by_expert(ids, experts, block)
    pairs = sorted_ids[: int(total)]
    real = pairs[pairs < tokens * top_k].long()
    assert sorted(real.tolist()) == list(range(tokens * top_k))
    flat = ids.flatten().long()
    assert (flat[real].diff() >= 0).all(), "pairs not grouped by expert"
    for b in range(int(total) // block):
        rows = sorted_ids[b * block : (b + 1) * block].long()
        rows = rows[rows < tokens * top_k]
        assert (flat[rows] == block_expert[b]).all()
    got = fused_moe_triton(x, gate_up, down, ids, weights)
    want = fused_moe_ref(x, gate_up, down, ids, weights)
    assert got.dtype == x.dtype and got.shape == x.shape
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


def fused_moe_graph(device: str = "cuda") -> None:
    """The fused MoE captured in a CUDA graph (as a decode step is), replayed after the
    routing changes: nothing in it may read a count back to the host."""
    from neuron_kernels.fused_moe_ref import fused_moe_ref
    from neuron_kernels.fused_moe_triton import fused_moe_triton

    tokens, experts, top_k, hidden, inter = 4, 16, 4, 256, 128
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(tokens, hidden, device=device, generator=gen, dtype=torch.bfloat16)
    gate_up = 0.1 * torch.randn(experts, 2 * inter, hidden, device=device, generator=gen)
    down = 0.1 * torch.randn(experts, hidden, inter, device=device, generator=gen)
    gate_up, down = gate_up.bfloat16(), down.bfloat16()
    ids = torch.zeros(tokens, top_k, dtype=torch.int32, device=device)
    weights = torch.full((tokens, top_k), 1 / top_k, device=device)

    def route(seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        ids.copy_(
            torch.stack([torch.randperm(experts, generator=g)[:top_k] for _ in range(tokens)])
        )

    route(1)
    fused_moe_triton(x, gate_up, down, ids, weights)  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fused_moe_triton(x, gate_up, down, ids, weights)
    for seed in (2, 3):
        route(seed)
        graph.replay()
        want = fused_moe_ref(x, gate_up, down, ids, weights)
        torch.testing.assert_close(out.float(), want.float(), atol=3e-2, rtol=3e-2)
