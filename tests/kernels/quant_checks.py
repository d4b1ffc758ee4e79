"""Triton int4 / int8 matmul against its torch reference (interpreter worker or GPU)."""

from __future__ import annotations

from pathlib import Path

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
    from neuron_kernels.quant_matmul_triton import quant_matmul_config, quant_matmul_triton

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


# Packed against dense logits: fp32 on both sides, the same weights, so only the order of
# the sums differs (measured: ~1e-6 of the largest logit).
LOGIT_TOLERANCE = 1e-4


def packed_model(packed: str, dense: str, steps: int = 32, device: str = "cpu") -> None:
    """A packed model runs its matmuls through the Triton kernel and computes what its
    dense twin does: logits of a prompt within LOGIT_TOLERANCE of the largest, and the
    same greedy tokens for `steps` steps, two prompts decoded as one batch."""
    from neuron_kernels import quant_matmul_triton as module
    from tests.models.packed_models import load_pair
    from tests.models.paged import PagedRunner, greedy

    quant, plain, weight_format = load_pair(Path(packed), Path(dense), device)
    assert "int4" in weight_format, weight_format
    launches = []
    triton_matmul = module.quant_matmul_triton

    def counted(x, weight, config=None):
        launches.append(x.shape[0])
        return triton_matmul(x, weight, config)

    module.quant_matmul_triton = counted
    try:
        prompt = list(range(5, 38))
        want = PagedRunner(plain, kv_dtype=torch.float32).prefill({"a": prompt})
        got = PagedRunner(quant, kv_dtype=torch.float32).prefill({"a": prompt})
        limit = LOGIT_TOLERANCE * want.abs().max().item()
        assert (got - want).abs().max().item() <= limit
        prompts = [list(range(40, 49)), list(range(100, 120))]
        assert greedy(quant, prompts, steps, torch.float32) == greedy(
            plain, prompts, steps, torch.float32
        )
    finally:
        module.quant_matmul_triton = triton_matmul
    assert launches and min(launches) <= 2 < max(launches)  # decode and prefill both ran
