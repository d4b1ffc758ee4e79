"""GPU-only checks: bf16, long contexts and CUDA-graph capture (bench/gpu_check.sh)."""

from __future__ import annotations

import pytest

from tests.kernels.runners import needs_cuda, run_on_gpu

pytestmark = [pytest.mark.cuda, needs_cuda]


@pytest.mark.parametrize("head_dim", [64, 128])
def test_bf16_prefill_long_chunked(head_dim: int) -> None:
    run_on_gpu(
        "prefill", q_lens=[1000, 300, 1], k_lens=[1000, 1300, 77], heads=16, kv_heads=4,
        head_dim=head_dim, dtype="bfloat16",
    )  # fmt: skip


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_decode_long_context_default_splits(dtype: str) -> None:
    run_on_gpu(
        "decode", context_lens=[8192, 17, 3000, 1], heads=32, kv_heads=8, head_dim=128,
        block_size=16, dtype=dtype,
    )  # fmt: skip


def test_sampling_large_vocab_bf16() -> None:
    rows = [{"temperature": 0.0}, {"seed": 1}, {"top_k": 50, "seed": 2},
            {"top_p": 0.9, "seed": 3}, {"min_p": 0.05, "seed": 4},
            {"top_k": 40, "top_p": 0.95, "temperature": 0.7, "seed": 5}]  # fmt: skip
    run_on_gpu("sampling", rows=rows, vocab=151_936, dtype="bfloat16")


def test_decode_in_cuda_graph() -> None:
    run_on_gpu("decode_graph")


def test_sampling_in_cuda_graph() -> None:
    run_on_gpu("sampling_graph")
