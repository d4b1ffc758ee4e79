"""The torch attention references against plain softmax attention with an explicit
mask, computed per head in float64."""

from __future__ import annotations

import pytest
import torch

from neuron_kernels import store_kv
from neuron_kernels.attention_ref import decode_attention_ref, prefill_attention_ref
from tests.kernels.cases import DecodeCase, PrefillCase, decode_case, prefill_case

TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 2e-2}


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed, scale):
    """q [Lq, Hq, D]; k, v [Lk, Hkv, D]; allowed [Lq, Lk] bool."""
    group = q.shape[1] // k.shape[1]
    out = torch.empty(q.shape, dtype=torch.float64)
    for h in range(q.shape[1]):
        scores = q[:, h].double() @ k[:, h // group].double().T * scale
        scores = scores.masked_fill(~allowed, float("-inf"))
        out[:, h] = torch.softmax(scores, dim=-1) @ v[:, h // group].double()
    return out


def naive_prefill(case: PrefillCase) -> torch.Tensor:
    outs = []
    for i, (lq, lk) in enumerate(zip(case.q_lens, case.k_lens, strict=True)):
        q0, k0 = int(case.cu_q[i]), int(case.cu_k[i])
        allowed = torch.tensor(
            [[j <= r + lk - lq for j in range(lk)] for r in range(lq)], dtype=torch.bool
        )
        q, k, v = case.q[q0 : q0 + lq], case.k[k0 : k0 + lk], case.v[k0 : k0 + lk]
        outs.append(naive_attention(q, k, v, allowed, case.scale))
    return torch.cat(outs)


def naive_decode(case: DecodeCase) -> torch.Tensor:
    block_size = case.k_cache.shape[1]
    outs = []
    for b, n in enumerate(case.context_lens.tolist()):
        blocks = [int(case.block_tables[b, pos // block_size]) for pos in range(n)]
        k = torch.stack([case.k_cache[blk, pos % block_size] for pos, blk in enumerate(blocks)])
        v = torch.stack([case.v_cache[blk, pos % block_size] for pos, blk in enumerate(blocks)])
        allowed = torch.ones(1, n, dtype=torch.bool)
        outs.append(naive_attention(case.q[b : b + 1], k, v, allowed, case.scale))
    return torch.cat(outs)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(
    ("q_lens", "k_lens", "heads", "kv_heads", "head_dim"),
    [
        ([7, 1, 12], [7, 5, 30], 4, 4, 16),
        ([16, 3], [20, 3], 4, 2, 64),
        ([1, 9], [9, 9], 8, 2, 24),
    ],
)
def test_prefill_reference_matches_naive(q_lens, k_lens, heads, kv_heads, head_dim, dtype):
    case = prefill_case(q_lens, k_lens, heads, kv_heads, head_dim, dtype)
    got = case.call(prefill_attention_ref)
    assert got.dtype == case.q.dtype and got.shape == case.q.shape
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.double(), naive_prefill(case), atol=tol, rtol=tol)


def test_prefill_reference_rejects_more_queries_than_keys() -> None:
    case = prefill_case([4], [3], heads=2, kv_heads=2, head_dim=16)
    with pytest.raises(ValueError, match="cannot cover"):
        case.call(prefill_attention_ref)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(
    ("context_lens", "heads", "kv_heads", "head_dim", "block_size"),
    [
        ([37, 1, 16], 4, 4, 16, 8),
        ([5, 64], 4, 2, 64, 16),
        ([23], 8, 2, 24, 4),
    ],
)
def test_decode_reference_matches_naive(context_lens, heads, kv_heads, head_dim, block_size, dtype):
    case = decode_case(context_lens, heads, kv_heads, head_dim, block_size, dtype)
    got = decode_attention_ref(*case.args(), case.scale)
    assert got.dtype == case.q.dtype and got.shape == case.q.shape
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got.double(), naive_decode(case), atol=tol, rtol=tol)


def test_store_kv_writes_exactly_the_mapped_slots() -> None:
    k_cache = torch.zeros(4, 8, 2, 16, dtype=torch.bfloat16)
    v_cache = torch.zeros_like(k_cache)
    k, v = torch.randn(3, 2, 16), torch.randn(3, 2, 16)
    slots = torch.tensor([2 * 8 + 5, 0, 3 * 8 + 7], dtype=torch.int32)
    store_kv(k, v, k_cache, v_cache, slots)
    for i, (blk, off) in enumerate([(2, 5), (0, 0), (3, 7)]):
        assert torch.equal(k_cache[blk, off], k[i].to(torch.bfloat16))
        assert torch.equal(v_cache[blk, off], v[i].to(torch.bfloat16))
    assert int((k_cache != 0).any(dim=(2, 3)).sum()) == 3
    assert int((v_cache != 0).any(dim=(2, 3)).sum()) == 3


def test_decode_after_store_kv_sees_the_new_token() -> None:
    """The decoder's order: write the current token, then attend over the cache."""
    case = decode_case([9], heads=2, kv_heads=2, head_dim=16, block_size=8)
    before = decode_attention_ref(*case.args(), case.scale)
    new_k = case.q.clone() * 10  # a key aligned with the query dominates the softmax
    new_v = torch.full_like(new_k, 3.0)
    slot = int(case.block_tables[0, 1]) * 8 + 1  # position 9 lives in the second block
    store_kv(new_k, new_v, case.k_cache, case.v_cache, torch.tensor([slot]))
    case.context_lens += 1
    after = decode_attention_ref(*case.args(), case.scale)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, torch.full_like(after, 3.0), atol=1e-3, rtol=0)
