"""Triton attention against the torch reference (interpreter on CPU, or GPU)."""

from __future__ import annotations

import pytest

PREFILL_CASES = {
    # name: (q_lens, k_lens, heads, kv_heads, head_dim)
    "mha-d16-chunked": ([5, 1, 20], [5, 9, 33], 4, 4, 16),
    "gqa2-d64": ([17, 3], [17, 40], 4, 2, 64),
    "gqa4-d16": ([9, 24], [30, 24], 8, 2, 16),
    "gqa3-d24": ([6], [19], 6, 2, 24),
}

DECODE_CASES = {
    # name: (context_lens, heads, kv_heads, head_dim, block_size, num_splits)
    "mha-d16-3splits": ([37, 3, 16], 4, 4, 16, 8, 3),
    "gqa2-d64-4splits": ([70, 5], 4, 2, 64, 16, 4),
    "gqa4-d16-default": ([45, 1], 8, 2, 16, 8, None),
    "gqa3-d24-5splits": ([33], 6, 2, 24, 4, 5),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", list(PREFILL_CASES))
def test_prefill_matches_reference(triton_run, name: str, dtype: str) -> None:
    q_lens, k_lens, heads, kv_heads, head_dim = PREFILL_CASES[name]
    triton_run(
        "prefill", q_lens=q_lens, k_lens=k_lens, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, dtype=dtype,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", list(DECODE_CASES))
def test_decode_matches_reference(triton_run, name: str, dtype: str) -> None:
    context_lens, heads, kv_heads, head_dim, block_size, splits = DECODE_CASES[name]
    triton_run(
        "decode", context_lens=context_lens, heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, block_size=block_size, num_splits=splits, dtype=dtype,
    )  # fmt: skip
