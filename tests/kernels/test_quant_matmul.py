"""The int4 / int8 Triton matmul against its torch reference on ragged shapes: K not a
multiple of the block, N odd, M = 1, 3, 16 (split-K decode path) and 200 (tiled)."""

from __future__ import annotations

import pytest
import torch

from neuron_kernels import quant_matmul
from neuron_kernels.quant_matmul_ref import quant_matmul_ref
from tests.kernels.quant_cases import LAYOUTS, packed_weight
from tests.kernels.runners import needs_cuda, run_on_gpu

ROWS = [1, 3, 16, 200]
DTYPES = {"q4_0": "bfloat16", "q4_1": "float16", "q4_k": "float32", "q8_0": "bfloat16",
          "q6_k": "float32", "q5_k": "float16", "awq128": "bfloat16"}  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_quant_matmul_matches_reference(triton_run, layout: str) -> None:
    triton_run("quant_matmul", layout=layout, rows=ROWS, n=33, k=200, dtype=DTYPES[layout])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_quant_matmul_k_below_one_block(triton_run, dtype: str) -> None:
    triton_run("quant_matmul", layout="q4_1", rows=[1, 17], n=5, k=48, dtype=dtype)


def test_reference_dequantises_like_the_format_says() -> None:
    """w = (code - zero) * scale + offset, written out for one weight of each kind."""
    w = packed_weight("q4_1", 2, 64)
    low, high = int(w.codes[1, 3]) & 15, int(w.codes[1, 3]) >> 4
    for col, code in ((6, low), (7, high)):
        want = code * float(w.scale[1, 0]) + float(w.offset[1, 0])
        assert w.dequantize()[1, col].item() == pytest.approx(want, rel=1e-6)
    w = packed_weight("q6_k", 2, 512)
    want = int(w.codes[1, 300]) * int(w.scale[1, 300 // 16]) * float(w.super_scale[1, 1])
    assert w.dequantize()[1, 300].item() == pytest.approx(want, rel=1e-6)
    w = packed_weight("q4_0", 1, 64)
    assert w.dequantize()[0, 0].item() == pytest.approx(
        ((int(w.codes[0, 0]) & 15) - 8) * float(w.scale[0, 0]), rel=1e-6
    )
    x = torch.randn(2, 64)
    torch.testing.assert_close(quant_matmul(x, w), quant_matmul_ref(x, w))


def test_configs_split_k_only_for_decode() -> None:
    from neuron_kernels.quant_matmul_triton import quant_matmul_config

    for m in (1, 16):
        assert quant_matmul_config(m, 4096, 4096, 4, torch.bfloat16).split_k > 1
    prefill = quant_matmul_config(200, 4096, 4096, 4, torch.bfloat16)
    assert prefill.split_k == 1 and prefill.block_m >= 64


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("layout", ["q4_k", "q6_k", "awq128"])
def test_quant_matmul_at_llama_8b_sizes_on_gpu(layout: str) -> None:
    run_on_gpu("quant_matmul", layout=layout, rows=[1, 7, 16, 300], n=6144, k=4096,
               dtype="bfloat16")  # fmt: skip
