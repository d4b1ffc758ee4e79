"""Triton int4 / int8 matmul against its torch reference (interpreter worker or GPU)."""

from __future__ import annotations

import torch

from neuron_kernels.quant_matmul_ref import quant_matmul_ref
from tests.kernels.quant_cases import packed_weight

# Both sides round the weights to x's dtype and sum in fp32: what is left is the order of
# the sums and the output's rounding (one unit in the last place of the output dtype).
QUANT_TOLERANCE = {"float32": 1e-4, "float16": 2e-3, "bfloat16": 1.6e-2}


def quant_matmul(
    layout: str, rows: list[int], n: int, k: int, dtype: str, device: str = "cpu"
) -> None:
    """Under the GPU's own launch settings (for a small GPU: `sm_count` 4, so that a
    decode splits K into ragged parts), and the interpreter's."""
    from neuron_kernels.quant_matmul import quant_matmul_config, quant_matmul_triton

    weight = packed_weight(layout, n, k, seed=n + k, device=device)
    gen = torch.Generator().manual_seed(k)
    for m in rows:
        x = torch.randn(m, k, generator=gen).to(device=device, dtype=getattr(torch, dtype))
        want = quant_matmul_ref(x, weight)
        tol = QUANT_TOLERANCE[dtype]
        scale = want.float().abs().max().item() + 1.0
        for config in (quant_matmul_config(m, n, k, weight.bits, x.dtype, sm_count=4), None):
            got = quant_matmul_triton(x, weight, config)
            assert got.dtype == x.dtype and got.shape == (m, n)
            torch.testing.assert_close(got.float(), want.float(), atol=tol * scale, rtol=tol)
